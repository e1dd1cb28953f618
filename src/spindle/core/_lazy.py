"""Lazy public names for a package ``__init__`` (PEP 562): a light command pays for a heavy
module (torch, onnxruntime, deltalake) only when it touches a name defined there."""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any


def lazy_names(
    package: str, names: dict[str, str], namespace: dict[str, Any]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """The ``__getattr__`` and ``__dir__`` of a package whose public names load on first use.

    Args:
        package: the package's ``__name__``.
        names: public name -> the module that defines it.
        namespace: the package's ``globals()``: a loaded name is cached there, and ``__dir__``
            lists its ``__all__``.

    Example:
        >>> __getattr__, __dir__ = lazy_names(__name__, _LAZY, globals())  # doctest: +SKIP
    """

    def __getattr__(name: str) -> Any:
        module = names.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(import_module(module), name)
        namespace[name] = value
        return value

    def __dir__() -> list[str]:
        return sorted(namespace["__all__"])

    return __getattr__, __dir__
