"""Compute one day of a feature view's rows with DuckDB over the ingested Delta tables.

Rows for day D carry ``feature_ts = D 00:00`` (an event-time view's rows, ``view: {from:
source}``, carry their own event time on day D instead, computed as of D+1 00:00) and use only
what was known then: the view's SQL
runs on a connection where each source it reads is a view of the rows known at the cutoff
(``_cutoff.py``: event time before D 00:00, or a daily partition dated D or earlier), so a view
cannot read the future whatever its SQL asks. The view's rows (one per entity) are computed
once per day into Arrow; every SQL feature is its expression over those rows (one DuckDB query)
and every Python feature is its function applied to them, so both kinds see exactly the same
values. A new version is a new expression or function and a new column.

The view's SQL and the features' expressions are checked to be one SELECT over the view's
sources (one expression over its rows) and run on a connection without file access
(``core._declared_sql``): they read the registered sources and nothing else.

The view's rows are computed on one DuckDB thread: with two, a parallel hash aggregate adds
sums in a varying order and the last bit of an aggregate changed between identical runs
(measured on a 28-day sum per entity: 4 of 5 reruns differed), which would make a
backfill rerun rewrite partitions that had not really changed.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import pyarrow as pa

from spindle.core import (
    SQL_RULES,
    FeatureError,
    Location,
    TableVersion,
    expression_problem,
    lock_connection,
    quote_identifier,
    select_problem,
    write_partition,
)
from spindle.features._cutoff import (
    cutoff_literals,
    register_sources,
    restrict_as_of,
    substitute_times,
)
from spindle.features._definitions import FeatureDefinition, FeatureView
from spindle.features._fingerprints import check_fingerprints, record_fingerprints
from spindle.features._python import apply_python
from spindle.features._registry import FeatureRegistry
from spindle.features._retracted import Exclusion
from spindle.features._views import CUTOFF

KEYS_METADATA = "spindle.entity_keys"
"""Schema metadata of computed feature rows: their view's entity keys, as a JSON list."""
TTL_METADATA = "spindle.ttl_s"
"""Schema metadata of computed feature rows: their view's TTL in seconds (JSON; null: none)."""


def feature_table_path(tables_dir: Location | Path, group: str) -> Location:
    """Where the feature table of view ``group`` lives: ``<tables>/features/<group>``."""
    return Location.of(tables_dir) / "features" / group


def _duck_type(dtype: str) -> str:
    return {"float64": "DOUBLE", "int64": "BIGINT", "bool": "BOOLEAN", "string": "VARCHAR"}[dtype]


def _quoted(columns: tuple[str, ...] | list[str]) -> str:
    return ", ".join(quote_identifier(c) for c in columns)


def view_rows(
    tables_dir: Location | Path,
    view: FeatureView,
    date: str,
    versions: dict[str, int] | None = None,
    exclusions: Mapping[str, Sequence[Exclusion]] | None = None,
) -> pa.Table:
    """Run ``view``'s SQL as of ``date`` 00:00: its rows ordered by the entity keys.

    Args:
        versions: raw table versions to read (``{"raw/sessions": 3}``); latest when absent.
        exclusions: per source, the recorded retractions whose rows the SQL does not see.

    Raises:
        FeatureError: the SQL failed (names the file, the view and DuckDB's message), the rows
            lack a key or ``keep`` column, or two rows share an entity key (names one).
        DataError: a source the view reads has not been ingested.
    """
    found = select_problem(view.sql, view.sources)
    if found is not None:
        raise FeatureError(
            f"{view.file}: view {view.name}: key 'view.sql': the view's SQL {found}; "
            f"{SQL_RULES['view']}"
        )
    con = duckdb.connect()
    try:
        con.execute("SET threads TO 1")  # deterministic sums: see the module docstring
        con.execute("SET enable_progress_bar = false")
        lock_connection(con)  # the sources are Arrow, registered below: no file access needed
        as_of = _as_of(view, date)
        try:
            cutoffs = _cutoffs(view, as_of)
            window = None
            if view.lookback_s is not None:  # every run reads within [first - lookback, last)
                first = cutoffs[0] or dt.datetime.fromisoformat(as_of)
                last = cutoffs[-1] or first
                window = (first - dt.timedelta(seconds=view.lookback_s), last)
            schemas = register_sources(
                con, tables_dir, dict(view.event_times), versions, window, exclusions
            )
            rows = pa.concat_tables(_run_as_of(con, view, schemas, as_of, at) for at in cutoffs)
        except duckdb.Error as exc:
            hint = (
                f" (the SQL sees only the view's `sources`: {', '.join(view.sources) or 'none'};"
                " add the table it reads there)"
                if isinstance(exc, duckdb.CatalogException)
                else ""
            )
            raise FeatureError(
                f"{view.file}: view {view.name}: its SQL failed for {date}: "
                f"{' '.join(str(exc).split())}{hint}"
            ) from exc
        _check_columns(view, rows)
        con.register("__spindle_view", rows)
        keys = _quoted(view.row_keys)
        duplicate = con.execute(
            f"SELECT {keys}, count(*) FROM __spindle_view GROUP BY ALL HAVING count(*) > 1 LIMIT 1"
        ).fetchone()
        if duplicate is not None:
            example = dict(zip(view.row_keys, duplicate[:-1], strict=True))
            raise FeatureError(
                f"{view.file}: view {view.name} returned {duplicate[-1]} rows for entity key "
                f"{example} on {date}; a view returns one row per entity (aggregate or "
                "deduplicate in its SQL)"
            )
        return con.sql(f"SELECT * FROM __spindle_view ORDER BY {keys}").to_arrow_table()
    finally:
        con.close()


def _as_of(view: FeatureView, date: str) -> str:
    """The day whose 00:00 a view of ``date`` is computed as of: ``date`` itself for a daily
    view (and the first run of a view run ``every`` few hours); the next day for an
    event-time view, whose rows are the day's own events."""
    if view.timestamp is None or view.every_s is not None:
        return date
    return (dt.date.fromisoformat(date) + dt.timedelta(days=1)).isoformat()


def _cutoffs(view: FeatureView, day: str) -> list[dt.datetime | None]:
    """The instants of ``day`` a view runs as of: 00:00 (None) for a daily or event-time view;
    00:00, 00:00 + every, ... for a view run ``every`` few hours."""
    if view.every_s is None:
        return [None]
    start = dt.datetime.fromisoformat(day)
    return [start + dt.timedelta(seconds=s) for s in range(0, 86400, view.every_s)]


def _run_as_of(
    con: duckdb.DuckDBPyConnection,
    view: FeatureView,
    schemas: dict[str, pa.Schema],
    day: str,
    at: dt.datetime | None,
) -> pa.Table:
    """The view's SQL run as of ``day`` 00:00, or as of the instant ``at`` (its rows then carry
    that instant in :data:`CUTOFF`)."""
    restrict_as_of(con, schemas, dict(view.event_times), day, at, view.lookback_s)
    rows = con.sql(substitute_times(view.sql, cutoff_literals(day, at))).to_arrow_table()
    if at is None:
        return rows
    if CUTOFF in rows.column_names:
        raise FeatureError(
            f"{view.file}: view {view.name}'s SQL returns a column {CUTOFF!r}, the name "
            "spindle gives the cutoff of each run of a view with `every`; rename it"
        )
    instant = pa.array([at] * rows.num_rows, pa.timestamp("us"))
    return rows.append_column(CUTOFF, instant)


def _check_columns(view: FeatureView, rows: pa.Table) -> None:
    """Refuse view rows that lack a key or kept column."""
    missing = [c for c in view.stored_columns if c not in rows.column_names]
    if missing:
        raise FeatureError(
            f"{view.file}: view {view.name}'s SQL returns no column(s) {missing} (entity keys "
            f"{list(view.keys)}, keep {list(view.keep)}); its columns are {rows.column_names}. "
            "Select them in `view.sql`, or fix `entity.keys` / `view.keep`"
        )


def feature_sql(view: FeatureView, definitions: list[FeatureDefinition], date: str) -> str:
    """The query computing the SQL ``definitions`` over a relation ``base`` of the view's rows."""
    literals = cutoff_literals(date)
    if view.every_s is not None:  # each row's own cutoff
        cutoff = quote_identifier(CUTOFF)
        literals = {"cutoff": cutoff, "cutoff_date": f"CAST({cutoff} AS DATE)"}
    exprs = [
        f"CAST(({substitute_times(d.sql, literals)}) AS {_duck_type(d.dtype)}) "
        f"AS {quote_identifier(d.column)}"
        for d in definitions
        if d.computation == "sql" and d.sql is not None
    ]
    heads = [quote_identifier(c) for c in view.stored_columns]
    at = (
        literals["cutoff"]
        if view.timestamp is None
        else f"CAST({quote_identifier(view.timestamp)} AS TIMESTAMP)"
    )
    select = ", ".join([*heads, *exprs, f"{at} AS feature_ts"])
    return f"SELECT {select} FROM base ORDER BY {_quoted(view.row_keys)}"


def compute_group(
    tables_dir: Location | Path,
    registry: FeatureRegistry,
    group: str,
    date: str,
    definitions: list[FeatureDefinition] | None = None,
    versions: dict[str, int] | None = None,
    exclusions: Mapping[str, Sequence[Exclusion]] | None = None,
) -> pa.Table:
    """Compute one view's feature rows for one day (every version of every feature by default).

    The rows hold the entity keys, the view's ``keep`` columns, one column per feature version
    and ``feature_ts`` (the day's 00:00, or an event-time view's row time), ordered by the keys
    (and time); their schema metadata records
    the keys (:func:`entity_keys_of`), so the online store can key them without the registry.

    Args:
        group: the feature view's name.
        definitions: the versions to compute (all of the view's by default).
        versions: raw table versions to read (``{"raw/sessions": 3}``); latest when absent.
        exclusions: per source, the recorded retractions whose rows are not read.

    Raises:
        FeatureError: no such view; the view's SQL or a feature's expression failed (names the
            file, view or features and the DuckDB message); a Python feature raised or returned
            the wrong length or type (names the feature, file and function).
    """
    view = registry.view(group)
    base = view_rows(tables_dir, view, date, versions, exclusions)
    return _features_of(registry, group, base, date, definitions)


def _features_of(
    registry: FeatureRegistry,
    group: str,
    base: pa.Table,
    date: str,
    definitions: list[FeatureDefinition] | None = None,
) -> pa.Table:
    """The feature rows of view ``group`` from its rows of the day (``base``): see
    :func:`compute_group`."""
    view = registry.view(group)
    chosen = definitions if definitions is not None else registry.group(group)
    for d in chosen:
        found = None if d.computation != "sql" else expression_problem(d.sql or "", ["base"])
        if found is not None:
            raise FeatureError(f"{view.file}: {d.ref}: its sql {found}; {SQL_RULES['feature']}")
    con = duckdb.connect()
    try:
        con.execute("SET threads TO 1")
        lock_connection(con)
        con.register("base", base)
        rows = con.sql(feature_sql(view, chosen, date)).to_arrow_table()
    except duckdb.Error as exc:
        refs = ", ".join(d.ref for d in chosen if d.computation == "sql")
        raise FeatureError(
            f"{view.file}: computing {group} features ({refs}) for {date} failed: "
            f"{' '.join(str(exc).split())}"
        ) from exc
    finally:
        con.close()
    computed = {
        d.column: apply_python(d.python, d.ref, d.dtype, base, date)
        for d in chosen
        if d.computation == "python" and d.python is not None
    }
    # Both are ordered by the (unique) entity keys, so row i of each is the same entity.
    names = [*view.stored_columns, *(d.column for d in chosen), "feature_ts"]
    table = pa.Table.from_arrays(
        [computed[n] if n in computed else rows.column(n) for n in names], names=names
    )
    return table.replace_schema_metadata(
        {KEYS_METADATA: json.dumps(list(view.keys)), TTL_METADATA: json.dumps(view.ttl_s)}
    )


def ttl_of(rows: pa.Table) -> int | None:
    """The view's TTL recorded in computed feature rows' schema (None: none, or not recorded)."""
    recorded = (rows.schema.metadata or {}).get(TTL_METADATA.encode())
    value = None if recorded is None else json.loads(recorded)
    return None if value is None else int(value)


def entity_keys_of(rows: pa.Table) -> list[str] | None:
    """The entity keys recorded in computed feature rows' schema (None when not recorded)."""
    recorded = (rows.schema.metadata or {}).get(KEYS_METADATA.encode())
    return None if recorded is None else list(json.loads(recorded))


def compute_features(
    tables_dir: Location | Path,
    registry: FeatureRegistry,
    date: str,
    exclusions: Mapping[str, Sequence[Exclusion]] | None = None,
) -> dict[str, tuple[TableVersion, pa.Table]]:
    """Compute and store (partition overwrite) every feature view's rows of ``date``.

    Every view is computed before anything is written, so a failing computation leaves the
    tables as they were; a version whose computation changed since it was first materialised
    is refused before any work. Each view's sources are read as of ``date`` 00:00, less the
    rows the recorded retractions ``exclusions`` (per source) name.

    Returns:
        For each view (by name), the version written and the rows.

    Raises:
        FeatureError: a computation failed, or a materialised version's fingerprint changed.
        DataError: a source a view reads has not been ingested.
    """
    views = sorted(registry.views())
    chosen = [d for v in views for d in registry.group(v)]
    check_fingerprints(tables_dir, chosen)
    computed = {
        v: _features_of(registry, v, base, date)
        for v, base in zip(
            views, _views_rows(tables_dir, registry, views, date, exclusions), strict=True
        )
    }
    record_fingerprints(tables_dir, chosen)
    out: dict[str, tuple[TableVersion, pa.Table]] = {}
    for view, rows in computed.items():
        version = write_partition(
            feature_table_path(tables_dir, view), rows, date, f"features/{view}"
        )
        out[view] = (version, rows)
    return out


def _views_rows(
    tables_dir: Location | Path,
    registry: FeatureRegistry,
    views: list[str],
    date: str,
    exclusions: Mapping[str, Sequence[Exclusion]] | None = None,
) -> list[pa.Table]:
    """Each view's rows of ``date`` (:func:`view_rows`), the views' queries side by side.

    Each query runs on its own one-thread connection, so its rows are the same as alone
    (DuckDB releases the GIL while it runs); on two cores the day's views take about the
    time of the longest instead of the sum. A failure is the first failing view's, in order,
    as when they ran one after another.

    Raises:
        FeatureError: a view's SQL failed (see :func:`view_rows`).
        DataError: a source a view reads has not been ingested.
    """
    workers = min(len(views), os.cpu_count() or 1)
    if workers < 2:
        return [view_rows(tables_dir, registry.view(v), date, None, exclusions) for v in views]
    with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="spindle-view") as pool:
        return list(
            pool.map(
                lambda v: view_rows(tables_dir, registry.view(v), date, None, exclusions), views
            )
        )
