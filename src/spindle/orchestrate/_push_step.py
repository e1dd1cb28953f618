"""The push step: refuse ungated versions, push atomically, move the production alias."""

from __future__ import annotations

from spindle.core import (
    Deployment,
    GateBlocked,
    sha256_json,
)
from spindle.orchestrate._context import Context, production_version
from spindle.orchestrate._model_common import model_dir
from spindle.serve import push as push_to_repo


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
