"""HTCN: networks, EMA target, labels from the target, training on Fashion-MNIST, estimator and CLI."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch

import deepclust
from support import FULL, TINY, cli_fit, fashion_mnist_available, set_options, tiny_config
from deepclust.backbones.base import Backbone
from deepclust.engine import ConfigError, list_presets
from deepclust.engine.model import Batch
from deepclust.engine.optim import build_optimizer
from deepclust.evaluation import evaluate_clustering
from deepclust.methods import HTCN, load_estimator
from deepclust.methods.htcn import HTCNModel

needs_fashion_mnist = pytest.mark.skipif(not fashion_mnist_available(), reason="Fashion-MNIST is not installed")


def tiny_model(n_clusters=4, **method):
    config = tiny_config("htcn", {"method": method})
    torch.manual_seed(0)
    return HTCNModel(config, n_clusters, (1, 28, 28))


def context(total_steps=10):
    return SimpleNamespace(total_steps=total_steps)


def batch_of(images, step=0):
    return Batch(images=images, indices=torch.arange(images.shape[0]), epoch=0, step=step)


def one_step(model, images, optimizer, step=0, total_steps=10):
    outputs = model.training_step(batch_of(images, step))
    optimizer.zero_grad(set_to_none=True)
    outputs["loss"].backward()
    optimizer.step()
    model.on_after_step(step, context(total_steps))
    return outputs


@pytest.fixture(scope="module")
def fashion_mnist():
    if not fashion_mnist_available():
        pytest.skip("Fashion-MNIST is not installed")
    return deepclust.load_dataset("fashion-mnist")


# --- structure and shapes ---------------------------------------------------------------------
def test_networks_as_documented(monkeypatch):
    checked = []
    monkeypatch.setattr(Backbone, "check_input", lambda self, shape: checked.append((self, tuple(shape))))
    model = tiny_model(n_clusters=5)
    online, target = model.online, model.target
    # projector: Linear(d_h, hidden) → BN → ReLU → Linear(hidden, 16); predictor the same shape from 16
    assert [type(m).__name__ for m in online.projector] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert online.projector[0].in_features == online.backbone.feature_dim
    assert [type(m).__name__ for m in model.predictor] == ["Linear", "BatchNorm1d", "ReLU", "Linear"]
    assert (model.predictor[0].in_features, model.predictor[-1].out_features) == (16, 16)
    # cluster head reads the projection: Linear(16, 16) → ReLU → Linear(16, K) → softmax
    assert [type(m).__name__ for m in online.cluster_head] == ["Linear", "ReLU", "Linear", "Softmax"]
    assert online.cluster_head[0].in_features == 16 and online.cluster_head[2].out_features == 5
    # the target copies (f, g, c) exactly, has no predictor, and takes no gradient
    assert not hasattr(target, "predictor")
    for a, b in zip(online.parameters(), target.parameters()):
        assert torch.equal(a, b) and b is not a and not b.requires_grad
    trained = {id(p) for group in model.parameter_groups() for p in group["params"]}
    assert trained == {id(p) for p in (*online.parameters(), *model.predictor.parameters())}
    assert checked == [(online.backbone, (1, 28, 28))]   # the input check reads the online backbone


def test_training_step_shapes_and_terms():
    model = tiny_model(n_clusters=4)
    outputs = model.training_step(batch_of(torch.rand(8, 1, 28, 28)))
    assert set(outputs) == {"loss", "instance", "cluster"}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in outputs.values())
    assert torch.allclose(outputs["loss"], outputs["instance"] + outputs["cluster"])
    model.eval()
    images = torch.rand(6, 1, 28, 28)
    assert model.embed(images).shape == (6, 16)
    probabilities = model.cluster_probabilities(images)
    assert probabilities.shape == (6, 4) and torch.allclose(probabilities.sum(1), torch.ones(6), atol=1e-5)


def test_loss_weights_are_configurable():
    torch.manual_seed(1)
    images = torch.rand(8, 1, 28, 28)
    model = tiny_model(instance_weight=0.5, cluster_weight=2.0)
    torch.manual_seed(2)
    outputs = model.training_step(batch_of(images))
    assert torch.allclose(outputs["loss"], 0.5 * outputs["instance"] + 2.0 * outputs["cluster"])


def test_three_views_through_online_and_target():
    model = tiny_model()
    calls = {"online": 0, "target": 0, "predictor": 0, "augment": 0}
    for name in calls:
        module = getattr(model, name)
        module.register_forward_hook(lambda *_, name=name: calls.__setitem__(name, calls[name] + 1))
    model.training_step(batch_of(torch.rand(8, 1, 28, 28)))
    assert calls == {"online": 3, "target": 3, "predictor": 3, "augment": 3}


# --- 4. EMA target --------------------------------------------------------------------------------
def test_target_after_one_step_is_ema_of_new_online_and_gets_no_gradient():
    model = tiny_model()
    beta = model.momentum
    assert beta == 0.99 and model.momentum_schedule == "constant"
    optimizer = build_optimizer(model.parameter_groups(), {"name": "adam", "lr": 1e-2})
    old_target = [p.detach().clone() for p in model.target.parameters()]
    old_online = [p.detach().clone() for p in model.online.parameters()]
    one_step(model, torch.rand(8, 1, 28, 28), optimizer)
    moved = 0
    for before, online, after, online_before in zip(old_target, model.online.parameters(),
                                                   model.target.parameters(), old_online):
        expected = beta * before + (1 - beta) * online.detach()
        # exact up to float32 rounding (≤ 2 ulp: the fused multiply-add of ema_update rounds once less)
        torch.testing.assert_close(after, expected, rtol=2.5e-7, atol=1e-9)
        moved += int(not torch.equal(online, online_before))
        assert after.grad is None and not after.requires_grad
    assert moved > 0   # the online network did change, so the check is not vacuous


def test_target_buffers_are_not_averaged():
    model = tiny_model()
    online_bn = model.online.projector[1]
    target_bn = model.target.projector[1]
    online_bn.running_mean.fill_(5.0)
    before = target_bn.running_mean.clone()
    model.on_after_step(0, context())
    assert torch.equal(target_bn.running_mean, before)


def test_target_runs_in_train_mode_during_training():
    model = tiny_model()
    model.train()
    assert model.target.training and model.target.projector[1].training
    running = model.target.projector[1].running_mean.clone()
    model.training_step(batch_of(torch.rand(8, 1, 28, 28)))
    assert not torch.equal(model.target.projector[1].running_mean, running)  # BN statistics of its own


def test_cosine_momentum_option():
    model = tiny_model(momentum_schedule="cosine", momentum=0.9)
    assert abs(model.current_momentum(-1, 100) - 0.9) < 1e-12
    assert abs(model.current_momentum(49, 100) - 0.95) < 1e-12
    assert model.current_momentum(99, 100) == 1.0
    online_change = [p.detach().clone() for p in model.target.parameters()]
    with torch.no_grad():
        for p in model.online.parameters():
            p.add_(1.0)
    model.on_after_step(99, context(100))   # β = 1 at the end: the target stays where it was
    for before, after in zip(online_change, model.target.parameters()):
        assert torch.equal(before, after)


@pytest.mark.parametrize("method, message", [({"momentum_schedule": "linear"}, "momentum_schedule"),
                                             ({"momentum": 1.5}, "momentum must be in")])
def test_bad_momentum_options(method, message):
    with pytest.raises(ConfigError, match=message):
        tiny_model(**method)


# --- 5. labels from the target network's cluster head -----------------------------------------
def test_labels_come_from_the_target_head():
    model = tiny_model(n_clusters=4)
    optimizer = build_optimizer(model.parameter_groups(), {"name": "adam", "lr": 1e-2})
    torch.manual_seed(3)
    images = torch.rand(16, 1, 28, 28)
    for step in range(3):
        one_step(model, images, optimizer, step)
    model.eval()
    with torch.no_grad():
        labels = model.predict_labels(images)
        probabilities = model.cluster_probabilities(images)
        # the target stream by hand, on the un-augmented (resize-only) image
        target = model.target
        by_hand = target.cluster_head(target.projector(target.backbone(model.eval_transform(images))))
        assert torch.allclose(probabilities, by_hand)
        assert torch.allclose(model.embed(images), target.projector(target.backbone(images)))
        # perturbing the online network (head and all) leaves the labels unchanged …
        for p in (*model.online.parameters(), *model.predictor.parameters()):
            p.add_(torch.randn_like(p))
        assert torch.equal(model.predict_labels(images), labels)
        assert torch.equal(model.cluster_probabilities(images), probabilities)
        # … perturbing the target's head changes them
        model.target.cluster_head[2].bias.copy_(torch.tensor([0.0, 0.0, 100.0, 0.0]))
        assert torch.equal(model.predict_labels(images), torch.full((16,), 2))


# --- training on real data --------------------------------------------------------------------
@needs_fashion_mnist
def test_loss_decreases_on_a_fashion_mnist_batch(fashion_mnist):
    images = torch.from_numpy(fashion_mnist.images[:128]).float() / 255
    model = tiny_model(n_clusters=10)
    optimizer = build_optimizer(model.parameter_groups(), {"name": "adam", "lr": 1e-3})
    losses = []
    for step in range(8):
        torch.manual_seed(0)  # the same three views at every step: the change is the learning
        losses.append({k: float(v.detach()) for k, v in one_step(model, images, optimizer, step).items()})
    assert losses[-1]["loss"] < losses[0]["loss"]
    assert losses[-1]["instance"] < losses[0]["instance"]
    assert all(math.isfinite(record["loss"]) for record in losses)


@needs_fashion_mnist
@pytest.mark.slow
def test_estimator_end_to_end_on_fashion_mnist(fashion_mnist, tmp_path):
    n = 2048 if FULL else 512
    subset = fashion_mnist.subset(np.random.default_rng(0).permutation(len(fashion_mnist))[:n])
    estimator = deepclust.make("htcn", n_clusters=10, preset="cpu-fashion-mnist", config=TINY["htcn"],
                               max_epochs=2 if FULL else 1, batch_size=128, device="cpu", seed=0,
                               out_dir=str(tmp_path / "run"))
    estimator.fit(subset)
    assert isinstance(estimator, HTCN)
    assert estimator.labels_.shape == (n,) and estimator.labels_.min() >= 0 and estimator.labels_.max() < 10
    metrics = estimator.metrics_
    assert all(math.isfinite(metrics[key]) for key in ("acc", "nmi", "ari"))
    assert metrics["steps"] == (n // 128) * (2 if FULL else 1)
    assert np.array_equal(estimator.predict(subset), estimator.labels_)
    assert estimator.transform(subset.images[:10]).shape == (10, 16)
    proba = estimator.predict_proba(subset.images[:10])
    assert proba.shape == (10, 10) and np.allclose(proba.sum(1), 1, atol=1e-5)
    # labels come from the target head: scrambling the online network changes nothing
    with torch.no_grad():
        for p in estimator.model_.online.parameters():
            p.mul_(-3.0)
    assert np.array_equal(estimator.predict(subset), estimator.labels_)
    loaded = load_estimator(tmp_path / "run" / "model.pt", device="cpu")
    assert np.array_equal(loaded.predict(subset), estimator.labels_)
    assert evaluate_clustering(subset.labels, loaded.predict(subset), 10)["acc"] == metrics["acc"]


@needs_fashion_mnist
def test_cli_fit(tmp_path):
    metrics = cli_fit("htcn", tmp_path / "cli", "--set", "training.batch_size=128", *set_options(TINY["htcn"]),
                      "--device", "cpu")
    assert metrics["method"] == "htcn" and metrics["n_samples"] == 512
    assert all(math.isfinite(metrics[key]) for key in ("acc", "nmi", "ari"))


# --- presets ----------------------------------------------------------------------------------
def test_presets():
    assert set(list_presets("htcn")) == {"paper-cifar100", "paper-imagenet10", "paper-imagenet-dogs",
                                         "paper-tiny-imagenet", "cpu-fashion-mnist"}
    for name in ("paper-cifar100", "paper-imagenet10", "paper-imagenet-dogs", "paper-tiny-imagenet"):
        config = HTCN.preset_config(name)
        assert "dataset" not in config
        assert config["backbone"]["name"] == "resnet34"
        assert config["optimizer"] == {"name": "adam", "lr": 3e-4, "weight_decay": 0.0}
        assert config["training"]["batch_size"] == 128 and config["training"]["epochs"] == 1000
        assert config["augmentation"]["image_size"] == 224 and config["augmentation"]["crop_scale"] == [0.08, 1.0]
        assert config["method"]["momentum"] == 0.99 and config["method"]["cluster_temperature"] == 1.0
        assert (config["method"]["projector_hidden"], config["method"]["projection_dim"]) == (4096, 256)
        imagenet = name in ("paper-imagenet10", "paper-imagenet-dogs")
        assert config["augmentation"]["strength"] == (1.0 if imagenet else 0.5)
        assert config["augmentation"]["blur"] is imagenet
        assert config["augmentation"].get("blur_kernel", 23 if imagenet else None) == (23 if imagenet else None)
        assert config["training"]["amp"] is False                                 # the reference trains in fp32
        assert config["data"]["split"] == ("train" if name == "paper-tiny-imagenet" else "all")
        assert config["method"]["momentum_schedule"] == "constant"
    cpu = HTCN.preset_config("cpu-fashion-mnist")
    assert cpu["backbone"]["name"] == "small_cnn" and cpu["augmentation"]["image_size"] == 28
    assert cpu["training"]["batch_size"] == 256 and "dataset" not in cpu
