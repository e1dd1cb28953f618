"""Deployments: the recorded intent and outcome of every change of what serves a model.

The production alias and the model repository's routing.json must never disagree silently.
The caller (``spindle.orchestrate``) records a deployment ``pending`` with the weights it is
about to write, writes routing.json atomically, then finishes the deployment: marking it
``done`` and moving ``production`` to the version with the most traffic happen in one
transaction. A crash between the steps leaves a pending record that says what was intended,
so ``spindle doctor --fix`` can complete or abandon it.

A deployment made by a command (push, route, rollback, ``doctor --fix``) carries its *intent*:
the op, its arguments and the routing it was planned from, recorded in the same transaction as
the pending deployment. A rerun of the same command finds the pending intent by its key
(:func:`intent_key`) and completes it instead of planning a second change.
"""

from __future__ import annotations

import json
import math
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from spindle.core import RegistryError, sha256_json
from spindle.registry._records import INTENT_OPS, DeploymentRecord, IntentRecord
from spindle.registry._schema import DeploymentRow, IntentRow, utc_now
from spindle.registry._versions import PRODUCTION, move_alias, require_model, version_row


def _clean(model: str, weights: dict[int, float]) -> dict[str, float]:
    clean: dict[str, float] = {}
    for version, weight in weights.items():
        if not isinstance(weight, int | float) or not math.isfinite(weight) or weight < 0:
            raise RegistryError(f"{model}: weight of version {version} must be >= 0, got {weight}")
        if weight > 0:
            clean[str(int(version))] = float(weight)
    return clean


def begin(
    session: Session,
    model: str,
    weights: dict[int, float],
    previous: int | None,
    actor: str,
    reason: str,
) -> DeploymentRecord:
    """Record a pending deployment; every routed version must be a ready version."""
    for name, value in (("actor", actor), ("reason", reason)):
        if not value or not value.strip():
            raise RegistryError(f"a deployment needs a non-empty {name} (it is audited)")
    require_model(session, model)
    clean = _clean(model, weights)
    for version in clean:
        row = version_row(session, model, int(version))
        if row.status != "ready":
            raise RegistryError(
                f"{model}@{version} is {row.status}, not ready; only completed versions serve"
            )
    row_ = DeploymentRow(
        model=model,
        weights=clean,
        previous=previous,
        status="pending",
        actor=actor,
        reason=reason,
        created_at=utc_now(),
    )
    session.add(row_)
    session.flush()
    return row_.to_record()


def _plain(op: str, model: str, args: dict[str, Any]) -> dict[str, Any]:
    """``args`` as stored in JSON (int keys become strings), so a key never depends on types."""
    try:
        plain: dict[str, Any] = json.loads(json.dumps(args))
    except (TypeError, ValueError) as exc:
        raise RegistryError(f"intent {op} of {model}: arguments are not JSON ({exc})") from exc
    return plain


def intent_key(op: str, model: str, args: dict[str, Any]) -> str:
    """The key of a command: equal for the same op, model and arguments (as JSON stores them)."""
    return sha256_json({"op": op, "model": model, "args": _plain(op, model, args)})


def begin_intent(
    session: Session,
    op: str,
    model: str,
    args: dict[str, Any],
    base: tuple[dict[int, float], int | None],
    target: tuple[dict[int, float], int | None],
    actor: str,
    reason: str,
) -> IntentRecord:
    """Record a pending deployment of ``target`` and the intent of the command that plans it."""
    if op not in INTENT_OPS:
        raise RegistryError(f"unknown intent op {op!r}: expected one of {', '.join(INTENT_OPS)}")
    plain_args = _plain(op, model, args)
    record = begin(session, model, target[0], target[1], actor, reason)
    row = IntentRow(
        deployment_seq=record.seq,
        model=model,
        op=op,
        key=intent_key(op, model, plain_args),
        args=plain_args,
        base={"weights": _clean(model, base[0]), "previous": base[1]},
    )
    session.add(row)
    session.flush()
    return row.to_record()


def intents(session: Session, model: str | None, status: str | None) -> list[IntentRecord]:
    """Intents (of ``model``, whose deployment has ``status``), oldest first."""
    stmt = select(IntentRow).join(IntentRow.deployment)
    if model is not None:
        stmt = stmt.where(IntentRow.model == model)
    if status is not None:
        stmt = stmt.where(DeploymentRow.status == status)
    return [row.to_record() for row in session.scalars(stmt.order_by(IntentRow.deployment_seq))]


def refuse(
    session: Session, model: str, weights: dict[int, float], actor: str, reason: str, detail: str
) -> DeploymentRecord:
    """Record a deployment that was asked for and not made (``detail`` says why)."""
    require_model(session, model)
    now = utc_now()
    row = DeploymentRow(
        model=model,
        weights=_clean(model, weights),
        previous=None,
        status="refused",
        actor=actor,
        reason=reason,
        created_at=now,
        finished_at=now,
        detail=detail,
    )
    session.add(row)
    session.flush()
    return row.to_record()


def _pending_row(session: Session, seq: int) -> DeploymentRow:
    row = session.scalar(select(DeploymentRow).where(DeploymentRow.seq == seq).with_for_update())
    if row is None:
        raise RegistryError(f"no deployment #{seq} in the registry")
    return row


def finish(session: Session, seq: int) -> DeploymentRecord:
    """Mark deployment ``seq`` done and move ``production`` to its main version (one transaction).

    Finishing a done deployment again changes nothing; an abandoned or refused one raises.
    """
    row = _pending_row(session, seq)
    if row.status == "done":
        return row.to_record()
    if row.status != "pending":
        raise RegistryError(f"deployment #{seq} of {row.model} is {row.status}; cannot finish it")
    record = row.to_record()
    main = record.main
    if main is not None:
        move_alias(session, row.model, PRODUCTION, main, row.actor, row.reason)
    row.status = "done"
    row.finished_at = utc_now()
    session.flush()
    return row.to_record()


def abandon(session: Session, seq: int, detail: str) -> DeploymentRecord:
    """Mark a pending deployment abandoned (its routing was never written)."""
    row = _pending_row(session, seq)
    if row.status == "pending":
        row.status = "abandoned"
        row.finished_at = utc_now()
        row.detail = detail
        session.flush()
    return row.to_record()


def listing(session: Session, model: str | None, status: str | None) -> list[DeploymentRecord]:
    """Deployments (of ``model``, with ``status``), oldest first."""
    stmt = select(DeploymentRow)
    if model is not None:
        stmt = stmt.where(DeploymentRow.model == model)
    if status is not None:
        stmt = stmt.where(DeploymentRow.status == status)
    return [row.to_record() for row in session.scalars(stmt.order_by(DeploymentRow.seq))]
