"""When a checkpoint may be resumed: same clusters and input shape, and a configuration that
differs at most in the keys of :data:`RESUMABLE_CHANGES`.

A resume may change the number of epochs (extend a finished run, or shorten one) and the time
budget. Whatever depends on the total number of steps is then recomputed for the new total
from the step reached: a cosine learning-rate schedule continues from where the new, longer
(or shorter) cosine stands at that step, so the rate jumps back up when a finished run is
extended; an EMA momentum schedule likewise.
"""
from __future__ import annotations

from typing import Any

#: Configuration keys that may change between an interrupted run and its resumption.
RESUMABLE_CHANGES = frozenset({
    "training.epochs", "training.max_minutes", "training.eval_every", "training.eval_batch_size",
    "training.log_every", "training.checkpoint_every_minutes", "training.loggers",
    "training.progress_every_seconds",
})


def config_differences(old: Any, new: Any, prefix: str = "") -> list[tuple[str, Any, Any]]:
    """(dotted key, old value, new value) of every leaf where two nested configurations differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        differences = []
        for key in sorted(set(old) | set(new), key=str):
            where = f"{prefix}.{key}" if prefix else str(key)
            differences += config_differences(old.get(key), new.get(key), where)
        return differences
    return [] if old == new else [(prefix, old, new)]


def check_resumable(state: dict, config: dict, meta: dict) -> None:
    """Raise ``ValueError`` naming what differs when the checkpoint ``state`` cannot continue a run
    with ``config`` and ``meta`` (the run's ``n_clusters`` and ``input_shape``)."""
    for key in ("n_clusters", "input_shape"):
        if key in meta and state.get(key) != meta[key]:
            raise ValueError(f"cannot resume: the checkpoint has {key}={state.get(key)}, "
                             f"this run has {key}={meta[key]}")
    check_config_change(state["config"], config)


def check_config_change(old: dict, new: dict, source: str = "checkpoint") -> None:
    """Raise ``ValueError`` naming every key outside :data:`RESUMABLE_CHANGES` where the configuration
    ``new`` of a resumption differs from ``old``, the run's (from its ``source``)."""
    changed = [f"{key} ({source} {old_value!r}, now {new_value!r})"
               for key, old_value, new_value in config_differences(old, new) if key not in RESUMABLE_CHANGES]
    if changed:
        raise ValueError(f"cannot resume: the configuration differs from the {source}'s at " + "; ".join(changed))
