"""Prometheus metrics of one server, in a registry of its own (never the global one)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from spindle.serve._state import ServingState

_LATENCY_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)


class _StateCollector(Collector):
    """Reads the serving state at scrape time, so unloaded versions disappear from the output."""

    def __init__(self, current: Callable[[], ServingState], reloads: Callable[[], int]) -> None:
        self._current = current
        self._reloads = reloads

    def collect(self) -> Iterator[Metric]:
        state = self._current()
        now = time.time()
        age = GaugeMetricFamily(
            "spindle_serve_model_age_seconds",
            "Seconds since the served model version was created (its manifest's created_at)",
            labels=["model", "version"],
        )
        weight = GaugeMetricFamily(
            "spindle_serve_traffic_weight",
            "Share of traffic routed to a version by routing.json",
            labels=["model", "version"],
        )
        loaded = GaugeMetricFamily(
            "spindle_serve_version_loaded",
            "1 when a version named by routing.json is loaded and verified, else 0",
            labels=["model", "version", "status"],
        )
        for model, ms in sorted(state.models.items()):
            for version, lv in sorted(ms.versions.items()):
                labels = [model, str(version)]
                loaded.add_metric([*labels, lv.status], 1.0 if lv.runtime else 0.0)
                weight.add_metric(labels, ms.routing.weights.get(version, 0.0))
                created = lv.created_at
                if created is not None:
                    age.add_metric(labels, max(now - created, 0.0))
        yield age
        yield weight
        yield loaded
        reload_age = GaugeMetricFamily(
            "spindle_serve_state_age_seconds", "Seconds since the model repository was last loaded"
        )
        reload_age.add_metric([], max(now - state.loaded_at, 0.0))
        yield reload_age
        yield CounterMetricFamily(
            "spindle_serve_reloads", "Hot reloads of the model repository", value=self._reloads()
        )


class ServingMetrics:
    """The counters and histograms the server updates, and their exposition."""

    def __init__(
        self, current_state: Callable[[], ServingState], reloads: Callable[[], int]
    ) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self.requests = Counter(
            "spindle_serve_requests",
            "Requests by endpoint, model and the version that answered ('' for none)",
            ["endpoint", "model", "version"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "spindle_serve_request_latency_seconds",
            "Request latency by endpoint",
            ["endpoint"],
            buckets=_LATENCY_BUCKETS_S,
            registry=self.registry,
        )
        self.errors = Counter(
            "spindle_serve_errors",
            "Responses with an HTTP error status, by endpoint and status code",
            ["endpoint", "code"],
            registry=self.registry,
        )
        self.fallbacks = Counter(
            "spindle_serve_fallbacks",
            "Model versions skipped by the fallback chain, by model and reason",
            ["model", "reason"],
            registry=self.registry,
        )
        self.missing_entities = Counter(
            "spindle_serve_missing_entities",
            "Predicted instances whose entity a view did not hold (features null, as in training)",
            ["model", "view"],
            registry=self.registry,
        )
        self.registry.register(_StateCollector(current_state, reloads))

    def exposition(self) -> bytes:
        return generate_latest(self.registry)
