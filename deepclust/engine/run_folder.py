"""What a training run keeps around it: the run folder's files, the JSONL log (and the loggers that
copy it), clean stops on signals, the disk-space check."""
from __future__ import annotations

import json
import shutil
import signal
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

#: What a run writes into its folder (``deepclust fit --overwrite`` deletes exactly these).
RUN_FILES = ("config.yaml", "data.json", "log.jsonl", "metrics.json", "model.pt", "checkpoints/last.pt",
             "steps.csv", "evals.csv")
#: Folders of a run's files: their temporaries and event files go with the run; emptied, they go too.
RUN_FOLDERS = {"checkpoints": ".*.tmp", "tensorboard": "events.out.tfevents.*"}
#: A folder holding any of these holds a run (``data.json`` alone is written before a benchmark's run).
RUN_MARKERS = ("config.yaml", "log.jsonl", "metrics.json", "model.pt", "checkpoints/last.pt")
CHECKPOINT = "checkpoints/last.pt"
#: Log events that belong to one training step; a resumed run logs those after its checkpoint again.
STEP_EVENTS = frozenset({"step", "eval", "skipped_step"})


class RunFolderError(ValueError):
    """A run folder cannot be used as asked (it holds a run, or holds none to resume)."""


def run_markers(folder: str | Path) -> list[str]:
    """The files in ``folder`` that show it holds a run (empty: it holds none)."""
    return [name for name in RUN_MARKERS if (Path(folder) / name).is_file()]


def clear_run(folder: str | Path) -> list[Path]:
    """Delete the files a run wrote into ``folder`` (nothing else there); return what was deleted."""
    folder = Path(folder)
    removed = [folder / name for name in RUN_FILES if (folder / name).is_file()]
    for sub, pattern in RUN_FOLDERS.items():
        if (folder / sub).is_dir():
            removed += sorted((folder / sub).glob(pattern))
    for path in removed:
        path.unlink()
    for sub in RUN_FOLDERS:
        if (folder / sub).is_dir() and not any((folder / sub).iterdir()):
            (folder / sub).rmdir()
    return removed


def claim_run_folder(folder: str | Path, *, resume: bool | None, overwrite: bool) -> None:
    """Check that a run may start in ``folder`` as asked, before anything is written there.

    A folder that already holds a run (:data:`RUN_MARKERS`) is refused unless the run is resumed
    (``resume``) or replaced (``overwrite``: its :data:`RUN_FILES` are deleted first). Resuming a
    folder that holds no run is an error; resuming one whose run stopped before its first
    checkpoint starts afresh and says so on stderr. ``resume=None``: the estimator cannot resume.
    """
    folder = Path(folder)
    if resume and overwrite:
        raise RunFolderError(f"--resume and --overwrite exclude each other: resume continues the run in {folder}, "
                             "overwrite deletes it")
    markers = run_markers(folder)
    if resume:
        if not markers:
            raise RunFolderError(f"nothing to resume in {folder}: it holds no run (no config.yaml or {CHECKPOINT}); "
                                 "drop --resume (resume=False) to start one there")
        if CHECKPOINT not in markers:
            print(f"resume: {folder} holds no {CHECKPOINT} (the run stopped before its first checkpoint); "
                  "training starts afresh", file=sys.stderr, flush=True)
        return
    if not markers:
        return
    if not overwrite:
        ways = "continue it with --resume (resume=True), or " if resume is not None else ""
        raise RunFolderError(f"run folder {folder} already holds a run ({', '.join(markers)}); {ways}start afresh "
                             "with --overwrite (overwrite=True), which first deletes the files the run wrote")
    clear_run(folder)


class RunLog:
    """Appends one JSON object per line to ``log.jsonl`` (nothing when there is no run folder) and
    hands every record to the ``loggers`` (:mod:`deepclust.engine.loggers`)."""

    def __init__(self, path: Path | None, loggers: list | tuple = ()):
        self.path = path
        self.loggers = list(loggers)

    def open(self, from_step: int) -> None:
        """Start the loggers for a run that continues after ``from_step`` (0: a fresh run)."""
        for logger in self.loggers:
            logger.open(from_step)

    def write(self, event: str, **fields) -> None:
        if self.path is None:
            return
        record = {"event": event, "time": round(time.time(), 3), **fields}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")
        for logger in self.loggers:
            logger.write(event, record)

    def close(self) -> None:
        for logger in self.loggers:
            logger.close()


def read_log(path: str | Path) -> tuple[list[dict], int]:
    """The events of a ``log.jsonl`` and the number of lines that could not be read.

    A run resumed after a hard kill logs again the steps between its last checkpoint and the kill:
    its ``resume`` event names the step it continues from, and the records of later steps logged
    before it are dropped (a ``start`` without ``resume``, a fresh start, drops every earlier step),
    so each step keeps its last record.
    """
    events: list[dict] = []
    bad_lines = 0
    previous = None
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except json.JSONDecodeError:
            bad_lines += 1
            continue
        kind = event.get("event")
        if kind == "resume" or (kind == "start" and previous != "resume"):
            from_step = event.get("step", 0) if kind == "resume" else 0
            events = [e for e in events if e.get("event") not in STEP_EVENTS or e.get("step", 0) <= from_step]
        events.append(event)
        previous = kind
    return events, bad_lines


class RunInterrupted(KeyboardInterrupt):
    """Training was interrupted at once (a second Ctrl-C); the run continues from its last checkpoint,
    at ``epoch`` / ``step`` (None: no checkpoint was written)."""

    def __init__(self, epoch: int | None, step: int | None):
        super().__init__(f"interrupted; last checkpoint at epoch {epoch}, step {step}")
        self.epoch, self.step = epoch, step


class StopRequest:
    """Turns SIGINT/SIGTERM into a request to stop after the current step (``reason`` names the
    signal, ``signum`` is its number). A second SIGINT stops at once (``KeyboardInterrupt``),
    except inside :meth:`deferring_interrupts`, which raises it when its block is done."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.signum: int | None = None
        self._previous: dict[int, Any] = {}
        self._deferring = False
        self._interrupt_pending = False

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.reason is not None and signum == signal.SIGINT:
            if self._deferring:
                self._interrupt_pending = True
                return
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.reason = signal.Signals(signum).name
        self.signum = int(signum)

    @contextmanager
    def deferring_interrupts(self):
        """A block a second Ctrl-C must not cut short (writing the checkpoint)."""
        self._deferring = True
        try:
            yield
        finally:
            self._deferring = False
        if self._interrupt_pending:
            self._interrupt_pending = False
            raise KeyboardInterrupt

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()
        return False


def check_free_space(folder: Path, model: torch.nn.Module) -> None:
    """Fail before training when ``folder`` cannot hold two checkpoints (the old one and the new one)."""
    state_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    needed = 2 * (3 * state_bytes + 2**20)  # weights + optimizer moments, twice during the atomic rename
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise OSError(f"not enough free disk space in {folder}: {free / 2**20:.1f} MiB free, "
                      f"checkpoints need about {needed / 2**20:.1f} MiB")
