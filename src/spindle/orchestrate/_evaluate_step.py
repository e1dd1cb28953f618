"""The evaluate step: score candidate, production, popularity and oracle on a holdout; gate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

from spindle.core import (
    Evaluation,
    atomic_write_json,
    sha256_file,
    sha256_json,
)
from spindle.evaluate import SystemScores, evaluate_scores
from spindle.orchestrate._context import Context
from spindle.orchestrate._model_common import (
    build_training_set,
    deployed_before,
    labels_and_groups,
    load_config,
    model_dir,
)
from spindle.serve import ModelRuntime


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
    # one report per (holdout, baseline, gate config): a re-evaluation never overwrites one
    fingerprint = sha256_json([identity, loaded.config_hash])[:12]
    path = (
        ctx.workspace.artifacts_dir / "evaluations" / model / f"{version}-{date}-{fingerprint}.json"
    )

    def run() -> Evaluation:
        table = pq.read_table(holdout.uri)
        labels, groups = labels_and_groups(table, cfg)
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
