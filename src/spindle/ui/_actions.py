"""The dashboard's two actions that change state, rollback and route: offered only when the
dashboard was started with a token, accepted only from a request that carries it, and done by
the same public functions as ``spindle rollback`` and ``spindle route`` (so recorded the same
way: one deployment with actor and reason, the alias history moved with it)."""

from __future__ import annotations

import hmac
from typing import Any

import spindle

READ_ONLY = (
    "the dashboard is read-only: start it with SPINDLE_UI_TOKEN set to allow rollback and route"
)


class Refused(spindle.SpindleError):
    """The request may not change anything (no token configured, or a wrong one)."""


def check_token(configured: str | None, given: str | None) -> None:
    """Raise Refused unless a token is configured and ``given`` equals it (constant time)."""
    if not configured:
        raise Refused(READ_ONLY)
    if not given or not hmac.compare_digest(configured.encode(), given.encode()):
        raise Refused("wrong or missing token: nothing was changed")


def _reason(text: str | None, default: str) -> str:
    text = (text or "").strip()
    return f"{text or default} (from the dashboard)"


def rollback(ws: spindle.Workspace, model: str, form: dict[str, str]) -> dict[str, Any]:
    """``spindle rollback MODEL --reason R``: all traffic back to the previous version."""
    with spindle.Context.open(ws.root) as ctx:
        version = spindle.rollback(
            ctx, model, reason=_reason(form.get("reason"), "manual rollback")
        )
    return {"model": model, "serving": version}


def route(ws: spindle.Workspace, model: str, form: dict[str, str]) -> dict[str, Any]:
    """``spindle route MODEL V=W ... --reason R``: the weights exactly as given."""
    weights = spindle.parse_weights((form.get("weights") or "").split())
    with spindle.Context.open(ws.root) as ctx:
        return spindle.route(ctx, model, weights, reason=_reason(form.get("reason"), "routing"))
