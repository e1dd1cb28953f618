"""Typed configuration of a model file ``models/NAME.yaml``: ``ModelConfig`` and its
``examples:``, ``serving:`` and ``schedule:`` blocks (``training:`` lives in
``_config_training``, ``evaluation:`` and ``baselines:`` in ``_config_evaluation``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from spindle.core._config import _FEATURE_REF, _NAME, _checks_sql, _Strict, duration_s
from spindle.core._config_evaluation import (
    DEFAULT_METRIC,
    GATE_METRICS,
    BaselineConfig,
    EvaluationConfig,
)
from spindle.core._config_training import TrainingConfig
from spindle.core._declared_sql import SQL_RULES, select_problem


class MatchConfig(_Strict):
    """``serving.candidates.match:``: keyword retrieval by an inverted index of the view's
    words: the rows sharing the most words with the request's ``words`` field, ties by
    ``order_by`` (highest first, a null as 0), then by key; rows sharing none fill the rest.
    The cost of a request grows with the rows that share a word, not with the view."""

    column: str = Field(min_length=1)  # the view's text of words, split on spaces
    words: str = Field(pattern=r"^\$[A-Za-z_][A-Za-z0-9_]*$")  # the context field, as $name
    order_by: str | None = None  # a numeric column of the view
    limit: int = Field(default=50, ge=1, le=10_000)


class CandidatesConfig(_Strict):
    """``serving.candidates:``: what ``POST /v1/models/{model}/rank`` ranks when a request
    names no candidates, one of: ``sql``, DuckDB SQL over the online rows of ``view`` (the
    table ``candidates``) with the request's context fields as ``$name`` parameters, returning
    the view's entity keys best first; or ``match``, keyword retrieval by an inverted index
    (:class:`MatchConfig`). See ``docs/serving.md`` "Rank with any model"."""

    view: str = Field(min_length=1)
    sql: str | None = Field(default=None, min_length=1)
    match: MatchConfig | None = None

    @field_validator("sql")
    @classmethod
    def _one_select(cls, value: str | None, info: ValidationInfo) -> str | None:
        found = select_problem(value, ["candidates"]) if value and _checks_sql(info) else None
        if found is not None:
            raise ValueError(f"serving.candidates.sql {found}; {SQL_RULES['candidates']}")
        return value

    @model_validator(mode="after")
    def _one_way(self) -> CandidatesConfig:
        if (self.sql is None) == (self.match is None):
            raise ValueError(
                "serving.candidates: declare either sql (DuckDB over the view's rows) or match "
                "(keyword retrieval by an inverted index), not "
                + ("both" if self.sql is not None else "neither")
            )
        return self


class ModelServingConfig(_Strict):
    """Serving budgets; infra validation checks p99 latency and peak RSS against them."""

    traffic_weight: float = Field(default=1.0, ge=0, le=1)
    # the instance field that keeps a client on one version of a split (default: the first
    # entity key of the model's first view)
    routing_key: str | None = None
    # candidate retrieval for /v1/models/{model}/rank (None: requests must name candidates)
    candidates: CandidatesConfig | None = None
    # the baseline (a name of ``baselines:``) that answers when no version can; default: the
    # first baseline that is not ground truth
    baseline: str | None = None
    latency_budget_ms: float = Field(default=100.0, gt=0)
    max_rss_mb: float = Field(default=1024.0, gt=0)


class ScheduleConfig(_Strict):
    cron: str = "0 2 * * *"
    freshness_tolerance_hours: float = Field(default=48.0, gt=0)


class ExamplesConfig(_Strict):
    """``examples:`` of a model: its labelled examples, declared as DuckDB SQL over sources.

    spindle runs ``sql`` for a window of event days with every source visible only as of the
    run's cutoff, keeps the rows with ``event_time`` in the window, drops those whose label is
    not yet mature (``event_time + label_delay`` after the cutoff) and joins the pinned feature
    views as of ``event_time`` (see ``docs/features.md`` "Labelled examples").
    """

    sql: str = Field(min_length=1)
    sources: list[str] = Field(min_length=1)
    event_time: str = Field(min_length=1)
    label: str = Field(min_length=1)
    group_key: str | None = None
    weight: str | None = None
    label_delay: str = "0d"
    # a training set built as this many tasks, each joining the examples whose
    # ``partition_key`` hashes to its part, then merged in the training set's order: the same
    # rows as one task builds (docs/scaling.md); 1 builds it as one task
    partitions: int = Field(default=1, ge=1, le=1024)
    partition_key: str | None = Field(default=None, min_length=1)

    @model_validator(mode="after")
    def _partitioned_by(self) -> ExamplesConfig:
        if self.partitions > 1 and self.partition_key is None:
            raise ValueError(
                f"examples.partitions is {self.partitions}: name the column of the examples "
                "to split them by, examples.partition_key (e.g. the entity key of the largest "
                "feature view)"
            )
        return self

    @field_validator("label_delay")
    @classmethod
    def _delay(cls, value: str) -> str:
        duration_s(value)
        return value

    @field_validator("sources")
    @classmethod
    def _distinct(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a source is listed twice")
        return value

    @field_validator("sql")
    @classmethod
    def _one_select(cls, value: str, info: ValidationInfo) -> str:
        # files, statements, functions here; a table outside `sources` when the SQL runs (it
        # sees nothing else there), so a config built in code gets the same one-line error
        found = select_problem(value, None) if _checks_sql(info) else None
        if found is not None:
            raise ValueError(f"examples.sql {found}; {SQL_RULES['examples']}")
        return value

    @property
    def label_delay_s(self) -> int:
        """``label_delay`` in seconds."""
        return duration_s(self.label_delay)


class ModelConfig(_Strict):
    """``models/NAME.yaml``: one model, validated at load.

    The label and group key live in ``examples:``; ``label`` and ``group_key`` are read-only
    shortcuts to them.
    """

    name: str
    owner: str
    team: str
    task: Literal["binary", "multiclass", "ranking", "regression"]
    priority: int = Field(default=5, ge=1, le=10)
    description: str = ""
    examples: ExamplesConfig
    features: list[str]
    baselines: list[BaselineConfig] = Field(default_factory=list)
    training: TrainingConfig = TrainingConfig()
    evaluation: EvaluationConfig = EvaluationConfig()
    serving: ModelServingConfig = ModelServingConfig()
    schedule: ScheduleConfig = ScheduleConfig()

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("must be lowercase letters, digits and _ and start with a letter")
        return value

    @field_validator("features")
    @classmethod
    def _pinned(cls, value: list[str]) -> list[str]:
        bad = [f for f in value if not _FEATURE_REF.match(f)]
        if bad:
            raise ValueError(
                f"features must be pinned as group.name@version, e.g. account.minutes_28d@1; bad: {bad}"
            )
        if len(set(value)) != len(value):
            raise ValueError("a feature is listed twice")
        return value

    @model_validator(mode="before")
    @classmethod
    def _metric_of_the_task(cls, data: Any) -> Any:
        """Without ``evaluation.metric``, the task's usual one (``DEFAULT_METRIC``)."""
        if not isinstance(data, dict) or data.get("task") not in DEFAULT_METRIC:
            return data
        evaluation = data.get("evaluation")
        if evaluation is None:
            return {**data, "evaluation": {"metric": DEFAULT_METRIC[data["task"]]}}
        if isinstance(evaluation, dict) and "metric" not in evaluation:
            return {**data, "evaluation": {**evaluation, "metric": DEFAULT_METRIC[data["task"]]}}
        return data

    @model_validator(mode="after")
    def _metric_fits_the_task(self) -> ModelConfig:
        allowed = GATE_METRICS[self.task]
        if self.evaluation.metric not in allowed:
            raise ValueError(
                f"evaluation.metric {self.evaluation.metric!r} does not judge a {self.task} "
                f"model; use one of {', '.join(allowed)}"
            )
        return self

    @model_validator(mode="after")
    def _ranking_has_group(self) -> ModelConfig:
        if self.task == "ranking" and not self.examples.group_key:
            raise ValueError(
                "a ranking model needs examples.group_key (the column that groups a result "
                "list, e.g. a request id)"
            )
        return self

    @model_validator(mode="after")
    def _baselines_known(self) -> ModelConfig:
        names = [b.name for b in self.baselines]
        if len(set(names)) != len(names):
            raise ValueError("a baseline name is used twice")
        beatable = {b.name for b in self.baselines if not b.ground_truth} | {"production"}
        for name in self.evaluation.must_beat:
            if name not in beatable:
                truth = name in names
                raise ValueError(
                    f"evaluation.must_beat names {name!r}, "
                    + (
                        "a ground_truth baseline (the ceiling cannot be beaten)"
                        if truth
                        else f"which is not a baseline; declared: {sorted(beatable)}"
                    )
                )
        if sum(b.ground_truth for b in self.baselines) > 1:
            raise ValueError("at most one baseline may be the ground truth")
        return self

    @property
    def label(self) -> str:
        """The label column of the examples (``examples.label``)."""
        return self.examples.label

    @property
    def group_key(self) -> str | None:
        """The column grouping a ranking's result lists (``examples.group_key``)."""
        return self.examples.group_key

    def feature_refs(self) -> list[tuple[str, str, int]]:
        """Return (group, name, version) for every pinned feature."""
        refs = []
        for item in self.features:
            qualified, _, version = item.partition("@")
            group, _, name = qualified.partition(".")
            refs.append((group, name, int(version)))
        return refs
