"""The one training loop every method uses.

It owns: device placement, batching from an in-memory uint8 tensor, mixed precision on CUDA, the
optimizer and schedule, progress (:mod:`~deepclust.engine.progress`), a JSONL log and its CSV /
TensorBoard copies (:mod:`~deepclust.engine.loggers`), periodic evaluation, atomic checkpoints and
exact resumption, a wall-clock budget and clean stops on SIGINT/SIGTERM. It knows nothing of any
one method: the method is a :class:`~deepclust.engine.model.ClusteringModel`. The run folder's
pieces live in :mod:`~deepclust.engine.run_folder`, the resume rules in
:mod:`~deepclust.engine.resume` and the update from one batch in :mod:`~deepclust.engine.step`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping

import numpy as np
import torch
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

from deepclust._version import __version__
from deepclust.augment import to_float
from deepclust.engine import distributed
from deepclust.engine.checkpoint import CHECKPOINT_FORMAT, load_checkpoint, remove_stale_temporaries, save_atomic
from deepclust.engine.inference import iterate_images, map_images, predict_labels
from deepclust.engine.model import Batch, ClusteringModel, EpochPass, TrainingContext
from deepclust.engine.optim import build_optimizer, build_scheduler
from deepclust.engine.resume import check_resumable
from deepclust.engine.loggers import build_loggers
from deepclust.engine.progress import Progress
from deepclust.engine.run_folder import RunInterrupted, RunLog, StopRequest, check_free_space
from deepclust.engine.schema import ENGINE_TRAINING_DEFAULTS
from deepclust.engine.runtime import capture_rng_state, restore_rng_state, seed_everything, synchronize
from deepclust.engine.step import (NonFiniteLossError, amp_enabled, apply_memory_format, compile_backbones,
                                   release_compiled, train_batch)
from deepclust.evaluation import evaluate_clustering, format_metrics

#: Datasets up to this size are moved to the GPU once instead of batch by batch.
DEVICE_RESIDENT_BYTES = 2 * 1024**3


@dataclass
class FitResult:
    """How training went; ``labels`` are the final cluster labels of the training images (a k-means
    method re-clusters them first)."""

    epochs_completed: int
    global_step: int
    train_seconds: float
    images_per_second: float
    stop_reason: str
    history: list[dict] = field(default_factory=list)
    labels: np.ndarray | None = None
    stop_signal: int | None = None  #: the number of the signal that stopped training (None: not a signal)


class _TrainingStep(torch.nn.Module):
    """The module DistributedDataParallel wraps: its forward is the model's training step."""

    def __init__(self, model: ClusteringModel):
        super().__init__()
        self.model = model

    def forward(self, batch: Batch) -> dict[str, torch.Tensor]:
        return self.model.training_step(batch)


class Trainer:
    """Train ``model`` on ``images`` (uint8 tensor N×C×H×W) with the ``training`` config section.

    ``meta`` is stored in every checkpoint unchanged (the estimator puts the method name, the
    number of clusters and the input shape there).

    Under ``torch.distributed`` (see :mod:`deepclust.engine.distributed`) every process holds the
    images, ``training.batch_size`` is the global batch and each process trains on its share;
    BatchNorm becomes :class:`~deepclust.engine.distributed.GlobalBatchNorm`, the step runs in
    DistributedDataParallel, stops and checkpoints are agreed by all processes, and only rank 0
    writes the checkpoint (with every process's random state) and the log.

    An epoch is the model's :meth:`~deepclust.engine.model.ClusteringModel.epoch_passes` in order
    (by default one pass over every image), each in its own random batch order; ``parts`` are the
    dataset's named index arrays the passes may be built from (``ImageDataset.parts``).
    """

    def __init__(self, model: ClusteringModel, images: torch.Tensor, config: dict, *, device: torch.device,
                 seed: int = 0, labels: np.ndarray | None = None, parts: Mapping[str, np.ndarray] | None = None,
                 out_dir: str | Path | None = None,
                 meta: dict | None = None, max_minutes: float | None = None, resume: bool = False,
                 verbose: bool = True, cpu_hint: str | None = None):
        self.model = model
        self.config = config
        self.training_config = training = config["training"]
        self.device = device
        self.seed = int(seed)
        self.labels = labels
        self.meta = dict(meta or {})
        self.max_minutes = max_minutes if max_minutes is not None else training.get("max_minutes")
        self.resume = resume
        self.verbose = verbose
        self.out_dir = Path(out_dir) if out_dir is not None else None
        self.checkpoint_path = self.out_dir / "checkpoints" / "last.pt" if self.out_dir else None
        self.distributed = distributed.is_distributed()
        self.writes = distributed.is_main_process()
        logging = self.out_dir is not None and self.writes
        self.log = RunLog(self.out_dir / "log.jsonl" if logging else None,
                          build_loggers(training.get("loggers", ENGINE_TRAINING_DEFAULTS["loggers"]), self.out_dir)
                          if logging else ())
        self.stop_request = StopRequest()
        self._checkpointed: tuple[int, int] | None = None  # (epoch, step) of the last checkpoint written
        self.amp = amp_enabled(training, device)

        self.batch_size = int(training["batch_size"])
        self.drop_last = bool(training.get("drop_last", True))
        self.max_epochs = int(training["epochs"])
        self.eval_every = int(training.get("eval_every", 0) or 0)
        self.log_every = int(training.get("log_every", 50))
        self.checkpoint_seconds = 60.0 * float(training.get("checkpoint_every_minutes", 5.0))
        self.budget_seconds = None if self.max_minutes is None else 60.0 * float(self.max_minutes)
        n = images.shape[0]
        if self.batch_size < 1 or self.max_epochs < 0:
            raise ValueError(f"batch_size must be >= 1 and epochs >= 0, got {self.batch_size} and {self.max_epochs}")
        if self.batch_size < distributed.world_size():
            raise ValueError(f"batch_size {self.batch_size} is the global batch and must be at least the number "
                             f"of processes ({distributed.world_size()})")
        self.parts = dict(parts or {})
        self.passes = self._check_passes(model.epoch_passes(n, self.parts), n)
        self.steps_per_epoch = sum(self._batch_count(epoch_pass.size(n)) for epoch_pass in self.passes)
        self.total_steps = self.steps_per_epoch * self.max_epochs
        if device.type == "cuda" and images.numel() <= DEVICE_RESIDENT_BYTES:
            images = images.to(device)
        self.images = images

        apply_memory_format(model.to(device), training)
        self.step_module = model.training_step
        if self.distributed:
            distributed.convert_batch_norm(model)
            self.step_module = DistributedDataParallel(
                _TrainingStep(model), device_ids=[device.index] if device.type == "cuda" else None,
                forward_sync_buffers=False,  # buffers stay equal by construction; re-sending memory banks is costly
                find_unused_parameters=any(epoch_pass.terms is not None for epoch_pass in self.passes))
        self.optimizer = build_optimizer(model.parameter_groups(), config["optimizer"])
        self.scheduler = build_scheduler(self.optimizer, config.get("schedule", {}),
                                         self.steps_per_epoch, self.total_steps)
        self.eval_batch_size = int(training.get("eval_batch_size", 512))
        if self.out_dir is not None and self.writes:
            check_free_space(self.out_dir, model)
        self.context = TrainingContext(
            device=device, n_samples=n, steps_per_epoch=self.steps_per_epoch, total_steps=self.total_steps,
            max_epochs=self.max_epochs, seed=self.seed, parts=self.parts,
            iterate_dataset=lambda: iterate_images(self.images, self.eval_batch_size, device),
            map_dataset=lambda fn: map_images(fn, self.images, self.eval_batch_size, device, self.amp),
        )
        self.epoch = 0
        self.step_in_epoch = 0
        self.global_step = 0
        self.train_seconds = 0.0
        self.images_seen = 0
        self.history: list[dict] = []
        self._last_checkpoint = time.perf_counter()
        self.progress = Progress(
            enabled=verbose and self.writes, max_epochs=self.max_epochs, steps_per_epoch=self.steps_per_epoch,
            every_seconds=training.get("progress_every_seconds", ENGINE_TRAINING_DEFAULTS["progress_every_seconds"]),
            cpu_hint=cpu_hint if self.writes and device.type == "cpu" else None)

    # --- checkpoints ------------------------------------------------------------------------
    def state(self, rng_states: list[dict]) -> dict:
        """The checkpoint; ``rng_states`` holds every process's random state in rank order."""
        return {
            "format": CHECKPOINT_FORMAT, "version": __version__, **self.meta, "config": self.config,
            "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(), "epoch": self.epoch,
            "step_in_epoch": self.step_in_epoch, "global_step": self.global_step,
            "train_seconds": self.train_seconds, "images_seen": self.images_seen,
            "history": self.history, "rng": rng_states[0], "rng_per_rank": rng_states,
        }

    def save_checkpoint(self) -> None:
        """Write the checkpoint atomically (rank 0); every process must call it (random states are gathered)."""
        if self.checkpoint_path is not None:
            rng_states = distributed.gather_objects(capture_rng_state())
            with self.stop_request.deferring_interrupts():  # a second Ctrl-C waits for the whole file
                if self.writes:
                    save_atomic(self.state(rng_states), self.checkpoint_path)
                self._checkpointed = (self.epoch, self.global_step)
        self._last_checkpoint = time.perf_counter()

    def restore(self, state: dict) -> None:
        check_resumable(state, self.config, self.meta)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.epoch, self.step_in_epoch = state["epoch"], state["step_in_epoch"]
        self.global_step, self.train_seconds = state["global_step"], state["train_seconds"]
        self.images_seen, self.history = state["images_seen"], state["history"]
        per_rank = state.get("rng_per_rank") or [state["rng"]]
        if distributed.rank() < len(per_rank):
            restore_rng_state(per_rank[distributed.rank()])
        else:  # more processes than when the checkpoint was written
            self._seed_this_process()

    def _seed_this_process(self) -> None:
        """Under torch.distributed: give each process its own random stream (augmentations differ)."""
        if self.distributed:
            seed_everything(_derived_seed(self.seed, "process", distributed.rank()))

    def _step_generator(self) -> torch.Generator:
        """The generator of this step's shared randomness: the same on every process, seeded by the step."""
        return torch.Generator(device=self.device).manual_seed(_derived_seed(self.seed, "step", self.global_step))

    # --- evaluation -------------------------------------------------------------------------
    def predict(self) -> np.ndarray:
        """Labels of the training images; a k-means method re-clusters them first."""
        return predict_labels(self.model, self.images, self.eval_batch_size, self.device,
                              refit=True, amp=self.amp, seed=self.seed)

    def evaluate(self) -> dict:
        metrics = evaluate_clustering(self.labels, self.predict(), self.model.n_clusters)
        record = {"epoch": self.epoch, "step": self.global_step, **metrics}
        self.history.append(record)
        self.log.write("eval", **record)
        return record

    # --- the loop ---------------------------------------------------------------------------
    def _batch_count(self, n_images: int) -> int:
        """Batches of one pass over ``n_images``: a short last batch is dropped with drop_last, and
        under torch.distributed when some process would get no image of it."""
        full, rest = divmod(n_images, self.batch_size)
        return full + int(not self.drop_last and rest >= distributed.world_size())

    def _check_passes(self, passes: list[EpochPass], n: int) -> list[EpochPass]:
        if not passes or not all(isinstance(epoch_pass, EpochPass) for epoch_pass in passes):
            raise TypeError(f"{type(self.model).__name__}.epoch_passes must return a non-empty list of "
                            f"EpochPass, got {passes!r}")
        for epoch_pass in passes:
            indices, size = epoch_pass.indices, epoch_pass.size(n)
            if indices is not None and size and (indices.min() < 0 or indices.max() >= n):
                raise ValueError(f"epoch pass {epoch_pass.name!r} has indices outside the {n} images "
                                 f"({indices.min()}..{indices.max()})")
            if self._batch_count(size) == 0:
                what = "the dataset" if indices is None else f"epoch pass {epoch_pass.name!r}"
                why = "drop_last is on" if self.drop_last else f"there are {distributed.world_size()} processes"
                raise ValueError(f"batch_size {self.batch_size} is larger than {what} ({size} images) and "
                                 f"{why}, so no step would run; lower batch_size")
        return list(passes)

    def _epoch_batches(self, epoch: int) -> list[tuple[EpochPass, torch.Tensor]]:
        """The epoch's (pass, dataset indices) batches in order: every pass in turn, each in its own
        order drawn from one generator seeded by the epoch. A pass over every image takes the
        model's :meth:`~deepclust.engine.model.ClusteringModel.epoch_order`, a pass over a part a
        random permutation of its indices."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
        smallest = self.batch_size if self.drop_last else distributed.world_size()
        batches = []
        for epoch_pass in self.passes:
            if epoch_pass.indices is None:
                order = self.model.epoch_order(self.images.shape[0], generator)
            else:
                part = torch.from_numpy(epoch_pass.indices)
                order = part[torch.randperm(len(part), generator=generator)]
            pass_batches = list(order.split(self.batch_size))
            if pass_batches and pass_batches[-1].numel() < smallest:  # under torch.distributed: a share each
                pass_batches.pop()
            batches += [(epoch_pass, indices) for indices in pass_batches]
        return batches

    def _fetch(self, indices: torch.Tensor) -> torch.Tensor:
        """The images of dataset ``indices`` (on any device) as floats in [0, 1] on the training device."""
        if self.images.device == self.device:
            return to_float(self.images[indices.to(self.device)])
        batch = self.images[indices.cpu()]
        if self.device.type == "cuda":
            batch = batch.pin_memory()
        return to_float(batch.to(self.device, non_blocking=True))

    def _train_step(self, batch: Batch) -> dict[str, float]:
        """One update; the loss terms as floats, or {} for a non-finite step skipped by ``training.skip_nonfinite``."""
        try:
            outputs = train_batch(self.step_module, batch, self.optimizer, self.model.parameters(), amp=self.amp,
                                  grad_clip=self.training_config.get("grad_clip"),
                                  before_step=lambda: self.model.on_before_step(self.global_step, self.context))
        except NonFiniteLossError as error:
            if not self.training_config.get("skip_nonfinite", False):
                raise NonFiniteLossError(f"{error} (set training.skip_nonfinite=true to skip such steps)") from None
            self.log.write("skipped_step", epoch=batch.epoch, step=self.global_step, reason=str(error))
            return {}
        self.scheduler.step()
        self.model.on_after_step(self.global_step, self.context)
        return {name: float(value.detach()) for name, value in outputs.items()}

    def _images_per_second(self) -> float:
        return self.images_seen / max(self.train_seconds, 1e-9)

    def _start(self) -> None:
        """Clean the checkpoint folder, then resume from its checkpoint or start afresh."""
        if self.checkpoint_path is not None and self.writes:
            for path in remove_stale_temporaries(self.checkpoint_path.parent):
                self.log.write("removed_stale_temporary", path=str(path))
        state = None
        if self.resume and self.checkpoint_path is not None and self.writes and self.checkpoint_path.is_file():
            state = load_checkpoint(self.checkpoint_path, method=self.meta.get("method"))
        state = distributed.broadcast_object(state)  # rank 0 reads; no shared file system needed
        if state is not None:
            self.restore(state)
            self._checkpointed = (self.epoch, self.global_step)
            self.log.write("resume", epoch=self.epoch, step=self.global_step)
        else:
            self.model.on_fit_start(self.context)
            self._seed_this_process()
        self.log.write("start", epochs=self.max_epochs, steps_per_epoch=self.steps_per_epoch,
                       batch_size=self.batch_size, device=str(self.device), amp=self.amp)
        self.log.open(from_step=self.global_step)
        self._last_checkpoint = time.perf_counter()

    def fit(self) -> FitResult:
        """Train to the last epoch, the time budget or a signal, checkpoint, and predict the labels.

        A second Ctrl-C (or one after training) stops at once with :class:`RunInterrupted`, which
        names the epoch and step of the last checkpoint, the point a resume continues from.
        """
        compiled = compile_backbones(self.model, self.config["training"])
        try:
            self._start()
            stop_reason = self._budget_note() if self._budget_spent() else None  # a resume past its budget
            self.model.train()
            with self.stop_request as stop:
                while self.epoch < self.max_epochs and stop_reason is None:
                    stop_reason = self._run_epoch(stop)
                self.save_checkpoint()
            stop_reason = stop_reason or "completed"
            self.log.write("stop", reason=stop_reason, epoch=self.epoch, step=self.global_step,
                           train_seconds=round(self.train_seconds, 2))
            return FitResult(epochs_completed=self.epoch, global_step=self.global_step,
                             train_seconds=self.train_seconds, images_per_second=self._images_per_second(),
                             stop_reason=stop_reason, history=self.history, labels=self.predict(),
                             stop_signal=stop.signum if stop.reason is not None else None)
        except KeyboardInterrupt:
            self.log.write("interrupted", epoch=self.epoch, step=self.global_step)
            raise RunInterrupted(*(self._checkpointed or (None, None))) from None
        finally:
            release_compiled(compiled)
            self.log.close()

    def _run_epoch(self, stop: StopRequest) -> str | None:
        """Train the rest of the current epoch; returns why training must stop, None to go on."""
        if self.step_in_epoch == 0:
            self.model.on_epoch_start(self.epoch, self.context)
        batches = self._epoch_batches(self.epoch)
        self.progress.start_epoch(self.epoch, self.step_in_epoch, len(batches))
        stop_reason = None
        for epoch_pass, indices in batches[self.step_in_epoch:]:
            values = self._run_step(indices, epoch_pass)
            self.progress.step(epoch=self.epoch, global_step=self.global_step, values=values,
                               images_per_second=self._images_per_second(), train_seconds=self.train_seconds)
            stop_reason = self._end_step(values, stop)
            if stop_reason is not None:
                break
        self.progress.end_epoch()
        if self.step_in_epoch >= len(batches):
            self._end_epoch()
        return stop_reason

    def _run_step(self, indices: torch.Tensor, epoch_pass: EpochPass) -> dict[str, float]:
        """Train on the batch of dataset ``indices`` of ``epoch_pass`` (this process's share of it) and count it."""
        started = time.perf_counter()
        share = distributed.shard(indices)
        batch = Batch(images=self._fetch(share), indices=share.to(self.device), epoch=self.epoch,
                      step=self.global_step, generator=self._step_generator(), pass_name=epoch_pass.name,
                      terms=epoch_pass.terms, fetch=self._fetch)
        values = self._train_step(batch)
        synchronize(self.device)
        self.train_seconds += time.perf_counter() - started
        self.images_seen += indices.numel()
        self.global_step += 1
        self.step_in_epoch += 1
        return values

    def _end_step(self, values: dict[str, float], stop: StopRequest) -> str | None:
        """After a step: log it when due, agree on stopping, checkpoint when due; returns the stop reason."""
        if values and self.global_step % self.log_every == 0:
            self.log.write("step", epoch=self.epoch, step=self.global_step, lr=self.optimizer.param_groups[0]["lr"],
                           images_per_second=round(self._images_per_second(), 1), **values)
        signalled, over_budget, checkpoint_due = self._agree(
            stop.reason is not None,
            self._budget_spent(),
            time.perf_counter() - self._last_checkpoint >= self.checkpoint_seconds)
        if signalled:
            return f"stopped by {stop.reason or 'a signal to another process'}"
        if over_budget:
            return self._budget_note()
        if checkpoint_due:
            self.save_checkpoint()
        return None

    def _budget_spent(self) -> bool:
        return self.budget_seconds is not None and self.train_seconds >= self.budget_seconds

    def _budget_note(self) -> str:
        return f"time budget of {self.max_minutes} min reached"

    def _end_epoch(self) -> None:
        """After an epoch's last step: evaluate when due, then checkpoint."""
        self.epoch += 1
        self.step_in_epoch = 0
        if self.eval_every and self.epoch % self.eval_every == 0 and self.epoch < self.max_epochs:
            record = self.evaluate()
            if self.verbose and self.writes:
                tqdm.write(format_metrics(record, prefix=f"epoch {self.epoch}: "))
        self.save_checkpoint()

    def _agree(self, *conditions: bool) -> list[bool]:
        """Each condition, true on every process when it holds on any (stops and checkpoints stay in step)."""
        if not self.distributed:
            return list(conditions)
        flags = torch.tensor([float(c) for c in conditions], device=self.device)
        return [bool(flag) for flag in distributed.all_reduce_max_(flags)]


def _derived_seed(seed: int, purpose: str, number: int) -> int:
    """A well-mixed seed from the run's seed, a purpose and a number (the same in every process)."""
    purposes = {"process": 1, "step": 2}
    return int(np.random.SeedSequence([seed % 2**64, purposes[purpose], number]).generate_state(1)[0])
