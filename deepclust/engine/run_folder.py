"""What a training run keeps around it: the JSONL log, clean stops on signals, the disk-space check."""
from __future__ import annotations

import json
import shutil
import signal
import threading
import time
from pathlib import Path
from typing import Any

import torch


class RunLog:
    """Appends one JSON object per line to ``log.jsonl`` (nothing when there is no run folder)."""

    def __init__(self, path: Path | None):
        self.path = path

    def write(self, event: str, **fields) -> None:
        if self.path is None:
            return
        record = {"event": event, "time": round(time.time(), 3), **fields}
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(json.dumps(record) + "\n")


class StopRequest:
    """Turns SIGINT/SIGTERM into a request to stop after the current step (``reason`` names the signal)."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self._previous: dict[int, Any] = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in (signal.SIGINT, signal.SIGTERM):
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.reason is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C stops at once
        self.reason = signal.Signals(signum).name

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        return False


def check_free_space(folder: Path, model: torch.nn.Module) -> None:
    """Fail before training when ``folder`` cannot hold two checkpoints (the old one and the new one)."""
    state_bytes = sum(t.numel() * t.element_size() for t in [*model.parameters(), *model.buffers()])
    needed = 2 * (3 * state_bytes + 2**20)  # weights + optimizer moments, twice during the atomic rename
    free = shutil.disk_usage(folder).free
    if free < needed:
        raise OSError(f"not enough free disk space in {folder}: {free / 2**20:.1f} MiB free, "
                      f"checkpoints need about {needed / 2**20:.1f} MiB")
