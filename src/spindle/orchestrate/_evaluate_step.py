"""The evaluate step: score the candidate, production and the declared baselines on a holdout; gate."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads
import pyarrow.parquet as pq

from spindle.core import (
    ConfigError,
    Evaluation,
    Progress,
    atomic_write_json,
    read_package,
    sha256_file,
    sha256_json,
)
from spindle.evaluate import FeatureValues, SystemScores, evaluate_scores
from spindle.features import baseline_scores
from spindle.orchestrate._context import Context, production_before
from spindle.orchestrate._model_common import (
    LoadedConfig,
    build_training_set,
    labels_and_groups,
    resolve_config,
    trainset_file,
)
from spindle.orchestrate._replicas import Replica, train_replicas
from spindle.orchestrate._verdicts import day_verdict
from spindle.orchestrate._version_store import version_folder
from spindle.serve import ModelRuntime


def _pins(ctx: Context, model: str, version: int, default: list[str]) -> list[str]:
    """The features a version was trained on (its manifest), ``default`` for an old manifest."""
    return read_package(version_folder(ctx, model, version)).features or list(default)


@dataclass(frozen=True)
class Compared:
    """What an evaluation of a version on a day compares, and the holdout that holds it all.

    Attributes:
        holdout: the config whose training set (the holdout) has every column the compared
            versions and the declared baselines read.
        baseline: production's version when it is another one (None: nothing to compare).
        candidate_pins, baseline_pins: the features each version was trained on.
    """

    holdout: LoadedConfig
    baseline: int | None
    candidate_pins: list[str]
    baseline_pins: list[str]


def compared(ctx: Context, loaded: LoadedConfig, version: int, date: str) -> Compared:
    """The versions an evaluation of ``version`` on ``date`` compares, and its holdout config.

    Production is production as it is now (after a rollback, the version rolled back to), never
    a version trained for this day or later: the same rule as the warm-start base. Infra
    validation draws its requests from the same holdout, so it never builds a second one.
    """
    cfg = loaded.config
    production = production_before(ctx, cfg.name, date)
    baseline = production if production is not None and production != version else None
    candidate_pins = _pins(ctx, cfg.name, version, cfg.features)
    baseline_pins = _pins(ctx, cfg.name, baseline, cfg.features) if baseline is not None else []
    baseline_features = [b.feature for b in cfg.baselines if b.feature is not None]
    holdout = _holdout_config(ctx, loaded, [*candidate_pins, *baseline_pins, *baseline_features])
    return Compared(holdout, baseline, candidate_pins, baseline_pins)


def _holdout_config(ctx: Context, loaded: LoadedConfig, pins: list[str]) -> LoadedConfig:
    """The config whose training set holds every column the compared versions read.

    Production may pin another version of a feature than the candidate (the column of each
    version is its own), so the holdout carries the union of both pin lists.
    """
    cfg = loaded.config
    extra = [ref for ref in dict.fromkeys(pins) if ref not in cfg.features]
    if not extra:
        return loaded
    config = cfg.model_copy(update={"features": [*cfg.features, *extra]})
    return LoadedConfig(config, loaded.config_hash, loaded.effective, ctx.features.resolve(config))


def _feature_values(
    ctx: Context, table: pa.Table, candidate: list[str], baseline: list[str]
) -> list[FeatureValues]:
    """The candidate's pins on the holdout, each with production's pin of the same feature."""
    definitions = ctx.features.definitions
    by_name = {ref.partition("@")[0]: ref for ref in baseline}
    found = []
    for ref in candidate:
        column = definitions[ref].column
        if column not in table.column_names:
            continue
        base_ref = by_name.get(ref.partition("@")[0])
        base_values = None
        if base_ref is not None and base_ref != ref:
            base_column = definitions[base_ref].column
            if base_column in table.column_names:
                base_values = table.column(base_column)
        found.append(FeatureValues(ref, table.column(column), base_ref, base_values))
    return found


def _gate_columns(ctx: Context, uri: str, loaded: LoadedConfig, pins: list[str]) -> pa.Table:
    """The holdout's columns the gate reads besides the scores: label, group key, slices, the
    pinned features (feature health) and the features declared baselines read."""
    cfg = loaded.config
    definitions = ctx.features.definitions
    wanted = [
        cfg.label,
        cfg.group_key,
        *cfg.evaluation.slices,
        *(definitions[r].column for r in pins if r in definitions),
        *(definitions[b.feature].column for b in cfg.baselines if b.feature in definitions),
    ]
    present = set(pq.read_schema(uri).names)
    return pq.read_table(uri, columns=[c for c in dict.fromkeys(wanted) if c and c in present])


def _slice_values(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """A slice column as Arrow (not Python objects: 5M rows a day at scale 128), a float's
    NaN as null, so that it forms the missing slice as before."""
    if pa.types.is_floating(column.type):
        return pc.if_else(pc.is_nan(column), pa.scalar(None, column.type), column)
    return column


def _baseline_systems(
    ctx: Context, table: pa.Table, uri: str, loaded: LoadedConfig
) -> tuple[list[SystemScores], str | None]:
    """The model's declared baselines scored on the holdout, and the ground truth's name
    (a SQL baseline reads the holdout file, so DuckDB loads only the columns it names)."""
    cfg = loaded.config
    definitions = ctx.features.definitions
    columns = {b.feature: definitions[b.feature].column for b in cfg.baselines if b.feature}
    rows = pads.dataset(uri, format="parquet")
    systems, truth = [], None
    for i, declared in enumerate(cfg.baselines):
        where = f"models/{cfg.name}.yaml: baselines.{i}"
        holdout = rows if declared.sql is not None else table
        systems.append(
            SystemScores(declared.name, baseline_scores(declared, holdout, columns, where))
        )
        if declared.ground_truth:
            truth = declared.name
    return systems, truth


def _holdout_problem(ctx: Context, date: str) -> dict[str, Any] | None:
    """The gate check a holdout day that FAILed validation fails (None for a healthy day).

    Its labels or slices are broken, so no score on it can vouch for a model: the gate blocks,
    whatever the metrics say, and the block is an ordinary verdict with this reason first.
    """
    if day_verdict(ctx, date) != "fail":
        return None
    return {
        "check": "holdout_validation",
        "level": "fail",
        "passed": False,
        "metric": "validation",
        "slice": None,
        "candidate": None,
        "baseline": None,
        "interval": None,
        "threshold": None,
        "message": f"the holdout day {date} failed data validation (`spindle validate --date "
        f"{date}`): no score on it can pass the gate; evaluate on a healthy day, or fix and "
        "re-ingest this one",
    }


def evaluate_version(
    ctx: Context,
    model: str,
    version: int,
    date: str,
    *,
    overrides: list[str] | None = None,
    replicas: int | None = None,
    progress: Progress | None = None,
    config: LoadedConfig | None = None,
) -> tuple[Evaluation, dict[str, Any]]:
    """Score the candidate, production and the declared baselines on ``date`` and gate (a recorded step).

    Args:
        replicas: K seed replicas including the candidate (``evaluation.replicas`` when None):
            K-1 more models are trained like the candidate with other seeds (cached, never
            registered), their run-to-run spread is reported and widens the regression
            tolerance to ``REPLICA_NOISE_FACTOR`` x its std when that is larger.
        progress: hears the replicas' training steps (one task per replica trained).
        config: the run's config when it was loaded already (a daily run loads it once);
            else it is loaded with ``overrides``.

    Returns:
        The ``Evaluation`` artifact and the full report as a dict (``replica_spread`` and
        ``replicas`` included).

    Raises:
        ConfigError: ``replicas`` < 1.

    Example:
        >>> evaluation, report = evaluate_version(ctx, "search_ranker", 4, "2026-01-05", replicas=3)  # doctest: +SKIP
        >>> report["replica_spread"][0]["std"]  # doctest: +SKIP
        0.0061
    """
    loaded = resolve_config(ctx, model, overrides, config)
    cfg = loaded.config
    k = cfg.evaluation.replicas if replicas is None else replicas
    if k < 1:
        raise ConfigError("--replicas", [f"replicas must be at least 1 (the candidate), got {k}"])
    sides = compared(ctx, loaded, version, date)
    baseline, holdout_loaded = sides.baseline, sides.holdout
    candidate_pins, baseline_pins = sides.candidate_pins, sides.baseline_pins
    holdout = build_training_set(ctx, holdout_loaded, [date], purpose="holdout")
    identity: dict[str, Any] = {
        "holdout": holdout.content_hash,
        "candidate": version,
        "baseline": baseline,
    }
    if k > 1:  # the key of an evaluation without replicas stays what it always was
        identity["replicas"] = k
    bad_holdout = _holdout_problem(ctx, date)
    if bad_holdout is not None:  # likewise: only a FAIL holdout adds to the key
        identity["holdout_failed_validation"] = True
    # one report per (holdout, baseline, gate config): a re-evaluation never overwrites one
    fingerprint = sha256_json([identity, loaded.config_hash])[:12]
    path = (
        ctx.workspace.artifacts_dir / "evaluations" / model / f"{version}-{date}-{fingerprint}.json"
    )

    def run() -> Evaluation:
        # the holdout is never held whole: each model scores it a batch at a time, and only
        # the columns the gate reads (labels, groups, slices, pinned features) are loaded
        pins = [*candidate_pins, *baseline_pins]
        held = str(trainset_file(ctx, holdout.uri))  # a local copy of one on an object store
        table = _gate_columns(ctx, held, holdout_loaded, pins)
        labels, groups = labels_and_groups(table, cfg)
        candidate = ModelRuntime.load(version_folder(ctx, model, version)).score_file(held)
        systems = [SystemScores("candidate", candidate)]
        if baseline is not None:
            runtime = ModelRuntime.load(version_folder(ctx, model, baseline))
            systems.append(SystemScores("production", runtime.score_file(held)))
        trained: list[Replica] = train_replicas(ctx, model, version, k, progress)
        systems += [
            SystemScores(r.system, ModelRuntime.load(r.path).score_file(held)) for r in trained
        ]
        declared, truth = _baseline_systems(ctx, table, held, holdout_loaded)
        systems += declared
        slices = {
            c: _slice_values(table.column(c))
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
            replicas=[r.system for r in trained],
            reference=truth,
            features=_feature_values(ctx, table, candidate_pins, baseline_pins),
        )
        payload = report.to_dict() | {
            "model": model,
            "version": version,
            "baseline_version": baseline,
            "holdout": holdout.id,
            "replicas": [r.to_dict() for r in trained],
            "features": {"candidate": candidate_pins, "baseline": baseline_pins},
        }
        decision = report.decision
        reasons = tuple(r.message for r in report.reasons if not r.passed)
        if bad_holdout is not None:
            decision, reasons = "block", (bad_holdout["message"], *reasons)
            payload["decision"] = decision
            payload["reasons"] = [bad_holdout, *payload["reasons"]]
        atomic_write_json(path, payload)
        return Evaluation(
            model,
            version,
            date,
            str(path),
            sha256_file(path),
            decision,
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
        params={"replicas": k},
    )
    evaluation: Evaluation = outcome.value
    if ctx.store.get_alias(model, "candidate") != version:
        ctx.store.set_alias(
            model,
            "candidate",
            version,
            actor="spindle evaluate",
            reason=f"evaluated on {date}: gate {evaluation.decision}",
        )
    details = json.loads(Path(evaluation.uri).read_text())
    return evaluation, details
