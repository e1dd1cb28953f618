"""Infra validation before push: the exported model, served in its own process, agrees and fits.

A canary process (``spindle.serve._canary``) loads the version with the serving runtime and
scores real requests of the version's day (its holdout examples as predict instances) through
the serving feature path. The same rows are scored here with the training-time model (the
trainer's own ``predict``: for torch its weights, not the exported graph). The verdict is
``spindle.evaluate.infra_verdict``'s (scores within ``MAX_ABS_DIFF``, p99 CPU time within
``serving.latency_budget_ms``, peak RSS within ``serving.max_rss_mb``); this module runs the
canary, scores the rows and reports. A canary that did not load, verify every file or answer
every request fails the version.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from spindle.core import (
    ModelConfig,
    Progress,
    ProgressEvent,
    ServingError,
    TrainingConfig,
    read_package,
    read_transform_text,
)
from spindle.evaluate import CanaryMeasurement, infra_verdict
from spindle.features import Transform
from spindle.orchestrate._context import Context
from spindle.orchestrate._evaluate_step import compared
from spindle.orchestrate._model_common import (
    LoadedConfig,
    build_training_set,
    resolve_config,
    trainset_file,
)
from spindle.orchestrate._version_store import version_folder
from spindle.serve import RESULT_FILE, ROWS_FILE, SCORES_FILE

CANARY_TIMEOUT_S = 300.0


@dataclass(frozen=True)
class InfraReport:
    """The verdict of infra validation with its evidence; ``to_dict`` is the ``--json`` form."""

    model: str
    version: int
    passed: bool
    requests: int = 0
    rows: int = 0
    max_abs_diff: float | None = None
    p50_ms: float | None = None
    p99_ms: float | None = None
    cpu_p50_ms: float | None = None
    cpu_p99_ms: float | None = None
    latency_budget_ms: float = 0.0
    peak_rss_mb: float | None = None
    max_rss_mb: float = 0.0
    load_ms: float | None = None
    failures: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return asdict(self) | {"failures": list(self.failures)}


def _json_value(value: Any) -> Any:
    """A holdout value as a client would send it in JSON (times as ISO strings)."""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return float(value)
    return value


def holdout_requests(
    ctx: Context, loaded: LoadedConfig, date: str, n: int
) -> list[list[dict[str, Any]]]:
    """Real requests of the version's day: its holdout examples as predict instances.

    Each instance holds the example's own columns (entity keys, request columns; not the
    label, the weight or the feature columns, which serving looks up itself). A ranking
    model's request is one result list (the rows of one ``group_key``), any other model's one
    instance; the first ``n`` requests of the day are used.
    """
    cfg = loaded.config
    holdout = build_training_set(ctx, loaded, [date], purpose="holdout")
    held = trainset_file(ctx, holdout.uri)  # a local copy of one on an object store
    source = pq.ParquetFile(held)
    features = {d.column for d in loaded.definitions}
    hidden = features | {cfg.label, cfg.examples.weight}
    columns = [c for c in source.schema_arrow.names if c not in hidden]
    # only the rows of the first n requests become Python values (a day's holdout at scale 128,
    # 5.1M rows, as dicts held 8 GB): the first n rows, or every row of the first n lists
    chosen = None
    if cfg.group_key is not None:
        keys = pq.read_table(held, columns=[cfg.group_key]).column(0)
        chosen = pc.unique(keys)[:n]  # in the order they first appear
    rows: list[dict[str, Any]] = []
    for batch in source.iter_batches(batch_size=65_536, columns=columns):
        if chosen is not None:
            batch = batch.filter(pc.is_in(batch.column(cfg.group_key or ""), value_set=chosen))
        rows += [{k: _json_value(v) for k, v in row.items()} for row in batch.to_pylist()]
        if chosen is None and len(rows) >= n:
            break
    if cfg.group_key is None:
        return [[row] for row in rows[:n]]
    lists: dict[Any, list[dict[str, Any]]] = {}
    for row in rows:
        lists.setdefault(row[cfg.group_key], []).append(row)
    return list(lists.values())


def _run_canary(
    ctx: Context, version: Path, requests: list[list[dict[str, Any]]], out: Path
) -> dict[str, Any]:
    spec = out / "request.json"
    described = {
        "version_dir": str(version),
        "store": ctx.workspace.online_store_url,
        "features_dir": str(ctx.workspace.features_dir),
        "requests": requests,
    }
    spec.write_text(json.dumps(described))
    env = dict(os.environ, OMP_WAIT_POLICY="PASSIVE")
    done = subprocess.run(  # our own interpreter and module, no shell
        [sys.executable, "-m", "spindle.serve._canary", str(spec), str(out)],
        capture_output=True,
        text=True,
        timeout=CANARY_TIMEOUT_S,
        env=env,
        check=False,
    )
    if done.returncode != 0:
        raise ServingError(
            f"the canary process could not serve {version}: {done.stderr.strip()[-2000:]}"
        )
    result: dict[str, Any] = json.loads((out / RESULT_FILE).read_text())
    return result


def _training_time_scores(version: Path, rows: pa.Table, config: ModelConfig) -> np.ndarray:
    """The trainer's own answer for ``rows`` (``trainer.predict`` in its framework, not the
    exported graph): ``[N]`` logits or values, ``[N, K]`` multiclass logits.

    The trainer is the version's own (the training config in its manifest: the family and
    architecture it was trained with, whatever the config says today); ``config``'s for a
    manifest without one.
    """
    recorded = (read_package(version).get("config") or {}).get("training")
    training = TrainingConfig.model_validate(recorded) if recorded is not None else config.training
    transform = Transform.from_json(read_transform_text(version))
    from spindle.train import trainer_for  # torch: only when a version is validated

    scores = trainer_for(training).predict(version, transform.transform(rows))
    return np.asarray(scores, dtype=np.float64)


def infra_validate(
    ctx: Context,
    model: str,
    version: int,
    *,
    n_requests: int = 100,
    overrides: list[str] | None = None,
    progress: Progress | None = None,
    config: LoadedConfig | None = None,
) -> InfraReport:
    """Serve ``model@version`` in a canary process and check scores, latency and memory.

    Args:
        n_requests: requests from the version's day: its holdout examples (a ranking
            model's request is one result list, any other's one instance).
        overrides: ``--set`` overrides of the model config (e.g. ``serving.max_rss_mb=512``).
        progress: hears its phases (canary serving, score comparison) and the verdict.
        config: the run's config when it was loaded already (else loaded with ``overrides``).

    Returns the report; it never raises for a failed check (``passed`` says, ``failures`` why).

    Example:
        report = infra_validate(ctx, "search_ranker", 3)
        if not report.passed: print(*report.failures, sep="\n")
    """
    loaded = resolve_config(ctx, model, overrides, config)
    cfg = loaded.config
    budget, rss_budget = cfg.serving.latency_budget_ms, cfg.serving.max_rss_mb
    source = version_folder(ctx, model, version)
    date = ctx.store.get_version(model, version).date
    if date is None:
        raise ServingError(
            f"{model}@{version} records no training day, so infra validation has no day to "
            "draw requests from; retrain it with `spindle train`"
        )
    # the evaluation's holdout (it holds the columns of every compared version's pins)
    holdout = compared(ctx, loaded, version, date).holdout
    requests = holdout_requests(ctx, holdout, date, n_requests)
    task = f"infra validation {model}@{version}"

    def phase(done: int, what: str) -> None:
        if progress is not None:
            progress(ProgressEvent(task, done, 2, "phases", None, what))

    def report(passed: bool, failures: tuple[str, ...], **measured: Any) -> InfraReport:
        phase(2, "passed" if passed else "failed")
        return InfraReport(
            model=model,
            version=version,
            passed=passed,
            latency_budget_ms=budget,
            max_rss_mb=rss_budget,
            failures=failures,
            **measured,
        )

    if not requests:
        return report(False, (f"{date} has no examples of {model} to serve as canary requests",))
    with tempfile.TemporaryDirectory(prefix="spindle-canary-") as tmp:
        out = Path(tmp)
        phase(0, f"canary serving {len(requests)} requests")
        try:
            measured = _run_canary(ctx, source, requests, out)
        except (ServingError, subprocess.TimeoutExpired) as exc:
            return report(False, (str(exc),))
        with pa.memory_map(str(out / ROWS_FILE)) as source_file:
            rows = pa.ipc.open_file(source_file).read_all()
        served = np.load(out / SCORES_FILE, allow_pickle=False)
    phase(1, "scoring the canary rows with the training-time model")
    expected = _training_time_scores(source, rows, cfg)
    judged = infra_verdict(
        served,
        expected,
        CanaryMeasurement(measured["cpu_p99_ms"], measured["p99_ms"], measured["peak_rss_mb"]),
        latency_budget_ms=budget,
        max_rss_mb=rss_budget,
    )
    return report(
        judged.passed,
        judged.failures,
        requests=measured["requests"],
        rows=measured["rows"],
        max_abs_diff=judged.max_abs_diff,
        p50_ms=measured["p50_ms"],
        p99_ms=measured["p99_ms"],
        cpu_p50_ms=measured["cpu_p50_ms"],
        cpu_p99_ms=measured["cpu_p99_ms"],
        peak_rss_mb=measured["peak_rss_mb"],
        load_ms=measured["load_ms"],
    )
