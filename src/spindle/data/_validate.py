"""Data validation of one ingested day against a trailing window of healthy days.

Checks return results, not exceptions (the caller decides what a FAIL blocks): missing
partitions, row counts and whether a loss is random or concentrated in slices (chi-square),
quarantine share, slice completeness (country, product type, discounted, partner), null rates
and distribution shift (PSI) from stored column statistics, the label rate, duplicate bursts,
late rows and additive schema changes (a WARN: ingestion keeps the new column).
"""

from __future__ import annotations

import datetime as dt
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa

from spindle.core import (
    SourceDeclaration,
    ValidationConfig,
    Verdict,
    open_dataset,
    sha256_json,
    table_exists,
)
from spindle.data import _checks as checks
from spindle.data._checks import Anomaly
from spindle.data._ingest import QUARANTINE_SCHEMA
from spindle.data._profile import load_profiles, profile_day, store_profile
from spindle.data._schemas import SCHEMAS
from spindle.data._window import HISTORY_DAYS, MIN_BASELINE_DAYS

_EVENTS = ("searches", "impressions", "purchases")
_SOURCES = (*_EVENTS, "products", "quarantine")
_PRODUCTS = "(SELECT DISTINCT ON (product_id, date) product_id, date, product_type, is_partner FROM products)"
# (source, dimension) -> SQL returning (date, slice, count) for the days in {days}.
SLICES: dict[tuple[str, str], str] = {
    (
        "searches",
        "country",
    ): "SELECT date, country, count(*) FROM searches WHERE date IN ({days}) GROUP BY ALL",
    ("impressions", "product_type"): "SELECT i.date, p.product_type, count(*) FROM impressions i "
    f"JOIN {_PRODUCTS} p ON p.product_id = i.product_id AND p.date = i.date WHERE i.date IN ({{days}}) GROUP BY ALL",
    ("impressions", "country"): "SELECT i.date, s.country, count(*) FROM impressions i "
    "JOIN searches s USING (search_id) WHERE i.date IN ({days}) GROUP BY ALL",
    (
        "purchases",
        "discounted",
    ): "SELECT date, discount_pct > 0, count(DISTINCT transaction_id) FROM purchases WHERE date IN ({days}) GROUP BY ALL",
    (
        "purchases",
        "partner",
    ): "SELECT u.date, p.is_partner, count(DISTINCT u.transaction_id) FROM purchases u "
    f"JOIN {_PRODUCTS} p ON p.product_id = u.product_id AND p.date = u.date WHERE u.date IN ({{days}}) GROUP BY ALL",
    (
        "purchases",
        "country",
    ): "SELECT u.date, s.country, count(DISTINCT u.transaction_id) FROM purchases u "
    "JOIN searches s USING (search_id) WHERE u.date IN ({days}) GROUP BY ALL",
}
# Numeric columns whose distribution is compared with history (purchases are the labels).
SHIFT_COLUMNS = (
    ("purchases", "price"),
    ("purchases", "discount_pct"),
    ("purchases", "quantity"),
    ("products", "list_price"),
    ("products", "discount_pct"),
    ("impressions", "position"),
)


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


def _connect(tables_dir: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute("SET enable_progress_bar = false")
    for source in _SOURCES:
        path = tables_dir / ("quarantine" if source == "quarantine" else f"raw/{source}")
        if table_exists(path):
            con.register(source, open_dataset(path))
        else:  # no partition of it yet: an empty table with every column the checks read
            con.register(source, _empty(source))
    return con


def _empty(source: str) -> pa.Table:
    if source == "quarantine":
        return QUARANTINE_SCHEMA.empty_table()
    columns = {**SCHEMAS[source].columns, "date": pa.string()}
    return pa.schema(list(columns.items())).empty_table()


def _in(days: list[str]) -> str:
    return ", ".join(f"'{d}'" for d in days) or "NULL"


def _by_day(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for day, key, n in con.execute(sql).fetchall():
        out.setdefault(str(day), {})[str(key)] = int(n)
    return out


def _verdict(anomalies: list[Anomaly]) -> Verdict:
    severities = {a.severity for a in anomalies}
    return "fail" if "fail" in severities else "warn" if "warn" in severities else "pass"


@dataclass
class _Day:
    """What the checks of one day share: connection, date, history and row counts."""

    con: duckdb.DuckDBPyConnection
    tables_dir: Path
    date: str
    history: list[str]
    counts: dict[str, dict[str, int]]

    def past_counts(self, source: str) -> list[int]:
        return [self.counts[source][d] for d in self.history if self.counts[source].get(d)]


def validate_day(
    tables_dir: Path,
    date: str,
    *,
    history_days: int = HISTORY_DAYS,
    reference: tuple[str, ...] | None = None,
    sources: dict[str, SourceDeclaration] | None = None,
    config: ValidationConfig | None = None,
) -> ValidationReport:
    """Validate the ingested day ``date`` against up to ``history_days`` earlier healthy days.

    Args:
        tables_dir: root of the Delta tables.
        date: the day, ``YYYY-MM-DD``.
        history_days: length of the trailing calendar window compared with (without ``reference``).
        reference: the reference days themselves (the pipeline passes the last healthy or
            accepted days, however far back); overrides ``history_days``.
        sources: the workspace's declared sources (None: the ingested tables, undeclared).
        config: the workspace's ``validation.yaml`` (None: the defaults).

    Returns:
        The report: ``pass | warn | fail`` with every anomaly and its evidence. The day's column
        statistics are stored in the ``stats`` table as a side effect (idempotent).
    """
    con = _connect(tables_dir)
    try:
        day = dt.date.fromisoformat(date)
        window = (
            sorted(reference)
            if reference is not None
            else [(day - dt.timedelta(days=i)).isoformat() for i in range(history_days, 0, -1)]
        )
        days = [*window, date]
        counts = {
            s: {
                k: v["n"]
                for k, v in _by_day(
                    con,
                    f"SELECT date, 'n', count(*) FROM {s} WHERE date IN ({_in(days)}) GROUP BY ALL",
                ).items()
            }
            for s in (*_EVENTS, "products")
        }
        # Labels count each transaction once: a duplicate burst must not look like more buyers.
        counts["transactions"] = {
            str(d): int(n)
            for d, n in con.execute(
                f"SELECT date, count(DISTINCT transaction_id) FROM purchases WHERE date IN ({_in(days)}) GROUP BY ALL"
            ).fetchall()
        }
        history = [d for d in window if counts["searches"].get(d, 0) > 0]
        ctx = _Day(con, tables_dir, date, history, counts)
        anomalies = _no_baseline(date, history)
        anomalies += _completeness(ctx)
        anomalies += _quarantine(ctx)
        anomalies += _duplicates(ctx)
        anomalies += _late_and_schema(ctx)
        anomalies += _statistics(ctx)
        if counts["transactions"].get(date) and counts["impressions"].get(date):
            past = [
                counts["transactions"][d] / counts["impressions"][d]
                for d in history
                if counts["transactions"].get(d) and counts["impressions"].get(d)
            ]
            observed = counts["transactions"][date] / counts["impressions"][date]
            anomalies += checks.label_rate("purchases", observed, past, "purchases per impression")
    finally:
        con.close()
    stats: dict[str, Any] = {"rows": {s: counts[s].get(date, 0) for s in _EVENTS}}
    return ValidationReport(
        date, _verdict(anomalies), tuple(anomalies), tuple(history), stats=stats
    )


def _no_baseline(date: str, history: list[str]) -> list[Anomaly]:
    if len(history) >= MIN_BASELINE_DAYS:
        return []
    return [
        Anomaly(
            "no_baseline",
            "all",
            "warn",
            f"{date} has {len(history)} reference day(s) (healthy or accepted earlier days; "
            f"{MIN_BASELINE_DAYS} needed): row counts, slice shares, null rates, distribution "
            "shift and the label rate were not compared with anything. Ingest and validate "
            "earlier healthy days, or `spindle validate accept` a day as the new normal.",
            expected=float(MIN_BASELINE_DAYS),
            observed=float(len(history)),
        )
    ]


def _completeness(ctx: _Day) -> list[Anomaly]:
    """Missing partitions, row counts, slice completeness and missing-data bias."""
    found: list[Anomaly] = []
    slices = {
        key: _by_day(ctx.con, sql.format(days=_in([*ctx.history, ctx.date])))
        for key, sql in SLICES.items()
    }
    searches = ctx.counts["searches"].get(ctx.date, 0)
    # A user's rows share a country and much else: the independent unit of a slice share is the
    # user, so the share tests divide counts by rows per user (not by rows).
    users = {
        str(src): int(n)
        for src, n in ctx.con.execute(
            f"SELECT 'searches', count(DISTINCT user_id) FROM searches WHERE date = '{ctx.date}' "
            f"UNION ALL SELECT 'purchases', count(DISTINCT user_id) FROM purchases WHERE date = '{ctx.date}'"
        ).fetchall()
    }
    rows = {
        "searches": searches,
        "impressions": ctx.counts["impressions"].get(ctx.date, 0),
        "purchases": ctx.counts["transactions"].get(ctx.date, 0),
    }
    per_user = {
        src: n / users[user_src]
        for src, n in rows.items()
        if users.get(user_src := "searches" if src == "impressions" else src)
    }
    found += checks.slice_shares(
        {
            key: (
                by_day.get(ctx.date, {}),
                [by_day[d] for d in ctx.history if d in by_day],
                per_user.get(key[0], 1.0),
            )
            for key, by_day in slices.items()
        }
    )
    for source in _EVENTS:
        observed = ctx.counts[source].get(ctx.date, 0)
        past_rows = ctx.past_counts(source)
        if observed == 0:
            found.append(
                Anomaly(
                    "missing_partition",
                    source,
                    "fail",
                    f"{source} has no rows for {ctx.date}: the whole day is missing (every slice "
                    "lost alike, so the loss itself is unbiased). Re-export and re-ingest the day, "
                    "or let training skip it with `training.allow_gaps: true`.",
                    expected=float(statistics.median(past_rows)) if past_rows else None,
                    observed=0.0,
                )
            )
            continue
        drop = checks.row_count(source, observed, past_rows)
        found += drop
        if drop and drop[0].kind == "row_count_drop" and drop[0].expected:
            dims = {
                dim: (by_day.get(ctx.date, {}), [by_day[d] for d in ctx.history if d in by_day])
                for (src, dim), by_day in slices.items()
                if src == source
            }
            cluster = observed / searches if source == "impressions" and searches else 1.0
            found.append(
                checks.missing_data_bias(source, observed, drop[0].expected, dims, cluster)
            )
    return found


def _quarantine(ctx: _Day) -> list[Anomaly]:
    rows = ctx.con.execute(
        f"SELECT source, reason, count(*) FROM quarantine WHERE date = '{ctx.date}' GROUP BY ALL ORDER BY 1, 3 DESC"
    ).fetchall()
    by_source: dict[str, dict[str, int]] = {}
    for source, reason, n in rows:
        by_source.setdefault(str(source), {})[str(reason)] = int(n)
    found = []
    for source, reasons in by_source.items():
        n = sum(reasons.values())
        total = n + ctx.counts.get(source, {}).get(ctx.date, 0)
        share = n / total if total else 1.0
        summary = "; ".join(f"{count} {reason}" for reason, count in reasons.items())
        found.append(
            Anomaly(
                "quarantined_rows",
                source,
                "fail" if share > 0.05 else "warn",
                f"{n} {source} rows quarantined ({share:.1%}): {summary}. The good rows were "
                "loaded; see the quarantine table (row_json, reason) and fix the producer.",
                expected=0.0,
                observed=float(n),
            )
        )
    return found


def _duplicates(ctx: _Day) -> list[Anomaly]:
    found = []
    if ctx.counts["purchases"].get(ctx.date):
        row = ctx.con.execute(
            f"SELECT count(*) - count(DISTINCT transaction_id) FROM purchases WHERE date = '{ctx.date}'"
        ).fetchall()[0]
        dups = int(row[0]) if row else 0
        share = dups / ctx.counts["purchases"][ctx.date]
        if dups:
            found.append(
                Anomaly(
                    "duplicate_burst",
                    "purchases",
                    "fail" if share >= 0.05 else "warn",
                    f"{dups} purchase rows ({share:.1%}) repeat a transaction_id; they are counted "
                    "once in features and labels. Check the order service for a retry loop.",
                    column="transaction_id",
                    expected=0.0,
                    observed=float(dups),
                )
            )
    bursts = ctx.con.execute(
        f"SELECT user_id, count(*) AS n FROM searches WHERE date = '{ctx.date}' "
        "GROUP BY user_id, time_bucket(INTERVAL 10 MINUTE, ts) ORDER BY n DESC LIMIT 1"
    ).fetchall()
    burst = bursts[0] if bursts else None
    if burst and int(burst[1]) >= 50:
        found.append(
            Anomaly(
                "duplicate_burst",
                "searches",
                "warn",
                f"user {burst[0]} made {burst[1]} searches within 10 minutes (a bot or a replay?); "
                "any load shedding samples with a keyed hash, so the sender cannot choose what is dropped",
                column="user_id",
                slice=f"user_id={burst[0]}",
                expected=0.0,
                observed=float(burst[1]),
            )
        )
    return found


def _late_and_schema(ctx: _Day) -> list[Anomaly]:
    found = []
    for source in _EVENTS:
        if not ctx.counts[source].get(ctx.date):
            continue
        row = ctx.con.execute(
            f"SELECT count(*) FILTER (WHERE strftime(ts, '%Y-%m-%d') < date), min(strftime(ts, '%Y-%m-%d')) "
            f"FROM {source} WHERE date = '{ctx.date}'"
        ).fetchall()[0]
        late = int(row[0]) if row else 0
        if late and late / ctx.counts[source][ctx.date] > 0.01:
            found.append(
                Anomaly(
                    "late_data",
                    source,
                    "warn",
                    f"{late} {source} rows in the {ctx.date} partition happened on earlier days "
                    f"(from {row[1] if row else '?'}): those days were incomplete when validated. "
                    "Re-validate them; training reads events by their time, so the rows are not lost.",
                    expected=0.0,
                    observed=float(late),
                )
            )
        known = set(SCHEMAS[source].columns) | {"date"}
        extra = [
            c for c in open_dataset(ctx.tables_dir / "raw" / source).schema.names if c not in known
        ]
        for column in extra:
            today, before = ctx.con.execute(
                f"SELECT count(\"{column}\") FILTER (WHERE date = '{ctx.date}'), "
                f'count("{column}") FILTER (WHERE date IN ({_in(ctx.history)})) FROM {source}'
            ).fetchall()[0]
            if today and not before:
                found.append(
                    Anomaly(
                        "schema_change",
                        source,
                        "warn",
                        f"{source} gained column {column!r} on {ctx.date}; ingestion kept it "
                        "(additive schema evolution). Add it to the source schema if features should use it.",
                        column=column,
                    )
                )
    return found


def _profiles(ctx: _Day) -> dict[str, dict[tuple[str, str], dict[str, Any]]]:
    """Column statistics of the day (computed and stored) and of its history (from ``stats``)."""
    today = profile_day(ctx.tables_dir, ctx.date)
    store_profile(ctx.tables_dir, ctx.date, today)
    stored = load_profiles(ctx.tables_dir, ctx.history)
    for day in ctx.history:
        if day not in stored:  # ingested before statistics existed: profile it once, keep it
            table = profile_day(ctx.tables_dir, day)
            store_profile(ctx.tables_dir, day, table)
            stored[day] = table.to_pylist()
    stored[ctx.date] = today.to_pylist()
    return {d: {(r["source"], r["column"]): r for r in rows} for d, rows in stored.items()}


def _statistics(ctx: _Day) -> list[Anomaly]:
    """Null rates and distribution shift (PSI over history deciles) per column."""
    profiles = _profiles(ctx)
    today = profiles[ctx.date]
    found: list[Anomaly] = []
    for (source, column), prof in sorted(today.items()):
        if not prof["count"]:
            continue
        past = [
            p[(source, column)]["nulls"] / p[(source, column)]["count"]
            for d in ctx.history
            if (p := profiles.get(d)) and (source, column) in p and p[(source, column)]["count"]
        ]
        found += checks.null_rate(source, column, prof["nulls"] / prof["count"], past)
    for source, column in SHIFT_COLUMNS:
        quantiles = [
            profiles[d][(source, column)]["quantiles"]
            for d in ctx.history
            if (source, column) in profiles.get(d, {})
            and profiles[d][(source, column)]["quantiles"]
        ]
        if len(quantiles) < 2 or not today.get((source, column), {}).get("count"):
            continue
        edges = sorted({round(float(x), 9) for x in np.median(np.array(quantiles), axis=0)})
        bins = _by_day(
            ctx.con,
            f'SELECT date, len(list_filter({edges}::DOUBLE[], lambda e: e <= "{column}"::DOUBLE)), count(*) '
            f'FROM {source} WHERE date IN ({_in([*ctx.history, ctx.date])}) AND "{column}" IS NOT NULL GROUP BY ALL',
        )
        n_bins = len(edges) + 1
        observed = np.array([bins.get(ctx.date, {}).get(str(b), 0) for b in range(n_bins)], float)
        expected = np.array(
            [sum(bins.get(d, {}).get(str(b), 0) for d in ctx.history) for b in range(n_bins)], float
        )
        found += checks.distribution_shift(
            source, column, observed, expected, label=source == "purchases"
        )
    return found


def report_json(report: ValidationReport) -> str:
    return json.dumps(report.properties(), indent=2, sort_keys=True)
