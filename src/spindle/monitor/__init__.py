"""Monitoring: Prometheus metrics of the pipeline and alerting rules for freshness SLOs."""

from __future__ import annotations

from spindle.monitor._collector import PipelineCollector
from spindle.monitor._rules import alert_rules

__all__ = ["PipelineCollector", "alert_rules"]
