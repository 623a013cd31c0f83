"""One optimizer update from one batch, shared by the trainer and online (``partial_fit``) training."""
from __future__ import annotations

import math
from typing import Callable, Iterable

import torch

from deepclust.backbones import Backbone
from deepclust.engine.inference import autocast_context
from deepclust.engine.model import Batch


class NonFiniteLossError(FloatingPointError):
    """The loss became NaN or infinite; raised before the bad update reaches the weights."""


def amp_enabled(training_config: dict, device: torch.device) -> bool:
    """Mixed precision: ``training.amp`` (default on), and only on CUDA."""
    return bool(training_config.get("amp", True)) and device.type == "cuda"


def apply_memory_format(model: torch.nn.Module, training_config: dict) -> torch.nn.Module:
    """``training.channels_last`` (default off): the model's convolution weights stored channels-last
    (NHWC), which the oneDNN and cuDNN convolutions run faster; ``model``, converted in place."""
    if training_config.get("channels_last", False):
        model.to(memory_format=torch.channels_last)
    return model


def compile_backbones(model: torch.nn.Module, training_config: dict) -> list[torch.nn.Module]:
    """``training.compile`` (default off): the ``forward`` of every backbone in ``model`` (the
    outermost :class:`~deepclust.backbones.Backbone` submodules, a momentum copy included)
    replaced by its :func:`torch.compile` version, in place; heads, losses and augmentation stay
    eager, and parameter names, ``state_dict`` and checkpoints are unchanged. Returns the compiled
    backbones for :func:`release_compiled`; the first steps (and the first evaluation) pay for the
    compilation."""
    if not training_config.get("compile", False):
        return []
    compiled: list[torch.nn.Module] = []

    def visit(module: torch.nn.Module) -> None:
        for child in module.children():
            if isinstance(child, Backbone):
                child.forward = torch.compile(child.forward)
                compiled.append(child)
            else:
                visit(child)

    visit(model)
    return compiled


def release_compiled(modules: Iterable[torch.nn.Module]) -> None:
    """The class's eager ``forward`` back on modules :func:`compile_backbones` compiled (a compiled
    ``forward`` does not pickle, and a fitted estimator must)."""
    for module in modules:
        vars(module).pop("forward", None)


def train_batch(step: Callable[[Batch], dict[str, torch.Tensor]], batch: Batch, optimizer: torch.optim.Optimizer,
                parameters: Iterable[torch.nn.Parameter], *, amp: bool = False, grad_clip: float | None = None,
                where: str | None = None, before_step: Callable[[], None] | None = None) -> dict[str, torch.Tensor]:
    """Compute ``step(batch)`` (autocast when ``amp``), back-propagate its ``"loss"`` and step ``optimizer``.

    The gradient norm of ``parameters`` is clipped to ``grad_clip`` (None or 0: not clipped).
    ``before_step`` is called after the gradients are checked, just before ``optimizer.step()``.
    A non-finite loss or gradient norm raises :class:`NonFiniteLossError` naming the bad terms or
    the norm and ``where`` (default: the batch's epoch and step) after clearing the gradients, so
    the weights are untouched. Returns the step's outputs.
    """
    where = where or f"at epoch {batch.epoch}, step {batch.step}"

    def reject(what: str, detail: str) -> NonFiniteLossError:
        optimizer.zero_grad(set_to_none=True)
        return NonFiniteLossError(f"non-finite {what} {where}: {detail}")

    with autocast_context(batch.images.device, amp):
        outputs = step(batch)
    loss = outputs["loss"]
    if not torch.isfinite(loss):
        bad = [name for name, value in outputs.items() if not torch.isfinite(value).all()]
        values = [float(outputs[name].detach()) for name in bad]
        raise reject("loss", f"terms {', '.join(bad)} = {values}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    gradient_norm = torch.nn.utils.clip_grad_norm_(parameters, float(grad_clip) if grad_clip else math.inf)
    if not torch.isfinite(gradient_norm):
        raise reject("gradient", f"norm {float(gradient_norm)}")
    if before_step is not None:
        before_step()
    optimizer.step()
    return outputs
