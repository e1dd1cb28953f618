"""Property values as the registry stores them (plain JSON) and compares them when searching."""

from __future__ import annotations

import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any


def json_safe(value: Any) -> Any:
    """Return ``value`` as plain JSON: numpy scalars unwrapped, NaN/inf as strings, others str().

    Non-finite floats are not valid JSON (PostgreSQL rejects them and SQLite's JSON functions
    fail on them), so ``nan``, ``inf`` and ``-inf`` are stored as those strings.
    """
    if value is None or isinstance(value, bool | str):
        return value
    if isinstance(value, int):
        return int(value)
    if isinstance(value, float):
        return float(value) if math.isfinite(value) else str(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, set | frozenset):
        return [json_safe(v) for v in sorted(value, key=str)]
    if isinstance(value, datetime):
        return value.isoformat()
    tolist = getattr(value, "tolist", None)  # numpy scalars and arrays
    if callable(tolist):
        return json_safe(tolist())
    return str(value)


def same_value(found: Any, wanted: Any) -> bool:
    """Whether a stored property equals a searched one; a bool equals only a bool (not 1 or 0)."""
    if isinstance(found, bool) or isinstance(wanted, bool):
        return isinstance(found, bool) and isinstance(wanted, bool) and found == wanted
    return bool(found == wanted)
