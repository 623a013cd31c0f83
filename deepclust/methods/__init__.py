"""Clustering methods, each a scikit-learn style estimator registered by name.

Every module in this package is imported on first use, so a new method only needs its own file
with ``@register_method("name")``. Classes are reachable as attributes: ``deepclust.methods.HTCN``.
"""
from __future__ import annotations

import importlib
import pkgutil

from deepclust.methods.base import DeepClusterer
from deepclust.methods.registry import register_method, registered

_INFRASTRUCTURE = {"base", "registry"}


def _import_all() -> None:
    for module in pkgutil.iter_modules(__path__):
        if module.name not in _INFRASTRUCTURE and not module.name.startswith("_"):
            importlib.import_module(f"{__name__}.{module.name}")


_import_all()


def list_methods() -> list[str]:
    return sorted(registered())


def get_method(name: str) -> type:
    methods = registered()
    if name not in methods:
        raise ValueError(f"unknown method '{name}'; valid methods: {', '.join(sorted(methods))}")
    return methods[name]


def load_estimator(path, device: str = "auto"):
    """Load any saved estimator (``model.pt`` of a run) whatever its method."""
    from deepclust.engine.checkpoint import load_checkpoint

    state = load_checkpoint(path)
    return get_method(state["method"]).load(path, device=device)


def __getattr__(name: str):
    for cls in registered().values():
        if cls.__name__ == name:
            return cls
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["DeepClusterer", "get_method", "list_methods", "load_estimator", "register_method"]
