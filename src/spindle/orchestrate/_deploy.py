"""One recorded deployment: the production alias and routing.json change together, or neither.

Every change of what serves a model (push, route, rollback, ``doctor --fix``) goes through
:func:`deploy`: under the model's routing lock it records the intended routing in the registry
as a *pending* deployment, writes routing.json atomically, then marks the deployment done and
moves ``production`` to the version with the most traffic in one transaction. A crash or error
between the steps leaves a pending record, which :func:`resolve_pending` (run by
``spindle doctor --fix``) completes when routing.json already says what was intended, and
abandons otherwise — either way the alias and the routing agree again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from spindle.core import ServingError, kill_point
from spindle.orchestrate._context import Context
from spindle.orchestrate._policy import check_routing_access
from spindle.registry import DeploymentRecord
from spindle.serve import (
    Routing,
    read_routing,
    rollback_routing,
    routing_lock,
    write_routing,
)


@dataclass(frozen=True)
class Deployed:
    """What :func:`deploy` left serving, and the deployment that recorded it (None: no change)."""

    routing: Routing
    record: DeploymentRecord | None


def _same(a: Routing, b: Routing) -> bool:
    return a.weights == b.weights and a.previous == b.previous


def deploy(
    ctx: Context,
    model: str,
    plan: Callable[[Routing], Routing],
    *,
    actor: str,
    reason: str,
) -> Deployed:
    """Change the routing of ``model`` to ``plan(current routing)`` as one recorded deployment.

    Nothing is recorded when the routing is already as planned and ``production`` already
    points at its main version. A routing.json that cannot be read counts as empty.

    Raises:
        ServingError: ``plan`` refused (bad weights, a version not in the repository).
        RegistryError: a routed version is not a ready version of ``model``.
        FeatureError: the plan sends traffic to a version that reads a restricted feature
            its team may not use (``check_routing_access``).
    """
    repo = ctx.workspace.model_repo
    with routing_lock(repo, model):
        try:
            current = read_routing(repo, model)
        except ServingError:  # a corrupt routing.json is replaced, never half-trusted
            current = Routing(model, {})
        target = plan(current)
        check_routing_access(ctx, target)
        production = ctx.store.get_alias(model, "production")
        if _same(current, target) and (target.main is None or production == target.main):
            return Deployed(current, None)
        record = ctx.store.begin_deployment(
            model, target.weights, target.previous, actor=actor, reason=reason
        )
        kill_point("deploy:recorded")
        try:
            written = write_routing(repo, target)
        except BaseException as exc:
            ctx.store.abandon_deployment(record.seq, f"{type(exc).__name__}: {exc}")
            raise
        kill_point("deploy:routed")
        done = ctx.store.finish_deployment(record.seq)
    return Deployed(written, done)


def rollback(ctx: Context, model: str, *, reason: str = "manual rollback") -> int:
    """Route all traffic of ``model`` to its previous version and make it production.

    One recorded deployment (see :func:`deploy`): the routing and the ``production`` alias move
    together. Returns the version now serving.

    Raises:
        ServingError: nothing to roll back to, or the previous version fails verification.
    """
    deployed = deploy(
        ctx,
        model,
        lambda current: rollback_routing(ctx.workspace.model_repo, current),
        actor="spindle rollback",
        reason=reason,
    )
    version = deployed.routing.main
    if version is None:
        raise ServingError(f"{model}: rollback left nothing routed")
    return version


def pending_deployments(ctx: Context) -> list[DeploymentRecord]:
    """Deployments recorded pending and never finished (a crash between the steps)."""
    return ctx.store.deployments(status="pending")


def resolve_pending(ctx: Context, record: DeploymentRecord) -> str:
    """Finish ``record`` if routing.json says what it intended, else abandon it; say which."""
    repo = ctx.workspace.model_repo
    with routing_lock(repo, record.model):
        try:
            current = read_routing(repo, record.model)
        except ServingError:
            current = None
        if current is not None and current.weights == record.weights:
            ctx.store.finish_deployment(record.seq)
            return "completed: routing.json already routed it; production moved to match"
        ctx.store.abandon_deployment(
            record.seq, "routing.json was never written (found by spindle doctor)"
        )
        return "abandoned: routing.json was never written; the alias was not moved"
