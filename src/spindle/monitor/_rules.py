"""Prometheus alerting rules for the freshness SLOs (age + recovery reaching the tolerance)."""

from __future__ import annotations

from collections.abc import Sequence

import yaml

from spindle.monitor._freshness import WARN_SHARE


def alert_rules(models: Sequence[str]) -> str:
    """A Prometheus rules file (YAML) with freshness and pipeline-failure alerts per model."""
    rules: list[dict[str, object]] = []
    for model in models:
        sel = f'{{model="{model}"}}'
        age_plus = f"spindle_model_data_age_hours{sel} + spindle_model_recovery_hours{sel}"
        rules += [
            {
                "alert": "SpindleFreshnessAtRisk",
                "expr": f"{age_plus} >= {WARN_SHARE} * spindle_model_freshness_tolerance_hours{sel}",
                "for": "5m",
                "labels": {"severity": "warning", "model": model},
                "annotations": {
                    "summary": f"{model}: age + recovery time is {int(WARN_SHARE * 100)}% of the freshness tolerance"
                },
            },
            {
                "alert": "SpindleFreshnessCritical",
                "expr": f"{age_plus} >= spindle_model_freshness_tolerance_hours{sel}",
                "for": "5m",
                "labels": {"severity": "critical", "model": model},
                "annotations": {
                    "summary": f"{model}: a failure now could not be fixed before the freshness SLO breaks"
                },
            },
            {
                "alert": "SpindleFreshnessViolated",
                "expr": f"spindle_model_data_age_hours{sel} >= spindle_model_freshness_tolerance_hours{sel}",
                "labels": {"severity": "page", "model": model},
                "annotations": {
                    "summary": f"{model}: serving data is older than the freshness tolerance"
                },
            },
            {
                "alert": "SpindleStepFailing",
                "expr": f"increase(spindle_step_failures{sel}[1d]) > 0",
                "labels": {"severity": "warning", "model": model},
                "annotations": {"summary": f"{model}: a pipeline step failed in the last day"},
            },
        ]
    return yaml.safe_dump({"groups": [{"name": "spindle", "rules": rules}]}, sort_keys=False)
