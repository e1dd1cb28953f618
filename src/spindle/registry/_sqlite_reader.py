"""SQLiteReader: a RegistryReader over the stdlib ``sqlite3`` module, for a SQLite store file.

It imports no SQLAlchemy (the point: ``spindle models list`` in half a CPU-second). Table and
column names are those of ``_schema``, written here as plain strings (:data:`COLUMNS`, checked
against the ORM schema by tests/registry/test_registry_reader.py).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Generator, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import quote

from spindle.core import RegistryError
from spindle.registry._locations import resolved_uri
from spindle.registry._not_found import (
    id_prefixes,
    similar_artifacts,
    unknown_artifact,
    unknown_model,
    unknown_run,
    unknown_version,
)
from spindle.registry._records import (
    RUN_STATUSES,
    AliasEvent,
    ArtifactRecord,
    DeploymentRecord,
    LineageEdge,
    LineageGraph,
    ModelVersionRecord,
    RunRecord,
)
from spindle.registry._values import json_safe, same_value
from spindle.registry._walk import chunks, walk_graph

BUSY_TIMEOUT_S = 30.0

# The tables and columns SQLiteReader reads (names of spindle.registry._schema, as plain
# strings: importing the ORM schema is what the reader avoids). A store without one of them
# is read through MetadataStore instead; tests check these against the ORM schema.
COLUMNS: dict[str, tuple[str, ...]] = {
    "model_versions": (
        "model",
        "version",
        "status",
        "artifact_id",
        "date",
        "base_version",
        "created_at",
        "error",
    ),
    "model_aliases": ("model", "alias", "version"),
    "alias_events": (
        "seq",
        "model",
        "alias",
        "version",
        "previous_version",
        "actor",
        "reason",
        "at",
    ),
    "artifacts": ("seq", "id", "kind", "uri", "content_hash", "properties", "created_at", "run_id"),
    "runs": (
        "seq",
        "id",
        "step",
        "key",
        "model",
        "date",
        "status",
        "started_at",
        "ended_at",
        "config_hash",
        "params",
        "resources",
        "error",
        "pid",
        "host",
    ),
    "run_artifacts": ("run_id", "role", "artifact_id", "position"),
    "lineage_edges": ("parent_id", "child_id", "relation"),
    "deployments": (
        "seq",
        "model",
        "weights",
        "previous",
        "status",
        "actor",
        "reason",
        "created_at",
        "finished_at",
        "detail",
    ),
}

_VERSION = ", ".join(COLUMNS["model_versions"])
_EVENT = ", ".join(COLUMNS["alias_events"][1:])
_ARTIFACT = ", ".join(COLUMNS["artifacts"][1:])
_DEPLOYMENT = ", ".join(COLUMNS["deployments"])
_RUN = ", ".join(COLUMNS["runs"][1:])
_PLAIN_KEY = re.compile(r"[A-Za-z0-9_]+")


def _time(value: str | None) -> datetime | None:
    """A stored timestamp (SQLite holds it naive, in UTC) as an aware UTC datetime."""
    if value is None:
        return None
    parsed = datetime.fromisoformat(value)
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)


def _created(value: str) -> datetime:
    parsed = _time(value)
    assert parsed is not None  # a NOT NULL column
    return parsed


def _version(row: sqlite3.Row) -> ModelVersionRecord:
    return ModelVersionRecord(
        model=row["model"],
        version=row["version"],
        status=row["status"],
        artifact_id=row["artifact_id"],
        date=row["date"],
        base_version=row["base_version"],
        created_at=_created(row["created_at"]),
        error=row["error"],
    )


def _artifact(row: sqlite3.Row, root: Path | None) -> ArtifactRecord:
    """The record of an artifact row, its URI resolved against the workspace ``root``."""
    return ArtifactRecord(
        id=row["id"],
        kind=row["kind"],
        uri=resolved_uri(row["uri"], root),
        content_hash=row["content_hash"],
        properties=dict(json.loads(row["properties"])),
        created_at=_created(row["created_at"]),
        run_id=row["run_id"],
    )


def _deployment(row: sqlite3.Row) -> DeploymentRecord:
    return DeploymentRecord(
        seq=row["seq"],
        model=row["model"],
        weights={int(v): float(w) for v, w in json.loads(row["weights"]).items()},
        previous=row["previous"],
        status=row["status"],
        actor=row["actor"],
        reason=row["reason"],
        created_at=_created(row["created_at"]),
        finished_at=_time(row["finished_at"]),
        detail=row["detail"],
    )


def _run(row: sqlite3.Row, io: dict[tuple[str, str], list[str]]) -> RunRecord:
    return RunRecord(
        id=row["id"],
        step=row["step"],
        key=row["key"],
        model=row["model"],
        date=row["date"],
        status=row["status"],
        started_at=_created(row["started_at"]),
        ended_at=_time(row["ended_at"]),
        config_hash=row["config_hash"],
        params=dict(json.loads(row["params"])),
        resources=dict(json.loads(row["resources"])),
        error=row["error"],
        inputs=tuple(io.get((row["id"], "input"), ())),
        outputs=tuple(io.get((row["id"], "output"), ())),
        pid=row["pid"],
        host=row["host"],
    )


class SQLiteReader:
    """A read-only connection to a SQLite metadata store through the stdlib ``sqlite3`` module.

    Each method reads in one transaction (one snapshot, as a MetadataStore method does); in
    WAL mode a writer in another process neither blocks it nor is blocked by it.
    Open it with :meth:`open` or :func:`open_reader`.
    """

    def __init__(
        self, connection: sqlite3.Connection, path: Path, root: Path | None = None
    ) -> None:
        self._conn = connection
        self.url = f"sqlite:///{path}"
        self.root = root

    @classmethod
    def open(cls, path: Path, *, root: Path | None = None) -> SQLiteReader | None:
        """A reader of the store file ``path``; None if it lacks a table or column read here.

        ``root``: the workspace whose relative artifact paths are resolved (as MetadataStore's).
        """
        uri = f"file:{quote(str(path.resolve()))}?mode=ro"
        wal = Path(f"{path}-wal")
        if not os.access(path.parent, os.W_OK) and not (wal.exists() and wal.stat().st_size):
            # a read-only or immutable directory: SQLite cannot make the WAL index (-shm) even
            # to read, and nothing can change the file there, so it is read as immutable
            uri += "&immutable=1"
        try:
            conn = sqlite3.connect(
                uri, uri=True, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error:
            return None  # the full store opens it, or says why it cannot
        conn.row_factory = sqlite3.Row
        reader = cls(conn, path, root)
        try:
            complete = reader._has_columns()
        except RegistryError:
            complete = False
        if not complete:
            conn.close()
            return None
        return reader

    def __repr__(self) -> str:
        return f"SQLiteReader({self.url!r})"

    def __enter__(self) -> SQLiteReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection. The reader cannot be used afterwards."""
        self._conn.close()

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        try:
            self._conn.execute("BEGIN")
            try:
                yield self._conn
            finally:
                self._conn.execute("COMMIT")
        except sqlite3.ProgrammingError as exc:  # closed
            raise RegistryError(
                f"metadata store {self.url} is closed ({exc}); open a new reader"
            ) from exc
        except sqlite3.Error as exc:
            raise RegistryError(
                f"metadata store {self.url} is unavailable: {exc}; retry, and check that the "
                "file is a spindle store readable by this user"
            ) from exc

    def _has_columns(self) -> bool:
        with self._read() as conn:
            for table, columns in COLUMNS.items():
                found = {row["name"] for row in conn.execute(f"PRAGMA table_info({table})")}
                if not found.issuperset(columns):
                    return False
        return True

    @staticmethod
    def _require_model(conn: sqlite3.Connection, model: str) -> None:
        sql = "SELECT model FROM model_versions WHERE model = ? LIMIT 1"
        if conn.execute(sql, (model,)).fetchone() is None:
            raise unknown_model(model, SQLiteReader._model_names(conn))

    @staticmethod
    def _model_names(conn: sqlite3.Connection) -> list[str]:
        sql = "SELECT DISTINCT model FROM model_versions ORDER BY model"
        return [row["model"] for row in conn.execute(sql)]

    @staticmethod
    def _aliases(conn: sqlite3.Connection, model: str) -> dict[str, int]:
        SQLiteReader._require_model(conn, model)
        sql = (
            "SELECT alias, version FROM model_aliases "
            "WHERE model = ? AND version IS NOT NULL ORDER BY alias"
        )
        return {row["alias"]: row["version"] for row in conn.execute(sql, (model,))}

    def models(self) -> list[str]:
        """Names of every model with at least one version, sorted."""
        with self._read() as conn:
            return self._model_names(conn)

    def versions(self, model: str) -> list[ModelVersionRecord]:
        """Every version of ``model``, oldest first; NotFound for an unknown model."""
        with self._read() as conn:
            self._require_model(conn, model)
            sql = f"SELECT {_VERSION} FROM model_versions WHERE model = ? ORDER BY version"
            return [_version(row) for row in conn.execute(sql, (model,))]

    def get_version(self, model: str, version: int) -> ModelVersionRecord:
        """Return ``model`` ``version``; NotFound says which versions exist."""
        with self._read() as conn:
            sql = f"SELECT {_VERSION} FROM model_versions WHERE model = ? AND version = ?"
            row = conn.execute(sql, (model, version)).fetchone()
            if row is not None:
                return _version(row)
            self._require_model(conn, model)
            sql = "SELECT min(version), max(version) FROM model_versions WHERE model = ?"
            low, high = conn.execute(sql, (model,)).fetchone()
            raise unknown_version(model, version, low, high)

    def aliases(self, model: str) -> dict[str, int]:
        """Every set alias of ``model`` and its version; NotFound for an unknown model."""
        with self._read() as conn:
            return self._aliases(conn, model)

    def get_alias(self, model: str, alias: str) -> int | None:
        """The version ``alias`` points at, or None if it was never set or was cleared."""
        with self._read() as conn:
            return self._aliases(conn, model).get(alias)

    def alias_history(self, model: str, alias: str | None = None) -> list[AliasEvent]:
        """Alias changes of ``model`` (of one ``alias`` if given), oldest first."""
        with self._read() as conn:
            self._require_model(conn, model)
            sql = f"SELECT {_EVENT} FROM alias_events WHERE model = ?"
            params: tuple[str, ...] = (model,)
            if alias is not None:
                sql += " AND alias = ?"
                params += (alias,)
            rows = conn.execute(sql + " ORDER BY seq", params).fetchall()
        return [
            AliasEvent(
                model=row["model"],
                alias=row["alias"],
                version=row["version"],
                previous_version=row["previous_version"],
                actor=row["actor"],
                reason=row["reason"],
                at=_created(row["at"]),
            )
            for row in rows
        ]

    def _artifact_or_raise(self, conn: sqlite3.Connection, artifact_id: str) -> ArtifactRecord:
        sql = f"SELECT {_ARTIFACT} FROM artifacts WHERE id = ?"
        row = conn.execute(sql, (artifact_id,)).fetchone()
        if row is not None:
            return _artifact(row, self.root)
        for prefix in id_prefixes(artifact_id):
            # as SQLAlchemy's startswith(autoescape=True): LIKE with '/' escaping % and _
            pattern = prefix.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"
            where = "FROM artifacts WHERE id LIKE ? ESCAPE '/'"
            count = conn.execute(f"SELECT count(*) {where}", (pattern,)).fetchone()[0]
            if count:
                sql = f"SELECT id {where} ORDER BY seq DESC LIMIT 5"
                newest = [r["id"] for r in conn.execute(sql, (pattern,))]
                raise similar_artifacts(artifact_id, prefix, newest, count)
        kinds = [
            r["kind"] for r in conn.execute("SELECT DISTINCT kind FROM artifacts ORDER BY kind")
        ]
        raise unknown_artifact(artifact_id, kinds)

    def get_artifact(self, artifact_id: str) -> ArtifactRecord:
        """Return the artifact ``artifact_id``; NotFound lists similar ids that exist."""
        with self._read() as conn:
            return self._artifact_or_raise(conn, artifact_id)

    def lineage(
        self, artifact_id: str, *, direction: str = "both", max_depth: int = 20
    ) -> LineageGraph:
        """Walk lineage from ``artifact_id``: ``upstream`` (inputs), ``downstream`` or ``both``."""
        with self._read() as conn:

            def edges_of(ids: Sequence[str], upstream: bool) -> list[LineageEdge]:
                near, far = ("child_id", "parent_id") if upstream else ("parent_id", "child_id")
                marks = ", ".join("?" * len(ids))
                sql = (
                    "SELECT parent_id, child_id, relation FROM lineage_edges "
                    f"WHERE {near} IN ({marks}) ORDER BY {far}, relation, {near}"
                )
                return [LineageEdge(*row) for row in conn.execute(sql, list(ids))]

            def artifacts_of(ids: Sequence[str]) -> dict[str, ArtifactRecord]:
                marks = ", ".join("?" * len(ids))
                sql = f"SELECT {_ARTIFACT} FROM artifacts WHERE id IN ({marks})"
                rows = conn.execute(sql, list(ids))
                return {row["id"]: _artifact(row, self.root) for row in rows}

            root = self._artifact_or_raise(conn, artifact_id)
            return walk_graph(root, direction, max_depth, edges_of, artifacts_of)

    def get_run(self, run_id: str) -> RunRecord:
        """Return run ``run_id``; NotFound names the newest runs."""
        with self._read() as conn:
            runs = self._runs(conn, "WHERE id = ?", [run_id])
            if runs:
                return runs[0]
            sql = "SELECT id, step, status FROM runs ORDER BY seq DESC LIMIT 3"
            newest = [(r["id"], r["step"], r["status"]) for r in conn.execute(sql)]
            raise unknown_run(run_id, newest)

    def _matching(
        self, kind: str | None, properties: dict[str, Any], *, newest_first: bool
    ) -> Generator[ArtifactRecord, None, None]:
        """Artifacts of ``kind`` (any if None) whose properties equal ``properties``."""
        wanted = json_safe(properties)
        conditions, params = [], []
        if kind is not None:
            conditions.append("kind = ?")
            params.append(kind)
        for key, value in wanted.items():
            # strings narrow the search in SQL; every condition is checked exactly below
            if isinstance(value, str) and _PLAIN_KEY.fullmatch(key):
                conditions.append(f"json_extract(properties, '$.\"{key}\"') = ?")
                params.append(value)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        order = "DESC" if newest_first else "ASC"
        with self._read() as conn:
            cursor = conn.execute(
                f"SELECT {_ARTIFACT} FROM artifacts{where} ORDER BY seq {order}", params
            )
            try:
                for row in cursor:
                    props = json.loads(row["properties"])
                    if all(k in props and same_value(props[k], v) for k, v in wanted.items()):
                        yield _artifact(row, self.root)
            finally:
                cursor.close()  # a caller may stop at the first match

    def find_artifacts(self, kind: str | None = None, **properties: Any) -> list[ArtifactRecord]:
        """Artifacts of ``kind`` whose properties equal every given value, oldest first."""
        return list(self._matching(kind, properties, newest_first=False))

    def latest_artifact(self, kind: str, **properties: Any) -> ArtifactRecord | None:
        """The most recently recorded artifact of ``kind`` matching ``properties``, or None."""
        found = self._matching(kind, properties, newest_first=True)
        try:
            return next(found, None)
        finally:
            found.close()

    def runs(
        self,
        *,
        model: str | None = None,
        step: str | None = None,
        status: str | None = None,
        limit: int | None = 100,
    ) -> list[RunRecord]:
        """Runs matching every given filter, newest first, at most ``limit`` (None: all)."""
        if status is not None and status not in RUN_STATUSES:
            raise RegistryError(f"run status is one of {', '.join(RUN_STATUSES)}; got {status!r}")
        conditions, params = [], []
        for column, value in (("model", model), ("step", step), ("status", status)):
            if value is not None:
                conditions.append(f"{column} = ?")
                params.append(value)
        where = f"WHERE {' AND '.join(conditions)}" if conditions else ""
        tail = "" if limit is None else f" LIMIT {int(limit)}"
        with self._read() as conn:
            return self._runs(conn, f"{where} ORDER BY seq DESC{tail}", params)

    @staticmethod
    def _runs(conn: sqlite3.Connection, clauses: str, params: Sequence[Any]) -> list[RunRecord]:
        """The runs ``SELECT ... FROM runs {clauses}`` finds, with their inputs and outputs."""
        rows = conn.execute(f"SELECT {_RUN} FROM runs {clauses}", list(params)).fetchall()
        io: dict[tuple[str, str], list[str]] = {}
        ids = [row["id"] for row in rows]
        for chunk in chunks(ids):
            marks = ", ".join("?" * len(chunk))
            links = conn.execute(
                "SELECT run_id, role, artifact_id FROM run_artifacts "
                f"WHERE run_id IN ({marks}) ORDER BY position",
                list(chunk),
            )
            for link in links:
                io.setdefault((link["run_id"], link["role"]), []).append(link["artifact_id"])
        return [_run(row, io) for row in rows]

    def deployments(
        self, model: str | None = None, *, status: str | None = None
    ) -> list[DeploymentRecord]:
        """Recorded deployments (of ``model``, with ``status``), oldest first."""
        conditions, params = [], []
        if model is not None:
            conditions.append("model = ?")
            params.append(model)
        if status is not None:
            conditions.append("status = ?")
            params.append(status)
        where = f" WHERE {' AND '.join(conditions)}" if conditions else ""
        with self._read() as conn:
            rows = conn.execute(
                f"SELECT {_DEPLOYMENT} FROM deployments{where} ORDER BY seq", params
            ).fetchall()
        return [_deployment(row) for row in rows]
