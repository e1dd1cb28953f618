"""The checks of one ingested day that read the tables, as the workspace's validation.yaml says.

Each function takes the day (:class:`Day`: connection, date, reference days, row counts, the
declarations and the config) and returns :class:`Anomaly` records; the statistics ones (null
rates, drift) live in ``_validate`` next to the stored profiles.
"""

from __future__ import annotations

import datetime as dt
import statistics
from dataclasses import dataclass, field

import duckdb

from spindle.core import ConfigError, SourceCheck, SourceDeclaration, ValidationConfig
from spindle.data import _checks as checks
from spindle.data._checks import Anomaly, scipy_stats

_WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


def quote(name: str) -> str:
    """A SQL identifier, quoted."""
    return '"' + name.replace('"', '""') + '"'


def in_list(days: list[str]) -> str:
    """``days`` as the inside of a SQL ``IN (...)``."""
    return ", ".join(f"'{d}'" for d in days) or "NULL"


@dataclass
class Day:
    """What the checks of one day share: connection, date, reference days and row counts."""

    con: duckdb.DuckDBPyConnection
    date: str
    history: list[str]
    counts: dict[str, dict[str, int]]
    config: ValidationConfig
    declared: dict[str, SourceDeclaration | None]
    missing: frozenset[str] = frozenset()  # sources ingest found no partition of (open day)
    notes: list[str] = field(default_factory=list)
    # today's rows by slice, per source and slice column (stored with the report for the
    # dashboard's slice chart: every slice's share over days, not only the flagged ones)
    slices: dict[str, dict[str, dict[str, int]]] = field(default_factory=dict)

    def same_weekday_history(self) -> list[str]:
        """The reference days on today's weekday."""
        weekday = dt.date.fromisoformat(self.date).weekday()
        return [d for d in self.history if dt.date.fromisoformat(d).weekday() == weekday]

    def past_counts(self, source: str, same_weekday: bool = False) -> list[int]:
        """Rows of ``source`` on the reference days that have any (optionally: same weekday)."""
        days = self.same_weekday_history() if same_weekday else self.history
        return [self.counts[source][d] for d in days if self.counts[source].get(d)]

    def rows(self, source: str) -> int:
        """Rows of ``source`` today."""
        return self.counts.get(source, {}).get(self.date, 0)

    def query(self, check: SourceCheck, sql: str, key: str) -> list[tuple[object, ...]]:
        """Run ``sql`` built from the check's ``key`` (``sql``, ``slices.0``, ...).

        Raises:
            ConfigError: the declared SQL, column or expression does not run (names the file,
                the key of the check and DuckDB's message).
        """
        try:
            return self.con.execute(sql).fetchall()
        except duckdb.Error as exc:
            declared = [i for i, c in enumerate(self.config.checks or []) if c is check]
            if not declared:
                raise
            first = str(exc).splitlines()[0]
            if check.sql is not None and not self._runs(f"DESCRIBE {check.sql}"):
                key = "sql"  # the check's own query fails, not what was asked of its rows
            raise ConfigError(
                "validation.yaml",
                [
                    f"key 'checks.{declared[0]}.{key}': the check of {check.source!r} does not "
                    f"run: {first}"
                ],
            ) from exc

    def _runs(self, sql: str) -> bool:
        """Whether ``sql`` runs without a DuckDB error."""
        try:
            self.con.execute(sql).fetchall()
        except duckdb.Error:
            return False
        return True


def relation(check: SourceCheck) -> str:
    """The rows a check's slices and label rate are computed over (named as the source)."""
    name = quote(check.source)
    return f"({check.sql}) AS {name}" if check.sql is not None else name


def slice_counts(
    day: Day, check: SourceCheck
) -> tuple[dict[str, dict[str, dict[str, int]]], float]:
    """Per slice column, each day's counts by slice; and today's rows per independent unit."""
    decl = day.declared.get(check.source)
    key = (
        check.key if check.key is not None else (decl.primary_key if decl and not check.sql else [])
    )
    counted = f"count(DISTINCT ({', '.join(quote(k) for k in key)}))" if key else "count(*)"
    days = in_list([*day.history, day.date])
    out: dict[str, dict[str, dict[str, int]]] = {}
    for k, column in enumerate(check.slices):
        sql = (
            f"SELECT date, {quote(column)}, {counted} FROM {relation(check)} "
            f"WHERE date IN ({days}) GROUP BY ALL"
        )
        by_day: dict[str, dict[str, int]] = {}
        for d, value, n in day.query(check, sql, f"slices.{k}"):
            by_day.setdefault(str(d), {})[str(value)] = int(str(n))
        out[column] = by_day
    cluster = 1.0
    if check.unit is not None and check.slices:
        sql = (
            f"SELECT {counted}, count(DISTINCT {quote(check.unit)}) FROM {relation(check)} "
            f"WHERE date = '{day.date}'"
        )
        rows, units = day.query(check, sql, "unit")[0]
        cluster = int(str(rows)) / int(str(units)) if units else 1.0
    return out, cluster


def volume(
    day: Day, check: SourceCheck, slices: dict[str, dict[str, dict[str, int]]], cluster: float
) -> list[Anomaly]:
    """A missing partition (unless the calendar expects it), row counts, missing-data bias."""
    source, observed = check.source, day.rows(check.source)
    decl = day.declared.get(source)
    same_weekday = day.config.baseline(check) == "same_weekday"
    past = day.past_counts(source, same_weekday)
    if observed == 0:
        return _empty_day(day, source, decl)
    weekday = _WEEKDAYS[dt.date.fromisoformat(day.date).weekday()]
    if same_weekday and len(past) < 2 and len(day.history) >= day.config.min_baseline_days:
        return [
            Anomaly(
                "no_baseline",
                source,
                "warn",
                f"{source}: {len(past)} reference day(s) on a {weekday} ({observed} rows today); "
                "volume is compared with the same weekday (validation.yaml: same_weekday) and "
                "needs 2: the row count was not compared with anything.",
                expected=2.0,
                observed=float(len(past)),
            )
        ]
    usual = f"usual {weekday}" if same_weekday else "usual"
    drop = checks.row_count(source, observed, past, day.config, usual)
    found = list(drop)
    if drop and drop[0].kind == "row_count_drop" and drop[0].expected:
        dims = {
            dim: (by_day.get(day.date, {}), [by_day[d] for d in day.history if d in by_day])
            for dim, by_day in slices.items()
        }
        found.append(
            checks.missing_data_bias(
                source, observed, drop[0].expected, dims, cluster, drop[0].severity
            )
        )
    return found


def _empty_day(day: Day, source: str, decl: SourceDeclaration | None) -> list[Anomaly]:
    """No rows today: a note on a calendar-closed day; a FAIL when ingest found no partition,
    or when the reference days make an empty day unlikely (a sparse source may be empty)."""
    if decl is not None and decl.calendar.is_closed(dt.date.fromisoformat(day.date)):
        day.notes.append(f"{source}: no rows on {day.date}, a closed day in its calendar")
        return []
    usual = float(statistics.median(day.counts[source].get(d, 0) for d in day.history or [""]))
    if (
        source not in day.missing
        and float(scipy_stats().poisson.cdf(0, usual)) >= checks.BIAS_P_VALUE
    ):
        return []
    return [
        Anomaly(
            "missing_partition",
            source,
            "fail",
            f"{source} has no rows for {day.date}: the whole day is missing (every slice "
            "lost alike, so the loss itself is unbiased). Re-export and re-ingest the day, "
            "let training skip it with `training.allow_gaps: true`, or, if the source is "
            f"closed on such days, add the day to the calendar of sources/{source}.yaml.",
            expected=usual if day.history else None,
            observed=0.0,
        )
    ]


def quarantine(day: Day) -> list[Anomaly]:
    """Rows set aside at ingest, per source: a WARN, a FAIL above ``quarantine_rate_max``."""
    rows = day.con.execute(
        f"SELECT source, reason, count(*) FROM quarantine WHERE date = '{day.date}' "
        "GROUP BY ALL ORDER BY 1, 3 DESC"
    ).fetchall()
    by_source: dict[str, dict[str, int]] = {}
    for source, reason, n in rows:
        by_source.setdefault(str(source), {})[str(reason)] = int(n)
    limit = day.config.quarantine_rate_max
    found = []
    for source, reasons in by_source.items():
        n = sum(reasons.values())
        total = n + day.rows(source)
        share = n / total if total else 1.0
        summary = "; ".join(f"{count} {reason}" for reason, count in reasons.items())
        found.append(
            Anomaly(
                "quarantined_rows",
                source,
                "fail" if share > limit else "warn",
                f"{n} {source} rows quarantined ({share:.1%}; FAIL above {limit:.1%}, "
                f"validation.yaml quarantine_rate_max): {summary}. The good rows were "
                "loaded; see the quarantine table (row_json, reason) and fix the producer.",
                expected=0.0,
                observed=float(n),
            )
        )
    return found


def duplicates(day: Day, check: SourceCheck) -> list[Anomaly]:
    """Rows of today's partition that repeat the declared primary key."""
    decl = day.declared.get(check.source)
    total = day.rows(check.source)
    if decl is None or not decl.primary_key or not total:
        return []
    key = ", ".join(quote(k) for k in decl.primary_key)
    row = day.con.execute(
        f"SELECT count(*) - count(DISTINCT ({key})) FROM {quote(check.source)} "
        f"WHERE date = '{day.date}'"
    ).fetchall()[0]
    dups = int(row[0]) if row else 0
    if not dups:
        return []
    share = dups / total
    shown = ", ".join(decl.primary_key)
    return [
        Anomaly(
            "duplicate_burst",
            check.source,
            "fail" if share >= day.config.duplicate_rate_max else "warn",
            f"{dups} {check.source} rows ({share:.1%}) repeat a primary key ({shown}); they are "
            "counted once in slices. Check the producer for a retry loop or a replay.",
            column=shown,
            expected=0.0,
            observed=float(dups),
        )
    ]


def bursts(day: Day, check: SourceCheck) -> list[Anomaly]:
    """Many rows of one key within a short window of event time: a WARN."""
    decl = day.declared.get(check.source)
    if check.bursts is None or decl is None or decl.event_time is None:
        return []
    spec, key = check.bursts, quote(check.bursts.key)
    found = day.con.execute(
        f"SELECT {key}, count(*) AS n FROM {quote(check.source)} WHERE date = '{day.date}' "
        f"GROUP BY {key}, time_bucket(INTERVAL {spec.window_s} SECOND, "
        f"{quote(decl.event_time.column)}::TIMESTAMP) ORDER BY n DESC LIMIT 1"
    ).fetchall()
    if not found or int(found[0][1]) < spec.max_rows:
        return []
    value, n = found[0][0], int(found[0][1])
    return [
        Anomaly(
            "duplicate_burst",
            check.source,
            "warn",
            f"{spec.key} {value} has {n} {check.source} rows within {spec.window} (a bot or a "
            "replay?); any load shedding samples with a keyed hash, so the sender cannot choose "
            "what is dropped",
            column=spec.key,
            slice=f"{spec.key}={value}",
            expected=0.0,
            observed=float(n),
        )
    ]


def late_and_schema(day: Day, check: SourceCheck, columns: list[str]) -> list[Anomaly]:
    """Rows of earlier days in today's partition, and columns the declaration does not have."""
    decl, source, total = day.declared.get(check.source), check.source, day.rows(check.source)
    if decl is None or not total:
        return []
    found = []
    if decl.event_time is not None:
        et = f"CAST({quote(decl.event_time.column)} AS DATE)"
        late, first = day.con.execute(
            f"SELECT count(*) FILTER (WHERE {et} < CAST(date AS DATE)), min({et}) "
            f"FROM {quote(source)} WHERE date = '{day.date}'"
        ).fetchall()[0]
        if late and int(late) / total > day.config.late_rate_max:
            found.append(
                Anomaly(
                    "late_data",
                    source,
                    "warn",
                    f"{late} {source} rows in the {day.date} partition happened on earlier days "
                    f"(from {first}): those days were incomplete when validated. Re-validate "
                    "them; training reads events by their time, so the rows are not lost.",
                    expected=0.0,
                    observed=float(late),
                )
            )
    known = set(decl.columns) | {"date"}
    for column in (c for c in columns if c not in known):
        today, before = day.con.execute(
            f"SELECT count({quote(column)}) FILTER (WHERE date = '{day.date}'), "
            f"count({quote(column)}) FILTER (WHERE date IN ({in_list(day.history)})) "
            f"FROM {quote(source)}"
        ).fetchall()[0]
        if today and not before:
            found.append(
                Anomaly(
                    "schema_change",
                    source,
                    "warn",
                    f"{source} gained column {column!r} on {day.date}; ingestion kept it "
                    f"(additive schema evolution). Declare it in sources/{source}.yaml if "
                    "features should use it.",
                    column=column,
                )
            )
    return found


def label_rate(day: Day, check: SourceCheck) -> list[Anomaly]:
    """The check's label rate today against its reference days."""
    if check.label_rate is None:
        return []
    spec = check.label_rate
    rows = day.query(
        check,
        f"SELECT date, ({spec.expr})::DOUBLE FROM {relation(check)} "
        f"WHERE date IN ({in_list([*day.history, day.date])}) GROUP BY date",
        "label_rate.expr",
    )
    rates = {str(d): float(str(r)) for d, r in rows if r is not None}
    if day.date not in rates:
        return []
    past = [rates[d] for d in day.history if d in rates]
    bounds = (spec.ratio_min, spec.ratio_max)
    return checks.label_rate(check.source, rates[day.date], past, spec.what, bounds)
