"""Atomic checkpoints: written to a temporary file in the same folder, synced, then renamed.

A reader therefore sees either the previous complete checkpoint or the new complete one, never a
half-written file, even if the process is killed with SIGKILL during the write.
"""
from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import torch

#: Bumped when the checkpoint layout changes incompatibly.
CHECKPOINT_FORMAT = 1


class CheckpointError(ValueError):
    """A checkpoint cannot be used (missing, corrupt, other method, other format)."""


def save_atomic(obj: Any, path: str | Path) -> None:
    """``torch.save`` ``obj`` to ``path`` atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(handle, "wb") as stream:
            torch.save(obj, stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        if os.path.exists(temporary):
            os.unlink(temporary)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Delete temporary files left by a writer that was killed mid-write; returns what was removed."""
    folder = Path(folder)
    stale = sorted(folder.glob(".*.tmp")) if folder.is_dir() else []
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def load_checkpoint(path: str | Path, *, method: str | None = None, map_location: Any = "cpu") -> dict:
    """Load a checkpoint written by :func:`save_atomic` and check it belongs to ``method``."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=False)
    except Exception as error:  # torch raises many types for corrupt files
        raise CheckpointError(f"checkpoint {path} is unreadable or truncated: {error}") from error
    if not isinstance(state, dict) or "format" not in state:
        raise CheckpointError(f"{path} is not a deepclust checkpoint")
    if state["format"] != CHECKPOINT_FORMAT:
        raise CheckpointError(
            f"checkpoint {path} has format {state['format']}, this deepclust reads format {CHECKPOINT_FORMAT}"
        )
    if method is not None and state.get("method") != method:
        raise CheckpointError(f"checkpoint {path} was written by method '{state.get('method')}', not '{method}'")
    return state
