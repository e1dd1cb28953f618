"""Pipeline steps for a model: training set, train, evaluate (and gate), push."""

from __future__ import annotations

import datetime as dt
import json
import platform
import shutil
import subprocess
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from spindle.core import (
    Deployment,
    Evaluation,
    GateBlocked,
    ModelConfig,
    ModelVersion,
    TableVersion,
    TrainingError,
    TrainingSet,
    atomic_directory,
    atomic_write_json,
    sha256_file,
    sha256_json,
)
from spindle.evaluate import SystemScores, evaluate_scores
from spindle.features import FeatureDefinition, Transform, build_rows, pin_versions
from spindle.orchestrate._context import Context, production_version
from spindle.orchestrate._data_steps import day_verdict
from spindle.serve import ModelRuntime
from spindle.serve import push as push_to_repo
from spindle.train import InputSpec, TrainResult, train_model

_PACKAGES = ("torch", "numpy", "pyarrow", "duckdb", "deltalake", "onnx", "onnxruntime", "spindle")


@dataclass(frozen=True)
class LoadedConfig:
    config: ModelConfig
    config_hash: str
    effective: dict[str, Any]
    definitions: list[FeatureDefinition]


def load_config(ctx: Context, model: str, overrides: list[str] | None = None) -> LoadedConfig:
    """Load and validate a model config (with ``--set`` overrides) and resolve its features."""
    config, effective = ctx.workspace.model_config(model, overrides)
    return LoadedConfig(config, sha256_json(effective), effective, ctx.features.resolve(config))


def _day(date: str, offset: int) -> str:
    return (dt.date.fromisoformat(date) + dt.timedelta(days=offset)).isoformat()


def training_window(
    ctx: Context, cfg: ModelConfig, date: str, days: int | None = None
) -> tuple[list[str], list[str]]:
    """Days before ``date`` to train on, and the days left out (missing or failed validation)."""
    span = days if days is not None else cfg.training.window_days
    chosen, skipped = [], []
    for i in range(span, 0, -1):
        day = _day(date, -i)
        verdict = day_verdict(ctx, day)
        if verdict is None or verdict == "fail":
            skipped.append(f"{day} ({'not ingested' if verdict is None else 'failed validation'})")
        else:
            chosen.append(day)
    return chosen, skipped


def model_dir(ctx: Context, model: str, version: int) -> Path:
    return ctx.workspace.artifacts_dir / "models" / model / str(version)


def _code_version() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def _packages() -> dict[str, str]:
    found = {}
    for name in _PACKAGES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "absent"
    return found


def build_training_set(
    ctx: Context, loaded: LoadedConfig, dates: list[str], purpose: str = "train"
) -> TrainingSet:
    """Materialise the point-in-time-correct rows of ``dates`` as Parquet (a recorded step)."""
    cfg = loaded.config
    versions = pin_versions(ctx.workspace.tables_dir)
    identity = {
        "dates": sorted(dates),
        "tables": versions,
        "features": cfg.features,
        "task": cfg.task,
        "purpose": purpose,
    }
    fingerprint = sha256_json(identity)
    path = ctx.workspace.artifacts_dir / "trainsets" / cfg.name / f"{fingerprint[:16]}.parquet"

    def run() -> TrainingSet:
        rows = build_rows(
            ctx.workspace.tables_dir, cfg, loaded.definitions, tuple(sorted(dates)), versions
        )
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        pq.write_table(rows.table, tmp)
        tmp.replace(path)
        return TrainingSet(
            cfg.name, tuple(sorted(dates)), str(path), fingerprint, rows.table.num_rows, versions
        )

    inputs = [f"table:{name}@{v}" for name, v in versions.items()]
    for name, v in versions.items():
        ctx.store.record_artifact(
            TableVersion(name, v, str(ctx.workspace.tables_dir / name), sha256_json([name, v]))
        )  # no-op if ingest recorded it
    outcome = ctx.runner.run(
        f"training_set:{purpose}", run, identity=identity, model=cfg.name, inputs=inputs
    )
    trainset: TrainingSet = outcome.value
    if not Path(trainset.uri).is_file():  # recorded but removed: rebuild
        trainset = run()
    return trainset


def _labels_and_groups(table: pa.Table, cfg: ModelConfig) -> tuple[np.ndarray, np.ndarray | None]:
    labels = table.column(cfg.label).to_numpy(zero_copy_only=False).astype(np.float32)
    groups = None
    if cfg.group_key:
        _, groups = np.unique(
            table.column(cfg.group_key).to_numpy(zero_copy_only=False), return_inverse=True
        )
    return labels, groups


def deployed_before(ctx: Context, model: str, date: str) -> int | None:
    """The version serving when ``date`` began: the newest version trained for an earlier day
    that was pushed. A function of history only, so re-running a day picks the same base."""
    if model not in ctx.store.models():
        return None
    best: tuple[str, int] | None = None
    for record in ctx.store.versions(model):
        if record.status != "ready" or not record.date or record.date >= date:
            continue
        if ctx.store.latest_artifact("deployment", model=model, version=record.version) is None:
            continue
        if best is None or (record.date, record.version) > best:
            best = (record.date, record.version)
    return None if best is None else best[1]


def choose_base(
    ctx: Context, cfg: ModelConfig, date: str, from_scratch: bool
) -> tuple[int | None, str]:
    """The version to warm-start from (None = from scratch) and why."""
    if from_scratch:
        return None, "from scratch (asked)"
    if not cfg.training.warm_start:
        return None, "from scratch (warm_start is off)"
    production = deployed_before(ctx, cfg.name, date)
    if production is None:
        return None, "from scratch (no version deployed before this day)"
    last_full = None
    for record in reversed(ctx.store.versions(cfg.name)):
        if record.status == "ready" and record.base_version is None and record.date:
            last_full = record.date
            break
    if last_full is not None:
        age = (dt.date.fromisoformat(date) - dt.date.fromisoformat(last_full)).days
        if age >= cfg.training.full_retrain_every_days:
            return (
                None,
                f"from scratch (last full retrain {age} days ago, every {cfg.training.full_retrain_every_days})",
            )
    return production, f"warm start from version {production}"


def train_version(
    ctx: Context,
    model: str,
    date: str,
    *,
    from_scratch: bool = False,
    overrides: list[str] | None = None,
) -> tuple[ModelVersion, TrainResult | None, bool]:
    """Train a new version of ``model`` for ``date`` on the days before it (a recorded step).

    Returns:
        The model version, the training result (None when the step was skipped), and whether skipped.

    Raises:
        TrainingError: the training window is empty (every day missing or failed validation).
    """
    loaded = load_config(ctx, model, overrides)
    cfg = loaded.config
    base, why = choose_base(ctx, cfg, date, from_scratch)
    days, left_out = training_window(
        ctx, cfg, date, cfg.training.warm_start_window_days if base is not None else None
    )
    if not days:
        raise TrainingError(
            f"{model} for {date}: the training window is empty ({', '.join(left_out) or 'no days'}); ingest and validate earlier days first"
        )
    trainset = build_training_set(ctx, loaded, days)
    if trainset.rows == 0:
        raise TrainingError(
            f"{model} for {date}: the training set of {days[0]}..{days[-1]} has no rows"
        )
    identity = {"trainset": trainset.content_hash, "base": base, "date": date}
    inputs = [trainset.id] + ([f"model:{model}@{base}"] if base is not None else [])
    result_box: dict[str, TrainResult] = {}

    def run() -> ModelVersion:
        version, result = _train_version(ctx, loaded, date, trainset, base, identity, left_out, why)
        result_box["result"] = result
        return version

    outcome = ctx.runner.run(
        "train",
        run,
        identity=identity,
        model=model,
        date=date,
        config_hash=loaded.config_hash,
        inputs=inputs,
        params={"base_version": base, "why": why, "days": days, "left_out": left_out},
    )
    return outcome.value, result_box.get("result"), outcome.skipped


def _train_version(
    ctx: Context,
    loaded: LoadedConfig,
    date: str,
    trainset: TrainingSet,
    base: int | None,
    identity: dict[str, Any],
    left_out: list[str],
    why: str,
) -> tuple[ModelVersion, TrainResult]:
    cfg = loaded.config
    table = pq.read_table(trainset.uri)
    base_dir = model_dir(ctx, cfg.name, base) if base is not None else None
    if base_dir is not None:
        transform = Transform.from_json((base_dir / "transform.json").read_text())
    else:
        transform = Transform.fit(table, loaded.definitions)
    inputs = transform.transform(table)
    labels, _ = _labels_and_groups(table, cfg)
    spec = InputSpec.from_dict(transform.input_spec())
    key = sha256_json({"identity": identity, "config": loaded.config_hash})[:16]
    scratch = ctx.workspace.artifacts_dir / "scratch" / cfg.name / key
    checkpoints = ctx.workspace.artifacts_dir / "checkpoints" / cfg.name / key
    if scratch.exists():
        shutil.rmtree(scratch)
    scratch.parent.mkdir(parents=True, exist_ok=True)
    result = train_model(
        inputs,
        labels,
        spec,
        cfg.training,
        scratch,
        checkpoint_dir=checkpoints,
        base_weights=(base_dir / "weights.pt") if base_dir is not None else None,
    )
    version = ctx.store.reserve_version(cfg.name, date=date, base_version=base)
    final = model_dir(ctx, cfg.name, version)
    if final.exists():  # a crashed earlier attempt left it half-registered: versions are immutable
        shutil.rmtree(final)
    metrics = {
        "examples": result.examples,
        "examples_per_s": result.examples_per_s,
        "cpu_s": result.cpu_s,
        "m_examples_per_cpu_s": result.m_examples_per_cpu_s,
        "utilisation": result.utilisation,
        "peak_rss_mb": result.peak_rss_mb,
        "final_loss": result.final_loss,
        "seconds": result.seconds,
    }
    with atomic_directory(final) as tmp:
        for name in ("model.onnx", "weights.pt", "input_spec.json"):
            shutil.copy2(scratch / name, tmp / name)
        (tmp / "transform.json").write_text(transform.to_json())
        files = {
            name: sha256_file(tmp / name)
            for name in ("model.onnx", "transform.json", "weights.pt", "input_spec.json")
        }
        manifest = {
            "model": cfg.name,
            "version": version,
            "date": date,
            "base_version": base,
            "why": why,
            "config_hash": loaded.config_hash,
            "config": loaded.effective,
            "features": cfg.features,
            "training_set": {
                "id": trainset.id,
                "dates": list(trainset.dates),
                "rows": trainset.rows,
                "table_versions": trainset.table_versions,
            },
            "left_out_days": left_out,
            "metrics": metrics,
            "weights_sha256": result.weights_sha256,
            "seed": cfg.training.seed,
            "threads": cfg.training.threads,
            "files": files,
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "code_version": _code_version(),
            "packages": _packages(),
            "python": platform.python_version(),
            "machine": platform.machine(),
        }
        atomic_write_json(tmp / "manifest.json", manifest)
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.rmtree(checkpoints, ignore_errors=True)
    artifact = ModelVersion(cfg.name, version, str(final), sha256_json(files), date, base, metrics)
    ctx.store.complete_version(cfg.name, version, artifact)
    return artifact, result


def evaluate_version(
    ctx: Context, model: str, version: int, date: str, *, overrides: list[str] | None = None
) -> tuple[Evaluation, dict[str, Any]]:
    """Score the candidate, production, popularity and the oracle on ``date`` and gate (a recorded step)."""
    loaded = load_config(ctx, model, overrides)
    cfg = loaded.config
    holdout = build_training_set(ctx, loaded, [date], purpose="holdout")
    production = deployed_before(ctx, model, date)
    baseline = production if production is not None and production != version else None
    identity = {"holdout": holdout.content_hash, "candidate": version, "baseline": baseline}
    path = ctx.workspace.artifacts_dir / "evaluations" / model / f"{version}-{date}.json"

    def run() -> Evaluation:
        table = pq.read_table(holdout.uri)
        labels, groups = _labels_and_groups(table, cfg)
        systems = [
            SystemScores(
                "candidate", ModelRuntime.load(model_dir(ctx, model, version)).score(table)
            )
        ]
        if baseline is not None:
            systems.append(
                SystemScores(
                    "production", ModelRuntime.load(model_dir(ctx, model, baseline)).score(table)
                )
            )
        if "popularity" in table.column_names:
            systems.append(
                SystemScores(
                    "popularity",
                    np.nan_to_num(
                        table.column("popularity").to_numpy(zero_copy_only=False).astype(np.float64)
                    ),
                )
            )
        if "true_relevance" in table.column_names:
            systems.append(
                SystemScores(
                    "oracle",
                    table.column("true_relevance")
                    .to_numpy(zero_copy_only=False)
                    .astype(np.float64),
                )
            )
        slices = {
            c: np.asarray(table.column(c).to_pylist(), dtype=object)
            for c in cfg.evaluation.slices
            if c in table.column_names
        }
        report = evaluate_scores(
            cfg.task,
            labels,
            groups,
            systems,
            cfg.evaluation,
            slice_columns=slices,
            baseline="production" if baseline is not None else None,
        )
        payload = report.to_dict() | {
            "model": model,
            "version": version,
            "baseline_version": baseline,
            "holdout": holdout.id,
        }
        atomic_write_json(path, payload)
        reasons = tuple(r.message for r in report.reasons if not r.passed)
        return Evaluation(
            model,
            version,
            date,
            str(path),
            sha256_file(path),
            report.decision,
            report.metrics,
            reasons,
        )

    inputs = [holdout.id, f"model:{model}@{version}"] + (
        [f"model:{model}@{baseline}"] if baseline is not None else []
    )
    outcome = ctx.runner.run(
        "evaluate",
        run,
        identity=identity,
        model=model,
        date=date,
        config_hash=loaded.config_hash,
        inputs=inputs,
    )
    evaluation: Evaluation = outcome.value
    details = json.loads(Path(evaluation.uri).read_text())
    return evaluation, details


def _version_date(ctx: Context, model: str, version: int) -> str:
    return ctx.store.get_version(model, version).date or ""


def push(
    ctx: Context,
    model: str,
    version: int,
    *,
    weight: float | None = None,
    force: bool = False,
    reason: str | None = None,
) -> Deployment:
    """Push a gated version to the model repository and make it production.

    Raises:
        GateBlocked: the version has no passing evaluation and ``force`` is not set with a reason.
    """
    record = ctx.store.latest_artifact("evaluation", model=model, version=version)
    decision = None if record is None else record.properties.get("decision")
    if decision != "pass":
        if not force:
            why = (
                "it was never evaluated"
                if record is None
                else "; ".join(record.properties.get("reasons", [])) or "blocked"
            )
            raise GateBlocked(
                f"{model}@{version} may not be pushed: {why}. Use `spindle push --force --reason TEXT` to override (audited)."
            )
        if not reason:
            raise GateBlocked(
                "--force needs --reason TEXT: forced pushes are recorded in the audit trail"
            )
    source = model_dir(ctx, model, version)

    def run() -> Deployment:
        result = push_to_repo(source, ctx.workspace.model_repo, weight=weight)
        previous = production_version(ctx, model)
        newer = previous is None or _version_date(ctx, model, version) >= _version_date(
            ctx, model, previous
        )
        if previous != version and newer and (weight is None or weight >= 1.0):
            ctx.store.set_alias(
                model,
                "production",
                version,
                actor="spindle push",
                reason=reason or f"gate passed ({decision})",
            )
        return Deployment(
            model,
            version,
            str(result.path),
            sha256_json(result.files),
            1.0 if weight is None else weight,
            reason if force else None,
        )

    inputs = [f"model:{model}@{version}"] + ([record.id] if record is not None else [])
    outcome = ctx.runner.run(
        "push",
        run,
        identity={"version": version, "weight": weight, "force": force},
        model=model,
        inputs=inputs,
    )
    deployment: Deployment = outcome.value
    return deployment
