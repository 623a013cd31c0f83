"""Method registry: ``@register_method("name")`` on an estimator class makes it available by name."""
from __future__ import annotations

_METHODS: dict[str, type] = {}


def register_method(name: str):
    def decorate(cls: type) -> type:
        if name in _METHODS and _METHODS[name] is not cls:
            raise ValueError(f"method name '{name}' is registered twice ({_METHODS[name].__name__}, {cls.__name__})")
        cls.method_name = name
        _METHODS[name] = cls
        return cls
    return decorate


def registered() -> dict[str, type]:
    return dict(_METHODS)
