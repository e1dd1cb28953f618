"""Redaction of values a deletion request forgets from what the store recorded as text.

A validation report's anomaly may quote a value (a burst's key, a repeated primary key) and a
failed run's error may quote a row; a deletion request must leave no copy of its ids, so every
string of the JSON records (artifact properties, run params) and every error text holding one
is rewritten with the value replaced. On SQLite the rewrite zeroes the freed pages
(``secure_delete``) and the WAL is truncated and the file vacuumed, so no old page keeps them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from spindle.registry._schema import ArtifactRow, ModelVersionRow, RunRow


@functools.lru_cache(maxsize=8)
def _pattern(values: tuple[str, ...]) -> re.Pattern[str]:
    """The values as whole tokens: an id never matches inside a longer name or a date."""
    alternatives = "|".join(re.escape(v) for v in sorted(values, key=len, reverse=True))
    return re.compile(rf"(?<![A-Za-z0-9_.-])(?:{alternatives})(?![A-Za-z0-9_-])")


def _scrubbed(value: Any, values: Sequence[str], replacement: str) -> Any:
    if isinstance(value, str):
        return _pattern(tuple(values)).sub(replacement, value)
    if isinstance(value, list):
        return [_scrubbed(v, values, replacement) for v in value]
    if isinstance(value, dict):
        return {
            _scrubbed(k, values, replacement): _scrubbed(v, values, replacement)
            for k, v in value.items()
        }
    return value


def _holds(value: Any, values: Sequence[str]) -> bool:
    return bool(_scrubbed(value, values, "\x00") != value)


def redact_rows(session: Session, values: Sequence[str], replacement: str) -> dict[str, int]:
    """Replace ``values`` in artifact properties, run params and errors and model-version
    errors; returns how many records of each changed."""
    counts = {"artifacts": 0, "runs": 0, "model_versions": 0}
    if not values:
        return counts
    for artifact in session.scalars(select(ArtifactRow)):
        if _holds(artifact.properties, values):
            artifact.properties = _scrubbed(dict(artifact.properties), values, replacement)
            counts["artifacts"] += 1
    for run in session.scalars(select(RunRow)):
        if _holds(run.params, values) or _holds(run.error, values):
            run.params = _scrubbed(dict(run.params), values, replacement)
            run.error = _scrubbed(run.error, values, replacement)
            counts["runs"] += 1
    for version in session.scalars(select(ModelVersionRow)):
        if _holds(version.error, values):
            version.error = _scrubbed(version.error, values, replacement)
            counts["model_versions"] += 1
    return counts


def secure_delete_on(conn: Connection) -> None:
    """Make SQLite overwrite the pages the redaction frees (a no-op on another database)."""
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql("PRAGMA secure_delete = ON")


def compact(raw: Any) -> None:
    """Truncate SQLite's WAL and rebuild the file, so no old page keeps a redacted value.

    Args:
        raw: the driver's ``sqlite3`` connection (in autocommit: VACUUM runs outside any
            transaction).
    """
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    raw.execute("VACUUM")
    raw.execute("PRAGMA wal_checkpoint(TRUNCATE)")
