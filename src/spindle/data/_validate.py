"""Data validation of one ingested day against a trailing window of healthy days.

What is checked is declared in the workspace (validation.yaml, see ``core.ValidationConfig``;
the sources' calendars say which days are expected gaps). Checks return results, not
exceptions (the caller decides what a FAIL blocks): missing partitions, row counts and whether
a loss is random or concentrated in slices (chi-square), quarantine share, slice shares,
duplicate keys and bursts, late rows, additive schema changes (a WARN: ingestion keeps the new
column), null rates and distribution shift (PSI) from stored column statistics, label rates.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from spindle.core import (
    ConfigError,
    Location,
    SourceCheck,
    SourceDeclaration,
    ValidationConfig,
    Verdict,
    lock_connection,
    open_dataset,
    sha256_json,
    table_exists,
)
from spindle.data import _checks as checks
from spindle.data import _day_checks as days
from spindle.data._checks import Anomaly
from spindle.data._day_checks import Day as _Day
from spindle.data._dimensions import register_dimension
from spindle.data._profile import load_profiles, profile_day, store_profile


@dataclass(frozen=True)
class ValidationReport:
    """The verdict for one day with every anomaly found."""

    kind = "validation_report"
    date: str
    verdict: Verdict
    anomalies: tuple[Anomaly, ...]
    history_days: tuple[str, ...]
    uri: str = ""
    # the verdict of each reference day when it was chosen (``pass``, ``warn``, ``accepted``)
    history_verdicts: dict[str, str] = field(default_factory=dict, compare=False, hash=False)
    stats: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)
    # how many times the day's ingest was undone before this validation (0: never): a report of
    # a re-ingested day is a new artifact even when its content is the same as before the undo
    ingest_round: int = 0

    @property
    def content_hash(self) -> str:
        return sha256_json(self.properties())

    @property
    def id(self) -> str:
        return f"validation:{self.date}:{self.content_hash[:12]}"

    def properties(self) -> dict[str, Any]:
        return (
            {
                "date": self.date,
                "verdict": self.verdict,
                "anomalies": [a.to_dict() for a in self.anomalies],
                "history_days": list(self.history_days),
                "stats": self.stats,
            }
            | ({"ingest_round": self.ingest_round} if self.ingest_round else {})
            | (
                {"history_verdicts": dict(sorted(self.history_verdicts.items()))}
                if self.history_verdicts
                else {}
            )
        )


@dataclass(frozen=True)
class ValidationAccept:
    """An operator's acceptance of a day into the reference window (e.g. a real, lasting change)."""

    kind = "validation_accept"
    date: str
    reason: str
    verdict: str  # the day's verdict when it was accepted
    uri: str = ""

    @property
    def content_hash(self) -> str:
        return sha256_json(self.properties())

    @property
    def id(self) -> str:
        return f"validation_accept:{self.date}:{self.content_hash[:12]}"

    def properties(self) -> dict[str, Any]:
        return {"date": self.date, "reason": self.reason, "verdict": self.verdict}


def _declared(
    tables_dir: Location | Path, sources: dict[str, SourceDeclaration] | None
) -> dict[str, SourceDeclaration | None]:
    """The declarations by name; without them, every ingested table (undeclared)."""
    if sources is not None:
        return dict(sources)
    raw = tables_dir / "raw"
    names = sorted(p.name for p in raw.iterdir() if p.is_dir()) if raw.is_dir() else []
    return {name: None for name in names}


def _dimensions(declared: dict[str, SourceDeclaration | None]) -> list[str]:
    """The declared sources that are dimensions (stored once per change, see ``_dimensions``)."""
    return [name for name, decl in declared.items() if decl is not None and decl.layout == "static"]


def _connect(
    tables_dir: Location | Path, declared: dict[str, SourceDeclaration | None], until: str
) -> duckdb.DuckDBPyConnection:
    """A connection with each declared source (and ``quarantine``) as a table of every day up
    to ``until`` (a dimension's rows of a day are its latest copy at or before it)."""
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    lock_connection(con)  # every table is Arrow: a check's SQL reads no file
    for name, decl in declared.items():
        path = tables_dir / "raw" / name
        if table_exists(path) and name in _dimensions(declared):
            register_dimension(con, name, path, until)
        elif table_exists(path):
            con.register(name, open_dataset(path))
        elif decl is not None:  # no partition of it yet: an empty table of its columns
            columns = {n: c.arrow_type() for n, c in decl.columns.items()}
            columns.setdefault("date", pa.string())
            con.register(name, pa.schema(list(columns.items())).empty_table())
    quarantine = tables_dir / "quarantine"
    con.register(
        "quarantine",
        open_dataset(quarantine) if table_exists(quarantine) else _NO_QUARANTINE.empty_table(),
    )
    return con


_NO_QUARANTINE = pa.schema(
    [("source", pa.string()), ("reason", pa.string()), ("date", pa.string())]
)


def _verdict(anomalies: list[Anomaly]) -> Verdict:
    """The worst severity of the anomalies (``pass`` without any)."""
    severities = {a.severity for a in anomalies}
    return "fail" if "fail" in severities else "warn" if "warn" in severities else "pass"


def validate_day(
    tables_dir: Location | Path,
    date: str,
    *,
    history_days: int | None = None,
    reference: tuple[str, ...] | None = None,
    sources: dict[str, SourceDeclaration] | None = None,
    config: ValidationConfig | None = None,
    missing: Collection[str] = (),
) -> ValidationReport:
    """Validate the ingested day ``date`` against earlier healthy days, as declared.

    Args:
        tables_dir: root of the Delta tables.
        date: the day, ``YYYY-MM-DD``.
        history_days: length of the trailing calendar window compared with when there is no
            ``reference`` (None: ``config.history_days``).
        reference: the reference days themselves (the pipeline passes the last healthy or
            accepted days, however far back); overrides ``history_days``.
        sources: the workspace's declared sources (None: every ingested table, undeclared:
            no calendar, key, event-time or schema checks).
        config: the workspace's validation.yaml (None: the defaults, every source checked).
        missing: the sources ingest found no partition of that day (``IngestResult.
            missing_sources``): each a ``missing_partition`` FAIL, even when the source is
            often empty. Without it, an empty day FAILs when the reference makes it unlikely.

    Returns:
        The report: ``pass | warn | fail`` with every anomaly and its evidence. The day's column
        statistics are stored in the ``stats`` table as a side effect (idempotent).

    Raises:
        ConfigError: a check's SQL does not run (names validation.yaml, the check and DuckDB's
            message), or is more than one SELECT over the sources (refused before it runs).
    """
    config = config or ValidationConfig()
    declared = _declared(tables_dir, sources)
    refused = config.sql_problems(declared)
    if refused:  # validated at load too; a config built in code gets here unchecked
        raise ConfigError("validation.yaml", refused)
    con = _connect(tables_dir, declared, date)
    try:
        tables = {r[0] for r in con.execute("SHOW TABLES").fetchall()}
        todo = [c for c in config.checks_for(declared) if c.source in tables]
        day = dt.date.fromisoformat(date)
        n = history_days or config.history_days
        window = (
            sorted(reference)
            if reference is not None
            else [(day - dt.timedelta(days=i)).isoformat() for i in range(n, 0, -1)]
        )
        counts = {c.source: _counts(con, c.source, [*window, date]) for c in todo}
        # the pipeline's reference days were ingested; a calendar window may hold days without
        # data, which are no reference
        history = (
            window
            if reference is not None
            else [
                d
                for d in window
                if any(n.get(d) for s, n in counts.items() if s not in _dimensions(declared))
            ]
        )
        ctx = _Day(con, date, history, counts, config, declared, frozenset(missing))
        anomalies = _no_baseline(date, history, config.min_baseline_days)
        anomalies += _per_check(ctx, todo)
        anomalies += days.quarantine(ctx)
        anomalies += _statistics(ctx, tables_dir, todo)
    finally:
        con.close()
    stats: dict[str, Any] = {"rows": {c.source: counts[c.source].get(date, 0) for c in todo}}
    if ctx.slices:
        stats["slices"] = ctx.slices
    if ctx.notes:
        stats["notes"] = list(ctx.notes)
    return ValidationReport(
        date, _verdict(anomalies), tuple(anomalies), tuple(history), stats=stats
    )


def _counts(con: duckdb.DuckDBPyConnection, source: str, dates: list[str]) -> dict[str, int]:
    """Rows of ``source`` per day of ``dates`` (days without rows are absent)."""
    sql = (
        f"SELECT date, count(*) FROM {days.quote(source)} "
        f"WHERE date IN ({days.in_list(dates)}) GROUP BY ALL"
    )
    return {str(d): int(n) for d, n in con.execute(sql).fetchall()}


def _per_check(ctx: _Day, todo: list[SourceCheck]) -> list[Anomaly]:
    """Every check's own findings, then the slice shares of all of them tested together."""
    found: list[Anomaly] = []
    shares: dict[tuple[str, str], tuple[dict[str, int], list[dict[str, int]], float]] = {}
    for check in todo:
        slices, cluster = days.slice_counts(ctx, check)
        reference = _slice_reference(ctx, check)
        for column, by_day in slices.items():
            past = [by_day[d] for d in reference if d in by_day]
            shares[(check.source, column)] = (by_day.get(ctx.date, {}), past, cluster)
            ctx.slices.setdefault(check.source, {})[column] = _top(by_day.get(ctx.date, {}))
        if check.volume:
            found += days.volume(ctx, check, slices, cluster)
        found += days.duplicates(ctx, check)
        found += days.bursts(ctx, check)
        columns = [
            str(r[0]) for r in ctx.con.execute(f"DESCRIBE {days.quote(check.source)}").fetchall()
        ]
        found += days.late_and_schema(ctx, check, columns)
        found += days.label_rate(ctx, check)
    return checks.slice_shares(shares) + found


SLICES_STORED = 50


def _top(counts: dict[str, int]) -> dict[str, int]:
    """A day's rows by slice as stored with its report: the :data:`SLICES_STORED` largest
    slices, the rest summed as ``(other)``, so a column of many values stays a small record."""
    if len(counts) <= SLICES_STORED:
        return dict(counts)
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return dict(ranked[:SLICES_STORED]) | {"(other)": sum(n for _, n in ranked[SLICES_STORED:])}


def _slice_reference(ctx: _Day, check: SourceCheck) -> list[str]:
    """The reference days a check's slice shares are compared with: with a ``same_weekday``
    baseline, the reference days of today's weekday when there are enough of them (a weekly
    rhythm moves the mix too: flights' Saturdays fly a larger share from JFK), else all."""
    if ctx.config.baseline(check) != "same_weekday":
        return ctx.history
    same = ctx.same_weekday_history()
    return same if len(same) >= ctx.config.min_baseline_days else ctx.history


def _no_baseline(date: str, history: list[str], needed: int) -> list[Anomaly]:
    if len(history) >= needed:
        return []
    return [
        Anomaly(
            "no_baseline",
            "all",
            "warn",
            f"{date} has {len(history)} reference day(s) (healthy or accepted earlier days; "
            f"{needed} needed, validation.yaml min_baseline_days): row counts, slice shares, "
            "null rates, distribution shift and label rates were not compared with anything. "
            "Ingest and validate earlier healthy days, or `spindle validate accept` a day as the "
            "new normal.",
            expected=float(needed),
            observed=float(len(history)),
        )
    ]


def _profiles(
    ctx: _Day, tables_dir: Location | Path, sources: list[str]
) -> dict[str, dict[tuple[str, str], dict[str, Any]]]:
    """Column statistics of the day (computed and stored) and of its history (from ``stats``)."""
    dims = _dimensions({s: ctx.declared.get(s) for s in sources})
    today = profile_day(tables_dir, ctx.date, sources, dims)
    store_profile(tables_dir, ctx.date, today)
    stored = load_profiles(tables_dir, ctx.history)
    for day in ctx.history:
        profiled = {r["source"] for r in stored.get(day, [])}
        if day not in stored or not set(sources) <= profiled:
            # ingested before statistics existed (or before its source was checked): profile
            # it once, keep it
            table = profile_day(tables_dir, day, sources, dims)
            store_profile(tables_dir, day, table)
            stored[day] = table.to_pylist()
    stored[ctx.date] = today.to_pylist()
    return {d: {(r["source"], r["column"]): r for r in rows} for d, rows in stored.items()}


def _statistics(ctx: _Day, tables_dir: Location | Path, todo: list[SourceCheck]) -> list[Anomaly]:
    """Null rates of every column of the checked sources, and drift (PSI) of declared columns."""
    profiles = _profiles(ctx, tables_dir, [c.source for c in todo])
    today = profiles[ctx.date]
    found: list[Anomaly] = []
    jumps = {c.source: c.null_rate_jump_max or ctx.config.null_rate_jump_max for c in todo}
    exempt = {(c.source, column) for c in todo for column in c.null_rate_exempt}
    for (source, column), prof in sorted(today.items()):
        if not prof["count"] or source not in jumps or (source, column) in exempt:
            continue
        past = [
            p[(source, column)]["nulls"] / p[(source, column)]["count"]
            for d in ctx.history
            if (p := profiles.get(d)) and (source, column) in p and p[(source, column)]["count"]
        ]
        rate = prof["nulls"] / prof["count"]
        found += checks.null_rate(source, column, rate, past, jumps[source])
    for check in todo:
        for column in [*check.drift, *check.label_drift]:
            found += _drift(ctx, profiles, check.source, column, column in check.label_drift)
    return found


def _drift(
    ctx: _Day,
    profiles: dict[str, dict[tuple[str, str], dict[str, Any]]],
    source: str,
    column: str,
    label: bool,
) -> list[Anomaly]:
    """PSI of one column today against the reference, in bins of the reference's deciles."""
    quantiles = [
        profiles[d][(source, column)]["quantiles"]
        for d in ctx.history
        if (source, column) in profiles.get(d, {}) and profiles[d][(source, column)]["quantiles"]
    ]
    if len(quantiles) < 2 or not profiles[ctx.date].get((source, column), {}).get("count"):
        return []
    edges = sorted({round(float(x), 9) for x in np.median(np.array(quantiles), axis=0)})
    col = days.quote(column)
    bins: dict[str, dict[str, int]] = {}
    for d, b, n in ctx.con.execute(
        f"SELECT date, len(list_filter({edges}::DOUBLE[], lambda e: e <= {col}::DOUBLE)), "
        f"count(*) FROM {days.quote(source)} "
        f"WHERE date IN ({days.in_list([*ctx.history, ctx.date])}) AND {col} IS NOT NULL "
        "GROUP BY ALL"
    ).fetchall():
        bins.setdefault(str(d), {})[str(b)] = int(n)
    n_bins = len(edges) + 1
    observed = np.array([bins.get(ctx.date, {}).get(str(b), 0) for b in range(n_bins)], float)
    expected = np.array(
        [sum(bins.get(d, {}).get(str(b), 0) for d in ctx.history) for b in range(n_bins)], float
    )
    return checks.distribution_shift(source, column, observed, expected, label, ctx.config)


def report_json(report: ValidationReport) -> str:
    return json.dumps(report.properties(), indent=2, sort_keys=True)
