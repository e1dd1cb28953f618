"""Computation fingerprints: a materialised feature version keeps the computation it began with.

The first time a version is written to a feature table, its fingerprint (its view's SQL, keys
and kept columns, its SQL expression or the hash of its Python file, and its dtype) is recorded in ``<tables>/features/_fingerprints.json``. Before
any later write, ingest and backfill compare: a version whose computation changed is refused,
because models pinning ``name@version`` must keep getting the values that name means. The
fix is a new version. The file is replaced atomically under a lock, so concurrent ingests of
different days cannot lose each other's records.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from spindle.core import FeatureError, Location
from spindle.features._definitions import FeatureDefinition

FINGERPRINTS_FILE = "_fingerprints.json"


def fingerprints_path(tables_dir: Location | Path) -> Location:
    """Where the recorded fingerprints of materialised feature versions live."""
    return Location.of(tables_dir) / "features" / FINGERPRINTS_FILE


def recorded_fingerprints(tables_dir: Location | Path) -> dict[str, dict[str, Any]]:
    """``{ref: {"fingerprint", "computation", "recorded_at"}}`` of every materialised version."""
    path = fingerprints_path(tables_dir)
    if not path.exists():
        return {}
    try:
        recorded: dict[str, dict[str, Any]] = json.loads(path.read_bytes())
    except json.JSONDecodeError as exc:
        raise FeatureError(f"{path} is not valid JSON ({exc}); restore it from a backup") from exc
    return recorded


def check_fingerprints(
    tables_dir: Location | Path, definitions: Iterable[FeatureDefinition]
) -> None:
    """Refuse definitions whose computation changed since they were first materialised.

    Raises:
        FeatureError: one line per changed version: what was recorded, what it is now, and
            the fix (a new version).
    """
    recorded = recorded_fingerprints(tables_dir)
    problems = []
    for d in definitions:
        before = recorded.get(d.ref)
        if before is None or before["fingerprint"] == d.fingerprint:
            continue
        problems.append(
            f"feature {d.ref}: its computation changed since it was first materialised "
            f"(recorded {before['recorded_at']}: {before['computation']}; now: "
            f"{d.computation_text}); give the changed computation a new version "
            f"({d.name}@{_next_version(recorded, d)}) so models pinning {d.name}@{d.version} "
            "keep their values"
        )
    if problems:
        raise FeatureError("\n".join(problems))


def _next_version(recorded: dict[str, dict[str, Any]], d: FeatureDefinition) -> int:
    prefix = f"{d.group}.{d.name}@"
    versions = [int(ref.removeprefix(prefix)) for ref in recorded if ref.startswith(prefix)]
    return max([d.version, *versions]) + 1


def record_fingerprints(
    tables_dir: Location | Path, definitions: Iterable[FeatureDefinition]
) -> None:
    """Record the fingerprint of every version not recorded yet (first materialisation).

    Raises:
        FeatureError: a version is already recorded with a different fingerprint.
    """
    chosen = [d for d in definitions if d.computation != "request"]
    with _locked(fingerprints_path(tables_dir)):
        check_fingerprints(tables_dir, chosen)
        recorded = recorded_fingerprints(tables_dir)
        new = {
            d.ref: {
                "fingerprint": d.fingerprint,
                "computation": d.computation_text,
                "recorded_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            }
            for d in chosen
            if d.ref not in recorded
        }
        if new:
            # one whole-file write: a local temp file renamed, or one object put
            fingerprints_path(tables_dir).write_bytes(_json_bytes(recorded | new))


def _locked(path: Location) -> AbstractContextManager[None]:
    return path.parent.lock(path.name)


def _json_bytes(value: dict[str, dict[str, Any]]) -> bytes:
    """The text ``atomic_write_json`` writes (indented, sorted keys, a final newline)."""
    return (json.dumps(value, indent=2, sort_keys=True, default=str) + "\n").encode()
