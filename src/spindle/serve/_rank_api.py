"""The HTTP face of :mod:`._rank`: ``POST /v1/models/{model}/rank`` for any model, and the
example shop's ``POST /v1/rank`` (its fields other than ``candidates``, ``k`` and ``model`` are
the context; it ranks with the server's default model)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field, model_validator

from spindle.core import ServingError
from spindle.serve._context import ServerContext, context_of, require_token
from spindle.serve._predict import NoVersion
from spindle.serve._predict_api import model_state
from spindle.serve._rank import Ranked
from spindle.serve._repository import Routing, check_model_name
from spindle.serve._retrieval import RetrievalError
from spindle.serve._state import ModelState

_MAX_CANDIDATES = 10_000


class ModelRankRequest(BaseModel):
    """Body of ``POST /v1/models/{model}/rank``.

    ``context`` (or ``instance``): the request's fields and the keys of the entities it is
    about; ``candidates``: keys of the model's item view (a value each, or an object of the
    keys for a composite key), retrieved by ``serving.candidates`` when absent; ``k``: how many
    items to return.
    """

    model_config = ConfigDict(extra="forbid")

    context: dict[str, Any] | None = None
    instance: dict[str, Any] | None = None
    candidates: list[Any] | None = Field(default=None, max_length=_MAX_CANDIDATES)
    k: int = Field(default=10, ge=1, le=1000)

    @model_validator(mode="after")
    def _one_context(self) -> ModelRankRequest:
        if self.context is not None and self.instance is not None:
            raise ValueError("send either 'context' or 'instance' (the same thing), not both")
        return self

    def all_context(self) -> dict[str, Any]:
        """The request's context (empty when it has none)."""
        return self.context if self.context is not None else (self.instance or {})


class RankRequest(BaseModel):
    """Body of ``POST /v1/rank``, the example shop's route: ``candidates``, ``k`` and ``model``
    as for ``/v1/models/{model}/rank``; every other field is the context."""

    model_config = ConfigDict(extra="allow")

    candidates: list[Any] | None = Field(default=None, max_length=_MAX_CANDIDATES)
    k: int = Field(default=10, ge=1, le=1000)
    model: str | None = Field(default=None, description="defaults to the server's default model")


def _answer(
    ctx: ServerContext,
    state: ModelState,
    context: Mapping[str, Any],
    candidates: Sequence[Any] | None,
    k: int,
) -> dict[str, Any]:
    try:
        ranked: Ranked = ctx.ranker.rank(state, context, candidates, k)
    except (NoVersion, RetrievalError) as exc:
        ctx.metrics.requests.labels("rank", state.model, "").inc()
        raise HTTPException(status_code=503, detail=str(exc)) from exc
    except ServingError as exc:
        raise HTTPException(status_code=422, detail=str(exc)) from exc
    prediction = ranked.prediction
    served = prediction.served_by if prediction else ""
    ctx.metrics.requests.labels("rank", state.model, served).inc()
    for kind in prediction.fallback_kinds if prediction else ():
        ctx.metrics.fallbacks.labels(state.model, kind).inc()
    for view, count in (prediction.missing if prediction else {}).items():
        ctx.metrics.missing_entities.labels(state.model, view).inc(count)
    return ranked.to_json()


def rank_router() -> APIRouter:
    """The rank routes (bearer token checked when the server has one)."""
    router = APIRouter(dependencies=[Depends(require_token)])

    @router.post("/v1/models/{model}/rank")
    def rank_model(model: str, body: ModelRankRequest, request: Request) -> dict[str, Any]:
        """Rank candidates (or the model's declared retrieval's) for a context with any model:
        items best first with their scores, the version that answered (null for the declared
        baseline) and why the fallback was taken (null when it was not)."""
        state = model_state(request, model)
        return _answer(context_of(request), state, body.all_context(), body.candidates, body.k)

    @router.post("/v1/rank")
    def rank(body: RankRequest, request: Request) -> dict[str, Any]:
        """The example's ranking route: the body's fields other than candidates, k and model
        are the context; ranks with the server's default model unless ``model`` names one."""
        ctx = context_of(request)
        model = body.model or ctx.default_model
        if model is None:
            raise HTTPException(
                status_code=422,
                detail="model: this server has no default model (serving.default_model in "
                "spindle.yaml); name one in the body, or use /v1/models/{model}/rank",
            )
        try:
            check_model_name(model)
        except ServingError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        state = ctx.reloader.state.models.get(model)
        if state is None and model == ctx.default_model:  # nothing pushed yet: the baseline
            state = ModelState(model, Routing(model, {}), {})
        if state is None:
            state = model_state(request, model)  # 404 with the known models
        return _answer(ctx, state, dict(body.model_extra or {}), body.candidates, body.k)

    return router
