"""HaDis: networks, EMA, optimiser groups, per-epoch pseudo-labels, the step's structure, real-data runs."""
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import deepclust
import deepclust.methods.hadis as hadis_module
from deepclust.cluster import kmeans
from deepclust.engine import Batch, Trainer, TrainingContext
from deepclust.engine.inference import iterate_images, map_images
from deepclust.engine.optim import build_optimizer
from deepclust.methods import HaDis
from deepclust.methods.hadis import HaDisModel, diffuse
from support import (
    FULL, cli_fit, fashion_mnist_available, fashion_mnist_subset, set_options, tiny_config as shared_tiny_config,
)

#: what these tests add to the tiny HaDis of ``support.TINY``
TESTS = {
    "training": {"epochs": 2, "batch_size": 32, "eval_batch_size": 64, "checkpoint_every_minutes": 0.0},
    "method": {"warmup_epochs": 1},
    "inference": {"kmeans_restarts": 1},
}
needs_fashion_mnist = pytest.mark.skipif(not fashion_mnist_available(), reason="Fashion-MNIST is not installed")


def tiny_config(**sections):
    return shared_tiny_config("hadis", TESTS, sections)


def tiny_model(n_clusters=3, **sections):
    torch.manual_seed(0)
    return HaDisModel(tiny_config(**sections), n_clusters, (1, 28, 28), mean=(0.3,), std=(0.35,))


def random_images(n=64, seed=0):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 1, 28, 28), generator=generator, dtype=torch.uint8)


def context_for(images, total_steps=10, batch_size=32):
    return TrainingContext(device=torch.device("cpu"), n_samples=len(images), steps_per_epoch=1,
                           total_steps=total_steps, max_epochs=2,
                           iterate_dataset=lambda: iterate_images(images, batch_size, torch.device("cpu")),
                           map_dataset=lambda fn: map_images(fn, images, batch_size, torch.device("cpu")))


def test_networks_shapes_and_predictor_init():
    model = tiny_model()
    assert isinstance(model.projector[0], nn.Linear) and isinstance(model.projector[1], nn.BatchNorm1d)
    assert [m.out_features for m in model.projector if isinstance(m, nn.Linear)] == [32, 16]
    linears = [m for m in model.predictor if isinstance(m, nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [(16, 32), (32, 16)]
    big = HaDisModel(tiny_config(method={"predictor_hidden_dim": 4096, "feature_dim": 256}), 3, (1, 28, 28))
    weight = big.predictor[0].weight
    assert weight.mean().abs().item() < 1e-3 and weight.std().item() == pytest.approx(0.01, rel=0.02)
    for module in big.predictor.modules():
        if isinstance(module, nn.Linear):
            assert torch.all(module.bias == 0)
        if isinstance(module, nn.BatchNorm1d):
            assert torch.all(module.weight == 1) and torch.all(module.bias == 0)
    # the targets start as exact copies and take no gradient
    for online, target in ((model.backbone, model.target_backbone), (model.projector, model.target_projector)):
        for p, q in zip(online.parameters(), target.parameters()):
            assert torch.equal(p, q) and not q.requires_grad
    embeddings = model.eval().embed(torch.rand(5, 1, 28, 28))
    assert embeddings.shape == (5, 16)
    assert torch.allclose(embeddings.norm(dim=1), torch.ones(5), atol=1e-5)


def test_embed_reads_the_target_branch_only():
    model = tiny_model().eval()
    images = torch.rand(4, 1, 28, 28)
    before = model.embed(images)
    with torch.no_grad():
        for parameter in [*model.backbone.parameters(), *model.projector.parameters()]:
            parameter.add_(1.0)
    assert torch.equal(model.embed(images), before)


@pytest.mark.parametrize("cosine", [False, True])
def test_ema_update_is_exact(cosine):
    model = tiny_model(method={"momentum_schedule": "cosine" if cosine else "constant"})
    with torch.no_grad():
        for parameter in [*model.backbone.parameters(), *model.projector.parameters()]:
            parameter.add_(torch.randn_like(parameter))
    online = [p.clone() for p in [*model.backbone.parameters(), *model.projector.parameters()]]
    target = [p.clone() for p in [*model.target_backbone.parameters(), *model.target_projector.parameters()]]
    # step index 4 of 10: the cosine schedule gives m = 1 − (1 − 0.996)(cos(π·5/10) + 1)/2 = 0.998
    model.on_after_step(4, context_for(random_images(8), total_steps=10))
    m = 0.998 if cosine else 0.996
    updated = [*model.target_backbone.parameters(), *model.target_projector.parameters()]
    for new, old, source in zip(updated, target, online):
        assert torch.allclose(new, m * old + (1 - m) * source, atol=1e-7, rtol=0)


def online_and_target(model):
    online = [p.detach().clone() for p in [*model.backbone.parameters(), *model.projector.parameters()]]
    target = [p.detach().clone() for p in [*model.target_backbone.parameters(), *model.target_projector.parameters()]]
    return online, target


@pytest.mark.parametrize("timing", ["before_step", "after_step"])
def test_ema_timing_of_one_trainer_step(timing):
    """One optimizer step through the engine. before_step (the reference): the target moves with the
    online parameters the step started from, θ_k' = m·θ_k + (1 − m)·θ_q; after_step: with the
    updated ones, θ_k' = m·θ_k + (1 − m)·θ_q'. m is the constant 0.996 here."""
    images = random_images(32)
    model = tiny_model(training={"epochs": 1}, method={"ema_timing": timing})
    with torch.no_grad():  # online ≠ target, so the two orders differ
        for parameter in [*model.backbone.parameters(), *model.projector.parameters()]:
            parameter.add_(0.1 * torch.randn_like(parameter))
    online_before, target_before = online_and_target(model)
    trainer = Trainer(model, images, model.config, device=torch.device("cpu"), verbose=False)
    assert trainer.total_steps == 1
    trainer.fit()
    online_after, target_after = online_and_target(model)
    assert any(not torch.equal(a, b) for a, b in zip(online_before, online_after))  # the step changed θ_q
    source, other = (online_before, online_after) if timing == "before_step" else (online_after, online_before)
    m = 0.996
    for new, old, online in zip(target_after, target_before, source):
        assert torch.allclose(new, m * old + (1 - m) * online, atol=1e-6, rtol=0)
    assert max(float((new - m * old - (1 - m) * wrong).abs().max())
               for new, old, wrong in zip(target_after, target_before, other)) > 1e-5   # the other order differs


def test_ema_timing_before_step_uses_the_momentum_of_iteration_n():
    """The before-step hook moves the target by the momentum of iteration n = global step + 1, as
    the after-step hook does (cosine: step index 4 of 10 → m = 1 − 0.004 (cos(π/2) + 1)/2 = 0.998)."""
    model = tiny_model(method={"momentum_schedule": "cosine", "ema_timing": "before_step"})
    with torch.no_grad():
        for parameter in [*model.backbone.parameters(), *model.projector.parameters()]:
            parameter.add_(torch.randn_like(parameter))
    online, target = online_and_target(model)
    context = context_for(random_images(8), total_steps=10)
    model.on_after_step(4, context)       # not this timing's hook: nothing moves
    assert all(torch.equal(a, b) for a, b in zip(online_and_target(model)[1], target))
    model.on_before_step(4, context)
    for new, old, source in zip(online_and_target(model)[1], target, online):
        assert torch.allclose(new, 0.998 * old + 0.002 * source, atol=1e-7, rtol=0)


def test_bad_ema_timing_and_resampling_flag_are_named():
    with pytest.raises(ValueError, match="method.ema_timing"):
        tiny_model(method={"ema_timing": "sometimes"})
    with pytest.raises(ValueError, match="method.balanced_resampling"):
        tiny_model(method={"balanced_resampling": "yes"})


def test_balanced_resampling_draws_every_pseudo_cluster_equally():
    """data_resample: N draws with replacement, weight 1 / |pseudo-cluster|; with clusters of 9,000
    and 1,000 samples each cluster gets about half of the draws (3σ = 0.015)."""
    model = tiny_model(method={"balanced_resampling": True})
    model.pseudo_labels = torch.cat([torch.zeros(9000, dtype=torch.long), torch.ones(1000, dtype=torch.long)])
    order = model.epoch_order(10_000, torch.Generator().manual_seed(0))
    assert order.shape == (10_000,) and order.dtype == torch.long
    assert abs(float((order >= 9000).float().mean()) - 0.5) < 0.015
    assert len(order.unique()) < 10_000                                  # with replacement
    again = model.epoch_order(10_000, torch.Generator().manual_seed(0))
    assert torch.equal(order, again)                                     # the epoch's seed fixes the draw
    with pytest.raises(RuntimeError, match="pseudo-labels of all 50"):
        model.epoch_order(50, torch.Generator())
    plain = tiny_model()
    assert torch.equal(plain.epoch_order(100, torch.Generator().manual_seed(3)),
                       torch.randperm(100, generator=torch.Generator().manual_seed(3)))


def test_balanced_resampling_in_a_trainer_run():
    """The engine trains on the method's draw: one per epoch, N indices with repeats, same number of steps."""
    images = random_images(96)
    model = tiny_model(method={"balanced_resampling": True})
    orders = []
    real = model.epoch_order
    model.epoch_order = lambda n, generator: orders.append(real(n, generator)) or orders[-1]
    result = Trainer(model, images, model.config, device=torch.device("cpu"), verbose=False).fit()
    assert result.global_step == 2 * 3 and len(orders) == 2
    assert all(order.numel() == 96 and order.unique().numel() < 96 for order in orders)


def test_paper_presets_follow_the_reference_run_configs():
    """config/<dataset>_r18_propos.yml of the reference (docs/PROTOCOLS.md has every row)."""
    cifar20 = HaDis.preset_config("paper-cifar100")
    assert cifar20["method"]["cluster_loss_weight"] == 0.05 and cifar20["method"]["momentum_schedule"] == "cosine"
    assert cifar20["method"]["balanced_resampling"] is True
    for preset in ("paper-stl10", "paper-imagenet10", "paper-imagenet-dogs"):
        config = HaDis.preset_config(preset)
        assert config["training"]["batch_size"] == 128 and config["optimizer"]["lr"] == pytest.approx(0.05 * 128 / 256)
    assert HaDis.preset_config("paper-imagenet10")["method"]["cluster_loss_weight"] == 0.05
    for preset in HaDis.presets():
        config = HaDis.preset_config(preset)
        paper = preset.startswith("paper-")
        assert config["schedule"]["cosine_period"] == ("all_epochs" if paper else "after_warmup")
        assert config["method"]["ema_timing"] == ("before_step" if paper else "after_step")
        assert config["training"]["amp"] is not paper


def test_predictor_learning_rate_is_ten_times_the_base():
    model = tiny_model()
    optimizer = build_optimizer(model.parameter_groups(), model.config["optimizer"])
    base = model.config["optimizer"]["lr"]
    assert isinstance(optimizer, torch.optim.SGD) and len(optimizer.param_groups) == 2
    assert optimizer.param_groups[0]["lr"] == pytest.approx(base)
    assert optimizer.param_groups[1]["lr"] == pytest.approx(10 * base)
    assert {id(p) for p in optimizer.param_groups[1]["params"]} == {id(p) for p in model.predictor.parameters()}
    grouped = {id(p) for group in optimizer.param_groups for p in group["params"]}
    trainable = {id(p) for p in model.parameters() if p.requires_grad}
    assert grouped == trainable
    assert not grouped & {id(p) for p in model.target_backbone.parameters()}
    assert optimizer.param_groups[0]["momentum"] == 0.9 and optimizer.param_groups[0]["weight_decay"] == 5e-4


def test_pseudo_labels_are_kmeans_of_the_target_embeddings_and_deterministic():
    images = random_images(64)
    model = tiny_model()
    model.on_epoch_start(0, context_for(images))
    first = model.pseudo_labels.clone()
    assert first.shape == (64,) and first.dtype == torch.long and model.training
    model.eval()
    embeddings = torch.cat([model.embed(batch) for batch, _ in iterate_images(images, 64, torch.device("cpu"))])
    expected = kmeans(embeddings, 3, metric="cosine", seed=0, max_iter=300, tol=1e-4).labels
    assert torch.equal(first, expected)
    model.train()
    model.on_epoch_start(1, context_for(images))
    assert torch.equal(model.pseudo_labels, first)
    other = tiny_model()
    other.on_epoch_start(0, context_for(images))
    assert torch.equal(other.pseudo_labels, first)


def test_pseudo_labels_refreshed_once_per_epoch_and_survive_a_state_dict_round_trip(monkeypatch):
    calls = []
    real_kmeans = hadis_module.kmeans

    def spy(embeddings, *args, **kwargs):
        calls.append((embeddings.shape, kwargs))
        return real_kmeans(embeddings, *args, **kwargs)

    monkeypatch.setattr(hadis_module, "kmeans", spy)
    images = random_images(96)
    model = tiny_model()
    trainer = Trainer(model, images, model.config, device=torch.device("cpu"), verbose=False)
    trainer.fit()
    assert len(calls) == 2                                    # epochs = 2, three steps each
    shape, options = calls[0]
    assert shape == (96, 16)
    assert options == {"n_init": 1, "max_iter": 300, "tol": 1e-4, "metric": "cosine", "seed": 0}
    restored = tiny_model()
    restored.load_state_dict(model.state_dict())
    assert torch.equal(restored.pseudo_labels, model.pseudo_labels) and restored.pseudo_labels.numel() == 96


def test_training_step_needs_pseudo_labels():
    with pytest.raises(RuntimeError, match="pseudo-labels"):
        tiny_model().training_step(Batch(torch.rand(8, 1, 28, 28), torch.arange(8), 0, 0))


def test_diffuse_noise_scale_and_identity():
    q = torch.randn(4000, 64)
    assert diffuse(q, 0.0) is q
    torch.manual_seed(1)
    noise = diffuse(q, 0.001) - q
    assert noise.std().item() == pytest.approx(0.001, rel=0.02)
    assert abs(noise.mean().item()) < 1e-5
    with pytest.raises(ValueError, match="latent_std"):
        diffuse(q, -0.1)


class Flip(nn.Module):
    def forward(self, x):
        return x.flip(-1)


@pytest.mark.parametrize("epoch", [0, 1])
def test_step_is_the_symmetrised_sum_of_the_three_terms(monkeypatch, epoch):
    stds = []
    real_diffuse = hadis_module.diffuse
    monkeypatch.setattr(hadis_module, "diffuse",
                        lambda q, std, generator: stds.append(std) or real_diffuse(q, 0.0, generator))
    images = random_images(32)
    model = tiny_model()
    model.on_epoch_start(0, context_for(images))
    model.views = nn.ModuleList([nn.Identity(), Flip()])     # two deterministic views
    x = images.float() / 255
    out = model.training_step(Batch(x, torch.arange(32), epoch, 0))
    warm_up = epoch < 1
    assert stds == [0.0, 0.0] if warm_up else stds == [0.001, 0.001]
    views = [x, x.flip(-1)]
    q = [model.projector(model.backbone(v)) for v in views]
    k = [F.normalize(model.target_projector(model.target_backbone(v)), dim=1).detach() for v in views]
    p = [model.predictor(q[0]), model.predictor(q[1])]
    align = 0.5 * (-2 * F.cosine_similarity(p[0], k[1]).mean() - 2 * F.cosine_similarity(p[1], k[0]).mean())
    hsd = 0.5 * (model.hsd(k[1], p[0]) + model.hsd(k[0], p[1]))
    labels = model.pseudo_labels
    proto = 0.5 * (model.prototype_contrast(q[0], k[1], labels) + model.prototype_contrast(q[1], k[0], labels))
    assert out["align"].item() == pytest.approx(align.item(), abs=1e-5)
    assert out["hsd"].item() == pytest.approx(hsd.item(), abs=1e-5)
    assert out["proto"].item() == pytest.approx(proto.item(), abs=1e-5)
    weight = 0.0 if warm_up else 0.1
    assert out["loss"].item() == pytest.approx((align + hsd + weight * proto).item(), abs=1e-5)
    assert out["proto"].requires_grad is not warm_up


def test_asymmetric_option_uses_one_direction(monkeypatch):
    images = random_images(32)
    model = tiny_model(method={"symmetric": False})
    model.on_epoch_start(0, context_for(images))
    calls = []
    real = model.prototype_contrast.forward
    monkeypatch.setattr(model.prototype_contrast, "forward", lambda *a: calls.append(1) or real(*a))
    model.training_step(Batch(images.float() / 255, torch.arange(32), 1, 0))
    assert len(calls) == 1


@needs_fashion_mnist
def test_loss_decreases_on_a_real_batch():
    data = fashion_mnist_subset(128)
    images = torch.from_numpy(data.images)
    torch.manual_seed(0)
    config = tiny_config(backbone={"width": 0.5}, method={"warmup_epochs": 0})
    model = HaDisModel(config, 10, (1, 28, 28), mean=data.mean, std=data.std)
    context = context_for(images, total_steps=40, batch_size=128)
    model.on_epoch_start(0, context)
    optimizer = build_optimizer(model.parameter_groups(), config["optimizer"])
    batch = Batch(images.float() / 255, torch.arange(128), 0, 0)
    losses, prototype_terms = [], []
    for step in range(10):
        out = model.training_step(batch)
        optimizer.zero_grad()
        out["loss"].backward()
        optimizer.step()
        model.on_after_step(step, context)
        losses.append(out["loss"].item())
        prototype_terms.append(out["proto"].item())
    assert all(math.isfinite(v) for v in losses)
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.5
    assert np.mean(prototype_terms[-3:]) < np.mean(prototype_terms[:3]) - 0.05


@needs_fashion_mnist
@pytest.mark.slow
def test_estimator_end_to_end_on_fashion_mnist():
    n, epochs = (4096, 6) if FULL else (512, 2)
    data = fashion_mnist_subset(n)
    estimator = deepclust.make("hadis", n_clusters=10, preset="cpu-fashion-mnist", max_epochs=epochs,
                               batch_size=128, device="cpu", seed=0,
                               config={"backbone": {"width": 0.5}, "method": {"warmup_epochs": 1, "kmeans_restarts": 1},
                                       "schedule": {"warmup_epochs": 0}, "inference": {"kmeans_restarts": 1}})
    assert isinstance(estimator, HaDis)
    estimator.fit(data, data.labels)
    assert estimator.labels_.shape == (n,) and set(np.unique(estimator.labels_)) <= set(range(10))
    metrics = estimator.metrics_
    assert all(math.isfinite(metrics[name]) for name in ("acc", "nmi", "ari"))
    assert metrics["epochs"] == epochs and metrics["stop_reason"] == "completed"
    assert np.array_equal(estimator.predict(data.images), estimator.labels_)
    embeddings = estimator.transform(data.images[:50])
    assert embeddings.shape == (50, 128)
    assert np.allclose(np.linalg.norm(embeddings, axis=1), 1.0, atol=1e-4)
    if FULL:
        assert metrics["acc"] > 0.5


@needs_fashion_mnist
def test_cli_fit(tmp_path):
    metrics = cli_fit("hadis", tmp_path, *set_options({"training": {"batch_size": 128}, "backbone": {"width": 0.5},
                                                       "method": {"kmeans_restarts": 1},
                                                       "inference": {"kmeans_restarts": 1}}))
    assert metrics["method"] == "hadis" and metrics["n_samples"] == 512
    assert all(math.isfinite(metrics[name]) for name in ("acc", "nmi", "ari"))
