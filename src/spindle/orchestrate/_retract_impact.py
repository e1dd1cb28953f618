"""Which model versions and deployments saw a retraction's rows, and the retraining it calls for.

A version saw the rows when its training set read any of them: each version's manifest names
its training set's days and the pinned version of every table it read, so the source's table
is read as it was then (Delta time travel), as the training set saw it (the rows known at its
cutoff, in its window: ``spindle.features.retracted_rows_read``). A training set that applied
the retraction saw none. A version warm-started from one that saw them inherits its exposure
("through its base vN"). A deployment saw them when it routed traffic to such a version.

``retrain_plan`` names, for each model whose production version saw the rows, the base to
retrain from: the newest version of production's warm-start chain that never saw them, or
none (from scratch); models come in the fleet's order (priority, then staleness).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any, ClassVar

from spindle.core import (
    DataError,
    GateBlocked,
    ServingError,
    SpindleError,
    read_package,
    sha256_json,
)
from spindle.features import retracted_rows_read
from spindle.orchestrate._backfill_step import backfill
from spindle.orchestrate._context import Context, ReadContext, production_version
from spindle.orchestrate._daily import DayReport
from spindle.orchestrate._evaluate_step import evaluate_version
from spindle.orchestrate._fleet import _ordered_models
from spindle.orchestrate._model_common import load_config
from spindle.orchestrate._push_step import push
from spindle.orchestrate._retract_step import (
    RetractionInfo,
    get_retraction,
    keys_of,
    retractions,
)
from spindle.orchestrate._retract_views import ViewReach, view_reach
from spindle.orchestrate._train_step import train_version
from spindle.orchestrate._version_store import version_folder

SNAPSHOT_KIND = "retraction_impact"


@dataclass(frozen=True)
class ExposedVersion:
    """A model version whose training data held retracted rows.

    Attributes:
        rows: the retracted rows its own training set read (0 when only its base saw them).
        through: the base version it inherited the exposure from (None: its own data).
        days: its training set's days.
        views: feature views whose values it read were computed over the rows (aggregates
            that counted them; see ``_retract_views``).
    """

    model: str
    version: int
    date: str | None
    rows: int
    through: int | None
    days: tuple[str, ...] = ()
    views: tuple[str, ...] = ()  # views computed over the rows it read values of

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "days": list(self.days), "views": list(self.views)}


@dataclass(frozen=True)
class RetractionImpact:
    """A retraction, the versions that saw its rows and the deployments that served them."""

    retraction: RetractionInfo
    versions: list[ExposedVersion]
    deployments: list[dict[str, Any]]
    unknown: list[str] = field(default_factory=list)  # versions whose exposure cannot be told

    def to_dict(self) -> dict[str, Any]:
        return {
            "retraction": self.retraction.to_dict(),
            "versions": [v.to_dict() for v in self.versions],
            "deployments": self.deployments,
            "unknown": self.unknown,
        }


def _own_rows(
    ctx: Context | ReadContext,
    info: RetractionInfo,
    trainset: dict[str, Any],
    cache: dict[Any, int],
) -> int | None:
    """The retracted rows a version's training set (its manifest's ``training_set``) read;
    None when the table version it read is gone (``spindle forget`` purges them)."""
    if info.id in (trainset.get("retractions") or []):
        return 0  # built after the retraction: its rows were left out
    version = (trainset.get("table_versions") or {}).get(f"raw/{info.source}")
    dates = tuple(sorted(trainset.get("dates") or ()))
    decl = _sources(ctx).get(info.source)
    if version is None or decl is None or not dates:
        return 0  # the training set did not read the source
    key = (int(version), dates)
    if key not in cache:
        try:
            cache[key] = retracted_rows_read(
                ctx.workspace.tables_dir, decl, int(version), dates, keys_of(ctx, info)
            )
        except DataError:
            return None
    return cache[key]


def _sources(ctx: Context | ReadContext) -> dict[str, Any]:
    """The declared sources (a reader, e.g. the dashboard's, loads them from the workspace)."""
    if isinstance(ctx, Context):
        return ctx.sources
    from spindle.core import load_sources

    return dict(load_sources(ctx.workspace.root))


def _built_at(ctx: Context | ReadContext, trainset: dict[str, Any]) -> dt.datetime | None:
    """When the training set was recorded (None when its record is gone)."""
    try:
        return ctx.store.get_artifact(str(trainset.get("id"))).created_at
    except SpindleError:
        return None


@dataclass(frozen=True)
class _Snapshot:
    """Which versions' training sets read a retraction's rows, as found when it was recorded
    (before a deletion's rows, and the table versions holding them, are removed)."""

    kind: ClassVar[str] = SNAPSHOT_KIND
    id: str
    uri: str
    content_hash: str
    retraction: str
    rows: dict[str, int]

    def properties(self) -> dict[str, Any]:
        return {"retraction": self.retraction, "rows": dict(self.rows)}


def _snapshot(ctx: Context | ReadContext, retraction_id: str) -> dict[str, int] | None:
    found = ctx.store.find_artifacts(SNAPSHOT_KIND, retraction=retraction_id)
    return {str(k): int(v) for k, v in found[0].properties["rows"].items()} if found else None


def record_impact_snapshot(ctx: Context, retraction_id: str) -> None:
    """Record which versions read the retraction's rows, as the tables tell now (idempotent).

    Impact reads each version's source table as it was (time travel); physical removal
    (``spindle forget``) purges those versions, so what they showed is recorded first.
    """
    if _snapshot(ctx, retraction_id) is not None:
        return
    info = get_retraction(ctx, retraction_id)
    cache: dict[Any, int] = {}
    unknown: list[str] = []
    rows = {
        f"{model}@{v.version}": v.rows
        for model in ctx.store.models()
        for v in _model_exposure(ctx, info, model, cache, unknown, {}).values()
        if v.rows
    }
    uri = info.keys_uri
    content_hash = sha256_json(rows)
    ctx.store.record_artifact(_Snapshot(f"{info.id}:impact", uri, content_hash, info.id, rows))


def _model_exposure(
    ctx: Context | ReadContext,
    info: RetractionInfo,
    model: str,
    cache: dict[Any, int],
    unknown: list[str],
    recorded: dict[str, int] | None,
    reach: ViewReach | None = None,
) -> dict[int, ExposedVersion]:
    """The exposed versions of ``model``, by number (bases come before their children);
    ``recorded`` (the snapshot) answers for a version whose table version is gone."""
    exposed: dict[int, ExposedVersion] = {}
    for record in sorted(ctx.store.versions(model), key=lambda r: r.version):
        if record.status != "ready":
            continue
        try:
            manifest = read_package(version_folder(ctx, model, record.version))
        except ServingError:
            unknown.append(f"{model}@{record.version}: its manifest cannot be read")
            continue
        trainset = manifest.get("training_set")
        trainset = trainset if isinstance(trainset, dict) else {}
        rows = _own_rows(ctx, info, trainset, cache)
        if rows is None:
            name = f"{model}@{record.version}"
            if recorded is None:
                unknown.append(f"{name}: the table version its training set read is gone")
                continue
            rows = recorded.get(name, 0)
        base = record.base_version
        through = base if rows == 0 and base is not None and base in exposed else None
        views: tuple[str, ...] = ()
        if reach is not None and reach.views:
            views = tuple(reach.exposed(trainset, _built_at(ctx, trainset), manifest.features))
        if rows or through is not None or views:
            days = tuple(trainset.get("dates") or ())
            exposed[record.version] = ExposedVersion(
                model, record.version, record.date, rows, through, days, views
            )
    return exposed


def retraction_impact(ctx: Context | ReadContext, retraction_id: str) -> RetractionImpact:
    """Every model version and deployment whose training data held the retraction's rows.

    Raises:
        DataError: no such retraction, or its keys file is missing.

    Example:
        >>> [(v.model, v.version) for v in retraction_impact(ctx, "retraction-1").versions]  # doctest: +SKIP
        [('ranker', 3), ('ranker', 4)]
    """
    info = get_retraction(ctx, retraction_id)
    cache: dict[Any, int] = {}
    unknown: list[str] = []
    versions: list[ExposedVersion] = []
    deployments: list[dict[str, Any]] = []
    recorded = _snapshot(ctx, info.id)
    reach = view_reach(ctx, info)
    for model in ctx.store.models():
        exposed = _model_exposure(ctx, info, model, cache, unknown, recorded, reach)
        versions += exposed.values()
        serving = production_version(ctx, model)
        for d in ctx.store.deployments(model, status="done"):
            seen = sorted(v for v, w in d.weights.items() if w > 0 and int(v) in exposed)
            if seen:
                deployments.append(
                    {
                        "model": model,
                        "deployment": d.seq,
                        "versions": seen,
                        "weights": {str(v): w for v, w in d.weights.items()},
                        "at": d.created_at.isoformat(),
                        "actor": d.actor,
                        "serving_now": d.main == serving and serving in exposed,
                    }
                )
    return RetractionImpact(info, versions, deployments, unknown)


@dataclass(frozen=True)
class RetrainTask:
    """Retrain ``model``: production ``production`` saw the rows; train for ``date`` from
    ``base`` (None: from scratch) without them, then evaluate and push through the gate."""

    model: str
    priority: int
    production: int
    date: str
    base: int | None
    why: str
    backfill: tuple[str, ...] = ()  # features to recompute without the rows first
    since: str | None = None  # from this day (the retraction's first)

    def to_dict(self) -> dict[str, Any]:
        return {**self.__dict__, "backfill": list(self.backfill)}


def _clean_base(
    ctx: Context, model: str, production: int, exposed: set[int]
) -> tuple[int | None, str]:
    """The newest version of production's warm-start chain that never saw the rows."""
    seen = [production]
    current = ctx.store.get_version(model, production).base_version
    while current is not None:
        if current not in exposed:
            chain = " <- ".join(f"v{v}" for v in seen)
            return (
                current,
                f"warm start from v{current}, the last base that never saw the rows ({chain} saw them)",
            )
        seen.append(current)
        current = ctx.store.get_version(model, current).base_version
    chain = ", ".join(f"v{v}" for v in seen)
    return None, f"from scratch: every version of the warm-start chain ({chain}) saw the rows"


def retrain_plan(ctx: Context, retraction_id: str) -> list[RetrainTask]:
    """For each model whose production version saw the retraction's rows, the retraining that
    replaces it, most important model first (the fleet's order: priority, then staleness).

    Raises:
        DataError: no such retraction.
    """
    impact = retraction_impact(ctx, retraction_id)
    by_model: dict[str, set[int]] = {}
    for v in impact.versions:
        by_model.setdefault(v.model, set()).add(v.version)
    names = [m for m in ctx.workspace.model_names() if m in by_model]
    reach = view_reach(ctx, impact.retraction)
    tasks = []
    for priority, _, model in _ordered_models(ctx, names):
        production = production_version(ctx, model)
        if production is None or production not in by_model[model]:
            continue
        date = ctx.store.get_version(model, production).date or ""
        base, why = _clean_base(ctx, model, production, by_model[model])
        refs = load_config(ctx, model).config.features
        stale = tuple(reach.stale(list(refs)))
        since = impact.retraction.days[0] if stale else None
        tasks.append(RetrainTask(model, priority, production, date, base, why, stale, since))
    return tasks


def retractions_with_impact(ctx: Context) -> list[dict[str, Any]]:
    """Every retraction with how many versions, deployments and production models saw it."""
    out = []
    for info in retractions(ctx):
        impact = retraction_impact(ctx, info.id)
        serving = {d["model"] for d in impact.deployments if d["serving_now"]}
        out.append(
            {
                **info.to_dict(),
                "versions_exposed": len(impact.versions),
                "deployments_exposed": len(impact.deployments),
                "serving_exposed": sorted(serving),
            }
        )
    return out


def run_retrain(ctx: Context, tasks: list[RetrainTask]) -> list[DayReport]:
    """Run the plan: for each task, train from its base (or from scratch) on its day's window,
    which now leaves the retracted rows out, evaluate on the day's holdout and push when the
    gate passes, as ``spindle run`` does. A task's failure is in its report (and recorded as a
    failed run); the next task still runs.
    """
    reports = []
    for task in tasks:
        report = DayReport(task.model, task.date)
        step = ["train"]
        try:
            _retrain_one(ctx, task, report, step)
        except SpindleError as exc:
            report.error = f"{type(exc).__name__}: {exc}"
            report.status = "refused" if isinstance(exc, GateBlocked) else "failed"
            report.failed_step = step[0]
            if not ctx.runner.recorded(exc):
                ctx.runner.record_refusal(step[0], exc, model=task.model, date=task.date)
        report.serving_version = production_version(ctx, task.model)
        reports.append(report)
    return reports


def _retrain_one(ctx: Context, task: RetrainTask, report: DayReport, step: list[str]) -> None:
    if task.backfill and task.since is not None:  # values computed over the rows: recompute
        step[0] = "backfill"
        for ref in task.backfill:
            backfill(ctx, ref, task.since)
        step[0] = "train"
    loaded = load_config(ctx, task.model)
    version, _result, skipped = train_version(
        ctx,
        task.model,
        task.date,
        from_scratch=task.base is None,
        base_version=task.base,
        config=loaded,
    )
    report.version, report.base_version = version.version, version.base_version
    if skipped:
        report.skipped_steps.append("train")
    step[0] = "evaluate"
    evaluation, details = evaluate_version(
        ctx, task.model, version.version, task.date, config=loaded
    )
    report.metrics = evaluation.metrics
    report.metric = details.get("primary_metric") or None
    report.gate, report.gate_reasons = evaluation.decision, list(evaluation.reasons)
    if evaluation.decision != "pass":
        report.status = "refused"
        return
    step[0] = "push"
    push(ctx, task.model, version.version, config=loaded)
