"""The front door of spindle.registry: explicit, sorted and complete."""

from __future__ import annotations

import spindle.registry


def test_all_is_sorted_and_complete() -> None:
    # eager names are in vars(); lazily resolved ones (PEP 562) are in _LAZY until first use
    lazy = set(getattr(spindle.registry, "_LAZY", {}))
    public = {
        name
        for name in vars(spindle.registry)
        if not name.startswith("_") and name != "annotations"
    } | lazy
    assert spindle.registry.__all__ == sorted(spindle.registry.__all__)
    assert set(spindle.registry.__all__) == public
    for name in spindle.registry.__all__:
        assert getattr(spindle.registry, name) is not None
