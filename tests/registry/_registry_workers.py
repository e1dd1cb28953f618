"""Process entry points for the registry concurrency tests (importable by 'spawn' children)."""

from __future__ import annotations

from typing import Any

from spindle.registry import MetadataStore


def reserve_versions(url: str, model: str, count: int, barrier: Any, results: Any) -> None:
    """Open the store, wait for every sibling, then reserve ``count`` versions at full speed."""
    try:
        with MetadataStore(url) as store:
            barrier.wait(timeout=60)
            results.put(("ok", [store.reserve_version(model) for _ in range(count)]))
    except Exception as exc:  # report to the parent instead of dying silently
        results.put(("error", f"{type(exc).__name__}: {exc}"))
