"""``speed_check``: train at the configured parallelism and at half, and compare on one holdout.

The principle "models can train too fast": parallel and asynchronous updates can cost
quality. Parallelism here is ``workers × (max_staleness_steps + 1)`` (DDP workers times the
updates in flight); the slower run halves both (``workers // 2``, and ``(k + 1) // 2 - 1``
staleness). Both train from scratch on the same window, with the same transform and seed,
and are scored on the holdout day ``date``. The verdict is ``spindle.evaluate.speed_verdict``'s
(the model's gate metric, any task: a paired bootstrap interval of slow − fast; "training too
fast" when the slower run is significantly better or the configured run collapsed); this
module only resolves the window, trains the two runs and records the report.
Nothing is registered: the two models are removed, the report is written as JSON under
``artifacts/speed_checks/<model>/<date>.json``.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from spindle.core import (
    Progress,
    TrainingConfig,
    TrainingError,
    atomic_write_json,
    sha256_json,
    step_progress,
)
from spindle.evaluate import Interval, speed_verdict
from spindle.features import Transform
from spindle.orchestrate._context import Context
from spindle.orchestrate._model_common import (
    LoadedConfig,
    build_training_set,
    example_weights,
    labels_and_groups,
    model_spec,
    resolve_config,
    training_window,
)
from spindle.train import TrainResult, trainer_for


@dataclass(frozen=True)
class SpeedRun:
    """One of the two trainings: its parallelism, cost and holdout metric."""

    workers: int
    max_staleness_steps: int
    parallelism: int
    metric_value: float
    examples_per_s: float
    cpu_s: float
    final_loss: float


@dataclass(frozen=True)
class SpeedCheck:
    """The verdict of ``speed_check`` and its evidence (``interval`` is slow − fast)."""

    model: str
    date: str
    metric: str
    fast: SpeedRun
    slow: SpeedRun
    interval: Interval
    verdict: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def halved(config: TrainingConfig) -> TrainingConfig:
    """The config at half the parallelism (at least 1 worker and staleness 0)."""
    return config.model_copy(
        update={
            "workers": max(1, config.workers // 2),
            "max_staleness_steps": max(0, (config.max_staleness_steps + 1) // 2 - 1),
        }
    )


def speed_check(
    ctx: Context,
    model: str,
    date: str,
    *,
    overrides: list[str] | None = None,
    progress: Progress | None = None,
    config: LoadedConfig | None = None,
) -> SpeedCheck:
    """Train ``model`` for ``date`` at its parallelism and at half; compare on the holdout.

    ``progress`` hears both trainings' steps (one task each) about twice a second.
    ``config`` is the run's config when it was loaded already (else loaded with ``overrides``).

    Raises:
        TrainingError: the parallelism is already 1 (nothing to halve), or the training window
            or holdout is empty.
    """
    loaded = resolve_config(ctx, model, overrides, config)
    cfg = loaded.config
    fast_cfg, slow_cfg = cfg.training, halved(cfg.training)
    if fast_cfg.one_process:
        raise TrainingError(
            f"{model}: speed-check compares data-parallel training (workers, staleness) with "
            f"half of it; framework {fast_cfg.framework} trains in one process: nothing to compare"
        )
    if _parallelism(fast_cfg) == 1:
        raise TrainingError(
            f"{model}: training.workers=1 and training.max_staleness_steps=0, there is no "
            "parallelism to halve; run with --set training.workers=N or "
            "--set training.max_staleness_steps=K"
        )
    days, left_out = training_window(ctx, cfg, date)
    if not days:
        raise TrainingError(
            f"{model} for {date}: the training window is empty ({', '.join(left_out)}); "
            "ingest and validate earlier days first"
        )
    table = pq.read_table(build_training_set(ctx, loaded, days).uri)
    holdout = pq.read_table(build_training_set(ctx, loaded, [date], purpose="holdout").uri)
    if table.num_rows == 0 or holdout.num_rows == 0:
        raise TrainingError(f"{model} for {date}: the training set or the holdout has no rows")
    transform = Transform.fit(table, loaded.definitions)
    inputs, holdout_inputs = transform.transform(table), transform.transform(holdout)
    labels, _ = labels_and_groups(table, cfg)
    weights = example_weights(table, cfg)
    holdout_labels, groups = labels_and_groups(holdout, cfg)
    spec = model_spec(cfg, transform.input_spec(), labels)
    work = ctx.workspace.artifacts_dir / "scratch" / "speed_check" / model
    key = sha256_json({"config": loaded.config_hash, "date": date})[:16]
    scores, runs = [], []
    try:
        for name, training in (("fast", fast_cfg), ("slow", slow_cfg)):
            on_step = None
            if progress is not None:
                on_step = step_progress(
                    progress,
                    f"speed-check {model} ({'configured' if name == 'fast' else 'half'})",
                    epochs=training.epochs,
                    batch_size=training.batch_size,
                )
            encoded = (inputs, labels, weights, spec, holdout_inputs)
            run_scores, result = _train_and_score(
                training, encoded, work / f"{key}-{name}", on_step
            )
            scores.append(run_scores)
            runs.append((training, result))
    finally:
        shutil.rmtree(work, ignore_errors=True)
    judged = speed_verdict(
        cfg.task,
        cfg.evaluation.metric,
        holdout_labels,
        scores[0],
        scores[1],
        (_parallelism(runs[0][0]), _parallelism(runs[1][0])),
        groups,
    )
    interval = judged.interval
    speed_runs = [
        SpeedRun(
            c.workers,
            c.max_staleness_steps,
            _parallelism(c),
            value,
            r.examples_per_s,
            r.cpu_s,
            r.final_loss,
        )
        for (c, r), value in zip(runs, (interval.value_b, interval.value_a), strict=True)
    ]
    metric, verdict, reason = judged.metric, judged.verdict, judged.reason
    check = SpeedCheck(model, date, metric, speed_runs[0], speed_runs[1], interval, verdict, reason)
    path = ctx.workspace.artifacts_dir / "speed_checks" / model / f"{date}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, check.to_dict())
    return check


def _train_and_score(
    training: TrainingConfig,
    encoded: tuple[Any, ...],
    out: Path,
    on_step: Callable[[int, int], None] | None,
) -> tuple[np.ndarray, TrainResult]:
    """Train one run from scratch through the config's trainer; its holdout scores (float64)."""
    inputs, labels, weights, spec, holdout_inputs = encoded
    shutil.rmtree(out, ignore_errors=True)
    trainer = trainer_for(training)
    result = trainer.train(
        inputs,
        labels,
        spec,
        training,
        out,
        checkpoint_dir=out.with_name(f"{out.name}-ckpt"),
        progress=on_step,
        weights=weights,
    )
    return trainer.predict(out, holdout_inputs).astype(np.float64), result


def _parallelism(config: TrainingConfig) -> int:
    return config.workers * (config.max_staleness_steps + 1)
