"""Paged and projected reads for dashboards: a page of runs, versions, or artifact properties.

A dashboard of 10,000 runs and 1,000 versions must not load them all to show fifty. These
functions take any :class:`~spindle.registry.RegistryReader`: on a :class:`SQLiteReader` (what
``open_reader`` returns for a workspace's store) they run one SQL query each, paged and
filtered in the database; on any other reader (a :class:`MetadataStore`, e.g. on PostgreSQL)
they give the same answer from the reader's public methods, filtering in Python.
tests/registry/test_registry_pages.py checks both paths against each other.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spindle.core import RegistryError
from spindle.registry._reader import RegistryReader
from spindle.registry._records import RUN_STATUSES, ArtifactRecord, ModelVersionRecord, RunRecord
from spindle.registry._sqlite_reader import _ARTIFACT, _VERSION, SQLiteReader, _artifact, _created
from spindle.registry._sqlite_reader import _version as _version_record

_FIELD = re.compile(r"[A-Za-z_][A-Za-z0-9_@.]*")


@dataclass(frozen=True)
class RunPage:
    """One page of runs, newest first, and how many runs match the filters in all."""

    runs: list[RunRecord]
    total: int
    offset: int
    limit: int


@dataclass(frozen=True)
class RunFacets:
    """What the runs can be filtered by: the models, steps and statuses recorded, and the
    first and last run date (None when no run has a date)."""

    models: list[str]
    steps: list[str]
    statuses: list[str]
    first_date: str | None
    last_date: str | None


@dataclass(frozen=True)
class DayStep:
    """The runs of one step of one model (or of no model) on one day: how many there were,
    how many failed, and the status of the newest."""

    date: str
    model: str | None
    step: str
    runs: int
    failed: int
    last_status: str


@dataclass(frozen=True)
class VersionPage:
    """One page of a model's versions, newest first, and how many versions it has."""

    versions: list[ModelVersionRecord]
    total: int
    offset: int
    limit: int


def _check_status(status: str | None) -> None:
    if status is not None and status not in RUN_STATUSES:
        raise RegistryError(f"run status is one of {', '.join(RUN_STATUSES)}; got {status!r}")


def _run_filters(
    model: str | None, step: str | None, status: str | None, since: str | None, until: str | None
) -> tuple[str, list[Any]]:
    conditions, params = [], []
    for column, value in (("model", model), ("step", step), ("status", status)):
        if value is not None:
            conditions.append(f"{column} = ?")
            params.append(value)
    if since is not None:
        conditions.append("date >= ?")
        params.append(since)
    if until is not None:
        conditions.append("date <= ?")
        params.append(until)
    return (f"WHERE {' AND '.join(conditions)}" if conditions else ""), params


def _matches(run: RunRecord, since: str | None, until: str | None) -> bool:
    if since is not None and (run.date is None or run.date < since):
        return False
    return until is None or (run.date is not None and run.date <= until)


def runs_page(
    reader: RegistryReader,
    *,
    model: str | None = None,
    step: str | None = None,
    status: str | None = None,
    since: str | None = None,
    until: str | None = None,
    offset: int = 0,
    limit: int = 50,
) -> RunPage:
    """The runs matching every given filter, newest first, from ``offset``, at most ``limit``.

    ``since`` and ``until`` bound the run's ``date`` (the day it ran for), both included; a
    run without a date matches neither.

    Raises:
        RegistryError: an unknown status, or a negative offset or limit.

    Example:
        >>> page = runs_page(reader, status="failed", since="2026-01-01", limit=20)  # doctest: +SKIP
        >>> page.total, [r.step for r in page.runs]  # doctest: +SKIP
        (3, ['train', 'ingest', 'train'])
    """
    _check_status(status)
    if offset < 0 or limit < 0:
        raise RegistryError(f"offset and limit must be >= 0; got {offset} and {limit}")
    if isinstance(reader, SQLiteReader):
        where, params = _run_filters(model, step, status, since, until)
        with reader._read() as conn:
            total = conn.execute(f"SELECT count(*) FROM runs {where}", params).fetchone()[0]
            runs = SQLiteReader._runs(
                conn, f"{where} ORDER BY seq DESC LIMIT {int(limit)} OFFSET {int(offset)}", params
            )
        return RunPage(runs, int(total), offset, limit)
    found = [
        r
        for r in reader.runs(model=model, step=step, status=status, limit=None)
        if _matches(r, since, until)
    ]
    return RunPage(found[offset : offset + limit], len(found), offset, limit)


def run_facets(reader: RegistryReader) -> RunFacets:
    """The models, steps and statuses of the recorded runs, and their first and last date."""
    if isinstance(reader, SQLiteReader):
        with reader._read() as conn:
            models = [r[0] for r in conn.execute("SELECT DISTINCT model FROM runs") if r[0]]
            steps = [r[0] for r in conn.execute("SELECT DISTINCT step FROM runs")]
            statuses = [r[0] for r in conn.execute("SELECT DISTINCT status FROM runs")]
            first, last = conn.execute("SELECT min(date), max(date) FROM runs").fetchone()
        return RunFacets(sorted(models), sorted(steps), sorted(statuses), first, last)
    runs = reader.runs(limit=None)
    dates = [r.date for r in runs if r.date]
    return RunFacets(
        sorted({r.model for r in runs if r.model}),
        sorted({r.step for r in runs}),
        sorted({r.status for r in runs}),
        min(dates, default=None),
        max(dates, default=None),
    )


def day_steps(
    reader: RegistryReader, *, since: str, until: str, model: str | None = None
) -> list[DayStep]:
    """Per day from ``since`` to ``until`` (both included) and per (model, step): how many
    runs, how many failed, and the newest one's status; sorted by date, model, step.

    A day with no run at all is absent: a caller that expects one (a backfill, a catch-up)
    sees the gap.
    """
    if isinstance(reader, SQLiteReader):
        where, params = _run_filters(model, None, None, since, until)
        # SQLite gives a bare column of an aggregate query with max() the value of the row
        # holding the max: `status` is the newest run's
        sql = (
            "SELECT date, model, step, count(*) AS n, "
            "sum(CASE WHEN status = 'failed' THEN 1 ELSE 0 END) AS failed, "
            "status AS last_status, max(seq) "
            f"FROM runs {where} GROUP BY date, model, step ORDER BY date, model, step"
        )
        with reader._read() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [
            DayStep(r["date"], r["model"], r["step"], r["n"], r["failed"], r["last_status"])
            for r in rows
        ]
    groups: dict[tuple[str, str, str], list[RunRecord]] = {}
    for run in reader.runs(model=model, limit=None):  # newest first
        if run.date is not None and since <= run.date <= until:
            groups.setdefault((run.date, run.model or "", run.step), []).append(run)
    return [
        DayStep(
            date,
            runs[0].model,
            step,
            len(runs),
            sum(r.status == "failed" for r in runs),
            runs[0].status,
        )
        for (date, _, step), runs in sorted(groups.items())
    ]


def versions_page(
    reader: RegistryReader, model: str, *, offset: int = 0, limit: int = 50
) -> VersionPage:
    """A page of ``model``'s versions, newest first.

    Raises:
        NotFound: ``model`` has no version.
    """
    if isinstance(reader, SQLiteReader):
        with reader._read() as conn:
            SQLiteReader._require_model(conn, model)
            total = conn.execute(
                "SELECT count(*) FROM model_versions WHERE model = ?", (model,)
            ).fetchone()[0]
            rows = conn.execute(
                f"SELECT {_VERSION} FROM model_versions WHERE model = ? "
                f"ORDER BY version DESC LIMIT {int(limit)} OFFSET {int(offset)}",
                (model,),
            ).fetchall()
        return VersionPage([_version_record(r) for r in rows], int(total), offset, limit)
    every = list(reversed(reader.versions(model)))
    return VersionPage(every[offset : offset + limit], len(every), offset, limit)


def latest_by_version(
    reader: RegistryReader, kind: str, model: str, versions: Sequence[int]
) -> dict[int, ArtifactRecord]:
    """The newest artifact of ``kind`` recorded for each of ``versions`` of ``model`` (by its
    ``model`` and ``version`` properties); versions with none are absent."""
    wanted = {int(v) for v in versions}
    out: dict[int, ArtifactRecord] = {}
    if not wanted:
        return out
    if isinstance(reader, SQLiteReader):
        with reader._read() as conn:
            ordered = sorted(wanted)
            for start in range(0, len(ordered), 500):  # under SQLite's bound-parameter limit
                chunk = ordered[start : start + 500]
                marks = ", ".join("?" * len(chunk))
                sql = (
                    f"SELECT {_ARTIFACT} FROM artifacts WHERE kind = ? "
                    "AND json_extract(properties, '$.model') = ? "
                    f"AND json_extract(properties, '$.version') IN ({marks}) ORDER BY seq"
                )
                for row in conn.execute(sql, [kind, model, *chunk]):
                    record = _artifact(row, reader.root)
                    out[int(record.properties["version"])] = record  # newest wins
        return out
    for record in reader.find_artifacts(kind, model=model):
        version = record.properties.get("version")
        if isinstance(version, int) and version in wanted:
            out[version] = record
    return out


def artifact_fields(
    reader: RegistryReader,
    kind: str,
    fields: Sequence[str],
    *,
    where: Mapping[str, str] | None = None,
    since: str | None = None,
    until: str | None = None,
    date_field: str = "date",
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Some top-level properties of every artifact of ``kind``, oldest first, without loading
    the rest: ``[{"id", "created_at", field: value, ...}]`` (a missing property is None).

    Args:
        where: string properties that must equal these values.
        since, until: bounds on the ``date_field`` property (ISO dates), both included.
        limit: only the newest ``limit`` (still returned oldest first).

    Raises:
        RegistryError: a field or property name that is not a plain name.

    Example:
        >>> artifact_fields(reader, "validation_report", ["date", "verdict"])  # doctest: +SKIP
        [{'id': 'validation:2026-01-01:...', 'created_at': ..., 'date': '2026-01-01', 'verdict': 'warn'}]
    """
    where = dict(where or {})
    names = [*fields, *where, date_field]
    bad = [n for n in names if not _FIELD.fullmatch(n)]
    if bad:
        raise RegistryError(f"property names must be plain names; got {bad}")
    if isinstance(reader, SQLiteReader):
        return _sqlite_fields(reader, kind, fields, where, since, until, date_field, limit)
    out = []
    for record in reader.find_artifacts(kind, **where):
        day = record.properties.get(date_field)
        if since is not None and (not isinstance(day, str) or day < since):
            continue
        if until is not None and (not isinstance(day, str) or day > until):
            continue
        entry: dict[str, Any] = {"id": record.id, "created_at": record.created_at}
        out.append(entry | {f: record.properties.get(f) for f in fields})
    return out if limit is None else out[max(0, len(out) - limit) :]


def _path(name: str) -> str:
    return f"'$.\"{name}\"'"


def _sqlite_fields(
    reader: SQLiteReader,
    kind: str,
    fields: Sequence[str],
    where: Mapping[str, str],
    since: str | None,
    until: str | None,
    date_field: str,
    limit: int | None,
) -> list[dict[str, Any]]:
    # `->` gives each property as JSON text (objects and lists included), parsed below
    columns = ", ".join(f"properties -> {_path(f)}" for f in fields)
    conditions, params = ["kind = ?"], [kind]
    for key, value in where.items():
        conditions.append(f"properties ->> {_path(key)} = ?")
        params.append(value)
    if since is not None:
        conditions.append(f"properties ->> {_path(date_field)} >= ?")
        params.append(since)
    if until is not None:
        conditions.append(f"properties ->> {_path(date_field)} <= ?")
        params.append(until)
    sql = (
        f"SELECT id, created_at{', ' + columns if columns else ''} FROM artifacts "
        f"WHERE {' AND '.join(conditions)} ORDER BY seq DESC"
        + ("" if limit is None else f" LIMIT {int(limit)}")
    )
    with reader._read() as conn:
        rows = conn.execute(sql, params).fetchall()
    out = []
    for row in reversed(rows):
        entry: dict[str, Any] = {"id": row[0], "created_at": _created(row[1])}
        for i, name in enumerate(fields):
            text = row[2 + i]
            entry[name] = None if text is None else json.loads(text)
        out.append(entry)
    return out
