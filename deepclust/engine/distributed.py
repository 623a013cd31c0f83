"""Multi-process training with ``torch.distributed`` (launched by ``torchrun``), NCCL on GPUs, gloo on CPUs.

The scheme every method follows (see ``docs/DISTRIBUTED.md``):

- ``training.batch_size`` is the *global* batch. Each step every process takes its contiguous
  share of the same global batch (:func:`shard`), so the schedule, the number of steps and the
  hyper-parameters are those of one process, whatever the number of processes.
- Each process runs the networks on its share. BatchNorm layers are replaced by
  :class:`GlobalBatchNorm`, whose statistics are those of the global batch.
- A method gathers its per-sample outputs from all processes with :func:`gather`
  (differentiable) and computes its loss on the whole global batch, identically on every process.
  DistributedDataParallel then averages the gradients, which gives exactly the gradient of the
  one-process loss: each process's loss is the same function L of all outputs, the backward of
  :func:`gather` sums the W identical contributions to a process's own rows (W·∂L/∂z), and DDP
  divides by W.
- Randomness that all processes must share (noise rows, diffusion noise) comes from the step's
  :attr:`~deepclust.engine.model.Batch.generator`, seeded by the step and identical everywhere;
  augmentations use each process's own random stream.

Every helper here is the identity (or a no-op) in a single process.
"""
from __future__ import annotations

import os
from typing import Any

import torch
import torch.distributed as dist
from torch import nn


def is_distributed() -> bool:
    """True inside a process group, also one of a single process (``torchrun --nproc_per_node 1``
    trains through the same DistributedDataParallel, gathers and all-reduces as a larger group)."""
    return dist.is_available() and dist.is_initialized()


def world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def is_main_process() -> bool:
    """Rank 0, the only process that writes checkpoints, logs, metrics and reports."""
    return rank() == 0


def launched_by_torchrun() -> bool:
    """True in a process that ``torchrun`` started (it sets TORCHELASTIC_RUN_ID), or in any process
    whose environment describes a group of several (WORLD_SIZE > 1)."""
    return "TORCHELASTIC_RUN_ID" in os.environ or int(os.environ.get("WORLD_SIZE", "1")) > 1


def init_from_environment(device: torch.device) -> torch.device:
    """Join the process group that ``torchrun`` describes in the environment; return this process's device.

    Outside ``torchrun`` (:func:`launched_by_torchrun`) nothing happens and ``device`` is returned;
    under ``torchrun`` a group is formed even for one process.
    On CUDA each process takes the GPU ``LOCAL_RANK`` and the NCCL backend; elsewhere gloo.
    Calling it again in a process that already joined is harmless.
    """
    if not launched_by_torchrun():
        return device
    if device.type == "cuda":
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if name not in os.environ]
        if missing:
            raise RuntimeError(f"WORLD_SIZE={os.environ.get('WORLD_SIZE')} but {', '.join(missing)} not set: "
                               "launch multi-process training with torchrun")
        dist.init_process_group(backend="nccl" if device.type == "cuda" else "gloo")
    return device


def shutdown() -> None:
    """Leave the process group (end of a ``torchrun`` command)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def shard(indices: torch.Tensor) -> torch.Tensor:
    """This process's contiguous share of a global batch's indices (shares differ by at most one)."""
    if not is_distributed():
        return indices
    return torch.tensor_split(indices, world_size())[rank()]


def shard_range(n: int) -> tuple[int, int]:
    """[start, stop) of this process's contiguous share of ``n`` items."""
    per, extra = divmod(n, world_size())
    start = rank() * per + min(rank(), extra)
    return start, start + per + (1 if rank() < extra else 0)


class _Gather(torch.autograd.Function):
    """All-gather along dim 0 (shares may differ in size); backward: sum the gradients of every process."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        size = torch.tensor([tensor.shape[0]], device=tensor.device)
        sizes = [torch.zeros_like(size) for _ in range(world_size())]
        dist.all_gather(sizes, size)
        sizes = [int(s) for s in sizes]
        padded = tensor.new_zeros((max(sizes), *tensor.shape[1:]))
        padded[: tensor.shape[0]] = tensor
        parts = [torch.empty_like(padded) for _ in sizes]
        dist.all_gather(parts, padded.contiguous())
        ctx.sizes = sizes
        return torch.cat([part[:s] for part, s in zip(parts, sizes)])

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> torch.Tensor:
        gradient = gradient.contiguous().clone()
        dist.all_reduce(gradient)
        start = sum(ctx.sizes[: rank()])
        return gradient[start:start + ctx.sizes[rank()]]


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate every process's ``tensor`` along dim 0 in rank order: the global batch.

    Differentiable: the gradient of the gathered tensor reaches each process's own rows, summed
    over the processes (each computes the same global loss; see the module docstring). Works for
    integer tensors too (indices, labels). The identity in a single process.
    """
    if not is_distributed():
        return tensor
    return _Gather.apply(tensor)


class _AllReduceSum(torch.autograd.Function):
    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        tensor = tensor.clone()
        dist.all_reduce(tensor)
        return tensor

    @staticmethod
    def backward(ctx, gradient: torch.Tensor) -> torch.Tensor:
        gradient = gradient.contiguous().clone()
        dist.all_reduce(gradient)
        return gradient


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum of ``tensor`` over processes, differentiable (the identity in a single process)."""
    if not is_distributed():
        return tensor
    return _AllReduceSum.apply(tensor)


def all_reduce_max_(tensor: torch.Tensor) -> torch.Tensor:
    """In place: the element-wise maximum over processes (no gradient)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return tensor


def broadcast_(tensor: torch.Tensor, source: int = 0) -> torch.Tensor:
    """In place: ``source``'s values on every process."""
    if is_distributed():
        dist.broadcast(tensor, source)
    return tensor


def broadcast_object(value: Any, source: int = 0) -> Any:
    """``source``'s (picklable) value on every process."""
    if not is_distributed():
        return value
    holder = [value if rank() == source else None]
    dist.broadcast_object_list(holder, src=source)
    return holder[0]


def gather_objects(value: Any) -> list[Any]:
    """Every process's (picklable) value, in rank order, on every process."""
    if not is_distributed():
        return [value]
    values: list[Any] = [None] * world_size()
    dist.all_gather_object(values, value)
    return values


class GlobalBatchNorm(nn.modules.batchnorm._BatchNorm):
    """Batch normalisation over the global batch of all processes (any input with channels in dim 1).

    In training mode under ``torch.distributed`` the mean and the (biased) variance are those of
    every process's rows together, computed in two passes (sum, then sum of squared deviations)
    with differentiable all-reduces, so outputs, gradients and running statistics equal those of
    ``nn.BatchNorm*d`` on the whole batch in one process. Unlike ``nn.SyncBatchNorm`` it also
    runs on CPU (gloo). In evaluation mode or a single process it is plain batch norm.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(f"GlobalBatchNorm expects (N, C, ...) inputs, got shape {tuple(input.shape)}")

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        if not (self.training and is_distributed()):
            return super().forward(input)
        self._check_input_dim(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        values = input.float() if input.dtype in (torch.float16, torch.bfloat16) else input
        local_count = values.new_full((1,), values.numel() // values.shape[1])
        sums = all_reduce_sum(torch.cat([values.sum(dim=dims), local_count]))  # one collective for both
        count = sums[-1]
        mean = sums[:-1] / count
        centred = values - mean.view(shape)
        variance = all_reduce_sum(centred.pow(2).sum(dim=dims)) / count
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked.add_(1)
                factor = 1.0 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                unbiased = variance * count / (count - 1).clamp_min(1)
                self.running_mean.mul_(1 - factor).add_(mean.to(self.running_mean.dtype), alpha=factor)
                self.running_var.mul_(1 - factor).add_(unbiased.to(self.running_var.dtype), alpha=factor)
        output = centred * torch.rsqrt(variance + self.eps).view(shape)
        if self.affine:
            output = output * self.weight.view(shape) + self.bias.view(shape)
        return output.to(input.dtype)


def convert_batch_norm(module: nn.Module) -> nn.Module:
    """Replace every ``nn.BatchNorm1d/2d/3d`` in ``module`` by a :class:`GlobalBatchNorm` that keeps the
    same parameter and buffer objects (optimizers, state-dict keys and checkpoints stay valid)."""
    for name, child in module.named_children():
        if isinstance(child, nn.modules.batchnorm._BatchNorm) and not isinstance(child, GlobalBatchNorm):
            replacement = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                          child.track_running_stats)
            replacement.train(child.training)
            for key, value in list(child._parameters.items()) + list(child._buffers.items()):
                setattr(replacement, key, value)
            setattr(module, name, replacement)
        else:
            convert_batch_norm(child)
    return module
