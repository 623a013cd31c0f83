import json

import numpy as np
import pytest
import torch
from sklearn.base import clone

from toy_method import TOY_CONFIG, Toy
from deepclust.engine import NonFiniteLossError


def _params(estimator):
    return {k: v.clone() for k, v in estimator.model_.state_dict().items()}


def test_fit_writes_run_folder(tmp_path, toy_data):
    images, labels = toy_data
    estimator = Toy(n_clusters=3, out_dir=str(tmp_path), seed=1).fit(images, labels)
    assert (tmp_path / "model.pt").is_file() and (tmp_path / "checkpoints" / "last.pt").is_file()
    assert (tmp_path / "config.yaml").is_file()
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    for key in ("acc", "nmi", "ari", "n_clusters_used", "seconds", "images_per_second"):
        assert key in metrics
    events = [json.loads(line)["event"] for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    assert events[0] == "start" and events[-1] == "stop" and "step" in events and "eval" in events
    assert len(estimator.history_) == TOY_CONFIG["training"]["epochs"] - 1


def test_same_seed_same_result(toy_data):
    images, labels = toy_data
    a = Toy(n_clusters=3, seed=5).fit(images)
    b = Toy(n_clusters=3, seed=5).fit(images)
    for (name, x), y in zip(_params(a).items(), _params(b).values()):
        assert torch.equal(x, y), name


def test_interrupted_run_resumes_bit_exactly(tmp_path, toy_data):
    images, _ = toy_data
    reference = Toy(n_clusters=3, seed=2).fit(images)
    stopped = Toy(n_clusters=3, seed=2, out_dir=str(tmp_path),
                  config={"method": {"stop_at_step": 7}}).fit(images)  # SIGINT in the middle of epoch 2
    assert stopped.fit_result_.stop_reason == "stopped by SIGINT"
    assert stopped.fit_result_.global_step == 7
    resumed = Toy(n_clusters=3, seed=2, out_dir=str(tmp_path), resume=True,
                  config={"method": {"stop_at_step": 7}}).fit(images)  # step 7 is behind it now
    assert resumed.fit_result_.global_step == reference.fit_result_.global_step
    for (name, x), y in zip(_params(reference).items(), _params(resumed).values()):
        assert torch.equal(x, y), name


def test_time_budget_stops_and_still_evaluates(toy_data):
    images, labels = toy_data
    estimator = Toy(n_clusters=3, max_minutes=1e-9).fit(images, labels)
    assert estimator.fit_result_.global_step == 1
    assert "time budget" in estimator.metrics_["stop_reason"]
    assert estimator.labels_.shape == (len(images),) and "acc" in estimator.metrics_


def test_non_finite_loss_is_reported_with_step_and_term(toy_data):
    images, _ = toy_data
    with pytest.raises(NonFiniteLossError, match=r"step 0: terms loss, cluster"):
        Toy(n_clusters=3, config={"method": {"noise": float("nan")}}).fit(images)
    estimator = Toy(n_clusters=3, config={"method": {"noise": float("nan")},
                                          "training": {"skip_nonfinite": True}}).fit(images)
    assert all(torch.isfinite(p).all() for p in estimator.model_.parameters())


def test_batch_larger_than_data_is_an_error(toy_data):
    images, _ = toy_data
    with pytest.raises(ValueError, match="batch_size 1000 is larger than the dataset"):
        Toy(n_clusters=3, batch_size=1000).fit(images)


def test_resume_with_a_different_configuration_is_refused(tmp_path, toy_data):
    images, _ = toy_data
    Toy(n_clusters=3, out_dir=str(tmp_path), config={"method": {"stop_at_step": 2}}).fit(images)
    with pytest.raises(ValueError, match=r"optimizer.lr \(checkpoint 0.01, now 0.5\)"):
        Toy(n_clusters=3, out_dir=str(tmp_path), resume=True, lr=0.5,
            config={"method": {"stop_at_step": 2}}).fit(images)
    resumed = Toy(n_clusters=3, out_dir=str(tmp_path), resume=True,
                  config={"method": {"stop_at_step": 2}, "training": {"eval_every": 2}}).fit(images)
    assert resumed.fit_result_.global_step > 2


def test_fit_result_carries_the_final_labels_and_epochs_are_reported(toy_data, capsys):
    images, labels = toy_data
    estimator = Toy(n_clusters=3, seed=3, verbose=True).fit(images, labels)
    assert estimator.labels_ is estimator.fit_result_.labels
    assert np.array_equal(estimator.labels_, estimator.predict(images))  # a head method: no re-clustering
    record = estimator.history_[0]
    expected = (f"epoch 1: ACC {record['acc']:.4f}  NMI {record['nmi']:.4f}  ARI {record['ari']:.4f}  "
                f"clusters used {record['n_clusters_used']}")
    assert expected in capsys.readouterr().out
