"""Model versions and aliases: numbering, immutability, and alias moves with their history.

Every function works inside the caller's transaction (a ``Session``); the store decides where
transactions begin and end and retries a reservation that lost a race on (model, version).
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from spindle.core import RegistryError
from spindle.registry._artifacts import fields_of, record_artifact
from spindle.registry._not_found import unknown_model, unknown_version
from spindle.registry._records import AliasEvent, ModelVersionRecord
from spindle.registry._schema import AliasEventRow, AliasRow, ModelVersionRow, utc_now

PRODUCTION = "production"
PREVIOUS = "previous"


def model_names(session: Session) -> list[str]:
    stmt = select(ModelVersionRow.model).distinct().order_by(ModelVersionRow.model)
    return list(session.scalars(stmt))


def require_model(session: Session, model: str) -> None:
    """Raise NotFound unless ``model`` has at least one version, naming the models that exist."""
    found = session.scalar(
        select(ModelVersionRow.model).where(ModelVersionRow.model == model).limit(1)
    )
    if found is not None:
        return
    raise unknown_model(model, model_names(session))


def version_row(
    session: Session, model: str, version: int, *, lock: bool = False
) -> ModelVersionRow:
    """Return the row of ``model`` ``version`` or raise NotFound saying which versions exist."""
    stmt = select(ModelVersionRow).where(
        ModelVersionRow.model == model, ModelVersionRow.version == version
    )
    row = session.scalar(stmt.with_for_update() if lock else stmt)
    if row is not None:
        return row
    require_model(session, model)
    low, high = session.execute(
        select(func.min(ModelVersionRow.version), func.max(ModelVersionRow.version)).where(
            ModelVersionRow.model == model
        )
    ).one()
    raise unknown_version(model, version, low, high)


def next_version(session: Session, model: str, date: str | None, base_version: int | None) -> int:
    """Insert the next version of ``model`` as ``reserved`` and return its number.

    Two writers that read the same maximum collide on the (model, version) primary key at
    flush; the loser's transaction fails with WriteConflict and the store retries it.
    """
    if base_version is not None:
        base = version_row(session, model, base_version)
        if base.status != "ready":
            raise RegistryError(
                f"base version {model}@{base_version} is {base.status}, not ready; "
                "warm start only from a completed version"
            )
    current = session.scalar(
        select(func.max(ModelVersionRow.version)).where(ModelVersionRow.model == model)
    )
    number = (current or 0) + 1
    session.add(
        ModelVersionRow(
            model=model,
            version=number,
            status="reserved",
            date=date,
            base_version=base_version,
            created_at=utc_now(),
        )
    )
    session.flush()
    return number


def all_versions(session: Session, model: str) -> list[ModelVersionRecord]:
    require_model(session, model)
    stmt = (
        select(ModelVersionRow)
        .where(ModelVersionRow.model == model)
        .order_by(ModelVersionRow.version)
    )
    return [row.to_record() for row in session.scalars(stmt)]


def _check_artifact_matches(model: str, version: int, properties: dict[str, Any]) -> None:
    """Refuse an artifact whose own properties name another model or version."""
    named_model = properties.get("model", model)
    named_version = properties.get("version", version)
    if named_model != model or named_version != version:
        raise RegistryError(
            f"artifact for {named_model}@{named_version} cannot complete {model}@{version}; "
            "pass the artifact exported for this version"
        )


def complete(session: Session, model: str, version: int, artifact: Any) -> ModelVersionRecord:
    """Record ``artifact`` and mark the version ready; a ready version keeps its artifact."""
    row = version_row(session, model, version, lock=True)
    fields = fields_of(artifact)
    _check_artifact_matches(model, version, fields["properties"])
    label = f"{model}@{version}"
    if row.status == "failed":
        raise RegistryError(
            f"model version {label} failed ({row.error}); its number is never reused: "
            "reserve a new version with reserve_version()"
        )
    if row.status == "ready" and row.artifact_id != fields["id"]:
        raise RegistryError(
            f"model version {label} is already complete with artifact {row.artifact_id}; "
            f"versions are immutable, so {fields['id']} needs a new version (reserve_version())"
        )
    stored = record_artifact(session, artifact, None)  # raises if the content hash changed
    if row.status == "reserved":
        row.status = "ready"
        row.artifact_id = stored.id
        row.completed_at = utc_now()
        date = fields["properties"].get("date")
        if row.date is None and isinstance(date, str):
            row.date = date
        session.flush()
    return row.to_record()


def fail(session: Session, model: str, version: int, reason: str) -> None:
    """Mark a reserved version failed; failing a failed version again changes nothing."""
    row = version_row(session, model, version, lock=True)
    if row.status == "ready":
        raise RegistryError(
            f"model version {model}@{version} is ready and immutable; to stop serving it, "
            "move its aliases with set_alias()"
        )
    if row.status == "reserved":
        row.status = "failed"
        row.error = reason
        row.completed_at = utc_now()
        session.flush()


def _latest_event(session: Session, model: str, alias: str) -> AliasEventRow | None:
    stmt = (
        select(AliasEventRow)
        .where(AliasEventRow.model == model, AliasEventRow.alias == alias)
        .order_by(AliasEventRow.seq.desc())
        .limit(1)
    )
    return session.scalar(stmt)


def _alias_row(session: Session, model: str, alias: str) -> AliasRow | None:
    stmt = select(AliasRow).where(AliasRow.model == model, AliasRow.alias == alias)
    return session.scalar(stmt.with_for_update())


def _move(
    session: Session, model: str, alias: str, version: int | None, actor: str, reason: str
) -> AliasEvent:
    now = utc_now()
    row = _alias_row(session, model, alias)
    previous = row.version if row is not None else None
    if row is None:
        session.add(AliasRow(model=model, alias=alias, version=version, updated_at=now))
    else:
        row.version = version
        row.updated_at = now
    event = AliasEventRow(
        model=model,
        alias=alias,
        version=version,
        previous_version=previous,
        actor=actor,
        reason=reason,
        at=now,
    )
    session.add(event)
    session.flush()
    return event.to_record()


def move_alias(
    session: Session, model: str, alias: str, version: int | None, actor: str, reason: str
) -> AliasEvent:
    """Point ``alias`` at ``version`` (None clears it) and record the event.

    Moving ``production`` also moves ``previous`` to the version production had, as a second
    event. Setting an alias to the version it already has records nothing and returns the
    event that set it.
    """
    for name, value in (("alias", alias), ("actor", actor), ("reason", reason)):
        if not value or not value.strip():
            raise RegistryError(f"set_alias needs a non-empty {name} (every alias move is audited)")
    require_model(session, model)
    if version is not None:
        target = version_row(session, model, version)
        if target.status != "ready":
            raise RegistryError(
                f"model version {model}@{version} is {target.status}, not ready; only a "
                "completed version (complete_version()) can be given an alias"
            )
    current = _alias_row(session, model, alias)
    old = current.version if current is not None else None
    if current is not None and old == version:
        latest = _latest_event(session, model, alias)
        if latest is not None:
            return latest.to_record()
    event = _move(session, model, alias, version, actor, reason)
    if alias == PRODUCTION and old is not None and old != version:
        kept = _alias_row(session, model, PREVIOUS)
        if kept is None or kept.version != old:
            reason_previous = f"was production until replaced by version {version}: {reason}"
            _move(session, model, PREVIOUS, old, actor, reason_previous)
    return event


def alias_map(session: Session, model: str) -> dict[str, int]:
    stmt = (
        select(AliasRow)
        .where(AliasRow.model == model, AliasRow.version.is_not(None))
        .order_by(AliasRow.alias)
    )
    return {row.alias: row.version for row in session.scalars(stmt) if row.version is not None}


def history(session: Session, model: str, alias: str | None) -> list[AliasEvent]:
    stmt = select(AliasEventRow).where(AliasEventRow.model == model)
    if alias is not None:
        stmt = stmt.where(AliasEventRow.alias == alias)
    return [row.to_record() for row in session.scalars(stmt.order_by(AliasEventRow.seq))]
