"""Configuration: method presets (YAML files shipped in ``deepclust/presets``) and user overrides.

A method's preset file has two top-level keys::

    defaults:   # the complete configuration, every key the method understands
      ...
    presets:    # named partial configurations merged over ``defaults``
      cpu-fashion-mnist: {...}

Overrides may only name keys that exist in ``defaults``, so a typo is an error, not a silent no-op.
"""
from __future__ import annotations

import copy
import re
import sys
from pathlib import Path
from typing import Any, Iterable, Mapping

import yaml

from deepclust.backbones.weights import BACKBONE_SETTINGS

PRESET_DIR = Path(__file__).resolve().parent.parent / "presets"
#: Sections merged into every method's configuration (the self-labelling ``refine`` stage).
SHARED_SECTIONS_FILE = PRESET_DIR / "shared.yaml"

#: Sections whose keys are free-form (their contents are passed on as keyword arguments).
OPEN_SECTIONS = frozenset({"backbone", "augmentation"})
#: Keys of an open section that are not options of the named network or pipeline.
SECTION_SETTINGS = {"backbone": BACKBONE_SETTINGS, "augmentation": ("image_size", "normalize")}


class ConfigError(ValueError):
    """A configuration value or key is invalid."""


class YamlLoader(yaml.SafeLoader):
    """PyYAML's safe loader that also reads exponent floats without a dot (``1e-3``, ``5E+4``) as
    numbers, as Python and YAML 1.2 do; YAML 1.1 alone reads them as strings."""


YamlLoader.add_implicit_resolver("tag:yaml.org,2002:float",
                                 re.compile(r"^[-+]?[0-9][0-9_]*(?:\.[0-9_]*)?[eE][-+]?[0-9]+$"),
                                 list("-+0123456789"))


def load_yaml(stream) -> Any:
    """A YAML document (text or an open file) read with :class:`YamlLoader`."""
    return yaml.load(stream, Loader=YamlLoader)


def deep_merge(base: Mapping[str, Any], override: Mapping[str, Any], *, strict: bool = True, path: str = "") -> dict:
    """Return ``base`` updated recursively by ``override``.

    With ``strict`` (the default) a key of ``override`` missing from ``base`` raises :class:`ConfigError`
    (except inside the free-form sections ``backbone`` and ``augmentation``). An override that
    names another backbone or augmentation pipeline starts that section afresh: the options of
    the old one are dropped (they may not exist for the new one); the augmentation's
    ``image_size`` and ``normalize`` and the backbone's ``weights``, ``strict`` and ``freeze`` are kept.
    """
    merged = copy.deepcopy(dict(base))
    for key, value in override.items():
        where = f"{path}.{key}" if path else str(key)
        if strict and key not in merged and path.split(".")[0] not in OPEN_SECTIONS:
            valid = ", ".join(sorted(map(str, merged))) or "(none)"
            raise ConfigError(f"unknown configuration key '{where}'; valid keys here: {valid}")
        old = merged.get(key)
        if (not path and key in OPEN_SECTIONS and isinstance(value, Mapping) and isinstance(old, Mapping)
                and "name" in value and value["name"] != old.get("name")):
            merged[key] = {name: old[name] for name in SECTION_SETTINGS[key] if name in old}
        if isinstance(value, Mapping) and isinstance(merged.get(key), Mapping):
            merged[key] = deep_merge(merged[key], value, strict=strict, path=where)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _read_preset_file(method: str) -> dict:
    path = PRESET_DIR / f"{method}.yaml"
    if not path.is_file():
        raise ConfigError(f"no preset file for method '{method}' (expected {path})")
    with open(path, encoding="utf-8") as handle:
        content = load_yaml(handle) or {}
    if "defaults" not in content:
        raise ConfigError(f"preset file {path} has no 'defaults' section")
    return content


def list_presets(method: str) -> list[str]:
    """Names of the presets shipped for ``method``."""
    return sorted((_read_preset_file(method).get("presets") or {}).keys())


def shared_sections() -> dict:
    """The sections every method's configuration holds (``presets/shared.yaml``: ``refine``)."""
    with open(SHARED_SECTIONS_FILE, encoding="utf-8") as handle:
        return load_yaml(handle) or {}


def with_shared_sections(config: Mapping[str, Any]) -> dict:
    """``config`` with every shared section added under it: a section ``config`` lacks comes from
    ``presets/shared.yaml``; keys ``config`` sets in one win (and must exist there)."""
    merged = copy.deepcopy(dict(config))
    for name, section in shared_sections().items():
        merged[name] = deep_merge(section, config.get(name) or {}, path=name)
    return merged


def preset_config(method: str, preset: str | None = None) -> dict:
    """The full configuration of ``method`` with the named preset (or none) applied, including the
    shared sections (:func:`with_shared_sections`)."""
    content = _read_preset_file(method)
    config = with_shared_sections(content["defaults"])
    if preset is None:
        return config
    presets = content.get("presets") or {}
    if preset not in presets:
        valid = ", ".join(sorted(presets)) or "(none)"
        raise ConfigError(f"unknown preset '{preset}' for method '{method}'; valid presets: {valid}")
    return deep_merge(config, presets[preset])


def read_config_file(path: str | Path) -> dict:
    """Read a user's YAML (``.yaml``/``.yml``) or TOML (``.toml``) configuration file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"configuration file not found: {path}")
    try:
        if path.suffix == ".toml":
            if sys.version_info >= (3, 11):
                import tomllib
            else:  # pragma: no cover - Python 3.10
                import tomli as tomllib
            with open(path, "rb") as handle:
                content = tomllib.load(handle)
        else:
            with open(path, encoding="utf-8") as handle:
                content = load_yaml(handle)
    except (yaml.YAMLError, ValueError) as error:
        raise ConfigError(f"cannot parse configuration file {path}: {error}") from error
    if content is None:
        return {}
    if not isinstance(content, dict):
        raise ConfigError(f"configuration file {path} must hold a mapping, found {type(content).__name__}")
    return content


def parse_assignment(text: str) -> dict:
    """Turn ``"training.epochs=5"`` into ``{"training": {"epochs": 5}}`` (value parsed as YAML)."""
    if "=" not in text:
        raise ConfigError(f"expected KEY=VALUE (e.g. training.epochs=5), got '{text}'")
    dotted, raw = text.split("=", 1)
    value = load_yaml(raw)
    for key in reversed(dotted.strip().split(".")):
        value = {key: value}
    return value


def parse_assignments(assignments: Iterable[str]) -> dict:
    """Several ``KEY=VALUE`` assignments (:func:`parse_assignment`) as one mapping; a later one wins."""
    config: dict = {}
    for assignment in assignments:
        config = deep_merge(config, parse_assignment(assignment), strict=False)
    return config


def dump_config(config: Mapping[str, Any], path: str | Path) -> None:
    with open(path, "w", encoding="utf-8") as handle:
        yaml.safe_dump(dict(config), handle, sort_keys=False)


#: The section of a run's ``config.yaml`` that records the run (method, preset, n_clusters, seed,
#: dataset) rather than configures it.
RUN_RECORD = "run"


def split_run_record(config: Mapping[str, Any]) -> tuple[dict, dict]:
    """``(record, configuration)`` of a run's ``config.yaml`` (its :data:`RUN_RECORD` section, the rest),
    so the file can be given back as a configuration; a plain configuration has an empty record."""
    record = config.get(RUN_RECORD)
    if record is not None and not isinstance(record, Mapping):
        raise ConfigError(f"the '{RUN_RECORD}' section of a run's config.yaml must be a mapping, got {record!r}")
    return dict(record or {}), {key: value for key, value in config.items() if key != RUN_RECORD}
