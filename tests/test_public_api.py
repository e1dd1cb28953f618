"""Every package's ``__all__`` is sorted and complete, and the front door exports what users need."""

from __future__ import annotations

import importlib
import pkgutil

import pytest

import spindle


def _isort_key(name: str) -> tuple[int, str]:
    """ruff's RUF022 order: SCREAMING_CASE, then CamelCase, then the rest."""
    if name.isupper() and len(name) > 1:
        return (0, name)
    return (1, name) if name[:1].isupper() else (2, name)


PACKAGES = [
    "spindle",
    *(
        f"spindle.{m.name}"
        for m in pkgutil.iter_modules(spindle.__path__)
        if m.ispkg and m.name != "examples"
    ),
]


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_sorted_and_resolves(name: str) -> None:
    module = importlib.import_module(name)
    exported = list(module.__all__)
    assert exported == sorted(exported, key=_isort_key), (
        f"{name}.__all__ is not sorted (ruff RUF022 fixes it)"
    )
    assert len(set(exported)) == len(exported)
    for item in exported:
        assert hasattr(module, item), f"{name}.__all__ names {item}, which is missing"


@pytest.mark.parametrize("name", PACKAGES)
def test_all_is_complete(name: str) -> None:
    module = importlib.import_module(name)
    public = {
        key
        for key, value in vars(module).items()
        if not key.startswith("_")
        and not isinstance(value, type(importlib))
        and key not in {"annotations"}
    }
    missing = public - set(module.__all__)
    assert not missing, f"{name} defines public names not in __all__: {sorted(missing)}"


def test_errors_share_one_root() -> None:
    for name in (
        "ConfigError",
        "DataError",
        "SchemaError",
        "FeatureError",
        "TrainingError",
        "GateBlocked",
        "RegistryError",
        "NotFound",
        "ServingError",
        "WorkspaceError",
        "ValidationFailed",
    ):
        assert issubclass(getattr(spindle, name), spindle.SpindleError)


def test_no_public_name_shadows_a_subpackage() -> None:
    subpackages = {name.rpartition(".")[2] for name in PACKAGES if name != "spindle"}
    assert not subpackages & set(spindle.__all__)
