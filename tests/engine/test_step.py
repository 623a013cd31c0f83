"""train_batch: one update, and non-finite losses or gradients stopped before they reach the weights."""
import pytest
import torch

from deepclust.engine.model import Batch
from deepclust.engine.step import NonFiniteLossError, amp_enabled, train_batch


def linear_problem(scale=1.0):
    torch.manual_seed(0)
    layer = torch.nn.Linear(3, 1, bias=False)
    optimizer = torch.optim.SGD(layer.parameters(), lr=0.1)
    batch = Batch(images=torch.ones(4, 3), indices=torch.arange(4), epoch=2, step=7)

    def step(b):
        loss = scale * layer(b.images).pow(2).mean()
        return {"loss": loss, "square": loss.detach()}

    return layer, optimizer, batch, step


def test_one_sgd_step_by_hand():
    layer, optimizer, batch, step = linear_problem()
    w = layer.weight.detach().clone()
    outputs = train_batch(step, batch, optimizer, layer.parameters())
    # loss = (w·1)², d loss / dw = 2 (w·1) · 1 for every row, so w ← w − 0.1 · 2 (Σ w)
    assert torch.allclose(layer.weight, w - 0.1 * 2 * w.sum())
    assert set(outputs) == {"loss", "square"} and float(outputs["loss"].detach()) == pytest.approx(float(w.sum()) ** 2)


def test_gradient_clipping_limits_the_update():
    layer, optimizer, batch, step = linear_problem(scale=100.0)
    w = layer.weight.detach().clone()
    train_batch(step, batch, optimizer, layer.parameters(), grad_clip=0.5)
    assert float(torch.linalg.vector_norm(layer.weight.detach() - w)) == pytest.approx(0.1 * 0.5, rel=1e-4)


def test_non_finite_loss_names_terms_and_where_and_leaves_weights():
    layer, optimizer, batch, step = linear_problem(scale=float("nan"))
    w = layer.weight.detach().clone()
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss at epoch 2, step 7: terms loss, square"):
        train_batch(step, batch, optimizer, layer.parameters())
    with pytest.raises(NonFiniteLossError, match=r"non-finite loss in batch 3: terms"):
        train_batch(step, batch, optimizer, layer.parameters(), where="in batch 3")
    assert torch.equal(layer.weight, w) and layer.weight.grad is None


def test_non_finite_gradient_is_reported_with_its_norm(monkeypatch):
    layer, optimizer, batch, step = linear_problem()
    w = layer.weight.detach().clone()
    monkeypatch.setattr(torch.nn.utils, "clip_grad_norm_", lambda parameters, max_norm: torch.tensor(float("inf")))
    with pytest.raises(NonFiniteLossError, match=r"non-finite gradient at epoch 2, step 7: norm inf"):
        train_batch(step, batch, optimizer, layer.parameters())
    assert torch.equal(layer.weight, w) and layer.weight.grad is None


def test_amp_only_on_cuda_and_on_by_default():
    assert not amp_enabled({}, torch.device("cpu"))
    assert amp_enabled({}, torch.device("cuda"))
    assert not amp_enabled({"amp": False}, torch.device("cuda"))


class TwoBackbones(torch.nn.Module):
    """A method-like model: an online backbone inside a wrapper, a momentum copy and a head."""

    def __init__(self):
        super().__init__()
        from deepclust.backbones import build_backbone

        torch.manual_seed(0)
        self.online = torch.nn.Sequential(build_backbone("mlp", in_channels=1, image_size=4))
        self.target = build_backbone("mlp", in_channels=1, image_size=4)
        self.head = torch.nn.Linear(self.target.feature_dim, 2)

    def forward(self, images):
        return self.head(self.online(images)) + self.head(self.target(images))


def test_compile_backbones_compiles_each_backbone_and_keeps_outputs_names_and_pickling():
    import pickle

    from deepclust.backbones import Backbone
    from deepclust.engine.step import compile_backbones, release_compiled

    model = TwoBackbones()
    images = torch.rand(5, 1, 4, 4)
    eager, names = model(images).detach(), list(model.state_dict())
    assert compile_backbones(model, {"compile": False}) == []
    assert "forward" not in vars(model.target)

    compiled = compile_backbones(model, {"compile": True})
    assert compiled == [model.online[0], model.target] and all(isinstance(m, Backbone) for m in compiled)
    assert all("forward" in vars(module) for module in compiled) and "forward" not in vars(model.head)
    assert torch.allclose(model(images), eager, atol=1e-6)
    assert list(model.state_dict()) == names
    with pytest.raises(Exception):
        pickle.dumps(model)  # why release_compiled exists

    release_compiled(compiled)
    assert all("forward" not in vars(module) for module in compiled)
    assert torch.allclose(pickle.loads(pickle.dumps(model))(images), eager)
