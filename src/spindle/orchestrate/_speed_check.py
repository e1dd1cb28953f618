"""``speed_check``: train at the configured parallelism and at half, and compare on one holdout.

The principle "models can train too fast": parallel and asynchronous updates can cost
quality. Parallelism here is ``workers × (max_staleness_steps + 1)`` (DDP workers times the
updates in flight); the slower run halves both (``workers // 2``, and ``(k + 1) // 2 - 1``
staleness). Both train from scratch on the same window, with the same transform and seed,
and are scored on the holdout day ``date``. The verdict is ``spindle.evaluate.speed_verdict``'s
(the model's gate metric, any task: a paired bootstrap interval of slow − fast; "training too
fast" when the slower run is significantly better or the configured run collapsed), and the
two trainings are the train stage's (``spindle.train.train_files_at_two_parallelisms``:
transform, encoding, both runs and their holdout scores; a training set above
``training.in_memory_max_rows`` rows is streamed from its file and the holdout scored a batch
at a time, so neither is held whole). This module only resolves the config, the window and
the two training sets, calls those two and records the report.
Nothing is registered: the two models are removed, the report is written as JSON under
``artifacts/speed_checks/<model>/<date>.json``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Any

from spindle.core import Progress, TrainingConfig, TrainingError, atomic_write_json, step_progress
from spindle.evaluate import Interval, speed_verdict
from spindle.orchestrate._context import Context
from spindle.orchestrate._model_common import (
    LoadedConfig,
    build_training_set,
    resolve_config,
    training_window,
    trainset_file,
)
from spindle.train import TrainResult, train_files_at_two_parallelisms


@dataclass(frozen=True)
class SpeedRun:
    """One of the two trainings: its parallelism, cost and holdout metric (``examples``: the
    training rows; ``peak_rows_held``: the most of them held at once, all in memory, the
    shuffle buffer's peak when streamed)."""

    workers: int
    max_staleness_steps: int
    parallelism: int
    metric_value: float
    examples_per_s: float
    cpu_s: float
    final_loss: float
    examples: int = 0
    peak_rows_held: int = 0


@dataclass(frozen=True)
class SpeedCheck:
    """The verdict of ``speed_check`` and its evidence (``interval`` is slow − fast).

    ``streamed``: both runs streamed the training set from its file and the holdout was scored
    a batch at a time (it has more rows than ``training.in_memory_max_rows``); ``notes``: why
    such a set was held in memory after all.
    """

    model: str
    date: str
    metric: str
    fast: SpeedRun
    slow: SpeedRun
    interval: Interval
    verdict: str
    reason: str
    streamed: bool = False
    notes: tuple[str, ...] = ()

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
    trainset = build_training_set(ctx, loaded, days)
    held = build_training_set(ctx, loaded, [date], purpose="holdout")
    if trainset.rows == 0 or held.rows == 0:
        raise TrainingError(f"{model} for {date}: the training set or the holdout has no rows")
    scratch = ctx.workspace.artifacts_dir / "scratch" / "speed_check" / model
    # the train stage reads the files (local copies of objects on a store), streamed when large
    runs = train_files_at_two_parallelisms(
        replace(trainset, uri=str(trainset_file(ctx, trainset.uri))),
        trainset_file(ctx, held.uri),
        loaded.definitions,
        cfg,
        fast_cfg,
        slow_cfg,
        scratch,
        progress_for=None if progress is None else _progress_for(progress, model),
    )
    judged = speed_verdict(
        cfg.task,
        cfg.evaluation.metric,
        runs.labels,
        runs.fast_scores,
        runs.slow_scores,
        (_parallelism(fast_cfg), _parallelism(slow_cfg)),
        runs.groups,
    )
    interval = judged.interval
    check = SpeedCheck(
        model,
        date,
        judged.metric,
        _speed_run(fast_cfg, runs.fast, interval.value_b),
        _speed_run(slow_cfg, runs.slow, interval.value_a),
        interval,
        judged.verdict,
        judged.reason,
        runs.streamed,
        runs.notes,
    )
    path = ctx.workspace.artifacts_dir / "speed_checks" / model / f"{date}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_json(path, check.to_dict())
    return check


def _progress_for(
    progress: Progress, model: str
) -> Callable[[str, TrainingConfig], Callable[[int, int], None]]:
    """Each run's step callback: one progress task per training."""

    def on_step(name: str, training: TrainingConfig) -> Callable[[int, int], None]:
        return step_progress(
            progress,
            f"speed-check {model} ({'configured' if name == 'fast' else 'half'})",
            epochs=training.epochs,
            batch_size=training.batch_size,
        )

    return on_step


def _speed_run(config: TrainingConfig, result: TrainResult, metric_value: float) -> SpeedRun:
    return SpeedRun(
        config.workers,
        config.max_staleness_steps,
        _parallelism(config),
        metric_value,
        result.examples_per_s,
        result.cpu_s,
        result.final_loss,
        result.examples,
        result.peak_rows_held,
    )


def _parallelism(config: TrainingConfig) -> int:
    return config.workers * (config.max_staleness_steps + 1)
