"""What the registry knows of each model: versions, aliases with history, verdicts, routing.

The data behind ``spindle models list|show`` and ``spindle route`` (``--json`` prints it as is).
"""

from __future__ import annotations

from typing import Any

from spindle.core import DataError, NotFound, ServingError
from spindle.orchestrate._context import Context, ReadContext
from spindle.registry import ModelVersionRecord
from spindle.serve import check_model_name, model_repository, read_routing, weights_routing


def _routing(ctx: Context | ReadContext, model: str) -> dict[str, float]:
    try:
        weights = read_routing(model_repository(ctx.workspace.model_repo_location), model).weights
    except (ServingError, DataError):  # DataError: a store that does not answer
        return {}
    return {str(v): w for v, w in sorted(weights.items())}


def _version_entry(
    ctx: Context | ReadContext, model: str, record: ModelVersionRecord, aliases: dict[str, int]
) -> dict[str, Any]:
    training: dict[str, Any] = {}
    if record.artifact_id is not None:
        training = dict(ctx.store.get_artifact(record.artifact_id).properties.get("metrics", {}))
    evaluation = ctx.store.latest_artifact("evaluation", model=model, version=record.version)
    deployment = ctx.store.latest_artifact("deployment", model=model, version=record.version)
    eval_props = {} if evaluation is None else evaluation.properties
    candidate = dict(eval_props.get("metrics", {}).get("candidate", {}))
    reasons = [str(r) for r in eval_props.get("reasons", [])]
    return {
        "version": record.version,
        "status": record.status,
        "date": record.date,
        "created_at": record.created_at.isoformat(),
        "aliases": sorted(a for a, v in aliases.items() if v == record.version),
        "base_version": record.base_version,
        "metrics": candidate,
        "training": training,
        "verdict": eval_props.get("decision"),
        "holdout_date": eval_props.get("holdout_date"),
        "reasons": reasons,
        # the evaluation records the messages of its failed checks: why the version was blocked
        "block_reasons": reasons if eval_props.get("decision") == "block" else [],
        "pushed": deployment is not None,
        "forced_reason": None if deployment is None else deployment.properties.get("forced_reason"),
        "error": record.error,
    }


def model_report(ctx: Context | ReadContext, model: str) -> dict[str, Any]:
    """Every version of ``model`` (oldest first), its aliases with history, and its routing.

    Reads only: a :class:`ReadContext` (``Context.open_reader``) is enough.

    Raises:
        NotFound: the registry holds no version of ``model``.
    """
    check_model_name(model)
    if model not in ctx.store.models():
        known = ", ".join(ctx.store.models()) or "none yet"
        raise NotFound(f"no model {model!r} in the registry (models: {known}); train it first")
    aliases = ctx.store.aliases(model)
    versions = sorted(ctx.store.versions(model), key=lambda r: r.version)
    history = [
        {
            "alias": e.alias,
            "version": e.version,
            "previous_version": e.previous_version,
            "actor": e.actor,
            "reason": e.reason,
            "at": e.at.isoformat(),
        }
        for e in ctx.store.alias_history(model)
    ]
    return {
        "model": model,
        "aliases": dict(sorted(aliases.items())),
        "routing": _routing(ctx, model),
        "versions": [_version_entry(ctx, model, r, aliases) for r in versions],
        "alias_history": history,
    }


def models_report(ctx: Context | ReadContext) -> list[dict[str, Any]]:
    """One line per model: versions, the newest, its aliases and what serving routes to.

    Reads only: a :class:`ReadContext` (``Context.open_reader``) is enough.
    """
    out = []
    for model in ctx.store.models():
        versions = ctx.store.versions(model)
        ready = [r.version for r in versions if r.status == "ready"]
        out.append(
            {
                "model": model,
                "versions": len(versions),
                "latest": max(ready) if ready else None,
                "aliases": dict(sorted(ctx.store.aliases(model).items())),
                "routing": _routing(ctx, model),
            }
        )
    return out


def parse_weights(pairs: list[str]) -> dict[int, float]:
    """Parse ``["3=0.8", "4=0.2"]`` into ``{3: 0.8, 4: 0.2}``.

    Raises:
        ServingError: a pair is not ``VERSION=WEIGHT`` or names a version twice.
    """
    weights: dict[int, float] = {}
    for pair in pairs:
        version, sep, weight = pair.partition("=")
        try:
            if not sep:
                raise ValueError
            number, share = int(version), float(weight)
        except ValueError:
            raise ServingError(
                f"bad routing weight {pair!r}: write VERSION=WEIGHT, e.g. 3=0.8 4=0.2"
            ) from None
        if number in weights:
            raise ServingError(f"version {number} is given twice in {pairs}")
        weights[number] = share
    if not weights:
        raise ServingError("give at least one VERSION=WEIGHT, e.g. `spindle route MODEL 3=1`")
    return weights


def route(
    ctx: Context, model: str, weights: dict[int, float], *, reason: str = ""
) -> dict[str, Any]:
    """Set the routing weights of ``model`` exactly and record who moved traffic, and why.

    The versions must be pushed and the weights sum to 1. The routing change and the move of
    ``production`` to the version with the most traffic (``previous`` moves with it) are one
    recorded deployment, keyed by its intent: re-running the same route after a crash
    completes the deployment the crashed one recorded.

    Raises:
        ServingError: bad weights or versions that are not in the model repository.
    """
    from spindle.orchestrate._deploy import deploy  # the write path; the reports above read

    check_model_name(model)
    repo = model_repository(ctx.workspace.model_repo_location)
    deployed = deploy(
        ctx,
        model,
        lambda current: weights_routing(repo, current, weights),
        op="route",
        args={"weights": {str(v): float(w) for v, w in sorted(weights.items())}},
        actor="spindle route",
        reason=reason or f"routing { {str(v): w for v, w in sorted(weights.items())} }",
    )
    routing = deployed.routing
    return {
        "model": model,
        "weights": {str(v): w for v, w in sorted(routing.weights.items())},
        "previous": routing.previous,
    }
