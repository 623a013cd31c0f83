"""DCHL: architecture, loss terms against hand values, the fidelity tests of docs/methods/dchl.md, estimator
and CLI."""
import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import deepclust
from deepclust.augment import to_float
from deepclust.cluster import seeded_batch_kmeans
from deepclust.data import load_dataset
from deepclust.engine.config import deep_merge, list_presets, preset_config
from deepclust.engine.model import Batch
from deepclust.losses import ClusterContrastiveLoss, NTXentLoss
from deepclust.methods import DCHL
from deepclust.methods.dchl import DCHLModel
from support import (
    FULL, TINY, cli_fit, fashion_mnist_available, fashion_mnist_subset, set_options, tiny_config as shared_tiny_config,
)

needs_fashion_mnist = pytest.mark.skipif(not fashion_mnist_available(), reason="Fashion-MNIST not installed")

#: what these tests add to the tiny DCHL of ``support.TINY``
TESTS = {"training": {"batch_size": 64}}


def tiny_config(**method):
    return shared_tiny_config("dchl", TESTS, {"method": method})


def tiny_model(n_clusters=4, seed=0, **method):
    torch.manual_seed(seed)
    return DCHLModel(tiny_config(**method), n_clusters, (1, 28, 28))


def random_images(n=16, seed=0):
    return torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(seed))


def fashion_mnist_batch(n):
    data = load_dataset("fashion-mnist", split="test")
    return to_float(torch.from_numpy(data.images[:n]))


# --- architecture ---------------------------------------------------------------------------
def test_architecture_and_head_outputs():
    model = tiny_model(n_clusters=5)
    feature_dim = model.backbone.feature_dim
    linear = [m for m in model.instance_projector if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linear] == [(feature_dim, 32), (32, 16)]
    assert isinstance(model.instance_projector[1], torch.nn.ReLU)
    assert isinstance(model.cross_projector[0], torch.nn.Linear) and isinstance(model.cross_projector[-1], torch.nn.ReLU)
    assert model.cluster_head[0].in_features == 32 and model.cluster_head[0].out_features == 5
    assert model.group_head[0].in_features == 32 and model.group_head[0].out_features == 16
    z, c, g = model.heads(random_images(6))
    assert z.shape == (6, 16) and torch.allclose(z.norm(dim=1), torch.ones(6))
    assert g.shape == (6, 16) and torch.allclose(g.norm(dim=1), torch.ones(6))
    assert c.shape == (6, 5) and torch.allclose(c.sum(dim=1), torch.ones(6)) and bool((c >= 0).all())


def test_paper_widths_default_to_the_backbone_feature_size():
    config = deep_merge(preset_config("dchl", "paper-cifar10"),
                        {"backbone": {"name": "small_cnn", "width": 0.25}, "augmentation": {"image_size": 28}})
    model = DCHLModel(config, 10, (1, 28, 28))
    assert model.instance_projector[0].out_features == model.backbone.feature_dim == 64
    assert model.instance_projector[-1].out_features == 128 and model.group_head[0].out_features == 128


# --- the loss terms (fidelity tests 1 and 2) ------------------------------------------------
def test_instance_loss_on_hand_made_2x2_batch():
    """Fidelity 1: NT-Xent τ = 0.5 on a 2×2 batch equals the formula computed naively."""
    model = tiny_model()
    assert isinstance(model.instance_loss, NTXentLoss) and model.instance_loss.temperature == 0.5
    z1 = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    z2 = torch.tensor([[0.6, 0.8], [0.0, 1.0]])
    samples = [F.normalize(v, dim=0) for v in [*z1, *z2]]
    total = 0.0
    for a in range(4):
        positive = (a + 2) % 4
        similarity = [float(samples[a] @ samples[b]) / 0.5 for b in range(4)]
        denominator = sum(math.exp(similarity[b]) for b in range(4) if b != a)
        total += -math.log(math.exp(similarity[positive]) / denominator)
    assert abs(float(model.instance_loss(z1, z2)) - total / 4) < 1e-6


def test_cluster_loss_is_the_shared_contrastive_clustering_loss():
    """Fidelity 2: the coarse loss is the one CCL implementation HTCN uses, with τ_c = 1 and entropy."""
    model = tiny_model(n_clusters=3)
    assert type(model.cluster_loss) is ClusterContrastiveLoss
    assert model.cluster_loss.temperature == 1.0 and model.cluster_loss.entropy_weight == 1.0
    one_hot = torch.eye(3).repeat(2, 1)  # balanced: entropy terms 0
    # positive cosine 1, the other 2K − 2 = 4 columns cosine 0
    assert abs(float(model.cluster_loss(one_hot, one_hot.clone())) - -math.log(math.e / (math.e + 4))) < 1e-6


def test_view_symmetry_of_every_term():
    model = tiny_model()
    generator = torch.Generator().manual_seed(1)
    z1, z2 = F.normalize(torch.randn(8, 16, generator=generator), dim=1), F.normalize(torch.randn(8, 16, generator=generator), dim=1)
    c1, c2 = torch.softmax(torch.randn(8, 4, generator=generator), 1), torch.softmax(torch.randn(8, 4, generator=generator), 1)
    g1, g2 = F.normalize(torch.randn(8, 16, generator=generator), dim=1), F.normalize(torch.randn(8, 16, generator=generator), dim=1)
    k1, k2 = seeded_batch_kmeans(g1, 3), seeded_batch_kmeans(g2, 3)
    assert torch.allclose(model.instance_loss(z1, z2), model.instance_loss(z2, z1))
    assert torch.allclose(model.cluster_loss(c1, c2), model.cluster_loss(c2, c1))
    assert torch.allclose(model.group_loss(g1, g2, k1, k2), model.group_loss(g2, g1, k2, k1))
    assert torch.allclose(model.group_loss(z1, z2, k1, k2), model.group_loss(z2, z1, k2, k1))


# --- the training step ----------------------------------------------------------------------
def test_training_step_terms_and_configurable_weights():
    batch = Batch(images=random_images(16), indices=torch.arange(16), epoch=0, step=0)
    model = tiny_model(self_group_weight=0.5, cross_group_weight=2.0, cluster_weight=0.0, instance_weight=3.0)
    out = model.training_step(batch)
    assert set(out) == {"loss", "instance", "cluster", "self_group", "cross_group"}
    assert all(bool(torch.isfinite(value)) for value in out.values())
    expected = 3.0 * out["instance"] + 0.5 * out["self_group"] + 2.0 * out["cross_group"]
    assert torch.allclose(out["loss"], expected)
    assert model.group_loss.temperature == 0.2


def test_more_groups_than_batch_rows_trains():
    """n_groups = 400 (the paper's M) with a batch of 16: 400 slots, 384 of them empty zero centroids."""
    model = tiny_model(n_groups=400)
    out = model.training_step(Batch(images=random_images(16), indices=torch.arange(16), epoch=0, step=0))
    assert bool(torch.isfinite(out["loss"]))


STL10_PARTS = {"train": np.arange(0, 4), "test": np.arange(4, 10), "unlabeled": np.arange(10, 30)}


def test_unlabeled_pass_makes_the_reference_stl10_epoch():
    """train_stl.py: the unlabelled images with the instance loss alone, then train + test with all four."""
    first, second = tiny_model(unlabeled_pass="instance").epoch_passes(30, STL10_PARTS)
    assert (first.name, first.indices.tolist(), first.terms) == ("unlabeled", list(range(10, 30)), ("instance",))
    assert (second.name, second.indices.tolist(), second.terms) == ("labelled", list(range(10)), None)


@pytest.mark.parametrize("option,parts,n", [
    (None, STL10_PARTS, 30),                                                # option off
    ("instance", {"train": np.arange(4), "test": np.arange(4, 10)}, 10),  # no unlabelled images loaded
    ("instance", {"unlabeled": np.arange(20)}, 20),                         # nothing but unlabelled images
])
def test_one_pass_over_everything_otherwise(option, parts, n):
    (only,) = tiny_model(unlabeled_pass=option).epoch_passes(n, parts)
    assert only.indices is None and only.terms is None


def test_instance_only_batch_computes_the_instance_loss_alone(monkeypatch):
    model = tiny_model()
    monkeypatch.setattr("deepclust.methods.dchl.seeded_batch_kmeans", lambda *a, **k: pytest.fail("k-means ran"))
    batch = Batch(images=random_images(16), indices=torch.arange(16), epoch=0, step=0, pass_name="unlabeled",
                  terms=("instance",))
    out = model.training_step(batch)
    assert set(out) == {"loss", "instance"} and torch.equal(out["loss"], out["instance"])
    out["loss"].backward()
    assert all(p.grad is None for head in (model.cluster_head, model.group_head, model.cross_projector)
               for p in head.parameters())
    assert all(p.grad is not None for p in model.instance_projector.parameters())


def test_a_subset_of_terms_reports_and_weights_only_those():
    model = tiny_model(cluster_weight=2.0)
    batch = Batch(images=random_images(16), indices=torch.arange(16), epoch=0, step=0, terms=("cluster", "self_group"))
    out = model.training_step(batch)
    assert set(out) == {"loss", "cluster", "self_group"}
    assert torch.allclose(out["loss"], 2.0 * out["cluster"] + out["self_group"])
    with pytest.raises(ValueError, match=r"DCHL has no loss term\(s\) \['entropy'\]"):
        model.training_step(Batch(images=random_images(16), indices=torch.arange(16), epoch=0, step=0,
                                  terms=("entropy",)))


def test_two_pass_fit_runs_both_passes_every_epoch(tmp_path):
    """Estimator on an STL-10-like dataset (parts train/test/unlabeled): per epoch 20 unlabelled images
    in batches of 8 (2 steps, instance loss only), then 12 labelled (1 step, all terms)."""
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(32, 1, 28, 28), dtype=np.uint8)
    labels = np.r_[rng.integers(0, 3, 12), np.full(20, -1)]
    parts = {"train": np.arange(4), "test": np.arange(4, 12), "unlabeled": np.arange(12, 32)}
    data = deepclust.data.ImageDataset(images, labels, "stl-like", ["a", "b", "c"], 3, parts=parts)
    config = deep_merge(TINY["dchl"], {"method": {"unlabeled_pass": "instance"},
                                       "training": {"batch_size": 8, "log_every": 1}}, strict=False)
    estimator = DCHL(n_clusters=3, preset="cpu-fashion-mnist", config=config, max_epochs=2, device="cpu",
                     out_dir=str(tmp_path)).fit(data)
    assert estimator.fit_result_.global_step == 6
    steps = [json.loads(line) for line in (tmp_path / "log.jsonl").read_text().splitlines()]
    terms = [sorted(set(event) & {"instance", "cluster", "self_group", "cross_group"})
             for event in steps if event["event"] == "step"]
    assert terms == [["instance"], ["instance"], ["cluster", "cross_group", "instance", "self_group"]] * 2


def test_gradients_reach_the_heads_from_the_group_losses():
    """Fidelity 5: L_cross reaches the instance projector, L_self the group head; L_cross also reaches
    the group head through the centroids (labels discrete, centroids differentiable)."""
    model = tiny_model()
    z1, _, g1 = model.heads(random_images(16, seed=1))
    z2, _, g2 = model.heads(random_images(16, seed=2))
    groups_1, groups_2 = seeded_batch_kmeans(g1, 8), seeded_batch_kmeans(g2, 8)
    loss_self = model.group_loss(g1, g2, groups_1, groups_2)
    loss_cross = model.group_loss(z1, z2, groups_1, groups_2)
    instance_params, group_params = list(model.instance_projector.parameters()), list(model.group_head.parameters())

    def grads(loss, params):
        return torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)

    assert all(g is not None and float(g.abs().sum()) > 0 for g in grads(loss_cross, instance_params))
    assert all(g is not None and float(g.abs().sum()) > 0 for g in grads(loss_self, group_params))
    assert all(g is not None and float(g.abs().sum()) > 0 for g in grads(loss_cross, group_params))
    assert all(g is None for g in grads(loss_self, instance_params))


def test_bad_group_settings_are_clear_errors():
    with pytest.raises(ValueError, match="method.n_groups must be an integer >= 1, got 0"):
        tiny_model(n_groups=0)
    with pytest.raises(ValueError, match="method.kmeans_iterations"):
        tiny_model(kmeans_iterations=2.5)


# --- inference ------------------------------------------------------------------------------
def test_labels_are_the_argmax_of_the_coarse_head_on_unaugmented_images():
    model = tiny_model().eval()
    images = random_images(10, seed=3)
    with torch.no_grad():
        _, c, _ = model.heads(model.eval_transform(images))
        assert torch.equal(model.predict_labels(images), c.argmax(dim=1))
        assert torch.equal(model.cluster_probabilities(images), model.cluster_probabilities(images))
        assert model.embed(images).shape == (10, model.backbone.feature_dim)


@needs_fashion_mnist
def test_loss_decreases_on_real_fashion_mnist():
    images = fashion_mnist_batch(128)
    model = tiny_model(n_clusters=10)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    batch = Batch(images=images, indices=torch.arange(128), epoch=0, step=0)

    def loss_on_fixed_views():
        torch.manual_seed(123)
        with torch.no_grad():
            return {name: float(value) for name, value in model.training_step(batch).items()}

    before = loss_on_fixed_views()
    for _ in range(10):
        loss = model.training_step(batch)["loss"]
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    after = loss_on_fixed_views()
    assert after["loss"] < before["loss"]
    assert all(math.isfinite(value) for value in after.values())


# --- estimator and CLI ----------------------------------------------------------------------
@needs_fashion_mnist
def test_estimator_end_to_end_on_fashion_mnist(tmp_path):
    data = load_dataset("fashion-mnist", split="test").subset(np.arange(512))
    estimator = deepclust.make("dchl", n_clusters=10, preset="cpu-fashion-mnist", config={**TINY["dchl"], **TESTS},
                               max_epochs=1, device="cpu", out_dir=str(tmp_path))
    assert isinstance(estimator, DCHL)
    labels = estimator.fit_predict(data)
    assert labels.shape == (512,) and labels.min() >= 0 and labels.max() < 10
    assert all(math.isfinite(estimator.metrics_[name]) for name in ("acc", "nmi", "ari"))
    assert estimator.metrics_["steps"] == 8
    assert np.array_equal(estimator.predict(data.images[:50]), labels[:50])
    assert estimator.transform(data.images[:20]).shape == (20, estimator.model_.backbone.feature_dim)
    proba = estimator.predict_proba(data.images[:20])
    assert proba.shape == (20, 10) and np.allclose(proba.sum(1), 1, atol=1e-5)
    loaded = deepclust.load_estimator(tmp_path / "model.pt", device="cpu")
    assert np.array_equal(loaded.predict(data.images[:50]), labels[:50])


@needs_fashion_mnist
def test_cli_fit(tmp_path):
    metrics = cli_fit("dchl", tmp_path, *set_options({"backbone": {"width": 0.25},
                                                      "method": {"hidden_dim": 32, "n_groups": 16},
                                                      "training": {"batch_size": 128, "log_every": 1}}))
    assert metrics["method"] == "dchl" and metrics["n_samples"] == 512 and math.isfinite(metrics["acc"])


@pytest.mark.slow
@needs_fashion_mnist
def test_cpu_preset_learns_on_fashion_mnist(tmp_path):
    """The CPU preset as shipped: FULL, 10,000 images for 5 minutes must beat chance clearly;
    short form, 2,048 images for 2 epochs, the loss must go down and the metrics be finite."""
    data = fashion_mnist_subset(10_000 if FULL else 2_048)
    estimator = deepclust.make("dchl", n_clusters=10, preset="cpu-fashion-mnist", device="cpu",
                               max_epochs=None if FULL else 2, max_minutes=5.0 if FULL else None,
                               config={"training": {"log_every": 1}}, out_dir=str(tmp_path))
    estimator.fit(data)
    assert all(math.isfinite(estimator.metrics_[name]) for name in ("acc", "nmi", "ari"))
    losses = [json.loads(line)["loss"] for line in (tmp_path / "log.jsonl").read_text().splitlines()
              if json.loads(line)["event"] == "step"]
    assert np.mean(losses[-3:]) < np.mean(losses[:3])
    if FULL:
        assert estimator.metrics_["acc"] > 0.45


# --- presets --------------------------------------------------------------------------------
#: per paper preset, as the reference's train.py / train_stl.py: (s, blur, M, split, unlabelled pass)
PAPER = {
    "paper-cifar10": (0.5, False, 400, "all", None),
    "paper-cifar100": (0.5, False, 400, "all", None),
    "paper-stl10": (1.0, False, 200, "all", "instance"),
    "paper-imagenet-dogs": (1.0, True, 400, "all", None),
    "paper-tiny-imagenet": (0.5, False, 400, "train", None),
}


def test_presets():
    assert set(list_presets("dchl")) == {*PAPER, "cpu-fashion-mnist"}
    for name in PAPER:
        config = preset_config("dchl", name)
        assert "dataset" not in config
        assert config["backbone"]["name"] == "resnet34"
        assert config["optimizer"] == {"name": "adam", "lr": 3.0e-4, "weight_decay": 0.0}
        assert config["training"]["batch_size"] == 256 and config["training"]["epochs"] == 1000
        assert config["training"]["drop_last"] is True
        strength, blur, n_groups, split, unlabeled_pass = PAPER[name]
        augmentation = config["augmentation"]
        assert augmentation["image_size"] == 224 and augmentation["strength"] == strength
        assert augmentation["normalize"] is False and "crop_scale" not in augmentation  # (0.08, 1), the default
        assert augmentation["blur"] is blur and (not blur or augmentation["blur_kernel"] == 23)
        assert config["data"]["split"] == split
        method = config["method"]
        assert (method["n_groups"], method["kmeans_iterations"]) == (n_groups, 5)
        assert method["unlabeled_pass"] == unlabeled_pass
        assert (method["instance_temperature"], method["cluster_temperature"], method["group_temperature"]) == (0.5, 1.0, 0.2)
        assert method["instance_dim"] == method["group_dim"] == 128
    cpu = preset_config("dchl", "cpu-fashion-mnist")
    assert "dataset" not in cpu
    assert cpu["backbone"]["name"] == "small_cnn" and cpu["augmentation"]["image_size"] == 28
    assert 50 <= cpu["method"]["n_groups"] <= 100
    assert all(cpu["method"][f"{term}_weight"] > 0 for term in ("instance", "cluster", "self_group", "cross_group"))
