"""Monitoring: Prometheus metrics of the pipeline and alerting rules for freshness SLOs."""

from __future__ import annotations

from importlib import import_module as _import_module
from typing import TYPE_CHECKING as _TYPE_CHECKING
from typing import Any as _Any

if _TYPE_CHECKING:
    from spindle.monitor._collector import PipelineCollector
    from spindle.monitor._rules import alert_rules

# Names resolve lazily (PEP 562): a light command (`spindle models list`) that needs one name
# does not pay for the modules behind the others (torch, onnxruntime, deltalake, scipy).
_LAZY: dict[str, str] = {
    "PipelineCollector": "spindle.monitor._collector",
    "alert_rules": "spindle.monitor._rules",
}


def __getattr__(name: str) -> _Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(_import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)


__all__ = ["PipelineCollector", "alert_rules"]
