"""One recorded deployment: the production alias and routing.json change together, or neither.

Every change of what serves a model (push, route, rollback, ``doctor --fix``) goes through
:func:`deploy`: under the model's routing lock it records an *intent* (the command, its
arguments, the routing it planned from and the routing it intends, as a pending deployment)
before it acts, then installs what the command needs (a push's copy), writes routing.json
atomically, then marks the deployment done and moves ``production`` to the version with the
most traffic in one transaction.

A crash between the steps leaves the intent pending. Re-running the same command (same op,
model and arguments) completes that same intent — routing.json is compared with its target
and base, never planned again from what the first attempt already wrote, so a rollback killed
after it rewrote routing.json and run again ends where one uninterrupted rollback ends, not a
version further back. Any other command, and ``spindle doctor --fix``, first settles a pending
deployment: done when routing.json already routes it, abandoned otherwise.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spindle.core import ServingError, kill_point
from spindle.orchestrate._context import Context, ReadContext
from spindle.orchestrate._policy import check_routing_access
from spindle.registry import DeploymentRecord, IntentRecord
from spindle.serve import (
    Registered,
    Routing,
    S3Repository,
    model_repository,
    read_routing,
    registered_hash,
    remove_leftovers,
    rollback_routing,
    routing_lock,
    write_routing,
)


@dataclass(frozen=True)
class Deployed:
    """What :func:`deploy` left serving, and the deployment that recorded it (None: no change).

    ``resumed`` is True when the deployment completed an intent a crashed earlier attempt of
    the same command had recorded.
    """

    routing: Routing
    record: DeploymentRecord | None
    resumed: bool = False


def _same(a: Routing, b: Routing) -> bool:
    return a.weights == b.weights and a.previous == b.previous


def registered(ctx: Context) -> Registered:
    """The registry's content hash of each version (:data:`spindle.serve.Registered`)."""
    return lambda model, version: registered_hash(ctx.store, model, version)


def repository(ctx: Context | ReadContext) -> Path | S3Repository:
    """The workspace's model repository: a local folder, or the one on an object store."""
    return model_repository(ctx.workspace.model_repo_location)


def _current(repo: Any, model: str) -> Routing:
    try:
        return read_routing(repo, model)
    except ServingError:  # a corrupt routing.json is replaced, never half-trusted
        return Routing(model, {})


def deploy(
    ctx: Context,
    model: str,
    plan: Callable[[Routing], Routing],
    *,
    op: str,
    args: dict[str, Any],
    actor: str,
    reason: str,
    prepare: Callable[[], None] | None = None,
) -> Deployed:
    """Change the routing of ``model`` to ``plan(current routing)`` as one recorded deployment.

    The intent (``op`` with ``args``, the routing planned from and the target) is recorded
    before anything is written; ``prepare`` (a push's copy into the repository: idempotent)
    runs after it, then routing.json is written and the deployment finished. A pending intent
    of the same ``op`` and ``args`` (a crashed earlier attempt) is completed instead of planning
    anew; other pending deployments of the model are settled first (done when routing.json
    routes them, else abandoned). Temp files a crashed writer left in the model's directory
    are removed under the lock.

    Nothing is recorded when the routing is already as planned and ``production`` already
    points at its main version (``prepare`` still runs). A routing.json that cannot be read
    counts as empty.

    Raises:
        ServingError: ``plan`` or ``prepare`` refused (bad weights, a version not in the
            repository, files that are not the registry's).
        RegistryError: a routed version is not a ready version of ``model``.
        FeatureError: the plan sends traffic to a version that reads a restricted feature
            its team may not use (``check_routing_access``).
    """
    repo = repository(ctx)
    key = ctx.store.intent_key(op, model, args)
    with routing_lock(repo, model):
        remove_leftovers(repo, model)
        current = _current(repo, model)
        resumable = _settle_others(ctx, model, key, current)
        if resumable is not None:
            resumed = _resume(ctx, resumable, current, prepare)
            if resumed is not None:
                return resumed
        target = plan(current)
        if prepare is None:  # else the versions are checked once prepare installed them
            check_routing_access(ctx, target)
        production = ctx.store.get_alias(model, "production")
        if _same(current, target) and (target.main is None or production == target.main):
            if prepare is not None:
                prepare()
            return Deployed(current, None)
        intent = ctx.store.begin_intent(
            op,
            model,
            args,
            base=(current.weights, current.previous),
            target=(target.weights, target.previous),
            actor=actor,
            reason=reason,
        )
        kill_point("deploy:recorded")
        return _act(ctx, intent, target, prepare)


def _act(
    ctx: Context,
    intent: IntentRecord,
    target: Routing,
    prepare: Callable[[], None] | None,
    *,
    resumed: bool = False,
) -> Deployed:
    """Install, write routing.json and finish ``intent`` (abandoned if a step raises)."""
    seq = intent.deployment.seq
    try:
        if prepare is not None:
            prepare()
            kill_point("deploy:prepared")
        check_routing_access(ctx, target)  # the policies as they are now, before traffic moves
        written = write_routing(repository(ctx), target)
    except BaseException as exc:
        ctx.store.abandon_deployment(seq, f"{type(exc).__name__}: {exc}")
        raise
    kill_point("deploy:routed")
    return Deployed(written, ctx.store.finish_deployment(seq), resumed)


def _settle_others(ctx: Context, model: str, key: str, current: Routing) -> IntentRecord | None:
    """Settle every pending deployment of ``model`` but the intent keyed ``key``; return it."""
    intents = {i.deployment.seq: i for i in ctx.store.intents(model, status="pending")}
    resumable = None
    for record in ctx.store.deployments(model, status="pending"):
        intent = intents.get(record.seq)
        if intent is not None and intent.key == key and resumable is None:
            resumable = intent
        else:
            _settle(ctx, record, current, "a later command")
    return resumable


def _resume(
    ctx: Context, intent: IntentRecord, current: Routing, prepare: Callable[[], None] | None
) -> Deployed | None:
    """Complete ``intent`` a crashed attempt of the same command recorded; None when the
    routing moved on since (the intent is abandoned and the command plans afresh)."""
    record = intent.deployment
    target = Routing(record.model, record.weights, record.previous)
    base = Routing(record.model, intent.base_weights, intent.base_previous)
    if _same(current, target):  # routing.json was written: finish what it says
        if prepare is not None:
            prepare()
        return Deployed(current, ctx.store.finish_deployment(record.seq), True)
    if _same(current, base):  # nothing was written yet: act as planned
        return _act(ctx, intent, target, prepare, resumed=True)
    ctx.store.abandon_deployment(
        record.seq,
        f"routing.json changed since the intent was recorded (now {current.to_json()['weights']}"
        f", planned from {base.to_json()['weights']}); the rerun planned afresh",
    )
    return None


def _settle(ctx: Context, record: DeploymentRecord, current: Routing | None, by: str) -> str:
    """Finish ``record`` if ``current`` routes what it intended, else abandon it; say which."""
    if current is not None and current.weights == record.weights:
        ctx.store.finish_deployment(record.seq)
        return "completed: routing.json already routed it; production moved to match"
    ctx.store.abandon_deployment(record.seq, f"routing.json was never written (found by {by})")
    return "abandoned: routing.json was never written; the alias was not moved"


def rollback(ctx: Context, model: str, *, reason: str = "manual rollback") -> int:
    """Route all traffic of ``model`` to its previous version and make it production.

    One recorded deployment (see :func:`deploy`): the routing and the ``production`` alias move
    together. Returns the version now serving. Safe to re-run after a crash: the rerun completes
    the rollback the crashed one recorded (it never rolls back a second step).

    Raises:
        ServingError: nothing to roll back to, or the previous version fails verification
            (against its manifest and the registry's record).
    """
    hashes = registered(ctx)
    deployed = deploy(
        ctx,
        model,
        lambda current: rollback_routing(repository(ctx), current, registered=hashes),
        op="rollback",
        args={},
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


def pending_intent(ctx: Context, record: DeploymentRecord) -> IntentRecord | None:
    """The intent behind a pending deployment (None for one recorded without an intent)."""
    for intent in ctx.store.intents(record.model, status="pending"):
        if intent.deployment.seq == record.seq:
            return intent
    return None


def resolve_pending(ctx: Context, record: DeploymentRecord) -> str:
    """Finish ``record`` if routing.json says what it intended, else abandon it; say which."""
    repo = repository(ctx)
    with routing_lock(repo, record.model):
        pending = {d.seq for d in ctx.store.deployments(record.model, status="pending")}
        if record.seq not in pending:  # a command settled it since it was listed
            return "settled meanwhile by another command"
        try:
            current: Routing | None = read_routing(repo, record.model)
        except ServingError:
            current = None
        return _settle(ctx, record, current, "spindle doctor")
