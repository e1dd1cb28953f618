"""Monitoring: Prometheus metrics of the pipeline and alerting rules for freshness SLOs."""

from __future__ import annotations

from typing import TYPE_CHECKING as _TYPE_CHECKING

from spindle.core import lazy_names as _lazy_names

if _TYPE_CHECKING:
    from spindle.monitor._collector import PipelineCollector
    from spindle.monitor._rules import alert_rules

# Names resolve lazily (PEP 562): a light command (`spindle models list`) that needs one name
# does not pay for the modules behind the others (torch, onnxruntime, deltalake, scipy).
_LAZY: dict[str, str] = {
    "PipelineCollector": "spindle.monitor._collector",
    "alert_rules": "spindle.monitor._rules",
}


__getattr__, __dir__ = _lazy_names(__name__, _LAZY, globals())


__all__ = ["PipelineCollector", "alert_rules"]
