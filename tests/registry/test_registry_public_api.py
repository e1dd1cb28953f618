"""The front door of spindle.registry: explicit, sorted and complete."""

from __future__ import annotations

import spindle.registry


def test_all_is_sorted_and_complete() -> None:
    public = {
        name
        for name in vars(spindle.registry)
        if not name.startswith("_") and name != "annotations"
    }
    assert spindle.registry.__all__ == sorted(spindle.registry.__all__)
    assert set(spindle.registry.__all__) == public
