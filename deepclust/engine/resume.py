"""When a checkpoint may be resumed: same clusters and input shape, and a configuration that
differs at most in the keys of :data:`RESUMABLE_CHANGES`."""
from __future__ import annotations

from typing import Any

#: Configuration keys that may change between an interrupted run and its resumption.
RESUMABLE_CHANGES = frozenset({
    "training.max_minutes", "training.eval_every", "training.eval_batch_size", "training.log_every",
    "training.checkpoint_every_minutes",
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
    changed = [f"{key} (checkpoint {old!r}, now {new!r})"
               for key, old, new in config_differences(state["config"], config)
               if key not in RESUMABLE_CHANGES]
    if changed:
        raise ValueError("cannot resume: the configuration differs from the checkpoint's at "
                         + "; ".join(changed))
