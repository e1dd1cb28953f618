"""The front door of ``spindle.evaluate``: a sorted, complete ``__all__``, documented."""

from __future__ import annotations

import importlib
import types

# ``spindle.evaluate`` as an attribute is the orchestrate step re-exported by ``spindle``;
# the package itself is reached through the import system.
package = importlib.import_module("spindle.evaluate")


def _isort_order(name: str) -> tuple[int, str]:
    """Ruff's ``__all__`` order (RUF022): CONSTANTS, then Classes, then functions."""
    kind = 0 if name.isupper() else 1 if name[0].isupper() else 2
    return kind, name


def test_all_is_sorted_and_complete() -> None:
    # eager names are in vars(); lazily resolved ones (PEP 562) are in _LAZY until first use
    public = {
        name
        for name, value in vars(package).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    } | set(getattr(package, "_LAZY", {}))
    assert package.__all__ == sorted(package.__all__, key=_isort_order)
    assert set(package.__all__) == public
    for name in package.__all__:
        assert getattr(package, name) is not None


def test_every_public_function_has_a_docstring() -> None:
    for name in package.__all__:
        value = getattr(package, name)
        if callable(value):
            assert value.__doc__, name
