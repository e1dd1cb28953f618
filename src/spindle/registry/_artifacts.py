"""Artifact rows: recording (idempotent, immutable by content hash), lookup and property search."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from sqlalchemy import ColumnElement, func, select, true
from sqlalchemy.orm import Session

from spindle.core import RegistryError, artifact_fields
from spindle.registry._not_found import id_prefixes, similar_artifacts, unknown_artifact
from spindle.registry._records import ArtifactRecord
from spindle.registry._schema import ArtifactRow, utc_now
from spindle.registry._values import json_safe, same_value


def fields_of(artifact: Any) -> dict[str, Any]:
    """The registry fields of a core artifact or of an ArtifactRecord read back from a store."""
    if isinstance(artifact, ArtifactRecord):
        fields = {
            "kind": artifact.kind,
            "id": artifact.id,
            "uri": artifact.uri,
            "content_hash": artifact.content_hash,
            "properties": artifact.properties,
        }
    else:
        try:
            fields = artifact_fields(artifact)
        except AttributeError as exc:
            raise RegistryError(
                f"{type(artifact).__name__} is not an artifact: it needs kind, id, uri, "
                f"content_hash and properties() ({exc})"
            ) from exc
    fields["properties"] = json_safe(fields["properties"])
    return fields


def record_artifact(session: Session, artifact: Any, run_id: str | None) -> ArtifactRow:
    """Insert ``artifact`` unless its id exists; an existing id must have the same hash."""
    fields = fields_of(artifact)
    row = session.scalar(select(ArtifactRow).where(ArtifactRow.id == fields["id"]))
    if row is None:
        row = ArtifactRow(
            id=fields["id"],
            kind=fields["kind"],
            uri=fields["uri"],
            content_hash=fields["content_hash"],
            properties=fields["properties"],
            created_at=utc_now(),
            run_id=run_id,
        )
        session.add(row)
        session.flush()
        return row
    if row.content_hash != fields["content_hash"]:
        raise RegistryError(
            f"artifact {row.id} is already recorded with content hash {row.content_hash} "
            f"({row.uri}); the new one has {fields['content_hash']} ({fields['uri']}). "
            "Artifacts are immutable: new content needs a new id (a new version)"
        )
    if row.run_id is None and run_id is not None:
        row.run_id = run_id
    return row


def artifact_row(session: Session, artifact_id: str) -> ArtifactRow:
    """Return the artifact ``artifact_id`` or raise NotFound naming similar recorded ids."""
    row = session.scalar(select(ArtifactRow).where(ArtifactRow.id == artifact_id))
    if row is not None:
        return row
    for prefix in id_prefixes(artifact_id):
        similar = select(ArtifactRow.id).where(ArtifactRow.id.startswith(prefix, autoescape=True))
        count = session.scalar(select(func.count()).select_from(similar.subquery())) or 0
        if count:
            newest = list(session.scalars(similar.order_by(ArtifactRow.seq.desc()).limit(5)))
            raise similar_artifacts(artifact_id, prefix, newest, count)
    kinds = list(session.scalars(select(ArtifactRow.kind).distinct().order_by(ArtifactRow.kind)))
    raise unknown_artifact(artifact_id, kinds)


def _sql_filter(key: str, value: Any) -> ColumnElement[bool]:
    # Only strings are filtered in SQL: JSON value extraction agrees on strings across
    # SQLite and PostgreSQL, while numeric casts fail on PostgreSQL for rows whose value
    # has another type. Every condition is checked exactly in Python afterwards.
    if isinstance(value, str):
        condition: ColumnElement[bool] = ArtifactRow.properties[key].as_string() == value
        return condition
    return true()


def matching(
    session: Session,
    kind: str | None,
    properties: Mapping[str, Any],
    *,
    newest_first: bool = False,
) -> Iterator[ArtifactRow]:
    """Yield artifacts of ``kind`` (any kind if None) whose properties equal ``properties``."""
    wanted = json_safe(dict(properties))
    stmt = select(ArtifactRow)
    if kind is not None:
        stmt = stmt.where(ArtifactRow.kind == kind)
    for key, value in wanted.items():
        stmt = stmt.where(_sql_filter(key, value))
    order = ArtifactRow.seq.desc() if newest_first else ArtifactRow.seq
    result = session.scalars(stmt.order_by(order))
    try:
        for row in result:
            props = row.properties
            if all(key in props and same_value(props[key], value) for key, value in wanted.items()):
                yield row
    finally:
        result.close()  # a caller may stop early (latest_artifact)


def relocate(session: Session, old_root: str) -> int:
    """Rewrite the absolute URIs inside ``old_root`` relative to it; return how many changed."""
    old = old_root.rstrip("/")
    inside = (ArtifactRow.uri == old) | ArtifactRow.uri.startswith(old + "/", autoescape=True)
    changed = 0
    for row in session.scalars(select(ArtifactRow).where(inside)):
        row.uri = row.uri[len(old) + 1 :] or "."
        changed += 1
    session.flush()
    return changed
