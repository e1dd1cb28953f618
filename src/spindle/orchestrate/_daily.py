"""The daily pipeline of one model: ingest → validate → train → evaluate (gate) → push."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from spindle.core import GateBlocked, Progress, SpindleError, StorageError, ValidationFailed
from spindle.orchestrate._context import Context, production_version
from spindle.orchestrate._data_steps import DayIngest, ingest, validate
from spindle.orchestrate._evaluate_step import evaluate_version
from spindle.orchestrate._leftovers import clean_leftovers
from spindle.orchestrate._model_common import load_config
from spindle.orchestrate._push_step import push
from spindle.orchestrate._train_step import train_version


@dataclass
class DayReport:
    """What happened for one model on one day; ``to_dict`` is the ``--json`` form."""

    model: str
    date: str
    rows_ingested: int = 0
    rows_quarantined: int = 0
    validation: str = "not run"
    anomalies: list[str] = field(default_factory=list)
    version: int | None = None
    base_version: int | None = None
    train_examples: int | None = None
    train_examples_per_s: float | None = None
    metric: str | None = None  # the gate's metric (evaluation.metric)
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    gate: str = "not run"
    gate_reasons: list[str] = field(default_factory=list)
    serving_version: int | None = None
    skipped_steps: list[str] = field(default_factory=list)
    error: str | None = None
    # "ok"; "refused" (the day's data failed validation, or a gate refused the push); "failed"
    status: str = "ok"
    failed_step: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)

    def gate_scores(self) -> dict[str, float | None]:
        """Every evaluated system's value of the gate's metric (candidate, production,
        the declared baselines)."""
        return {
            system: (values.get(self.metric) if isinstance(values, dict) else None)
            for system, values in self.metrics.items()
            if self.metric is not None
        }

    @property
    def exit_code(self) -> int:
        """0 ok (pushed, or the gate's verdict kept production), 2 refused, 1 failed."""
        return {"ok": 0, "refused": 2}.get(self.status, 1)


def ingest_and_validate(ctx: Context, date: str, report: DayReport) -> DayIngest:
    day = ingest(ctx, date)
    report.rows_ingested = day.result.rows_ingested
    report.rows_quarantined = day.result.rows_quarantined
    if day.skipped:
        report.skipped_steps.append("ingest")
    verdict = validate(ctx, date)
    report.validation = verdict.verdict
    report.anomalies = [a.message for a in verdict.anomalies if a.severity != "pass"]
    return day


def run_day(
    ctx: Context,
    model: str,
    date: str,
    *,
    from_scratch: bool = False,
    overrides: list[str] | None = None,
    train_model: bool = True,
    allow_older: bool = False,
    progress: Progress | None = None,
) -> DayReport:
    """Run the whole daily pipeline of ``model`` for ``date`` (idempotent: done steps are skipped).

    A step's failure is recorded in the report (``error``, ``status``, ``failed_step``) and in
    the registry as a failed run, also when the step refused to start; earlier steps' results
    stay. Training uses the days before ``date``; ``date`` itself is the holdout, so on a day
    whose validation FAILed the gate blocks (a broken holdout can vouch for no model) and the
    run is refused before push (``status`` "refused", a failed ``push`` run with the reason).
    ``progress`` hears the training steps of the model (and of its evaluation's replicas).
    Crash leftovers (temp files of killed processes) are removed first when no other spindle
    process is at work in the workspace.
    """
    clean_leftovers(ctx)
    report = DayReport(model, date)
    step = ["ingest"]  # the step running now, for a refusal raised before the runner records it
    try:
        ingest_and_validate(ctx, date, report)
        if train_model:
            step[0] = "train"
            _train_evaluate_push(
                ctx, model, date, report, from_scratch, overrides, step, allow_older, progress
            )
    except SpindleError as exc:
        report.error = f"{type(exc).__name__}: {exc}"
        refused = isinstance(exc, (ValidationFailed, GateBlocked))
        report.status = "refused" if refused else "failed"
        report.failed_step = step[0]
        if isinstance(exc, StorageError) and exc.read_only:
            return report  # the store must not be written on a read-only disk (SIGBUS)
        if not ctx.runner.recorded(exc):
            try:
                ctx.runner.record_refusal(step[0], exc, model=model, date=date)
            except SpindleError as inner:  # a full disk refuses this write too: say the cause
                exc.add_note(f"not recorded: {inner}")
    report.serving_version = production_version(ctx, model)
    return report


def _refuse_failed_holdout(ctx: Context, model: str, date: str, report: DayReport) -> None:
    serving = production_version(ctx, model)
    keeps = f"production stays {model}@{serving}" if serving else "nothing serves yet"
    first, *more = report.anomalies or ["see `spindle validate`"]
    extra = f" (+{len(more)} more: `spindle validate --date {date}`)" if more else ""
    raise ValidationFailed(
        f"{model} for {date}: the day failed validation ({first.rstrip('.')}{extra}), so its "
        f"holdout cannot pass the gate: {model}@{report.version} was not pushed; {keeps}. Fix "
        f"the day's data and re-ingest it (`spindle ingest --undo --date {date}`, then "
        f"`spindle ingest --date {date}`), or run the next healthy day"
    )


def _train_evaluate_push(
    ctx: Context,
    model: str,
    date: str,
    report: DayReport,
    from_scratch: bool,
    overrides: list[str] | None,
    step: list[str] | None = None,
    allow_older: bool = False,
    progress: Progress | None = None,
) -> None:
    """Train, evaluate (gate) and push; ``step[0]`` names the step running (for refusals).

    The effective config (``--set`` overrides included) is loaded once, here, and the same
    object is given to every step: the run trains, judges and pushes with one config.
    """
    step = ["train"] if step is None else step
    loaded = load_config(ctx, model, overrides)
    version, _result, skipped = train_version(
        ctx, model, date, from_scratch=from_scratch, progress=progress, config=loaded
    )
    report.version = version.version
    report.base_version = version.base_version
    report.train_examples = int(version.metrics.get("examples", 0)) or None
    report.train_examples_per_s = version.metrics.get("examples_per_s")
    if skipped:
        report.skipped_steps.append("train")
    step[0] = "evaluate"
    evaluation, details = evaluate_version(
        ctx, model, version.version, date, progress=progress, config=loaded
    )
    report.metrics = evaluation.metrics
    report.metric = details.get("primary_metric") or None  # the gate's metric, as it judged
    report.gate = evaluation.decision
    report.gate_reasons = list(evaluation.reasons)
    if report.validation == "fail":  # the gate blocked (evaluate saw the FAIL holdout): say so
        step[0] = "push"
        _refuse_failed_holdout(ctx, model, date, report)
    if evaluation.decision == "pass":
        step[0] = "push"
        try:
            push(
                ctx,
                model,
                version.version,
                allow_older=allow_older,
                progress=progress,
                config=loaded,
            )
        except GateBlocked as exc:  # infra validation refused it: recorded, and the run says so
            report.gate = "block"
            report.gate_reasons.append(str(exc))
            raise


def days_between(start: str, end: str) -> list[str]:
    first, last = dt.date.fromisoformat(start), dt.date.fromisoformat(end)
    return [(first + dt.timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
