"""HardReg: the model contract, fidelity tests 3-4 of docs/methods/hardreg.md, the options, end-to-end fit
and the CLI."""
import json

import numpy as np
import pytest
import torch

import deepclust
from support import FULL, cli_fit, fashion_mnist_available, fashion_mnist_subset, tiny_config
from deepclust.data import ImageDataset
from deepclust.data.imbalance import imbalance_prior
from deepclust.engine.config import ConfigError, deep_merge
from deepclust.engine.model import Batch, TrainingContext
from deepclust.evaluation import kl_to_prior
from deepclust.methods import HardReg, load_estimator
from deepclust.cluster import hard_regularised_assignment
from deepclust.methods.hardreg import REGULARISERS, HardRegModel

K = 4


def config(**method):
    return tiny_config("hardreg", {"method": method})


def model(shape=(1, 28, 28), **method):
    torch.manual_seed(0)
    return HardRegModel(config(**method), K, shape)


def batch(n=32, shape=(1, 28, 28), seed=0):
    images = torch.rand((n, *shape), generator=torch.Generator().manual_seed(seed))
    return Batch(images=images, indices=torch.arange(n), epoch=0, step=0)


def test_shapes_and_probabilities():
    net = model()
    data = batch()
    assert net.embed(data.images).shape == (32, 16)
    assert net.costs(data.images).shape == (32, K) and net.costs(data.images).dtype == torch.float64
    probabilities = net.cluster_probabilities(data.images)
    assert torch.allclose(probabilities.sum(1), torch.ones(32))
    assert torch.equal(net.predict_labels(data.images), probabilities.argmax(1))


def test_loss_is_mean_assigned_cost_and_gradients_reach_encoder_and_means():
    """Fidelity test 3 of docs/methods/hardreg.md."""
    net = model()
    data = batch()
    outputs = net.training_step(data)
    labels = net.last_assignments
    z = net.embed(data.images.clone()).detach().double()   # the eval transform clamps its input in place
    means = net.means.detach().double()
    expected = 0.0
    for i in range(32):
        c = int(labels[i])
        expected += float(((z[i] - means[c]) ** 2).sum()) / 100.0 - 0.5 * 16 * np.log(100.0)  # the reference's sign
    assert float(outputs["loss"].detach()) == pytest.approx(expected / 32, rel=1e-9)
    assert float(outputs["assigned_cost"]) == pytest.approx(expected / 32, rel=1e-9)
    outputs["loss"].backward()
    assert net.means.grad is not None and net.means.grad.abs().sum() > 0
    encoder_grads = [p.grad for p in net.encoder.parameters()]
    assert all(g is not None for g in encoder_grads) and sum(g.abs().sum() for g in encoder_grads) > 0
    groups = net.parameter_groups()
    assert groups[1]["params"] == [net.means] and groups[1]["lr_scale"] == 1.0
    assert len(groups[0]["params"]) == len(list(net.encoder.parameters()))


def test_constrained_eval_spreads_identical_inputs():
    images = torch.rand(1, 1, 28, 28).repeat(22, 1, 1, 1)
    plain = model().eval()
    assert len(plain.predict_labels(images).unique()) == 1
    constrained = model(constrained_eval=True).eval()
    sizes = torch.bincount(constrained.predict_labels(images), minlength=K)
    assert int(sizes.max() - sizes.min()) <= 1


@pytest.mark.parametrize("regulariser", REGULARISERS)
def test_every_regulariser_trains(regulariser):
    net = model(regulariser=regulariser)
    outputs = net.training_step(batch(16))
    assert torch.isfinite(outputs["loss"]) and net.last_assignments.shape == (16,)
    outputs["loss"].backward()
    assert net.means.grad is not None and torch.isfinite(net.means.grad).all()


def test_keep_scores_accumulates_within_an_epoch():
    net = model(keep_scores=True)
    net.training_step(batch(16, seed=1))
    net.training_step(batch(16, seed=2))
    assert int(net.counts.sum()) == 32
    net.on_epoch_start(1, None)
    assert int(net.counts.sum()) == 0
    fresh = model()
    fresh.training_step(batch(16))
    assert int(fresh.counts.sum()) == 0


def test_warm_start_uses_the_first_k_inputs():
    net = model(warm_start=True)
    images = torch.rand(6, 1, 28, 28)
    context = TrainingContext(device=torch.device("cpu"), n_samples=6, steps_per_epoch=1, total_steps=1,
                              max_epochs=1, iterate_dataset=lambda: iter([(images[:3], None), (images[3:], None)]))
    net.on_fit_start(context)
    net.eval()
    assert torch.allclose(net.means, net.embed(images[:K]), atol=1e-6)


def test_prior_option():
    net = model(prior="imbalance3")
    assert torch.allclose(net.log_prior, torch.log(torch.tensor(imbalance_prior(3, K))))
    weights = model(prior=[2, 1, 1, 4])
    assert np.allclose(weights.prior, [0.25, 0.125, 0.125, 0.5])
    assert model().log_prior is None
    for bad in ("imbalance7", [1, 2], [1, 0, 1, 1]):
        with pytest.raises(ConfigError, match="method.prior"):
            model(prior=bad)
    with pytest.raises(ConfigError, match="regulariser"):
        model(regulariser="magic")
    with pytest.raises(ConfigError, match="input_normalisation"):
        model(input_normalisation=0.5)


def test_prior_enters_the_assignment_from_prior_from_epoch():
    """The reference subtracts log π from its second epoch on (``epoch_num > 0``): with
    prior_from_epoch 1, epoch 0 assigns as without a prior and epoch 1 with it."""
    prior = [0.7, 0.1, 0.1, 0.1]
    data = batch(32)
    without = model()
    without.training_step(data)
    plain = without.last_assignments
    late = model(prior=prior, prior_from_epoch=1)
    late.training_step(data)
    assert torch.equal(late.last_assignments, plain)
    late.training_step(Batch(data.images, data.indices, epoch=1, step=1))
    costs = late.costs(data.images).detach()  # the same weights: the assignment above took no optimizer step
    expected, _ = hard_regularised_assignment(costs, None, torch.log(torch.tensor(prior, dtype=torch.float64)))
    assert torch.equal(late.last_assignments, expected) and not torch.equal(expected, plain)
    early = model(prior=prior)  # the default 0: from the first epoch
    early.training_step(data)
    assert torch.equal(early.last_assignments, expected)
    for bad in (-1, 0.5, True):
        with pytest.raises(ConfigError, match="method.prior_from_epoch"):
            model(prior_from_epoch=bad)
    assert all(HardReg.preset_config(name)["method"]["prior_from_epoch"] == 1
               for name in HardReg.presets() if name.startswith("paper-"))


def test_best_nmi_epoch_is_reported_marked_as_selected_with_labels():
    rng = np.random.default_rng(0)
    labels = np.repeat(np.arange(4), 40)
    images = rng.integers(0, 60, size=(160, 1, 28, 28)).astype(np.uint8)
    for c in range(4):
        images[labels == c, :, 7 * c:7 * c + 7] += 150
    dataset = ImageDataset(images, labels, "bands", list("abcd"), 4)
    estimator = HardReg(n_clusters=4, device="cpu", max_epochs=3, batch_size=32, seed=0,
                        config={"method": {"nz": 16, "report_best_nmi_epoch": True}, "training": {"eval_every": 1}})
    estimator.fit(dataset)
    best = estimator.metrics_["best_nmi_epoch"]
    evaluations = [*estimator.history_, {**estimator.metrics_, "epoch": 3}]
    assert best["selected_with_labels"] is True
    assert best["nmi"] == max(record["nmi"] for record in evaluations)
    assert [record["epoch"] for record in evaluations] == [1, 2, 3] and best["epoch"] in (1, 2, 3)
    assert {"acc", "ari"} <= set(best)
    plain = HardReg(n_clusters=4, device="cpu", max_epochs=1, batch_size=32, config={"method": {"nz": 16}})
    assert "best_nmi_epoch" not in plain.fit(dataset).metrics_


@pytest.mark.skipif(not fashion_mnist_available(), reason="Fashion-MNIST not installed")
def test_the_cost_constant_moves_no_assignment_of_the_cpu_preset(monkeypatch):
    """The reference's −(nz/2)·log σ replaced the former +(nz/2)·log σ: a cpu-fashion-mnist run (a few
    steps on a subset) with the old constant gives the same labels and weights."""
    import deepclust.methods.hardreg as hardreg_module
    from deepclust.cluster import gaussian_cost

    data = fashion_mnist_subset(1024)

    def run():
        estimator = HardReg(n_clusters=10, preset="cpu-fashion-mnist", max_epochs=2, device="cpu", seed=0)
        estimator.fit(data)
        return estimator.labels_, estimator.model_.means.detach().clone()

    labels, means = run()
    flipped = lambda z, centres, sigma: gaussian_cost(z, centres, sigma) + z.shape[1] * np.log(sigma)  # noqa: E731
    monkeypatch.setattr(hardreg_module, "gaussian_cost", flipped)
    old_labels, old_means = run()
    assert np.array_equal(labels, old_labels) and torch.equal(means, old_means)


def test_input_normalisation_constants():
    images = torch.rand(2, 1, 28, 28)
    net = model(input_normalisation=[0.5, 0.5])
    assert torch.allclose(net._prepare(images.clone()), images * 2 - 1)


def test_sensor_windows_with_conv1d():
    cfg = deep_merge(config(), {"backbone": {"name": "conv1d", "feature_dim": 8, "hidden_channels": [8]}})
    net = HardRegModel(cfg, K, (6, 1, 64))
    data = batch(8, shape=(6, 1, 64))
    assert net.embed(data.images).shape == (8, 16)              # Linear(8, nz) after the 1-D CNN
    assert torch.isfinite(net.training_step(data)["loss"])
    with pytest.raises(ValueError, match=r"\(C, 1, L\)"):
        HardRegModel(cfg, K, (1, 28, 28))


def test_windows_dataset_end_to_end():
    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1], 40)
    windows = rng.integers(0, 60, size=(80, 6, 1, 64)).astype(np.uint8)
    windows[labels == 1, :3] += 150
    dataset = ImageDataset(windows, labels, "windows", ["a", "b"], 2)
    estimator = HardReg(n_clusters=2, preset="paper-realdisp", device="cpu", max_epochs=2, batch_size=20,
                        config={"backbone": {"hidden_channels": [8], "feature_dim": 16}})
    estimator.fit(dataset)
    assert estimator.labels_.shape == (80,)
    assert estimator.transform(dataset).shape == (80, 32)


def test_partial_fit_stream_then_predict(tmp_path):
    """Fidelity test 4 of docs/methods/hardreg.md: online updates batch by batch, then labels for every point."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(160, 1, 28, 28)).astype(np.uint8)
    estimator = HardReg(n_clusters=K, device="cpu", config={"method": {"warm_start": True}})
    before = None
    for start in range(0, 160, 32):
        estimator.partial_fit(images[start:start + 32])
        assert estimator.labels_.shape == (32,)
        if before is None:
            before = estimator.model_.means.detach().clone()
    assert estimator.n_batches_seen_ == 5
    assert not torch.equal(before, estimator.model_.means)
    labels = estimator.predict(images)
    assert labels.shape == (160,) and labels.min() >= 0 and labels.max() < K
    assert estimator.transform(images).shape == (160, 128)
    estimator.save(tmp_path / "online.pt")
    assert np.array_equal(load_estimator(tmp_path / "online.pt", device="cpu").predict(images), labels)


@pytest.mark.skipif(not fashion_mnist_available(), reason="Fashion-MNIST not installed")
def test_loss_decreases_on_a_real_batch():
    images = torch.from_numpy(fashion_mnist_subset(256).images).float() / 255
    torch.manual_seed(0)
    net = HardRegModel(HardReg.preset_config("cpu-fashion-mnist"), 10, (1, 28, 28))
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    losses = []
    for step in range(8):
        loss = net.training_step(Batch(images=images, indices=torch.arange(256), epoch=0, step=step))["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < losses[0]


@pytest.mark.slow
@pytest.mark.skipif(not fashion_mnist_available(), reason="Fashion-MNIST not installed")
def test_end_to_end_on_fashion_mnist(tmp_path):
    dataset = fashion_mnist_subset(10000 if FULL else 1024)
    estimator = deepclust.make("hardreg", n_clusters=10, max_epochs=4 if FULL else 2, device="cpu", seed=0,
                               out_dir=str(tmp_path / "run"), config={"method": {"prior": "imbalance2"}})
    estimator.fit(dataset)
    metrics = estimator.metrics_
    assert estimator.labels_.shape == (len(dataset),)
    for key in ("acc", "nmi", "ari", "kl_star", "cluster_size_cv", "largest_cluster_share"):
        assert np.isfinite(metrics[key])
    assert metrics["kl_star"] == pytest.approx(kl_to_prior(estimator.labels_, 10, imbalance_prior(2, 10)))
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["kl_star"] == pytest.approx(metrics["kl_star"])
    assert metrics["n_clusters_used"] >= (8 if FULL else 2)    # no collapse
    assert np.array_equal(estimator.predict(dataset), estimator.labels_)
    assert estimator.transform(dataset).shape == (len(dataset), 128)
    assert np.allclose(estimator.predict_proba(dataset.images[:10]).sum(1), 1, atol=1e-5)
    if FULL:
        assert metrics["acc"] > 0.476
    loaded = load_estimator(tmp_path / "run" / "model.pt", device="cpu")
    assert np.array_equal(loaded.predict(dataset.images[:64]), estimator.labels_[:64])


@pytest.mark.skipif(not fashion_mnist_available(), reason="Fashion-MNIST not installed")
def test_cli_fit(tmp_path):
    metrics = cli_fit("hardreg", tmp_path)
    assert metrics["method"] == "hardreg" and np.isfinite(metrics["acc"]) and "kl_star" in metrics


@pytest.mark.parametrize("preset, shape, n_clusters, nz", [
    ("paper-fashion-mnist", (1, 28, 28), 10, 128), ("paper-cifar10", (3, 32, 32), 10, 128),
    ("paper-cifar100", (3, 32, 32), 100, 128), ("paper-stl10", (3, 96, 96), 10, 128),
    ("paper-realdisp", (117, 1, 512), 33, 32), ("cpu-fashion-mnist", (1, 28, 28), 10, 128)])
def test_presets_build_for_their_data(preset, shape, n_clusters, nz):
    cfg = HardReg.preset_config(preset)
    assert cfg["augmentation"]["name"] == "none" and cfg["method"]["regulariser"] == "hard"
    assert cfg["optimizer"]["lr"] == 1e-3 and cfg["method"]["sigma"] == 100.0
    net = HardRegModel(cfg, n_clusters, shape).eval()
    assert net.costs(torch.rand(2, *shape)).shape == (2, n_clusters)
    assert net.embed(torch.rand(2, *shape)).shape == (2, nz)


def test_other_encoders_map_to_the_latent_size():
    small = HardRegModel(deep_merge(config(), {"backbone": {"name": "small_cnn", "width": 0.25}}), K, (1, 28, 28))
    assert isinstance(small.encoder[-1], torch.nn.Linear) and small.encoder[-1].in_features == 64
    fc = HardRegModel(deep_merge(config(), {"backbone": {"name": "mlp", "hidden_dims": [512]}}), K, (1, 28, 28))
    assert fc.encoder.feature_dim == 16                         # the paper's 'fc': Linear-BN-ReLU-Linear(nz)
    for net in (small, fc):
        assert net.embed(torch.rand(3, 1, 28, 28)).shape == (3, 16)


def test_partial_fit_goes_on_from_a_fit_with_a_new_optimizer():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(64, 1, 28, 28)).astype(np.uint8)
    estimator = HardReg(n_clusters=K, device="cpu", max_epochs=1)
    estimator.partial_fit(images[:32])
    online = estimator.optimizer_
    estimator.fit(images)
    fitted_means = estimator.model_.means.detach().clone()
    estimator.partial_fit(images[32:])
    assert estimator.optimizer_ is not online and estimator.n_batches_seen_ == 1
    assert estimator.optimizer_.param_groups[1]["params"] == [estimator.model_.means]
    assert not torch.equal(fitted_means, estimator.model_.means)
