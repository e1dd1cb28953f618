"""Prometheus metrics of the pipeline, read from the metadata store at scrape time."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from spindle.registry import MetadataStore

FreshnessSource = Callable[[], list[dict[str, Any]]]


class PipelineCollector(Collector):
    """Step durations, failures, last success per model and step, examples/s, rows per day, freshness."""

    def __init__(
        self, store: MetadataStore, freshness: FreshnessSource | None = None, *, limit: int = 2000
    ) -> None:
        self.store = store
        self.freshness = freshness
        self.limit = limit

    def collect(self) -> Iterator[Metric]:
        runs = self.store.runs(limit=self.limit)
        duration = GaugeMetricFamily(
            "spindle_step_duration_seconds",
            "Wall time of the latest run of a step",
            labels=["model", "step"],
        )
        failures = CounterMetricFamily(
            "spindle_step_failures", "Failed runs of a step", labels=["model", "step"]
        )
        success = GaugeMetricFamily(
            "spindle_step_last_success_timestamp_seconds",
            "When a step last succeeded",
            labels=["model", "step"],
        )
        rate = GaugeMetricFamily(
            "spindle_train_examples_per_second",
            "Examples/s of the latest training run",
            labels=["model"],
        )
        seen: set[tuple[str, str]] = set()
        fail_counts: dict[tuple[str, str], int] = {}
        # every failed run, not the newest `limit` runs only: a counter must never go down
        for run in self.store.runs(status="failed", limit=None):
            key = (run.model or "", run.step)
            fail_counts[key] = fail_counts.get(key, 0) + 1
        for run in runs:  # newest first
            key = (run.model or "", run.step)
            if run.status != "succeeded" or key in seen:
                continue
            seen.add(key)
            duration.add_metric(list(key), float(run.resources.get("wall_s", 0.0) or 0.0))
            ended = run.ended_at or run.started_at
            success.add_metric(list(key), ended.replace(tzinfo=ended.tzinfo or dt.UTC).timestamp())
            if run.step == "train" and run.resources.get("examples_per_s"):
                rate.add_metric([key[0]], float(run.resources["examples_per_s"]))
        for key, count in sorted(fail_counts.items()):
            failures.add_metric(list(key), count)
        yield from (duration, failures, success, rate)
        rows = GaugeMetricFamily(
            "spindle_ingested_rows", "Rows ingested for a day", labels=["date"]
        )
        undone = _undone_days(self.store)
        for record in self.store.find_artifacts("ingest")[-60:]:
            if record.properties.get("date") in undone:
                continue  # `spindle ingest --undo` removed the day's rows
            rows.add_metric(
                [str(record.properties.get("date"))],
                float(record.properties.get("rows_ingested", 0)),
            )
        yield rows
        if self.freshness is not None:
            yield from _freshness_metrics(self.freshness())


def _undone_days(store: MetadataStore) -> set[str]:
    """Days whose latest ingest-or-undo run is an undo (their rows are not in the tables)."""
    latest: dict[str, tuple[dt.datetime, str]] = {}
    for step in ("ingest", "ingest_undo"):
        for run in store.runs(step=step, status="succeeded", limit=None):
            at = run.ended_at or run.started_at
            if run.date is not None and (run.date not in latest or at > latest[run.date][0]):
                latest[run.date] = (at, step)
    return {day for day, (_, step) in latest.items() if step == "ingest_undo"}


def _freshness_metrics(rows: list[dict[str, Any]]) -> Iterator[Metric]:
    age = GaugeMetricFamily(
        "spindle_model_data_age_hours", "Age of the data the serving version saw", labels=["model"]
    )
    recovery = GaugeMetricFamily(
        "spindle_model_recovery_hours", "Expected time to detect and retrain", labels=["model"]
    )
    tolerance = GaugeMetricFamily(
        "spindle_model_freshness_tolerance_hours", "Freshness SLO tolerance", labels=["model"]
    )
    for row in rows:
        if row.get("age_h") is not None:
            age.add_metric([row["model"]], float(row["age_h"]))
        recovery.add_metric([row["model"]], float(row["recovery_h"]))
        tolerance.add_metric([row["model"]], float(row["tolerance_h"]))
    yield from (age, recovery, tolerance)
