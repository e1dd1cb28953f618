"""A model's labelled examples in DuckDB: sources as of the cutoff, the examples SQL, the joins.

A training set for event days ``dates`` is built inside one DuckDB connection:

1. each source the examples read becomes a table of the rows known at the run's *cutoff* (the
   end of the last day built): rows with ``event_time`` in ``[window_start, cutoff)`` for a
   source with an event time, rows whose ``date`` is on or before the cutoff's day otherwise
   (a daily snapshot is published at the start of its day). A source without data yet is an
   empty table of its declared columns;
2. each pinned feature view's table ``features/<view>`` is copied for
   ``[window_start - ttl, cutoff)`` (its entity keys, kept columns, pinned columns);
3. the examples SQL runs with ``window_start``, ``window_end`` and ``cutoff`` substituted
   (outside string literals and quoted names); rows whose event day is not one of ``dates``
   are dropped, and so are rows whose label is not mature (``event_time + label_delay`` after
   the cutoff), which are counted;
4. every view is ASOF-joined on its keys as of the event time (``feature_ts <= event_time``),
   its pinned columns nulled past its TTL, with ``<view>_feature_age_s`` (in Arrow on an
   in-memory connection, ``_asof.py``; DuckDB's ASOF join on a spilling one);
5. a declared ``examples.weight`` column is checked on the joined rows (numeric, finite,
   >= 0, not all zero): the trainers weight each row's loss by it. It stays an ordinary
   column of the training set, under its own name; it is never a feature.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from spindle.core import (
    SQL_RULES,
    ConfigError,
    DataError,
    FeatureError,
    Location,
    ModelConfig,
    SourceDeclaration,
    open_dataset,
    select_problem,
    table_exists,
)
from spindle.core import quote_identifier as q
from spindle.features._cutoff import substitute_times
from spindle.features._definitions import FeatureDefinition
from spindle.features._pit import AsofSide, create_joined, ttl_select
from spindle.features._retracted import Exclusion, exclusion_condition

EXAMPLES_TABLE = "__spindle_examples"
ROWS_TABLE = "__spindle_rows"


@dataclass(frozen=True)
class Window:
    """The event days built, their span and the run's cutoff (the end of the last day).

    An example enters the training set only if its event day is one of ``dates`` and its
    label is mature at the cutoff; sources are visible only as of the cutoff.

    With ``label_delay_s`` (a holdout, :func:`~spindle.features.stream_rows` ``holdout=True``)
    an example belongs to the day its label *matures* (``event_time + label_delay``), not to
    its event day: the window starts on the day ``label_delay`` earlier, so a day's holdout holds the
    examples that became known that day. None of them was mature when the day's candidate was
    trained (its cutoff is the day's start), and every example is held out exactly once.
    """

    dates: tuple[str, ...]
    label_delay_s: int = 0

    @property
    def start(self) -> dt.datetime:
        # a holdout's sources are visible from the start of its earliest example's event day,
        # as a training window's are from the start of its first day
        first = dt.datetime.fromisoformat(min(self.dates))
        earliest = first - dt.timedelta(seconds=self.label_delay_s)
        return dt.datetime.combine(earliest.date(), dt.time())

    @property
    def end(self) -> dt.datetime:
        return dt.datetime.fromisoformat(max(self.dates)) + dt.timedelta(days=1)

    @property
    def cutoff(self) -> dt.datetime:
        return self.end

    def literals(self) -> dict[str, str]:
        """The SQL text of ``window_start``, ``window_end``, ``cutoff`` and ``cutoff_date``."""
        return {
            "window_start": f"TIMESTAMP '{self.start.isoformat(sep=' ')}'",
            "window_end": f"TIMESTAMP '{self.end.isoformat(sep=' ')}'",
            "cutoff": f"TIMESTAMP '{self.cutoff.isoformat(sep=' ')}'",
            "cutoff_date": f"DATE '{self.cutoff.date().isoformat()}'",
        }


@dataclass(frozen=True)
class ViewJoin:
    """One pinned feature view as a training set joins it."""

    name: str
    keys: tuple[str, ...]
    ttl_s: int | None
    keep: tuple[str, ...]
    columns: tuple[str, ...]

    @property
    def table(self) -> str:
        return f"features/{self.name}"

    @property
    def age_column(self) -> str:
        return f"{self.name}_feature_age_s"


def view_joins(definitions: Sequence[FeatureDefinition]) -> list[ViewJoin]:
    """The views of the pinned (non-request) features, in order of their first pin."""
    by_view: dict[str, list[FeatureDefinition]] = {}
    for d in definitions:
        if d.computation != "request":
            by_view.setdefault(d.group, []).append(d)
    return [
        ViewJoin(
            name,
            tuple(defs[0].entity_keys),
            defs[0].ttl_s,
            tuple(k for k in defs[0].keep if k not in defs[0].entity_keys),
            tuple(d.column for d in defs),
        )
        for name, defs in by_view.items()
    ]


def model_file(config: ModelConfig) -> str:
    """Where a model's declaration lives, for messages."""
    return f"models/{config.name}.yaml"


def source_declarations(
    config: ModelConfig, sources: Mapping[str, SourceDeclaration]
) -> list[SourceDeclaration]:
    """The declarations of the sources the examples read.

    Raises:
        ConfigError: an ``examples.sources`` entry is not a declared source.
    """
    unknown = [s for s in config.examples.sources if s not in sources]
    if unknown:
        raise ConfigError(
            model_file(config),
            [
                f"key 'examples.sources': {', '.join(unknown)} not declared under sources/ "
                f"(declared: {', '.join(sorted(sources)) or 'none'}); declare it or remove it"
            ],
        )
    return [sources[s] for s in config.examples.sources]


def register_source(
    con: duckdb.DuckDBPyConnection,
    tables_dir: Location | Path,
    decl: SourceDeclaration,
    version: int | None,
    window: Window,
    exclusions: Sequence[Exclusion] = (),
) -> None:
    """Create view ``<source>`` of the rows known at the cutoff (an empty table without data),
    less the rows the recorded retractions ``exclusions`` name (see ``_retracted``)."""
    path = tables_dir / "raw" / decl.name
    if version is None or not table_exists(path):
        columns = ", ".join(f"{q(c)} {spec.duckdb_type}" for c, spec in decl.columns.items())
        con.execute(f"CREATE TABLE {q(decl.name)} ({columns})")
        return
    dataset = open_dataset(path, version)
    lit = window.literals()
    if decl.event_time is not None:
        ts = q(decl.event_time.column)
        where = f"{ts} >= {lit['window_start']} AND {ts} < {lit['cutoff']}"
    elif "date" in dataset.schema.names:  # Delta keeps the partition's date as ISO text
        text = pa.types.is_string(dataset.schema.field("date").type)
        where = f"CAST(date AS DATE) <= {lit['cutoff_date']}"
        if text:  # compared as text, so the dataset skips later partitions unread
            where = f"date <= '{window.cutoff.date().isoformat()}'"
    else:
        where = "true"
    # A view over the dataset, not a copy: the examples SQL reads only the columns and rows it
    # needs (projection and filter pushdown), and its result is what gets materialised.
    hidden = f"__spindle_src_{decl.name}"
    con.register(hidden, dataset)
    if exclusions:
        where += " AND " + exclusion_condition(con, decl.name, dataset.schema.names, exclusions)
    con.execute(f"CREATE VIEW {q(decl.name)} AS SELECT * FROM {q(hidden)} WHERE {where}")


def copy_view(
    con: duckdb.DuckDBPyConnection,
    tables_dir: Location | Path,
    view: ViewJoin,
    version: int | None,
    window: Window,
    *,
    examples_only: bool = False,
) -> None:
    """Create table ``__spindle_view_<view>`` of the view's rows the window can use.

    ``examples_only``: keep only the rows whose keys an example of ``__spindle_examples`` has
    (a semi-join while copying: a part of a partitioned build holds its own entities' rows,
    not every entity's; the ASOF join matches by key, so its result is the same).

    Raises:
        FeatureError: the view has no table yet, or lacks a pinned column (backfill it).
    """
    path = tables_dir / view.table
    if version is None or not table_exists(path):
        raise FeatureError(
            f"feature view {view.name} has no table at {path} yet; compute it first "
            "(`spindle features backfill` or `spindle ingest`)"
        )
    dataset = open_dataset(path, version)
    needed = [*view.keys, *view.keep, *view.columns, "feature_ts"]
    missing = [c for c in needed if c not in dataset.schema.names]
    if missing:
        raise FeatureError(
            f"feature view {view.name} ({path}) lacks column(s) {', '.join(missing)}: "
            f"backfill the pinned feature(s) first (`spindle features backfill`)"
        )
    lit = window.literals()
    where = f"feature_ts < {lit['cutoff']}"
    if view.ttl_s is not None:
        where += f" AND feature_ts >= {lit['window_start']} - INTERVAL {int(view.ttl_s)} SECOND"
    if examples_only:
        keys = ", ".join(q(k) for k in view.keys)
        where += f" AND ({keys}) IN (SELECT DISTINCT {keys} FROM {EXAMPLES_TABLE})"
    con.register("__spindle_src", dataset)
    try:
        con.execute(
            f"CREATE TABLE {q('__spindle_view_' + view.name)} AS SELECT "
            f"{', '.join(q(c) for c in needed)} FROM __spindle_src WHERE {where}"
        )
    except duckdb.OutOfMemoryException:
        raise
    except duckdb.Error as exc:
        if not examples_only:
            raise
        first = str(exc).strip().splitlines()[0]
        raise FeatureError(
            f"reading feature view {view.name}'s rows of the part's entities failed ({first}): "
            f"do the examples' {', '.join(view.keys)} columns have the view's key types?"
        ) from None
    finally:
        con.unregister("__spindle_src")


def run_examples(
    con: duckdb.DuckDBPyConnection, config: ModelConfig, window: Window
) -> tuple[list[str], int]:
    """Run the examples SQL into ``__spindle_examples``: the window's days, mature labels only.

    Returns:
        The examples' columns, and how many examples of the window were left out because
        their label was not mature at the cutoff.

    Raises:
        ConfigError: the SQL fails (DuckDB's message), or does not produce the declared
            ``event_time``, ``label``, ``group_key`` or ``weight`` column.
    """
    ex = config.examples
    found = select_problem(ex.sql, ex.sources)
    if found is not None:  # validated at load too; a config built in code gets here unchecked
        raise ConfigError(
            model_file(config),
            [f"key 'examples.sql': examples.sql {found}; {SQL_RULES['examples']}"],
        )
    sql = substitute_times(ex.sql, window.literals())
    try:
        columns = [c[0] for c in con.sql(f"SELECT * FROM ({sql}) LIMIT 0").description]
    except duckdb.OutOfMemoryException:
        raise
    except duckdb.Error as exc:
        message = " ".join(str(exc).split())
        raise ConfigError(
            model_file(config), [f"key 'examples.sql': DuckDB cannot run it: {message}"]
        ) from exc
    declared: dict[str, str | None] = {"event_time": ex.event_time, "label": ex.label}
    declared |= {"group_key": ex.group_key, "weight": ex.weight}
    declared |= {"partition_key": ex.partition_key}
    problems = [
        f"key 'examples.{key}': column {column!r} is not produced by examples.sql "
        f"(it produces {', '.join(columns)})"
        for key, column in declared.items()
        if column is not None and column not in columns
    ]
    if problems:
        raise ConfigError(model_file(config), problems)
    ts, days = q(ex.event_time), ", ".join(f"DATE '{d}'" for d in sorted(window.dates))
    mature = f"{ts} + INTERVAL {ex.label_delay_s} SECOND <= {window.literals()['cutoff']}"
    day = ts  # the day an example belongs to: its event's, or (a holdout) its label's
    if window.label_delay_s:
        day = f"{ts} + INTERVAL {window.label_delay_s} SECOND"
    _execute(
        con,
        f"CREATE TABLE {EXAMPLES_TABLE} AS SELECT *, {mature} AS __spindle_mature FROM ({sql}) "
        f"WHERE CAST({day} AS DATE) IN ({days})",
        "key 'examples.sql' failed while running",
        config,
    )
    row = con.execute(
        f"SELECT count(*) FROM {EXAMPLES_TABLE} WHERE NOT __spindle_mature"
    ).fetchone()
    return columns, int(row[0]) if row else 0


def keep_part(con: duckdb.DuckDBPyConnection, config: ModelConfig, part: tuple[int, int]) -> int:
    """Keep in ``__spindle_examples`` only part ``i`` of ``n`` (``part``): the examples whose
    ``examples.partition_key`` hashes (DuckDB's ``hash``) to ``i`` modulo ``n``.

    Every example is in exactly one part (a null key too: it hashes like any value), so the
    parts' rows together are the whole training set's.

    Returns:
        The part's examples left out because their label was not mature at the cutoff.
    """
    index, count = part
    key = config.examples.partition_key
    if key is None:  # the config refuses partitions > 1 without a key
        raise ValueError("keep_part needs examples.partition_key")
    con.execute(f"DELETE FROM {EXAMPLES_TABLE} WHERE hash({q(key)}) % {count} <> {index}")
    (row,) = con.execute(  # fetched whole: the connection is free for the next statement
        f"SELECT count(*) FROM {EXAMPLES_TABLE} WHERE NOT __spindle_mature"
    ).fetchall()
    return int(row[0])


def _execute(con: duckdb.DuckDBPyConnection, sql: str, what: str, config: ModelConfig) -> None:
    """Run ``sql``; a DuckDB error (other than running out of memory) becomes one line naming
    ``what`` failed and the model file."""
    try:
        con.execute(sql)
    except duckdb.OutOfMemoryException:
        raise
    except duckdb.Error as exc:
        message = " ".join(str(exc).split())
        raise ConfigError(model_file(config), [f"{what}: DuckDB: {message}"]) from exc


def _fresh(view: ViewJoin, alias: str, event_time: str) -> list[str]:
    keep = [f"{alias}.{q(c)}" for c in view.keep]
    return [*keep, *ttl_select(alias, view.columns, view.ttl_s, view.age_column, "e", event_time)]


def _joins_sql(ev: str, columns: list[str], views: Sequence[ViewJoin]) -> str:
    """DuckDB's query of the mature examples (event time ``ev``) ASOF-joined with ``views``."""
    select, joins = [f"e.{q(c)}" for c in columns], []
    for i, view in enumerate(views):
        alias = f"v{i}"
        select += _fresh(view, alias, ev)
        on = " AND ".join(f"e.{q(k)} = {alias}.{q(k)}" for k in view.keys)
        joins.append(
            f"ASOF LEFT JOIN {q('__spindle_view_' + view.name)} {alias} "
            f"ON {on} AND e.{q(ev)} >= {alias}.feature_ts"
        )
    return (
        f"SELECT {', '.join(select)} FROM {EXAMPLES_TABLE} e {' '.join(joins)} "
        "WHERE e.__spindle_mature"
    )


def join_views(
    con: duckdb.DuckDBPyConnection,
    config: ModelConfig,
    columns: list[str],
    views: Sequence[ViewJoin],
) -> None:
    """Create ``__spindle_rows``: the mature examples with every view ASOF-joined on its keys.

    Kept view columns are not nulled past the TTL (they describe the entity, e.g. for
    retrieval and request features, as the online store serves them); pinned features are.

    Raises:
        ConfigError: the examples lack a view's key column, a view's column has the name of an
            example column or of another view's column, or the join fails (e.g. a key of
            another type than the view's).
    """
    problems, taken = [], set(columns)
    for view in views:
        problems += _key_problems(view, columns)
        for c in (*view.keep, *view.columns, view.age_column):
            if c in taken:
                problems.append(f"column {c!r} of feature view {view.name} is already a column")
            taken.add(c)
    if problems:
        raise ConfigError(model_file(config), problems)
    ev = config.examples.event_time
    sql = _joins_sql(ev, columns, views)
    examples = (
        f"(SELECT {', '.join(q(c) for c in columns)} FROM {EXAMPLES_TABLE} WHERE __spindle_mature)"
    )
    sides = [
        AsofSide(q("__spindle_view_" + v.name), v.keys, v.columns, v.ttl_s, v.age_column, v.keep)
        for v in views
    ]
    if views and create_joined(con, ROWS_TABLE, sql, examples, sides, ev):
        return  # joined in Arrow (an in-memory connection): the same rows, faster
    names = ", ".join(v.name for v in views)
    _execute(
        con,
        f"CREATE TABLE {ROWS_TABLE} AS {sql}",
        f"joining feature view(s) {names} to the examples on their keys failed (do the "
        f"examples' key and {config.examples.event_time!r} columns have the views' types?)",
        config,
    )


def _key_problems(view: ViewJoin, columns: Sequence[str]) -> list[str]:
    missing = [k for k in view.keys if k not in columns]
    if not missing:
        return []
    return [
        f"key 'examples.sql': feature view {view.name} joins on {', '.join(view.keys)} "
        f"but the examples lack {', '.join(missing)}; select them in examples.sql"
    ]


def check_view_keys(config: ModelConfig, columns: Sequence[str], views: Sequence[ViewJoin]) -> None:
    """Raise unless the examples have every view's key columns (before a view is read for
    the examples' entities only; :func:`join_views` says the same with its other checks).

    Raises:
        ConfigError: the examples lack a view's key column.
    """
    problems = [p for view in views for p in _key_problems(view, columns)]
    if problems:
        raise ConfigError(model_file(config), problems)


def order_by(config: ModelConfig, columns: list[str]) -> str:
    """The rows' order: event time, then every example column left to right (a total order,
    so a rebuild gives the same rows in the same order)."""
    ev = config.examples.event_time
    return ", ".join([q(ev), *(q(c) for c in columns if c != ev)])


_NUMERIC = (
    *("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT"),
    *("UINTEGER", "UBIGINT", "UHUGEINT", "FLOAT", "DOUBLE", "DECIMAL"),
)


def check_weights(con: duckdb.DuckDBPyConnection, config: ModelConfig, columns: list[str]) -> None:
    """Check the declared ``examples.weight`` column of ``__spindle_rows`` (no-op without one).

    Raises:
        ConfigError: the column is not numeric.
        DataError: a weight is null, not finite or negative (names the first such row in the
            training set's order, its event time and value), or every weight is zero.
    """
    column = config.examples.weight
    if column is None:
        return
    w = q(column)
    kind = str(con.sql(f"SELECT {w} FROM {ROWS_TABLE} LIMIT 0").types[0])
    if not kind.startswith(_NUMERIC):
        raise ConfigError(
            model_file(config),
            [
                f"key 'examples.weight': column {column!r} is {kind}, not a number; select a "
                "numeric weight in examples.sql (e.g. CAST(... AS DOUBLE))"
            ],
        )
    weight = f"CAST({w} AS DOUBLE)"
    bad = f"{w} IS NULL OR NOT isfinite({weight}) OR {weight} < 0"
    # fetchall, not fetchone: a result left unfinished blocks the connection's next query
    (row,) = con.execute(
        f"SELECT count(*) FILTER ({bad}), count(*) FILTER ({weight} > 0), count(*) "
        f"FROM {ROWS_TABLE}"
    ).fetchall()
    n_bad, n_positive, n_rows = (int(x) for x in row)
    where = f"{model_file(config)}: key 'examples.weight': column {column!r}"
    if n_bad:
        first = _first_bad(con, config, columns, bad)
        raise DataError(
            f"{where} must be finite and >= 0; {n_bad} row(s) are not ({first}); fix the "
            "weight in examples.sql (e.g. coalesce(greatest(w, 0), 0))"
        )
    if n_rows and not n_positive:
        raise DataError(
            f"{where} is 0 on all {n_rows} rows of the training set: there is nothing to "
            "learn from; give some examples a positive weight in examples.sql"
        )


def _first_bad(
    con: duckdb.DuckDBPyConnection, config: ModelConfig, columns: list[str], bad: str
) -> str:
    """``first: row N, <event_time> = T, weight = V`` of the first bad row in training order."""
    ev, w = config.examples.event_time, config.examples.weight
    assert w is not None
    found = con.execute(
        f"SELECT n, {q(ev)}, {q(w)} FROM (SELECT *, row_number() OVER (ORDER BY "
        f"{order_by(config, columns)}) - 1 AS n FROM {ROWS_TABLE}) WHERE {bad} ORDER BY n LIMIT 1"
    ).fetchone()
    if found is None:
        return "first not found"
    return f"first: row {found[0]}, {ev} = {found[1]}, weight = {found[2]}"
