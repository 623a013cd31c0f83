"""Every registered deep method honours the shared contract: the scikit-learn API, a saved
estimator that predicts the same, and an interrupted run that resumes bit-exactly on the CPU."""
import os
import signal

import numpy as np
import pytest
import torch

import deepclust
from deepclust.methods import get_method, list_methods, load_estimator
from support import fashion_mnist_available, fashion_mnist_subset

DEEP_METHODS = [name for name in list_methods()
                if name != "toy" and getattr(get_method(name), "model_class", None) is not None]
TINY = {"training": {"epochs": 2, "batch_size": 32, "eval_every": 0, "checkpoint_every_minutes": 0.0}}

pytestmark = pytest.mark.skipif(not fashion_mnist_available(), reason="Fashion-MNIST not installed")


@pytest.fixture(scope="module")
def tiny_data():
    return fashion_mnist_subset(128, seed=3)


def _make(name, **params):
    return deepclust.make(name, n_clusters=10, preset="cpu-fashion-mnist", config=TINY, device="cpu", seed=7,
                          **params)


def _state(estimator):
    return {key: value.clone() for key, value in estimator.model_.state_dict().items()}


@pytest.mark.parametrize("name", DEEP_METHODS)
def test_sklearn_api_and_save_load(name, tiny_data, tmp_path):
    estimator = _make(name, out_dir=str(tmp_path))
    labels = estimator.fit_predict(tiny_data)
    assert labels.shape == (128,) and labels.min() >= 0 and labels.max() < 10
    assert np.array_equal(estimator.predict(tiny_data), labels)
    embeddings = estimator.transform(tiny_data.images)
    assert embeddings.shape[0] == 128 and np.isfinite(embeddings).all()
    if hasattr(estimator, "predict_proba"):
        proba = estimator.predict_proba(tiny_data.images)
        assert proba.shape == (128, 10) and np.allclose(proba.sum(1), 1, atol=1e-4)
    for key in ("acc", "nmi", "ari", "n_clusters_used"):
        assert np.isfinite(estimator.metrics_[key])
    loaded = load_estimator(tmp_path / "model.pt", device="cpu")
    assert np.array_equal(loaded.predict(tiny_data), labels)


@pytest.mark.parametrize("name", DEEP_METHODS)
def test_interrupted_run_resumes_bit_exactly(name, tiny_data, tmp_path, monkeypatch):
    reference = _state(_make(name).fit(tiny_data))

    model_class = get_method(name).model_class
    original = model_class.on_after_step

    def interrupt_at_step_5(self, global_step, context):
        original(self, global_step, context)
        if global_step + 1 == 5:  # 4 steps per epoch: stops inside the second epoch
            os.kill(os.getpid(), signal.SIGINT)

    monkeypatch.setattr(model_class, "on_after_step", interrupt_at_step_5)
    stopped = _make(name, out_dir=str(tmp_path)).fit(tiny_data)
    assert stopped.fit_result_.stop_reason == "stopped by SIGINT" and stopped.fit_result_.global_step == 5
    monkeypatch.setattr(model_class, "on_after_step", original)
    resumed = _make(name, out_dir=str(tmp_path), resume=True).fit(tiny_data)
    assert resumed.fit_result_.global_step == 8
    actual = _state(resumed)
    assert reference.keys() == actual.keys()
    for key in reference:
        assert torch.equal(reference[key], actual[key]), f"{name}: {key} differs after resume"
