"""Typed configuration of the workspace file ``spindle.yaml`` (``WorkspaceConfig`` and its
blocks: simulation, serving, demo, forget, executor) and of a raw source's provenance."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator

from spindle.core._config import _Strict

_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


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
