"""What every endpoint of one server shares: state, online store, ranker, predictor, metrics,
auth, limits."""

from __future__ import annotations

import hmac
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import HTTPException, Request

from spindle.features import OnlineStore
from spindle.serve._limits import ServingLimits
from spindle.serve._metrics import ServingMetrics
from spindle.serve._predict import Predictor
from spindle.serve._rank import ItemRanker
from spindle.serve._state import HotReloader

if TYPE_CHECKING:
    from spindle.serve._store_mirror import StoreMirror


@dataclass
class ServerContext:
    """The objects behind one FastAPI app (``app.state.spindle``)."""

    repo: Path
    store: OnlineStore
    reloader: HotReloader
    ranker: ItemRanker
    predictor: Predictor
    metrics: ServingMetrics
    executor: ThreadPoolExecutor
    default_model: str | None
    token: str | None
    repository_id: str | None = None  # the repo's id file; None when it cannot be written
    limits: ServingLimits = field(default_factory=ServingLimits)
    mirror: StoreMirror | None = None  # a repository on an object store, mirrored into repo

    def check_token(self, request: Request) -> None:
        """Refuse a request without ``Authorization: Bearer <token>`` when a token is set."""
        if self.token is None:
            return
        header = request.headers.get("authorization", "")
        scheme, _, given = header.partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(
            given.strip().encode(), self.token.encode()
        ):
            raise HTTPException(
                status_code=401,
                detail="missing or wrong bearer token: send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )


def context_of(request: Request) -> ServerContext:
    ctx: ServerContext = request.app.state.spindle
    return ctx


def require_token(request: Request) -> None:
    """FastAPI dependency: the bearer token check of the app's context."""
    context_of(request).check_token(request)
