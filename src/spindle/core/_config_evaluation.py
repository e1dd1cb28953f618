"""Typed configuration of a model's gate: ``evaluation:`` thresholds, ``baselines:``, and the
metrics each task may be judged on."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from spindle.core._config import _FEATURE_REF, _NAME, _checks_sql, _Strict
from spindle.core._declared_sql import SQL_RULES, expression_problem


class EvaluationConfig(_Strict):
    """The gate's thresholds (see ``docs/evaluation.md``); ``None`` turns an optional check off."""

    # the gate's metric; default per task (binary auc, multiclass log_loss, ranking ndcg@10,
    # regression rmse), and it must be one of GATE_METRICS[task]
    metric: Literal[
        "ndcg@10", "mrr", "recall@10", "auc", "pr_auc", "log_loss", "ece",
        "rmse", "mae", "r2", "accuracy", "macro_f1",
    ] = "ndcg@10"  # fmt: skip
    max_regression: float = Field(default=0.02, ge=0)
    min_metric: float | None = None
    slices: list[str] = Field(default_factory=list)
    confidence: float = Field(default=0.95, gt=0.5, lt=1)
    max_slice_gap: float | None = Field(default=0.15, ge=0)
    # Relative to production (docs/evaluation.md): the most a binary candidate's ECE may be
    # significantly worse than production's; the PSI vs production above which score_shift warns
    max_calibration_error: float | None = Field(default=0.05, gt=0)
    max_score_psi: float | None = Field(default=1.0, gt=0)
    # Seed replicas trained to measure run-to-run noise (1 = the candidate alone); see
    # docs/evaluation.md "Replicas". `spindle evaluate --replicas K` overrides it.
    replicas: int = Field(default=1, ge=1, le=20)
    # Baselines (the model's `baselines:` names, or "production") the candidate must beat
    # significantly on the gate's metric, else it is blocked
    must_beat: list[str] = Field(default_factory=list)


class BaselineConfig(_Strict):
    """One baseline of ``baselines:``: a non-model score every evaluation compares against.

    Exactly one of ``feature`` (a pinned feature's value is the score, e.g. the route's
    trailing delay rate), ``sql`` (a DuckDB expression over the holdout's columns: the
    examples' columns and the features') or ``constant`` (one score for every row: a prior).
    ``ground_truth: true`` marks a score that *is* the truth (a simulator's column): it is
    reported as the ceiling and checks the labels, and cannot be a ``must_beat``.
    """

    name: str
    feature: str | None = None
    sql: str | None = Field(default=None, min_length=1)
    constant: float | None = None
    ground_truth: bool = False

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be lowercase letters, digits and _ and start with a letter")
        if value in _SYSTEM_NAMES:
            raise ValueError(f"{value!r} names a model system; choose another baseline name")
        return value

    @field_validator("feature")
    @classmethod
    def _pinned(cls, value: str | None) -> str | None:
        if value is not None and not _FEATURE_REF.match(value):
            raise ValueError(f"{value!r} is not a pinned feature group.name@version")
        return value

    @field_validator("sql")
    @classmethod
    def _one_expression(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or not _checks_sql(info):
            return value
        found = expression_problem(value, ["holdout"])
        if found is not None:
            raise ValueError(f"the baseline's sql {found}; {SQL_RULES['baseline']}")
        return value

    @model_validator(mode="after")
    def _one_kind(self) -> BaselineConfig:
        kinds = [k for k in ("feature", "sql", "constant") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError(
                f"baseline {self.name!r} needs exactly one of feature, sql or constant "
                f"(has {', '.join(kinds) or 'none'})"
            )
        return self


#: The metrics the gate may judge each task on (``spindle.evaluate.GATE_METRICS``, pinned
#: equal by a test: core cannot import evaluate).
GATE_METRICS: dict[str, tuple[str, ...]] = {
    "binary": ("auc", "pr_auc", "log_loss", "ece"),
    "multiclass": ("accuracy", "log_loss", "macro_f1"),
    "ranking": ("ndcg@10", "mrr", "recall@10", "auc", "log_loss"),
    "regression": ("rmse", "mae", "r2"),
}
#: The gate's metric of a task when ``evaluation.metric`` is not set.
DEFAULT_METRIC = {
    "binary": "auc",
    "multiclass": "log_loss",
    "ranking": "ndcg@10",
    "regression": "rmse",
}

#: Names the evaluation gives the compared models (a baseline may not take them).
_SYSTEM_NAMES = frozenset({"candidate", "production"})
