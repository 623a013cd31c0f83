"""ConCURL: the network, its training step, hooks, inference options, estimator and CLI."""
import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import deepclust
import deepclust.methods.concurl as concurl_module
from deepclust.cli import main
from deepclust.engine.model import Batch, TrainingContext
from deepclust.methods import ConCURL
from deepclust.methods.concurl import ConCURLModel
from support import (
    FULL, TINY, cli_fit, fashion_mnist_available, fashion_mnist_subset, naive_sinkhorn, set_options,
    tiny_config as shared_tiny_config,
)

#: what these tests add to the tiny ConCURL of ``support.TINY``
TESTS = {"training": {"batch_size": 32, "eval_batch_size": 256, "log_every": 1}}
needs_fashion_mnist = pytest.mark.skipif(not fashion_mnist_available(), reason="Fashion-MNIST not installed")


def tiny_config(**sections):
    return shared_tiny_config("concurl", TESTS, sections)


def tiny_model(n_samples=64, k=4, **sections):
    torch.manual_seed(0)
    model = ConCURLModel(tiny_config(**sections), k, (1, 28, 28), mean=(0.3,), std=(0.3,))
    model.on_fit_start(context(n_samples))
    return model


def context(n_samples=64):
    return TrainingContext(device=torch.device("cpu"), n_samples=n_samples, steps_per_epoch=2, total_steps=4,
                           max_epochs=2, iterate_dataset=lambda: iter(()))


def images(n=32, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def test_training_step_terms_and_shapes():
    model = tiny_model()
    out = model.training_step(Batch(images(), torch.arange(32), 0, 0))
    assert set(out) == {"loss", "nce", "population", "consensus"}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in out.values())
    # best-run weights α = 0, β = 1, γ = 1
    assert out["loss"].item() == pytest.approx(out["nce"].item() + out["consensus"].item(), rel=1e-5)
    out["loss"].backward()
    assert model.backbone.features[0].weight.grad is not None
    assert model.memory_bank.memory.shape == (64, 8)


def test_weights_combine_the_terms():
    model = tiny_model(method={"alpha": 0.5, "beta": 2.0, "gamma": 0.25})
    torch.manual_seed(1)
    out = model.training_step(Batch(images(), torch.arange(32), 0, 0))
    expected = 2.0 * out["nce"] + 0.5 * out["population"] + 0.25 * out["consensus"]
    assert out["loss"].item() == pytest.approx(expected.item(), rel=1e-5)


@pytest.mark.parametrize("embedding, dim", [("backbone", 64), ("nce", 8), ("projection", 16), ("codes", 4)])
def test_embeddings(embedding, dim):
    model = tiny_model(inference={"embedding": embedding}).eval()
    z = model.embed(images(5))
    assert z.shape == (5, dim)
    if embedding in ("nce", "projection"):
        assert torch.allclose(z.norm(dim=1), torch.ones(5), atol=1e-5)


@pytest.mark.parametrize("preset, k, size, width, p, t", [
    ("paper-cifar10", 10, 32, 512, 152, 64), ("paper-cifar100", 20, 32, 512, 88, 16),
    ("paper-stl10", 10, 160, 2048, 104, 1), ("paper-imagenet10", 10, 160, 2048, 104, 1),
    ("paper-imagenet-dogs", 15, 160, 2048, 136, 64)])
def test_paper_presets_build_the_documented_networks(preset, k, size, width, p, t):
    torch.manual_seed(0)
    config = ConCURL.preset_config(preset)
    model = ConCURLModel(config, k, (3, 96, 96), mean=(0.5,) * 3, std=(0.25,) * 3).eval()
    assert model.backbone.feature_dim == width
    assert model.nce_head.out_features == 128 and model.projector[0].out_features == 2048
    assert model.projector[-1].out_features == 256 and model.prototypes.weight.shape == (k, 256)
    assert model.prototypes.bias is None and model.projections.matrices.shape == (t, p, 256)
    assert model.memory_bank.n_noise == 4096 and model.memory_bank.momentum == 0.5
    assert not model.memory_bank.shared_noise  # k noise rows per sample, as the reference
    assert config["optimizer"]["name"] == "sgd" and config["training"]["batch_size"] == 128
    with torch.no_grad():
        assert model.embed(torch.rand(2, 3, 96, 96)).shape == (2, k)  # resized to the preset's size


def test_cpu_preset_shares_one_draw_of_noise_rows_per_batch():
    model = ConCURLModel(ConCURL.preset_config("cpu-fashion-mnist"), 10, (1, 28, 28), mean=(0.5,), std=(0.25,))
    assert model.memory_bank.shared_noise and model.memory_bank.n_noise == 1024


def test_paper_presets_train_on_the_training_split_in_fp32():
    """The reference trains and evaluates on the training split only, in float32."""
    for preset in ConCURL.presets():
        config = ConCURL.preset_config(preset)
        paper = preset.startswith("paper-")
        assert config["data"]["split"] == ("train" if paper else "all")
        assert config["training"]["amp"] is not paper
    assert ConCURL(preset="paper-cifar10").data_split() == "train"
    assert ConCURL(preset="paper-cifar10", config={"data": {"split": "all"}}).data_split() == "all"


def labelled_images(n=96, k=4, seed=0):
    from deepclust.data import ImageDataset

    rng = np.random.default_rng(seed)
    labels = np.repeat(np.arange(k), n // k)
    pixels = rng.integers(0, 80, size=(n, 1, 28, 28)).astype(np.uint8)
    for c in range(k):
        pixels[labels == c, :, 7 * c:7 * c + 7] += 150
    return ImageDataset(pixels, labels, "bands", list("abcd")[:k], k)


def test_paper_protocol_evaluates_four_representations_and_marks_the_label_selection():
    from sklearn.cluster import KMeans

    from deepclust.evaluation import evaluate_clustering

    dataset = labelled_images()
    estimator = deepclust.make("concurl", n_clusters=4, preset="cpu-fashion-mnist", config={**TINY["concurl"], **TESTS},
                               max_epochs=1, device="cpu", seed=0).fit(dataset)
    result = concurl_module.evaluate_paper_protocol(estimator, dataset)
    assert result["protocol"] == "concurl-paper" and result["selected_with_labels"] is True
    assert "selected with labels" in result["selection"]
    representations = result["representations"]
    assert list(representations) == ["projection", "nce", "codes", "codes_sinkhorn"]
    best = max(representations, key=lambda name: representations[name]["acc"])
    assert result["selected_representation"] == best
    assert all(result[key] == representations[best][key] for key in ("acc", "nmi", "ari"))
    # by hand: u before normalisation (k-means, 20 restarts), s = normalise(u) · normalise(W)ᵀ (argmax)
    model = estimator.model_.eval()
    with torch.no_grad():
        x = torch.from_numpy(dataset.images).float() / 255
        u = model.projector(model.backbone(model.eval_transform(x)))
        s = F.normalize(u, dim=1) @ F.normalize(model.prototypes.weight, dim=1).T
    by_kmeans = KMeans(n_clusters=4, random_state=0, n_init=20).fit_predict(u.numpy())
    assert representations["projection"]["acc"] == pytest.approx(
        evaluate_clustering(dataset.labels, by_kmeans, 4)["acc"])
    assert representations["codes"]["acc"] == pytest.approx(
        evaluate_clustering(dataset.labels, s.argmax(1).numpy(), 4)["acc"])
    with pytest.raises(ValueError, match="selects its representation with the labels"):
        concurl_module.evaluate_paper_protocol(estimator, dataset.images)
    # above 7000 samples the reference switches to MiniBatchKMeans(n_init=20, batch_size=6000)
    assert concurl_module.PAPER_KMEANS_FULL_BATCH_LIMIT == 7000


def test_argmax_labels_and_invalid_inference_options():
    model = tiny_model(inference={"labels": "argmax"}).eval()
    assert model.label_source == "head"
    probabilities = model.cluster_probabilities(images(6))
    assert torch.allclose(probabilities.sum(1), torch.ones(6), atol=1e-5)
    assert torch.equal(model.predict_labels(images(6)), probabilities.argmax(1))
    with pytest.raises(ValueError, match="inference.embedding must be one of codes, projection, nce, backbone"):
        tiny_model(inference={"embedding": "pixels"})
    with pytest.raises(ValueError, match="inference.labels"):
        tiny_model(inference={"labels": "dbscan"})


def test_prototype_rows_unit_norm_at_the_start_of_every_step():
    """Fidelity test 5 of docs/methods/concurl.md: the rows of W are normalised in place before each
    step's forward pass."""
    model = tiny_model(method={"alpha": 1.0})  # with α = 0 and use_no_grad, W gets no gradient at all
    norms = []
    model.prototypes.register_forward_pre_hook(lambda module, _: norms.append(module.weight.detach().norm(dim=1)))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5, momentum=0.9)
    with torch.no_grad():
        model.prototypes.weight.mul_(3.0)
    for step in range(3):
        norms.clear()
        model.training_step(Batch(images(seed=step), torch.arange(32), 0, step))["loss"].backward()
        optimizer.step()
        optimizer.zero_grad()
        model.on_after_step(step, context())
        assert len(norms) == 2 and all(torch.allclose(n, torch.ones(4), atol=1e-6) for n in norms)
        assert not torch.allclose(model.prototypes.weight.norm(dim=1), torch.ones(4), atol=1e-4)  # moved by the step


def test_targets_are_three_sinkhorn_iterations_at_eps_005_of_the_unprojected_scores(monkeypatch):
    """Fidelity test 1 of docs/methods/concurl.md (ConCURL side): targets come from Sinkhorn(exp(s/0.05)),
    3 iterations, of s = W·normalise(u)."""
    calls = []
    real = concurl_module.sinkhorn_knopp

    def recording(scores, epsilon, n_iters):
        q = real(scores, epsilon, n_iters)
        calls.append((scores.clone(), epsilon, n_iters, q))
        return q

    monkeypatch.setattr(concurl_module, "sinkhorn_knopp", recording)
    model = tiny_model()
    scores_seen = []
    model.prototypes.register_forward_hook(lambda module, args, out: scores_seen.append(out.detach()))
    model.training_step(Batch(images(), torch.arange(32), 0, 0))
    assert [(c[1], c[2]) for c in calls] == [(0.05, 3), (0.05, 3)]
    for (scores, _, _, q), seen in zip(calls, scores_seen):
        assert torch.equal(scores, seen)
        assert torch.allclose(q.double(), torch.tensor(naive_sinkhorn(scores.double().tolist(), 0.05, 3),
                                                       dtype=torch.float64), atol=1e-5)
        assert torch.allclose(q.sum(1), torch.ones(32), atol=1e-5)


def test_memory_bank_rows_of_the_batch_move_after_the_step():
    model = tiny_model()
    before = model.memory_bank.memory.clone()
    indices = torch.arange(10, 42)
    model.training_step(Batch(images(), indices, 0, 0))
    e = model._pending_update[0]
    assert torch.equal(model.memory_bank.memory, before)  # scored against the bank before the update
    model.on_after_step(0, context())
    assert torch.allclose(model.memory_bank.memory[indices], F.normalize(0.5 * before[indices] + 0.5 * e, dim=1))
    untouched = torch.cat([torch.arange(10), torch.arange(42, 64)])
    assert torch.equal(model.memory_bank.memory[untouched], before[untouched])


def test_reinit_transforms_per_epoch_only_when_asked():
    fixed = tiny_model()
    first = fixed.projections.matrices.clone()
    fixed.on_epoch_start(1, context())
    assert torch.equal(fixed.projections.matrices, first)
    redrawn = tiny_model(method={"reinit_transforms": True})
    redrawn.on_epoch_start(0, context())
    assert torch.equal(redrawn.projections.matrices, first)
    redrawn.on_epoch_start(1, context())
    assert not torch.equal(redrawn.projections.matrices, first)
    again = tiny_model(method={"reinit_transforms": True})
    again.on_epoch_start(1, context())
    assert torch.equal(again.projections.matrices, redrawn.projections.matrices)


def test_state_survives_a_reload_into_a_fresh_model():
    model = tiny_model(method={"reinit_transforms": True})
    model.on_epoch_start(2, context())
    model.training_step(Batch(images(), torch.arange(32), 0, 0))
    model.on_after_step(0, context())
    fresh = ConCURLModel(tiny_config(method={"reinit_transforms": True}), 4, (1, 28, 28), mean=(0.3,), std=(0.3,))
    fresh.load_state_dict(model.state_dict())
    for name in ("memory_bank.memory", "memory_bank.normaliser", "projections.matrices"):
        assert torch.equal(fresh.state_dict()[name], model.state_dict()[name]), name
    assert fresh.memory_bank.normaliser.item() > 0


def test_resume_continues_bit_identically(tmp_path):
    """Memory bank, Z and the projections are restored: a run stopped after its first step and resumed
    ends with the same weights and buffers as a run without a stop."""
    rng = np.random.default_rng(0)
    data = rng.integers(0, 255, size=(96, 1, 28, 28), dtype=np.uint8)
    config = tiny_config(training={"epochs": 2, "checkpoint_every_minutes": 0.0},
                         method={"reinit_transforms": True})
    straight = ConCURL(n_clusters=3, config=config, device="cpu").fit(data)
    stopped = ConCURL(n_clusters=3, config=config, device="cpu", out_dir=str(tmp_path), max_minutes=1e-9).fit(data)
    assert stopped.fit_result_.global_step == 1 and stopped.model_.memory_bank.normaliser.item() > 0
    resumed = ConCURL(n_clusters=3, config=config, device="cpu", out_dir=str(tmp_path), resume=True).fit(data)
    assert resumed.fit_result_.global_step == straight.fit_result_.global_step == 6
    for name, value in straight.model_.state_dict().items():
        assert torch.equal(value, resumed.model_.state_dict()[name]), name


@needs_fashion_mnist
def test_loss_decreases_on_a_real_batch():
    data = fashion_mnist_subset(128)
    batch = torch.from_numpy(data.images).float() / 255
    torch.manual_seed(0)  # the initial weights must not depend on the tests that ran before
    model = ConCURLModel(tiny_config(), 10, (1, 28, 28), mean=data.mean, std=data.std)
    model.on_fit_start(context(128))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for step in range(12):
        torch.manual_seed(0)  # the same views and noise rows every step: only the weights change
        out = model.training_step(Batch(batch, torch.arange(128), 0, step))
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        model.on_after_step(step, context(128))
        losses.append({k: v.item() for k, v in out.items()})
    assert losses[-1]["loss"] < losses[0]["loss"] - 0.1
    # the NCE value on one repeated batch is not monotone (the bank moves, Z is fixed after step 1)
    assert losses[-1]["consensus"] < losses[0]["consensus"] and losses[-1]["population"] < losses[0]["population"]


@needs_fashion_mnist
def test_estimator_end_to_end_on_fashion_mnist():
    data = fashion_mnist_subset(512)
    estimator = deepclust.make("concurl", n_clusters=10, preset="cpu-fashion-mnist", config={**TINY["concurl"], **TESTS},
                               max_epochs=1, batch_size=64, device="cpu", seed=0)
    estimator.fit(data)
    assert estimator.labels_.shape == (512,) and set(estimator.labels_) <= set(range(10))
    for key in ("acc", "nmi", "ari"):
        assert np.isfinite(estimator.metrics_[key])
    assert estimator.metrics_["steps"] == 8
    assert estimator.transform(data).shape == (512, 10)  # the codes s
    predicted = estimator.predict(data)
    assert predicted.shape == (512,) and (predicted == estimator.labels_).mean() > 0.95


@pytest.mark.slow
@needs_fashion_mnist
def test_cpu_preset_beats_pixel_kmeans_level():
    """The CPU preset (as shipped, time-boxed) learns clusters; FULL: 10,000 images for longer."""
    n, minutes = (10_000, 4.0) if FULL else (2_048, 0.25)
    data = fashion_mnist_subset(n, seed=1)
    estimator = deepclust.make("concurl", n_clusters=10, preset="cpu-fashion-mnist", device="cpu",
                               max_minutes=minutes, seed=0).fit(data)
    assert estimator.metrics_["acc"] > (0.5 if FULL else 0.3)


@needs_fashion_mnist
def test_cli_fit_then_shift_evaluation(tmp_path, capsys):
    run = tmp_path / "run"
    metrics = cli_fit("concurl", run, *set_options({
        "backbone": {"width": 0.25}, "training": {"batch_size": 64},
        "method": {"hidden_dim": 32, "out_dim": 16, "nce_k": 64, "n_transforms": 3, "projection_dim": 8}}))
    assert metrics["method"] == "concurl" and metrics["n_samples"] == 512 and np.isfinite(metrics["acc"])
    capsys.readouterr()
    assert main(["evaluate", "--run", str(run), "--dataset", "fashion-mnist", "--subset", "512",
                 "--shift", "gaussian_noise:3", "--shift", "contrast:5", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "clean" in printed and "gaussian_noise:3" in printed and "contrast:5" in printed
    rows = json.loads(printed.strip().splitlines()[-1])
    assert [r["shift"] for r in rows] == ["clean", "gaussian_noise:3", "contrast:5"]
    assert rows[0]["acc"] == pytest.approx(metrics["acc"], abs=0.05)  # predicted on the clean subset, no refit
    # the reference's evaluation, on the run's own training data (data.json), marked in every output
    assert main(["evaluate", "--run", str(run), "--protocol", "concurl-paper", "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "SELECTED WITH LABELS" in printed and "selected with labels" in printed
    result = json.loads(printed.strip().splitlines()[-1])
    assert result["selected_with_labels"] is True and len(result["representations"]) == 4
    saved = json.loads((run / "metrics-concurl-paper.json").read_text())
    assert saved["selected_with_labels"] is True and saved["acc"] == pytest.approx(result["acc"])
    # the run's label-free metrics.json is untouched
    assert json.loads((run / "metrics.json").read_text())["acc"] == pytest.approx(metrics["acc"])


def test_predict_proba_follows_the_configured_labels_fitted_or_not():
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, (64, 1, 28, 28)).astype(np.uint8)
    make = lambda labels, **options: deepclust.make(  # noqa: E731
        "concurl", n_clusters=4, preset="cpu-fashion-mnist", max_epochs=1, device="cpu",
        config=tiny_config(inference={"labels": labels}, training={"batch_size": 32}), **options)
    argmax, kmeans = make("argmax"), make("kmeans")
    assert hasattr(argmax, "predict_proba") and not hasattr(kmeans, "predict_proba")
    argmax.fit(data), kmeans.fit(data)
    assert hasattr(argmax, "predict_proba") and not hasattr(kmeans, "predict_proba")
    assert argmax.predict_proba(data[:5]).shape == (5, 4)
    refined = deepclust.make("concurl", config={"refine": {"enabled": True}})
    assert hasattr(refined, "predict_proba")  # the refine stage ends with a cluster head
    # k-means labels: score is minus the mean squared distance of the unit embeddings to their centroid
    z = kmeans.transform(data[:10]).astype(np.float64)
    z /= np.linalg.norm(z, axis=1, keepdims=True)
    c = kmeans.model_.centroids.numpy().astype(np.float64)
    c /= np.linalg.norm(c, axis=1, keepdims=True)
    nearest = [min(sum((zi - ck) ** 2) for ck in c) for zi in z]
    # float32 distances between unit vectors: absolute rounding ~1e-7 whatever the distance's size
    assert kmeans.score(data[:10]) == pytest.approx(-np.mean(nearest), rel=1e-4, abs=1e-6)
