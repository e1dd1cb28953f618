"""Monitoring: Prometheus metrics of the pipeline, the freshness SLO arithmetic and its alerting rules."""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from spindle.core import lazy_names as _lazy_names

if _TYPE_CHECKING:
    from spindle.monitor._collector import PipelineCollector
    from spindle.monitor._freshness import (
        EFFICIENCY_KEYS,
        WARN_SHARE,
        efficiency,
        freshness_state,
        throughput_alert,
    )
    from spindle.monitor._rules import alert_rules

# Names resolve lazily (PEP 562): a light command (`spindle models list`) that needs one name
# does not pay for the modules behind the others (torch, onnxruntime, deltalake, scipy).
_LAZY: dict[str, str] = {
    "EFFICIENCY_KEYS": "spindle.monitor._freshness",
    "PipelineCollector": "spindle.monitor._collector",
    "WARN_SHARE": "spindle.monitor._freshness",
    "efficiency": "spindle.monitor._freshness",
    "freshness_state": "spindle.monitor._freshness",
    "throughput_alert": "spindle.monitor._freshness",
    "alert_rules": "spindle.monitor._rules",
}


__getattr__, __dir__ = _lazy_names(__name__, _LAZY, globals())


__all__ = [
    "EFFICIENCY_KEYS",
    "WARN_SHARE",
    "PipelineCollector",
    "alert_rules",
    "efficiency",
    "freshness_state",
    "throughput_alert",
]
