"""Data validation of one ingested day against a trailing window of earlier days.

Checks return results, not exceptions (the caller decides what a FAIL blocks): missing
partitions, row counts, quarantine share, slice completeness (a slice that vanishes or shrinks
abnormally, e.g. discounted purchases dropped by a format change), duplicate bursts.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb

from spindle.core import Verdict, open_dataset, sha256_json, table_exists

HISTORY_DAYS = 7
_EVENTS = ("searches", "impressions", "purchases")


@dataclass(frozen=True)
class Anomaly:
    """One finding, with the evidence a user needs to act on it."""

    kind: str
    source: str
    severity: Verdict
    message: str
    column: str | None = None
    slice: str | None = None
    expected: float | None = None
    observed: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            k: getattr(self, k)
            for k in (
                "kind",
                "source",
                "column",
                "slice",
                "expected",
                "observed",
                "severity",
                "message",
            )
        }


@dataclass(frozen=True)
class ValidationReport:
    """The verdict for one day with every anomaly found."""

    kind = "validation_report"
    date: str
    verdict: Verdict
    anomalies: tuple[Anomaly, ...]
    history_days: tuple[str, ...]
    uri: str = ""
    stats: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    @property
    def content_hash(self) -> str:
        return sha256_json(self.properties())

    @property
    def id(self) -> str:
        return f"validation:{self.date}:{self.content_hash[:12]}"

    def properties(self) -> dict[str, Any]:
        return {
            "date": self.date,
            "verdict": self.verdict,
            "anomalies": [a.to_dict() for a in self.anomalies],
            "history_days": list(self.history_days),
            "stats": self.stats,
        }


def _connect(tables_dir: Path) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    for source in (*_EVENTS, "quarantine"):
        path = tables_dir / ("quarantine" if source == "quarantine" else f"raw/{source}")
        if table_exists(path):
            con.register(source, open_dataset(path))
        else:
            con.execute(f"CREATE VIEW {source} AS SELECT NULL::VARCHAR AS date WHERE false")
    return con


def _counts(con: duckdb.DuckDBPyConnection, source: str) -> dict[str, int]:
    return {
        str(d): int(n)
        for d, n in con.execute(f"SELECT date, count(*) FROM {source} GROUP BY date").fetchall()
    }


def _shares(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, dict[str, float]]:
    """{date: {slice: share}} from a query returning (date, slice, count)."""
    totals: dict[str, dict[str, float]] = {}
    for day, key, n in con.execute(sql).fetchall():
        totals.setdefault(str(day), {})[str(key)] = float(n)
    return {
        d: {k: v / sum(s.values()) for k, v in s.items()}
        for d, s in totals.items()
        if sum(s.values()) > 0
    }


def _slice_checks(
    name: str, source: str, shares: dict[str, dict[str, float]], date: str, history: list[str]
) -> list[Anomaly]:
    found: list[Anomaly] = []
    past = [shares[d] for d in history if d in shares]
    today = shares.get(date)
    if len(past) < 2 or today is None:
        return found
    for key in sorted({k for s in past for k in s}):
        expected = sum(s.get(key, 0.0) for s in past) / len(past)
        observed = today.get(key, 0.0)
        if expected < 0.02:
            continue
        label = f"{name}={key}"
        if observed == 0.0:
            found.append(
                Anomaly(
                    "slice_vanished",
                    source,
                    "fail",
                    f"slice {label} vanished from {source}: share {observed:.1%}, usually {expected:.1%}. Check the export for a format change.",
                    slice=label,
                    expected=expected,
                    observed=observed,
                )
            )
        elif observed < 0.5 * expected:
            found.append(
                Anomaly(
                    "slice_shrunk",
                    source,
                    "fail",
                    f"slice {label} of {source} shrank to {observed:.1%} from a usual {expected:.1%}: missing data concentrated in one slice biases training.",
                    slice=label,
                    expected=expected,
                    observed=observed,
                )
            )
    return found


def validate_day(
    tables_dir: Path, date: str, *, history_days: int = HISTORY_DAYS
) -> ValidationReport:
    """Validate the ingested day ``date`` against up to ``history_days`` earlier ingested days."""
    con = _connect(tables_dir)
    anomalies: list[Anomaly] = []
    counts = {s: _counts(con, s) for s in _EVENTS}
    day = dt.date.fromisoformat(date)
    window = [(day - dt.timedelta(days=i)).isoformat() for i in range(1, history_days + 1)]
    history = [d for d in window if counts["searches"].get(d, 0) > 0]
    stats: dict[str, Any] = {"rows": {s: counts[s].get(date, 0) for s in _EVENTS}}
    for source in _EVENTS:
        observed = counts[source].get(date, 0)
        if observed == 0:
            anomalies.append(
                Anomaly(
                    "missing_partition",
                    source,
                    "fail",
                    f"{source} has no rows for {date}: the day is missing. Training windows skip it until it is re-ingested.",
                    expected=None,
                    observed=0,
                )
            )
            continue
        past = [counts[source][d] for d in history if counts[source].get(d)]
        if len(past) >= 2:
            expected = sum(past) / len(past)
            ratio = observed / expected
            if ratio < 0.6:
                anomalies.append(
                    Anomaly(
                        "row_count_drop",
                        source,
                        "fail",
                        f"{source}: {observed} rows, {ratio:.0%} of the usual {expected:.0f}",
                        expected=expected,
                        observed=observed,
                    )
                )
            elif ratio < 0.8:
                anomalies.append(
                    Anomaly(
                        "row_count_drop",
                        source,
                        "warn",
                        f"{source}: {observed} rows, {ratio:.0%} of the usual {expected:.0f} (late data?)",
                        expected=expected,
                        observed=observed,
                    )
                )
            elif ratio > 1.5:
                anomalies.append(
                    Anomaly(
                        "row_count_jump",
                        source,
                        "warn",
                        f"{source}: {observed} rows, {ratio:.0%} of the usual {expected:.0f} (duplicates?)",
                        expected=expected,
                        observed=observed,
                    )
                )
    quarantined = dict(
        con.execute(
            f"SELECT source, count(*) FROM quarantine WHERE date = '{date}' GROUP BY source"
        ).fetchall()
    )
    stats["quarantined"] = {str(k): int(v) for k, v in quarantined.items()}
    for source, n in quarantined.items():
        total = n + counts.get(str(source), {}).get(date, 0) if str(source) in counts else n
        share = n / total if total else 1.0
        severity: Verdict = "fail" if share > 0.05 else "warn"
        anomalies.append(
            Anomaly(
                "quarantined_rows",
                str(source),
                severity,
                f"{n} {source} rows quarantined ({share:.1%}); see the quarantine table for reasons",
                observed=float(n),
            )
        )
    if counts["purchases"].get(date):
        dup = con.execute(
            f"SELECT count(*) - count(DISTINCT transaction_id) FROM purchases WHERE date = '{date}'"
        ).fetchone()
        dups = int(dup[0]) if dup else 0
        if dups:
            share = dups / counts["purchases"][date]
            anomalies.append(
                Anomaly(
                    "duplicate_burst",
                    "purchases",
                    "warn" if share < 0.2 else "fail",
                    f"{dups} duplicate purchase rows (same transaction_id); they are counted once",
                    column="transaction_id",
                    observed=float(dups),
                )
            )
        anomalies += _slice_checks(
            "discounted",
            "purchases",
            _shares(con, "SELECT date, discount_pct > 0, count(*) FROM purchases GROUP BY ALL"),
            date,
            history,
        )
    if counts["searches"].get(date):
        anomalies += _slice_checks(
            "country",
            "searches",
            _shares(con, "SELECT date, country, count(*) FROM searches GROUP BY ALL"),
            date,
            history,
        )
        burst = con.execute(
            f"SELECT user_id, count(*) AS n FROM searches WHERE date = '{date}' GROUP BY user_id, time_bucket(INTERVAL 10 MINUTE, ts) ORDER BY n DESC LIMIT 1"
        ).fetchone()
        if burst and int(burst[1]) >= 50:
            anomalies.append(
                Anomaly(
                    "duplicate_burst",
                    "searches",
                    "warn",
                    f"user {burst[0]} made {burst[1]} searches within 10 minutes (bot or replay?)",
                    column="user_id",
                    observed=float(burst[1]),
                )
            )
    con.close()
    severities = {a.severity for a in anomalies}
    verdict: Verdict = (
        "fail" if "fail" in severities else "warn" if "warn" in severities else "pass"
    )
    report = ValidationReport(date, verdict, tuple(anomalies), tuple(history), stats=stats)
    return report


def report_json(report: ValidationReport) -> str:
    return json.dumps(report.properties(), indent=2, sort_keys=True)
