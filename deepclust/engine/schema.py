"""The types of configuration values, checked with pydantic before anything is built.

Every key takes the type of its value in the method's ``defaults`` (a bool stays a bool, an int
an int, a float takes ints too, a list the type of its items; a key whose default is null takes
any value, and a key with a default may also be set to null, the presets' "off / automatic").
The engine's own keys are declared with their bounds in :data:`ENGINE_KEYS` instead. The
free-form sections (``backbone``, ``augmentation``) are checked by their builders, except the
settings declared here. A bad value raises :class:`~deepclust.engine.config.ConfigError` naming
every bad key, its value and what it must be.
"""
from __future__ import annotations

import copy
from contextlib import contextmanager
from functools import lru_cache
from typing import Annotated, Any, Literal, Mapping, Optional

from pydantic import Field, TypeAdapter, ValidationError

from deepclust.engine.config import OPEN_SECTIONS, ConfigError
from deepclust.engine.loggers import LOGGERS

AtLeastOne = Annotated[int, Field(ge=1)]
NotNegative = Annotated[float, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]

#: Keys of the engine (trainer, optimizer, schedule, the sections' settings) and their types.
ENGINE_KEYS: dict[str, Any] = {
    "training.epochs": AtLeastOne,
    "training.batch_size": AtLeastOne,
    "training.drop_last": bool,
    "training.eval_every": Annotated[int, Field(ge=0)],
    "training.eval_batch_size": AtLeastOne,
    "training.log_every": AtLeastOne,
    "training.checkpoint_every_minutes": NotNegative,
    "training.amp": bool,
    "training.channels_last": bool,
    "training.compile": bool,
    "training.grad_clip": Optional[NotNegative],
    "training.skip_nonfinite": bool,
    "training.max_minutes": Optional[Positive],
    "training.loggers": list[Literal[LOGGERS]],
    "training.progress_every_seconds": Positive,
    "optimizer.name": str,
    "optimizer.lr": Positive,
    "optimizer.weight_decay": NotNegative,
    "schedule.name": str,
    "schedule.warmup_epochs": NotNegative,
    "backbone.name": str,
    "augmentation.name": str,
    "augmentation.image_size": Optional[AtLeastOne],
    "augmentation.normalize": bool,
}

#: Training keys the engine adds to every method's configuration, with their defaults.
ENGINE_TRAINING_DEFAULTS = {"loggers": ["jsonl"], "progress_every_seconds": 60.0}


def with_engine_defaults(config: Mapping[str, Any]) -> dict:
    """``config`` with the :data:`ENGINE_TRAINING_DEFAULTS` it lacks added to its ``training`` section."""
    merged = copy.deepcopy(dict(config))
    merged["training"] = {**copy.deepcopy(ENGINE_TRAINING_DEFAULTS), **merged.get("training", {})}
    return merged


def _scalar_type(value: Any) -> Any:
    for kind in (bool, int, float, str):  # bool first: True is an int too
        if isinstance(value, kind):
            return kind
    return Any


def _type_of_default(default: Any) -> Any:
    """The type a key takes from its default value."""
    if default is None:
        return Any
    if isinstance(default, list):
        kinds = {_scalar_type(item) for item in default}
        item = kinds.pop() if len(kinds) == 1 else Any
        return Optional[list[item]]
    return Optional[_scalar_type(default)]


@lru_cache(maxsize=None)
def _adapter(kind: Any) -> TypeAdapter:
    return TypeAdapter(kind)


def _problems(config: Mapping[str, Any], reference: Mapping[str, Any], prefix: str = "") -> list[str]:
    problems = []
    for key, value in config.items():
        where = f"{prefix}{key}"
        if where in ENGINE_KEYS:
            kind = ENGINE_KEYS[where]
        elif where.split(".")[0] in OPEN_SECTIONS:  # the backbone / augmentation builder checks its options
            if isinstance(value, Mapping):
                problems += _problems(value, {}, f"{where}.")
            elif where in OPEN_SECTIONS:
                problems.append(f"{where}: must be a section (a mapping of keys), got {value!r}")
            continue
        elif key not in reference:
            problems.append(f"{where}: unknown key; valid keys here: {', '.join(sorted(map(str, reference)))}")
            continue
        elif isinstance(reference[key], Mapping):
            if isinstance(value, Mapping):
                problems += _problems(value, reference[key], f"{where}.")
            else:
                problems.append(f"{where}: must be a section (a mapping of keys), got {value!r}")
            continue
        else:
            kind = _type_of_default(reference[key])
        try:
            _adapter(kind).validate_python(list(value) if isinstance(value, tuple) else value, strict=True)
        except ValidationError as error:
            for detail in error.errors():
                at = "".join(f"[{part}]" for part in detail["loc"])
                message = detail["msg"][0].lower() + detail["msg"][1:]
                problems.append(f"{where}{at}: {message}, got {value!r}")
    return problems


def validate_config(config: Mapping[str, Any], reference: Mapping[str, Any]) -> None:
    """Raise :class:`ConfigError` naming every key of ``config`` whose value does not have the type
    of the same key in ``reference`` (the method's defaults) or of :data:`ENGINE_KEYS`."""
    problems = _problems(config, reference)
    if problems:
        raise ConfigError("invalid configuration: " + "; ".join(problems))


@contextmanager
def section_errors(section: str):
    """Name the configuration section in a builder's ``ValueError`` (``backbone: small_cnn: width ...``,
    so the key reads ``backbone.width``)."""
    try:
        yield
    except ConfigError:
        raise
    except ValueError as error:
        raise ConfigError(f"{section}: {error}") from error
