"""Typed configuration: the workspace file ``spindle.yaml`` and model configs ``models/*.yaml``."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationInfo,
    field_validator,
    model_validator,
)

from spindle.core._declared_sql import SQL_RULES, expression_problem, select_problem

SKIP_SQL_CHECKS = "skip_sql_checks"
"""Validation context key: True skips the parse of declared SQL (a report that runs none of
it, such as ``spindle status``, need not import DuckDB; every run checks it, at load and again
before it runs)."""


def _checks_sql(info: ValidationInfo) -> bool:
    return not (isinstance(info.context, dict) and info.context.get(SKIP_SQL_CHECKS))


_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_FEATURE_REF = re.compile(r"^[a-z][a-z0-9_]*\.[a-z][a-z0-9_]*@[1-9][0-9]*$")
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
_DURATION_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def duration_s(value: str) -> int:
    """Seconds of a duration written ``<n>s|m|h|d`` (``30d``, ``12h``).

    Raises:
        ValueError: ``value`` is not such a duration.

    Example:
        >>> duration_s("2d")
        172800
    """
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"{value!r} is not a duration; write <n>s, <n>m, <n>h or <n>d, e.g. 30d")
    return int(match.group(1)) * _DURATION_S[match.group(2)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SourceConfig(_Strict):
    """Provenance of a raw log source."""

    origin: str
    licence: str = "internal"
    retention_days: int = Field(default=400, gt=0)


class SimulationConfig(_Strict):
    """Defaults for ``spindle simulate`` in this workspace."""

    seed: int = 7
    start_date: dt.date = dt.date(2026, 1, 1)
    scale: float = Field(default=1.0, gt=0)


class ServingLimitsConfig(_Strict):
    """``serving.limits``: what one request to ``spindle serve`` may hold (defaults equal
    ``spindle.serve.ServingLimits``'; docs/serving.md, "Limits")."""

    max_body_bytes: int = Field(default=16 * 1024 * 1024, ge=1, strict=True)
    max_instances: int = Field(default=10_000, ge=1, strict=True)  # and V2 tensor rows
    max_candidates: int = Field(default=10_000, ge=1, strict=True)
    max_string_chars: int = Field(default=4096, ge=1, strict=True)
    max_k: int = Field(default=1000, ge=1, strict=True)


class ServingConfig(_Strict):
    host: str = "127.0.0.1"
    port: int = Field(default=8787, ge=1, le=65535)
    # the model /v1/rank answers when a request names none (None: requests must name one)
    default_model: str | None = None
    # one log line per request (uvicorn's access log); off by default: it costs each request
    # a formatted line, and /metrics counts requests by route, model and version
    access_log: bool = False
    # a file holding the bearer token every endpoint but /v2/health/* then needs (relative to
    # the workspace; `spindle serve --token-file` overrides it); None: no token
    token_file: str | None = None
    limits: ServingLimitsConfig = ServingLimitsConfig()


class DemoConfig(_Strict):
    """``demo:`` of ``spindle.yaml``: what ``spindle demo`` runs in a copy of this workspace.

    ``data: simulate`` writes the days with the simulator first (from ``simulation``);
    ``data: declared`` reads the days the sources declare, from ``start``.
    """

    model: str
    data: Literal["simulate", "declared"] = "simulate"
    start: dt.date | None = None  # the first day; default: simulation.start_date
    requests: int = Field(default=200, ge=1)  # predict requests sent to the served model
    # more models trained, evaluated, gated, pushed and served nightly beside `model`
    # (their days under "models" of the --json report; `model` keeps the shape)
    models: list[str] = Field(default_factory=list)


class ForgetConfig(_Strict):
    """``forget:`` in ``spindle.yaml``: physical deletion (``spindle forget``).

    ``retention_hours``: how long the files a deletion replaced stay readable (older table
    versions, for readers that pinned them) before vacuum removes them; 0 removes them at once.
    """

    retention_hours: float = Field(default=0.0, ge=0)


class ExecutorConfig(_Strict):
    """``executor:`` in ``spindle.yaml``: where the data and model steps' tasks run.

    ``in-process`` (default) runs them in the process that runs the step; ``ray`` runs them as
    tasks of the Ray cluster at ``address`` (``ray://host:10001`` or ``host:6379``; none starts
    a local Ray). ``num_cpus`` is what each task asks the cluster for; ``ship_workspace``
    whether the workspace's folder (without its state and raw data) is sent to the cluster.
    The CLI's ``--executor`` and ``--ray-address`` override these for one command.
    """

    kind: Literal["in-process", "ray"] = "in-process"
    address: str | None = None
    num_cpus: float = Field(default=1.0, gt=0)
    # send the workspace's declarations and code (not its state or raw folders) to the
    # cluster as the tasks' working directory, for nodes that do not share its folder;
    # default: when an address is set
    ship_workspace: bool | None = None


def _option_value(value: Any) -> Any:
    """An object-store option as text (``true``, ``3``); anything else as is (then refused)."""
    if isinstance(value, bool):
        return str(value).lower()
    return str(value) if isinstance(value, int | float) else value


class WorkspaceConfig(_Strict):
    """``spindle.yaml``: where everything of one workspace lives."""

    name: str
    raw_dir: str = "raw"
    state_dir: str = ".spindle"
    metadata_url: str | None = None
    # The online store's backend: sqlite:///PATH (default <state_dir>/online.db); see
    # docs/features.md "Online store" for what a redis:// URL needs.
    online_store_url: str | None = None
    model_repo: str | None = None
    # where the Delta tables live: s3://bucket/prefix on an S3-compatible store, or a local
    # path (default <state_dir>/tables); storage_options go as is to delta-rs and the S3
    # client (AWS_ENDPOINT_URL, AWS_REGION, ...; absent keys come from the AWS_* environment)
    tables_url: str | None = None
    # where training sets live (<artifacts_url>/trainsets/...) and, on a store, where fits
    # keep their checkpoints too (<artifacts_url>/checkpoints/...): s3://bucket/prefix or a
    # local path (default <state_dir>/artifacts); model versions stay under state_dir
    artifacts_url: str | None = None
    storage_options: dict[str, str] = Field(default_factory=dict)
    # the free space (MB) every disk spindle writes must keep: a step that would start below
    # it is refused with one line (docs/operations.md "Disk full or read-only"); 0: no check
    min_free_mb: int = Field(default=256, ge=0)
    simulation: SimulationConfig = SimulationConfig()
    serving: ServingConfig = ServingConfig()
    demo: DemoConfig | None = None
    forget: ForgetConfig = ForgetConfig()
    executor: ExecutorConfig = ExecutorConfig()
    # Sources (and their provenance) are declared in sources/*.yaml, not here: a `sources:`
    # block left in an old spindle.yaml is an unknown key, reported with the allowed ones.

    @field_validator("tables_url", "artifacts_url", "raw_dir")
    @classmethod
    def _tables_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        # a scheme (or a typo of one, s3:/x) would be a local folder named "s3:" otherwise
        if value is not None and _SCHEME.match(value) and not value.startswith("s3://"):
            raise ValueError(
                f"{value!r} is not supported: {info.field_name} is s3://bucket/prefix (any "
                "S3-compatible store, its endpoint in storage_options) or a local path"
            )
        if value is not None and value.startswith("s3://") and not value[5:].strip("/"):
            raise ValueError(f"{value!r} names no bucket: write s3://bucket/prefix")
        return value

    @field_validator("storage_options", mode="before")
    @classmethod
    def _option_text(cls, value: Any) -> Any:
        # YAML reads `AWS_ALLOW_HTTP: true` as a boolean: object-store options are text
        if isinstance(value, dict):
            return {k: _option_value(v) for k, v in value.items()}
        return value

    @field_validator("model_repo")
    @classmethod
    def _model_repo(cls, value: str | None) -> str | None:
        # s3://bucket/prefix (serve/_repository_s3.py) or a local path; any other scheme would
        # be a local folder named after it
        if value is not None and _SCHEME.match(value) and not value.startswith("s3://"):
            raise ValueError(
                f"{value!r} is not supported: model_repo is s3://bucket/prefix (any "
                "S3-compatible store, its endpoint in storage_options) or a local path"
            )
        if value is not None and value.startswith("s3://") and not value[5:].strip("/"):
            raise ValueError(f"{value!r} names no bucket: write s3://bucket/prefix")
        return value

    @field_validator("state_dir")
    @classmethod
    def _local_path(cls, value: str | None) -> str | None:
        # an object-store URL here was taken as a relative path: s3://bucket/x wrote a local
        # folder named "s3:" and said nothing
        if value is not None and _URL.match(value):
            raise ValueError(
                f"{value!r} is a URL; state_dir is a local path "
                "(absolute, or relative to the workspace): object stores are not supported "
                "yet, so mount the bucket and give its path"
            )
        return value


class LightGBMConfig(_Strict):
    """``training.lightgbm``: the gradient-boosted trees of ``framework: lightgbm``.

    ``seed`` and ``threads`` come from ``training``; ``params`` passes any other LightGBM
    parameter through as written (https://lightgbm.readthedocs.io/en/stable/Parameters.html).
    """

    num_boost_round: int = Field(default=200, ge=1)
    # rounds added to the production model's trees when warm starting (boosting continues)
    warm_start_rounds: int = Field(default=50, ge=1)
    learning_rate: float = Field(default=0.05, gt=0)
    num_leaves: int = Field(default=31, ge=2)
    min_data_in_leaf: int = Field(default=20, ge=1)
    feature_fraction: float = Field(default=1.0, gt=0, le=1)
    bagging_fraction: float = Field(default=1.0, gt=0, le=1)
    bagging_freq: int = Field(default=0, ge=0)
    lambda_l2: float = Field(default=0.0, ge=0)
    max_bin: int = Field(default=255, ge=2)
    params: dict[str, str | int | float | bool] = Field(default_factory=dict)


class CustomModelConfig(_Strict):
    """``training.custom``: a user's torch module (``framework: custom``, docs/your-model.md).

    ``module`` is ``"package.module:ClassName"``, imported with the workspace directory on
    the import path; ``options`` are passed to its constructor as keyword arguments.
    """

    module: str = Field(pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
    options: dict[str, Any] = Field(default_factory=dict)


class TrainingConfig(_Strict):
    window_days: int = Field(default=7, ge=1)
    # Train on a window with a missing or FAIL-validated day (skipping it) instead of refusing.
    allow_gaps: bool = False
    epochs: int = Field(default=3, ge=1)
    batch_size: int = Field(default=512, ge=1)
    learning_rate: float = Field(default=0.005, gt=0)
    weight_decay: float = Field(default=0.0, ge=0)
    embedding_dim: int = Field(default=16, ge=1)
    hidden_units: list[int] = Field(default_factory=lambda: [64, 32])
    checkpoint_every_steps: int = Field(default=200, ge=1)
    checkpoint_every_s: float | None = Field(default=None, gt=0)
    workers: int = Field(default=1, ge=1)
    # How workers > 1 start: "spawn" (local processes) or "torchrun" (torch.distributed.run;
    # with nnodes > 1 the workers span machines that meet at rdzv_endpoint, see docs/training.md).
    launcher: Literal["spawn", "torchrun"] = "spawn"
    nnodes: int = Field(default=1, ge=1)
    rdzv_endpoint: str | None = None
    max_staleness_steps: int = Field(default=0, ge=0)
    # The model family (docs/your-model.md): torch (= tabular_nn, the default), lightgbm,
    # sklearn, or custom (a user's torch module, training.custom)
    framework: Literal["torch", "tabular_nn", "lightgbm", "sklearn", "custom"] = "torch"
    lightgbm: LightGBMConfig = LightGBMConfig()
    custom: CustomModelConfig | None = None
    warm_start: bool = True
    warm_start_epochs: int = Field(default=1, ge=1)
    warm_start_window_days: int = Field(default=3, ge=1)
    full_retrain_every_days: int = Field(default=7, ge=1)
    # CPU threads of one training process: one prepares batches (reads, gathers, plans the
    # embedding lookups: spindle.train._plan), the others (at least one) run the step's
    # operators, so the default 2 = one step thread + the batch thread (docs/training.md).
    threads: int = Field(default=2, ge=1)
    seed: int = 42
    # Training sets with more rows are streamed from their Parquet file (bounded memory, see
    # docs/training.md) instead of loaded whole; the buffer is the rows shuffled together.
    in_memory_max_rows: int = Field(default=1_000_000, ge=0)
    stream_buffer_rows: int = Field(default=262_144, ge=1)

    @model_validator(mode="after")
    def _custom_module(self) -> TrainingConfig:
        if self.framework == "custom" and self.custom is None:
            raise ValueError(
                'framework: custom needs training.custom.module ("package.module:ClassName")'
            )
        return self

    @property
    def one_process(self) -> bool:
        """Whether the family trains in one process (lightgbm, sklearn): no workers, no
        staleness, and a training step is a pass over every row."""
        return self.framework in ("lightgbm", "sklearn")

    @model_validator(mode="after")
    def _one_process_families(self) -> TrainingConfig:
        if self.one_process and (self.workers > 1 or self.max_staleness_steps > 0):
            raise ValueError(
                f"framework: {self.framework} trains in one process (use training.threads for "
                "its cores): workers and max_staleness_steps are the torch families' "
                "data-parallel training; leave them at 1 and 0"
            )
        return self

    @model_validator(mode="after")
    def _several_machines(self) -> TrainingConfig:
        if self.nnodes > 1:
            if self.launcher != "torchrun":
                raise ValueError("nnodes > 1 needs launcher: torchrun")
            if not self.rdzv_endpoint:
                raise ValueError("nnodes > 1 needs rdzv_endpoint (HOST:PORT every machine reaches)")
            if self.workers % self.nnodes:
                raise ValueError(
                    f"workers ({self.workers}) is the total over all machines: it must be a "
                    f"multiple of nnodes ({self.nnodes})"
                )
        return self


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
