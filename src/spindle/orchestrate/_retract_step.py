"""Record a retraction once (fraud found later, a deletion request) and list the recorded ones.

A retraction names rows of a declared source by the values of one column (its primary key by
default) and is recorded once in the metadata store, as an artifact of kind ``retraction``
(``retraction-N``: source, column, reason, who, ids, rows matched), its keys kept under
``<state>/retractions/<id>.parquet`` — salted sha256 digests for a *deletion* request, the
ids themselves otherwise (see ``spindle.data._retract``). From then on every training set,
feature view and ingest leaves those rows out (:func:`retracted_keys` is what they are given).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spindle.core import DataError, sha256_json
from spindle.data import (
    RETRACTION_KIND,
    RetractedKeys,
    Retraction,
    count_matching,
    key_column,
    read_ids,
    read_keys,
    retractions_dir,
    stored_keys,
    workspace_salt,
    write_keys,
)
from spindle.orchestrate._context import Context, ReadContext
from spindle.registry import ArtifactRecord

_REASON = re.compile(r"^[a-z][a-z0-9_-]{0,63}$")
HASHED_REASON = "deletion"


@dataclass(frozen=True)
class RetractionInfo:
    """A recorded retraction, as plain data (what ``spindle retract list`` and the UI show).

    Attributes:
        id: ``retraction-N``.
        at: when it was recorded (ISO 8601, UTC).
        ids: how many distinct ids it names.
        rows_matched: rows of the source's table they matched when it was recorded.
        hashed: only salted digests of the ids are kept (a deletion request).
        keys_uri: the file of its stored keys.
        days: the day partitions its rows were in when it was recorded.
    """

    id: str
    source: str
    column: str
    reason: str
    who: str
    at: str
    ids: int
    rows_matched: int
    hashed: bool
    keys_uri: str
    days: tuple[str, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "days": list(self.days)}


@dataclass(frozen=True)
class RetractOutcome:
    """What ``spindle retract`` did: the retraction, whether it was recorded now (False: the
    same one was recorded before, nothing changed), and the plain ids read from the file (for
    physical removal; never stored for a deletion)."""

    retraction: RetractionInfo
    recorded: bool
    ids: tuple[str, ...]


def _info(record: ArtifactRecord) -> RetractionInfo:
    p = record.properties
    return RetractionInfo(
        id=record.id,
        source=str(p["source"]),
        column=str(p["column"]),
        reason=str(p["reason"]),
        who=str(p.get("who", "")),
        at=record.created_at.isoformat(),
        ids=int(p.get("ids", 0)),
        rows_matched=int(p.get("rows_matched", 0)),
        hashed=bool(p.get("hashed", False)),
        keys_uri=record.uri,
        days=tuple(str(d) for d in p.get("days") or ()),
    )


def _number(retraction_id: str) -> int:
    tail = retraction_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def retractions(ctx: Context | ReadContext) -> list[RetractionInfo]:
    """Every recorded retraction, oldest first.

    Example:
        >>> [r.id for r in retractions(ctx)]  # doctest: +SKIP
        ['retraction-1', 'retraction-2']
    """
    records = ctx.store.find_artifacts(RETRACTION_KIND)
    return [_info(r) for r in sorted(records, key=lambda r: _number(r.id))]


def get_retraction(ctx: Context | ReadContext, retraction_id: str) -> RetractionInfo:
    """The recorded retraction ``retraction_id``.

    Raises:
        DataError: no such retraction (lists the recorded ones).
    """
    found = {r.id: r for r in retractions(ctx)}
    if retraction_id not in found:
        known = ", ".join(found) or "none yet"
        raise DataError(
            f"no retraction {retraction_id!r} is recorded (recorded: {known}); "
            "see `spindle retract list`"
        )
    return found[retraction_id]


def keys_of(ctx: Context | ReadContext, info: RetractionInfo) -> RetractedKeys:
    """The keys of a recorded retraction, as the filters take them."""
    salt = workspace_salt(ctx.workspace.state_dir) if info.hashed else None
    return RetractedKeys(info.id, info.column, read_keys(Path(info.keys_uri)), salt)


def retracted_keys(ctx: Context | ReadContext) -> dict[str, list[RetractedKeys]]:
    """Every recorded retraction's keys, by source: what training sets, feature views and
    ingest leave out (empty when none is recorded, without reading any file)."""
    out: dict[str, list[RetractedKeys]] = {}
    for info in retractions(ctx):
        out.setdefault(info.source, []).append(keys_of(ctx, info))
    return out


def _check_reason(reason: str) -> None:
    if not _REASON.match(reason):
        raise DataError(
            f"--reason {reason!r} is not one lowercase word (fraud, deletion, or your own "
            "like chargeback); pass e.g. --reason fraud"
        )


def record_retraction(
    ctx: Context,
    file: str | Path,
    reason: str,
    source: str,
    column: str | None = None,
    *,
    actor: str = "spindle retract",
) -> RetractOutcome:
    """Record once that the rows of ``source`` whose ``column`` holds an id of ``file`` are
    retracted; idempotent (the same ids, source, column and reason return the first record).

    Which versions' training sets read the rows is recorded with it (``retraction-N:impact``),
    while the table versions they read still exist. A deletion's rows are not removed here:
    ``spindle.forget_rows`` does that (``spindle retract`` calls it).

    Args:
        file: one id per line, or a CSV/Parquet file with a column named ``column``.
        reason: ``fraud``, ``deletion`` (only salted digests are kept) or another word.
        column: the source's column the ids are values of; its primary key when None.
        actor: who records it (the command, as pushes and rollbacks record theirs).

    Returns:
        The retraction, whether it was recorded now, and the ids read.

    Raises:
        DataError: the reason is not a word, the source is not declared, the column is not
            declared (or not text/integer, or no one-column primary key), the file is missing
            or empty, or an id does not parse as the column's type. Nothing is recorded.

    Example:
        >>> record_retraction(ctx, "fraud.txt", "fraud", "orders").retraction.id  # doctest: +SKIP
        'retraction-1'
    """
    _check_reason(reason)
    decl = ctx.sources.get(source)
    if decl is None:
        raise DataError(
            f"source {source!r} is not declared under sources/ (declared: "
            f"{', '.join(sorted(ctx.sources)) or 'none'}); pass --source with one of them"
        )
    column, kind = key_column(decl, column, f"sources/{source}.yaml")
    ids = read_ids(Path(file), column, kind)
    salt = workspace_salt(ctx.workspace.state_dir) if reason == HASHED_REASON else None
    keys = stored_keys(ids, salt)
    content_hash = sha256_json({"source": source, "column": column, "reason": reason, "keys": keys})
    for record in ctx.store.find_artifacts(RETRACTION_KIND, source=source, column=column):
        if record.content_hash == content_hash:
            _snapshot_impact(ctx, record.id)  # when a crash came between the two records
            return RetractOutcome(_info(record), False, tuple(ids))
    number = 1 + max((_number(r.id) for r in ctx.store.find_artifacts(RETRACTION_KIND)), default=0)
    retraction_id = f"retraction-{number}"
    path = retractions_dir(ctx.workspace.state_dir) / f"{retraction_id}.parquet"
    write_keys(path, keys)
    by_day = count_matching(
        ctx.workspace.tables_dir, source, RetractedKeys(retraction_id, column, tuple(keys), salt)
    )
    matched = sum(by_day.values())
    artifact = Retraction(
        retraction_id,
        str(path),
        content_hash,
        source,
        column,
        reason,
        actor,
        len(ids),
        matched,
        salt is not None,
        {"days": sorted(d for d in by_day if d)},  # the days its rows belong to
    )
    record = ctx.store.record_artifact(artifact)
    _snapshot_impact(ctx, record.id)
    return RetractOutcome(_info(record), True, tuple(ids))


def _snapshot_impact(ctx: Context, retraction_id: str) -> None:
    """Record which versions saw the rows while the table versions they read still exist."""
    # imported here: the impact module builds on this one (and on the train/evaluate steps)
    from spindle.orchestrate._retract_impact import record_impact_snapshot

    record_impact_snapshot(ctx, retraction_id)
