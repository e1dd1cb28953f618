"""The metadata schema: ORM tables for artifacts, runs, lineage edges, model versions and aliases.

The same schema serves SQLite (the embedded default) and PostgreSQL: only portable column types
(JSON through SQLAlchemy's ``JSON``, timestamps through :class:`UTCDateTime`), named constraints,
and no dialect-specific SQL.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    MetaData,
    String,
    Text,
    TypeDecorator,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from spindle.registry._records import (
    AliasEvent,
    ArtifactRecord,
    DeploymentRecord,
    IntentRecord,
    ModelVersionRecord,
    RunRecord,
)

ID = 512  # artifact ids embed names, dates and hash prefixes
NAME = 128


class UTCDateTime(TypeDecorator[datetime]):
    """A timezone-aware UTC timestamp on every backend (SQLite stores it naive, in UTC)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware UTC datetime")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def utc_now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class RunRow(Base):
    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint("status IN ('running', 'succeeded', 'failed', 'skipped')", name="status"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(64), unique=True)
    step: Mapped[str] = mapped_column(String(NAME))
    key: Mapped[str] = mapped_column(String(ID), index=True)
    model: Mapped[str | None] = mapped_column(String(NAME), index=True)
    date: Mapped[str | None] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(16), index=True)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    config_hash: Mapped[str | None] = mapped_column(String(128))
    params: Mapped[dict[str, Any]] = mapped_column(JSON)
    resources: Mapped[dict[str, Any]] = mapped_column(JSON)
    error: Mapped[str | None] = mapped_column(Text)
    pid: Mapped[int | None] = mapped_column(Integer)
    host: Mapped[str | None] = mapped_column(String(255))
    io: Mapped[list[RunArtifactRow]] = relationship(
        order_by="RunArtifactRow.position", lazy="selectin", cascade="all, delete-orphan"
    )

    def ids(self, role: str) -> tuple[str, ...]:
        return tuple(link.artifact_id for link in self.io if link.role == role)

    def to_record(self) -> RunRecord:
        return RunRecord(
            id=self.id,
            step=self.step,
            key=self.key,
            model=self.model,
            date=self.date,
            status=self.status,
            started_at=self.started_at,
            ended_at=self.ended_at,
            config_hash=self.config_hash,
            params=dict(self.params),
            resources=dict(self.resources),
            error=self.error,
            inputs=self.ids("input"),
            outputs=self.ids("output"),
            pid=self.pid,
            host=self.host,
        )


class ArtifactRow(Base):
    __tablename__ = "artifacts"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    id: Mapped[str] = mapped_column(String(ID), unique=True)
    kind: Mapped[str] = mapped_column(String(64), index=True)
    uri: Mapped[str] = mapped_column(Text)
    content_hash: Mapped[str] = mapped_column(String(128))
    properties: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    run_id: Mapped[str | None] = mapped_column(ForeignKey("runs.id"), index=True)

    def to_record(self) -> ArtifactRecord:
        return ArtifactRecord(
            id=self.id,
            kind=self.kind,
            uri=self.uri,
            content_hash=self.content_hash,
            properties=dict(self.properties),
            created_at=self.created_at,
            run_id=self.run_id,
        )


class RunArtifactRow(Base):
    """An input or output of a run, in the order the runner gave them."""

    __tablename__ = "run_artifacts"
    __table_args__ = (CheckConstraint("role IN ('input', 'output')", name="role"),)

    run_id: Mapped[str] = mapped_column(ForeignKey("runs.id"), primary_key=True)
    role: Mapped[str] = mapped_column(String(8), primary_key=True)
    artifact_id: Mapped[str] = mapped_column(
        ForeignKey("artifacts.id"), primary_key=True, index=True
    )
    position: Mapped[int] = mapped_column(Integer)


class EdgeRow(Base):
    """A lineage edge: ``parent_id`` was used to make ``child_id``."""

    __tablename__ = "lineage_edges"

    parent_id: Mapped[str] = mapped_column(ForeignKey("artifacts.id"), primary_key=True)
    child_id: Mapped[str] = mapped_column(ForeignKey("artifacts.id"), primary_key=True, index=True)
    relation: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())


class ModelVersionRow(Base):
    __tablename__ = "model_versions"
    __table_args__ = (
        CheckConstraint("status IN ('reserved', 'ready', 'failed')", name="status"),
        CheckConstraint("version >= 1", name="version_positive"),
    )

    # The composite primary key is the unique (model, version) constraint that makes two
    # concurrent reservations of the same number collide instead of both succeeding.
    model: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    status: Mapped[str] = mapped_column(String(16))
    artifact_id: Mapped[str | None] = mapped_column(ForeignKey("artifacts.id"))
    date: Mapped[str | None] = mapped_column(String(32))
    base_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)

    def to_record(self) -> ModelVersionRecord:
        return ModelVersionRecord(
            model=self.model,
            version=self.version,
            status=self.status,
            artifact_id=self.artifact_id,
            date=self.date,
            base_version=self.base_version,
            created_at=self.created_at,
            error=self.error,
        )


class AliasRow(Base):
    """The current version of one alias of one model (None once cleared)."""

    __tablename__ = "model_aliases"
    __table_args__ = (
        ForeignKeyConstraint(
            ["model", "version"], ["model_versions.model", "model_versions.version"]
        ),
    )

    model: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    alias: Mapped[str] = mapped_column(String(64), primary_key=True)
    version: Mapped[int | None] = mapped_column(Integer)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class AliasEventRow(Base):
    """Append-only history of alias changes."""

    __tablename__ = "alias_events"

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(NAME), index=True)
    alias: Mapped[str] = mapped_column(String(64))
    version: Mapped[int | None] = mapped_column(Integer)
    previous_version: Mapped[int | None] = mapped_column(Integer)
    actor: Mapped[str] = mapped_column(String(NAME))
    reason: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime] = mapped_column(UTCDateTime())

    def to_record(self) -> AliasEvent:
        return AliasEvent(
            model=self.model,
            alias=self.alias,
            version=self.version,
            previous_version=self.previous_version,
            actor=self.actor,
            reason=self.reason,
            at=self.at,
        )


class DeploymentRow(Base):
    """Append-only record of routing changes: pending until routing.json is written."""

    __tablename__ = "deployments"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'done', 'abandoned', 'refused')", name="status"),
    )

    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    model: Mapped[str] = mapped_column(String(NAME), index=True)
    weights: Mapped[dict[str, Any]] = mapped_column(JSON)
    previous: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), index=True)
    actor: Mapped[str] = mapped_column(String(NAME))
    reason: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    detail: Mapped[str | None] = mapped_column(Text)

    def to_record(self) -> DeploymentRecord:
        return DeploymentRecord(
            seq=self.seq,
            model=self.model,
            weights={int(v): float(w) for v, w in self.weights.items()},
            previous=self.previous,
            status=self.status,
            actor=self.actor,
            reason=self.reason,
            created_at=self.created_at,
            finished_at=self.finished_at,
            detail=self.detail,
        )


class IntentRow(Base):
    """The command behind a deployment (op, arguments, the routing it was planned from).

    A table of its own beside ``deployments`` so that stores made before intents existed gain
    it by ``create_all``; a deployment recorded without an intent has no row here.
    """

    __tablename__ = "deployment_intents"
    __table_args__ = (CheckConstraint("op IN ('push', 'route', 'rollback', 'fix')", name="op"),)

    deployment_seq: Mapped[int] = mapped_column(ForeignKey("deployments.seq"), primary_key=True)
    model: Mapped[str] = mapped_column(String(NAME), index=True)
    op: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(64), index=True)
    args: Mapped[dict[str, Any]] = mapped_column(JSON)
    base: Mapped[dict[str, Any]] = mapped_column(JSON)
    deployment: Mapped[DeploymentRow] = relationship(lazy="joined")

    def to_record(self) -> IntentRecord:
        base = dict(self.base)
        return IntentRecord(
            op=self.op,
            key=self.key,
            args=dict(self.args),
            base_weights={int(v): float(w) for v, w in dict(base.get("weights") or {}).items()},
            base_previous=base.get("previous"),
            deployment=self.deployment.to_record(),
        )
