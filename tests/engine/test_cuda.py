"""The CUDA paths of the engine for every method: placement, mixed precision, a deterministic
resume and inference equal to the CPU's.

Marked ``cuda`` (``pytest -m cuda``; ``./dev gpu-check`` runs them) and skipped without a CUDA device.
"""
import os
import warnings

# cuBLAS reads it when it starts: set before any test touches the GPU (deterministic matmuls)
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from deepclust.engine.trainer import Trainer  # noqa: E402
from deepclust.methods import get_method, load_estimator  # noqa: E402
from distributed_worker import logged_steps, make_estimator  # noqa: E402
from support import TINY, tiny_config  # noqa: E402

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="CUDA not available")]

METHODS = sorted(TINY)
STEPS_PER_EPOCH = 4


def random_data(n: int = 16 * STEPS_PER_EPOCH, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, size=(n, 1, 28, 28), dtype=np.uint8), rng.integers(0, 3, size=n)


def fit(method: str, device: str, training: dict | None = None, **params):
    """``method``'s tiny configuration on 64 random images, batch 16 (4 steps an epoch), 2 epochs."""
    config = tiny_config(method, {"training": {"epochs": 2, "batch_size": 16, "eval_every": 0, "log_every": 1,
                                               "checkpoint_every_minutes": 0.0, "max_minutes": None,
                                               **(training or {})}})
    images, labels = random_data()
    return make_estimator(method, config, n_clusters=3, device=device, seed=0, **params).fit(images, labels)


@pytest.fixture
def recorded_steps(monkeypatch):
    """Patch a method's ``training_step`` to record where each batch lives and whether autocast is on."""
    records = []

    def record(method: str) -> list[dict]:
        model_class = get_method(method).model_class
        original = model_class.training_step

        def training_step(self, batch):
            outputs = original(self, batch)
            records.append({"images": batch.images.device, "indices": batch.indices.device,
                            "generator": batch.generator.device, "loss": outputs["loss"].device,
                            "autocast": torch.is_autocast_enabled("cuda")})
            return outputs

        monkeypatch.setattr(model_class, "training_step", training_step)
        return records

    return record


@pytest.fixture
def exact_float32():
    """No TF32 in convolutions and matmuls, so CUDA float32 results are comparable with the CPU's."""
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = False
    yield
    torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


@pytest.fixture
def deterministic():
    """Deterministic CUDA kernels; an op that has none (k-means++ seeding's float ``cumsum``) warns
    instead of failing, and the list of such ops is yielded for the failure messages."""
    torch.use_deterministic_algorithms(True, warn_only=True)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield caught
    torch.use_deterministic_algorithms(False)


def without_deterministic_kernel(caught) -> list[str]:
    return sorted({str(w.message).split(" does not")[0] for w in caught if "deterministic implementation" in str(w.message)})


@pytest.mark.parametrize("method", METHODS)
def test_model_batches_generator_and_centroids_live_on_cuda(method, recorded_steps):
    steps = recorded_steps(method)
    model = fit(method, "cuda").model_
    assert len(steps) == 2 * STEPS_PER_EPOCH
    for step in steps:
        for name in ("images", "indices", "generator", "loss"):
            assert step[name].type == "cuda", f"{method}: batch {name} on {step[name]}"
    for name, value in [*model.named_parameters(), *model.named_buffers()]:
        assert value.is_cuda, f"{method}: {name} on {value.device}"
    if model.label_source == "kmeans":
        assert model.centroids.numel() > 0 and model.centroids.is_cuda


@pytest.mark.parametrize("amp", [True, False], ids=["amp", "float32"])
@pytest.mark.parametrize("method", METHODS)
def test_losses_are_finite_with_and_without_mixed_precision(method, amp, recorded_steps, tmp_path):
    steps = recorded_steps(method)
    fit(method, "cuda", {"epochs": 1, "amp": amp}, out_dir=str(tmp_path))
    assert [step["autocast"] for step in steps] == [amp] * STEPS_PER_EPOCH
    logged = logged_steps(tmp_path)
    assert len(logged) == STEPS_PER_EPOCH
    for event in logged:
        terms = {key: value for key, value in event.items() if key not in ("event", "time", "epoch", "step")}
        assert terms and all(np.isfinite(value) for value in terms.values()), f"{method}, amp={amp}: {terms}"


@pytest.mark.parametrize("method", METHODS)
def test_interrupted_run_resumes_bit_exactly_on_cuda(method, tmp_path, monkeypatch, deterministic):
    straight = fit(method, "cuda")
    original = Trainer._end_step

    def stop_after_step_5(self, values, stop):  # in the middle of the second epoch
        return original(self, values, stop) or ("stopped by the test" if self.global_step == 5 else None)

    monkeypatch.setattr(Trainer, "_end_step", stop_after_step_5)
    stopped = fit(method, "cuda", out_dir=str(tmp_path))
    assert stopped.fit_result_.global_step == 5 and stopped.fit_result_.stop_reason == "stopped by the test"
    monkeypatch.setattr(Trainer, "_end_step", original)
    resumed = fit(method, "cuda", out_dir=str(tmp_path), resume=True)
    assert resumed.fit_result_.global_step == 2 * STEPS_PER_EPOCH
    expected, actual = straight.model_.state_dict(), resumed.model_.state_dict()
    assert expected.keys() == actual.keys()
    unsure = f"(ops without a deterministic CUDA kernel: {without_deterministic_kernel(deterministic) or 'none'})"
    for name, value in expected.items():
        assert torch.equal(actual[name], value), f"{method}: {name} differs after the resume {unsure}"
    assert np.array_equal(resumed.labels_, straight.labels_), f"{method}: labels differ {unsure}"


@pytest.mark.parametrize("method", METHODS)
def test_predict_and_transform_on_cuda_match_the_cpu(method, tmp_path, exact_float32):
    fit(method, "cpu", {"epochs": 1}, out_dir=str(tmp_path))
    on_cpu, on_cuda = (load_estimator(tmp_path / "model.pt", device=device) for device in ("cpu", "cuda"))
    images, _ = random_data(seed=1)
    expected = on_cpu.transform(images)
    np.testing.assert_allclose(on_cuda.transform(images), expected, rtol=1e-3, atol=1e-4 * np.abs(expected).max())
    if hasattr(on_cpu, "predict_proba"):
        np.testing.assert_allclose(on_cuda.predict_proba(images), on_cpu.predict_proba(images), rtol=1e-3, atol=1e-5)
    # a label may flip where two clusters are within rounding of each other: at most one image in 64
    agreement = np.mean(on_cuda.predict(images) == on_cpu.predict(images))
    assert agreement >= 1 - 1 / len(images), f"{method}: CUDA and CPU labels agree on {agreement:.1%}"
