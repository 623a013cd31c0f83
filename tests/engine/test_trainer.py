import json

import numpy as np
import pytest
import torch

from toy_method import TOY_CONFIG, Toy, ToyModel
from deepclust.data import ImageDataset
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


def test_resume_past_its_time_budget_trains_no_further_step(tmp_path, toy_data):
    images, _ = toy_data
    first = Toy(n_clusters=3, seed=3, out_dir=str(tmp_path), max_minutes=1e-9).fit(images)
    assert first.fit_result_.global_step == 1
    resumed = Toy(n_clusters=3, seed=3, out_dir=str(tmp_path), max_minutes=1e-9, resume=True).fit(images)
    assert resumed.fit_result_.global_step == 1 and "time budget" in resumed.metrics_["stop_reason"]
    for (name, x), y in zip(_params(first).items(), _params(resumed).values()):
        assert torch.equal(x, y), name


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
    with pytest.raises(ValueError, match=r"optimizer.lr \(run 0.01, now 0.5\)"):
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


# --- epoch passes ---------------------------------------------------------------------------
#: the toy's two passes: the first part with the cluster term named, then the second with every term
TWO_PASSES = {"method": {"passes": [["first", ["cluster"]], ["second", None]]}}


def parted_toy_data(toy_data, first_size=32):
    """The toy blobs with two parts: every third image ("first", 32 of 96 images by default) and the rest."""
    images, labels = toy_data
    first = np.arange(0, len(images), 3)[:first_size]
    parts = {"first": first, "second": np.setdiff1d(np.arange(len(images)), first)}
    return ImageDataset(images, labels, "blobs", ["a", "b", "c"], 3, parts=parts)


def test_one_pass_epochs_keep_the_seeded_permutation(toy_data):
    images, _ = toy_data
    estimator = Toy(n_clusters=3, seed=4, max_epochs=1).fit(images)
    expected = torch.randperm(96, generator=torch.Generator().manual_seed(4 * 1_000_003)).split(16)
    assert [indices for _, _, indices in estimator.model_.seen] == [batch.tolist() for batch in expected]
    assert {(name, terms) for name, terms, _ in estimator.model_.seen} == {("all", None)}


def test_epoch_passes_walk_their_parts_in_order_with_their_terms(toy_data):
    data = parted_toy_data(toy_data)
    estimator = Toy(n_clusters=3, seed=1, config=TWO_PASSES).fit(data)
    assert estimator.fit_result_.global_step == 3 * (2 + 4)  # 32 / 16 + 64 / 16 steps per epoch
    seen = estimator.model_.seen
    epochs = [seen[start:start + 6] for start in range(0, 18, 6)]
    for epoch in epochs:
        assert [(name, terms) for name, terms, _ in epoch] == [("first", ("cluster",))] * 2 + [("second", None)] * 4
        assert sorted(i for _, _, indices in epoch[:2] for i in indices) == data.parts["first"].tolist()
        assert sorted(i for _, _, indices in epoch[2:] for i in indices) == data.parts["second"].tolist()
    assert epochs[0][0][2] != epochs[1][0][2]  # each epoch its own order


@pytest.mark.parametrize("stop_at", [7, 10])  # epoch 2: step 7 is inside the first pass, step 10 inside the second
def test_two_pass_run_resumes_bit_exactly_inside_either_pass(tmp_path, toy_data, stop_at):
    data = parted_toy_data(toy_data)
    reference = Toy(n_clusters=3, seed=2, config=TWO_PASSES).fit(data)
    stopping = {"method": {**TWO_PASSES["method"], "stop_at_step": stop_at}}
    stopped = Toy(n_clusters=3, seed=2, out_dir=str(tmp_path), config=stopping).fit(data)
    assert stopped.fit_result_.global_step == stop_at
    resumed = Toy(n_clusters=3, seed=2, out_dir=str(tmp_path), resume=True, config=stopping).fit(data)
    assert resumed.fit_result_.global_step == reference.fit_result_.global_step == 18
    assert [batch for batch in resumed.model_.seen] == reference.model_.seen[stop_at:]
    for (name, x), y in zip(_params(reference).items(), _params(resumed).values()):
        assert torch.equal(x, y), name


def test_bad_epoch_passes_are_clear_errors(toy_data, monkeypatch):
    with pytest.raises(ValueError, match=r"batch_size 16 is larger than epoch pass 'first' \(8 images\)"):
        Toy(n_clusters=3, config=TWO_PASSES).fit(parted_toy_data(toy_data, first_size=8))
    data = parted_toy_data(toy_data)
    data.parts["first"] = np.arange(90, 110)
    with pytest.raises(ValueError, match=r"epoch pass 'first' has indices outside the 96 images \(90..109\)"):
        Toy(n_clusters=3, config=TWO_PASSES).fit(data)
    monkeypatch.setattr(ToyModel, "epoch_passes", lambda self, n, parts: [])
    with pytest.raises(TypeError, match="ToyModel.epoch_passes must return a non-empty list of EpochPass"):
        Toy(n_clusters=3).fit(toy_data[0])


def _logged_lr(folder):
    from deepclust.engine.run_folder import read_log

    return {event["step"]: event["lr"] for event in read_log(folder / "log.jsonl")[0] if event["event"] == "step"}


def test_extending_a_finished_run_recomputes_the_cosine_schedule_for_the_new_total(tmp_path, toy_data):
    images, _ = toy_data  # 96 images, batch 16: 6 steps per epoch; cosine after one warm-up epoch
    Toy(n_clusters=3, seed=4, out_dir=str(tmp_path / "run"), max_epochs=2).fit(images)
    finished = _logged_lr(tmp_path / "run")
    extended = Toy(n_clusters=3, seed=4, out_dir=str(tmp_path / "run"), max_epochs=4, resume=True).fit(images)
    assert extended.fit_result_.global_step == 24 and extended.metrics_["epochs"] == 4
    longer = Toy(n_clusters=3, seed=4, out_dir=str(tmp_path / "fresh"), max_epochs=4).fit(images)
    assert longer.fit_result_.global_step == 24
    resumed, fresh = _logged_lr(tmp_path / "run"), _logged_lr(tmp_path / "fresh")
    assert finished[12] == pytest.approx(0.0, abs=1e-12)  # the 2-epoch cosine had ended
    assert resumed[13] > finished[12]  # the 4-epoch cosine stands halfway at step 12
    assert [resumed[step] for step in range(13, 25)] == pytest.approx([fresh[step] for step in range(13, 25)])


def test_channels_last_trains_the_same_steps_with_channels_last_convolutions(tmp_path):
    """training.channels_last: the convolution weights are NHWC from the first step, and the losses of
    the same seeded run equal those of the contiguous one up to float32 rounding."""
    import deepclust
    from support import TINY

    images = np.random.default_rng(0).integers(0, 256, size=(48, 1, 28, 28), dtype=np.uint8)
    losses, formats = {}, {}
    for channels_last in (False, True):
        out = tmp_path / str(channels_last)
        config = {**TINY["dchl"], "training": {"batch_size": 16, "log_every": 1, "amp": False,
                                               "channels_last": channels_last}}
        estimator = deepclust.make("dchl", n_clusters=3, preset="cpu-fashion-mnist", config=config, max_epochs=1,
                                   device="cpu", seed=0, out_dir=str(out)).fit(ImageDataset(images, None, "r", [], 0))
        steps = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        losses[channels_last] = [event["loss"] for event in steps if event["event"] == "step"]
        convolutions = [m.weight for m in estimator.model_.modules()  # one input channel: both layouts alike
                        if isinstance(m, torch.nn.Conv2d) and m.in_channels > 1]
        formats[channels_last] = {w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous()
                                  for w in convolutions}
    assert formats == {False: {False}, True: {True}}
    assert len(losses[True]) == 3 and losses[True] == pytest.approx(losses[False], rel=1e-4)


def test_compile_trains_the_same_steps_and_leaves_a_picklable_estimator(tmp_path):
    """training.compile: the backbone's forward runs compiled during training (the seeded losses
    equal the eager run's up to float rounding); the fitted estimator is eager again and pickles."""
    import pickle

    import deepclust
    from support import TINY

    images = np.random.default_rng(0).integers(0, 256, size=(32, 1, 28, 28), dtype=np.uint8)
    losses = {}
    for compiled in (False, True):
        out = tmp_path / str(compiled)
        config = {**TINY["dchl"], "training": {"batch_size": 16, "log_every": 1, "amp": False, "compile": compiled}}
        estimator = deepclust.make("dchl", n_clusters=3, preset="cpu-fashion-mnist", config=config, max_epochs=1,
                                   device="cpu", seed=0, out_dir=str(out)).fit(ImageDataset(images, None, "r", [], 0))
        steps = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
        losses[compiled] = [event["loss"] for event in steps if event["event"] == "step"]
    assert len(losses[True]) == 2 and losses[True] == pytest.approx(losses[False], rel=1e-4)
    assert not any("forward" in vars(module) for module in estimator.model_.modules())
    restored = pickle.loads(pickle.dumps(estimator))
    assert (restored.predict(ImageDataset(images, None, "r", [], 0)) == estimator.labels_).all()
