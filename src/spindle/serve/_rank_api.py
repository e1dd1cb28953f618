"""The HTTP face of :mod:`._rank`: ``POST /v1/models/{model}/rank`` for any model, and the
example shop's ``POST /v1/rank`` (its fields other than ``candidates``, ``k`` and ``model`` are
the context; it ranks with the server's default model)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from fastapi import APIRouter, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field, model_validator
from starlette.concurrency import run_in_threadpool

from spindle.core import ServingError
from spindle.serve._context import ServerContext, context_of
from spindle.serve._limits import (
    BoundedBody,
    ServingLimits,
    bounded_model,
    check_objects,
    check_values,
    parse_json,
    read_body,
)
from spindle.serve._predict import NoVersion
from spindle.serve._predict_api import body_schema, model_state
from spindle.serve._rank import Ranked
from spindle.serve._repository import Routing, check_model_name
from spindle.serve._retrieval import RetrievalError
from spindle.serve._state import ModelState

_BOUNDS = {"candidates": ("max_candidates", "max_length"), "k": ("max_k", "le")}


class ModelRankRequest(BoundedBody):
    """Body of ``POST /v1/models/{model}/rank``.

    ``context`` (or ``instance``): the request's fields and the keys of the entities it is
    about; ``candidates``: keys of the model's item view (a value each, or an object of the
    keys for a composite key), retrieved by ``serving.candidates`` when absent; ``k``: how many
    items to return, a whole number. At most ``serving.limits.max_candidates`` candidates and
    ``serving.limits.max_k`` items; no string longer than ``serving.limits.max_string_chars``.
    """

    model_config = ConfigDict(extra="forbid")
    bounds: ClassVar = _BOUNDS

    context: dict[str, Any] | None = None
    instance: dict[str, Any] | None = None
    candidates: list[Any] | None = None
    k: int = Field(default=10, ge=1, strict=True)  # strict: true, 2.5 and "3" are no k

    @model_validator(mode="after")
    def _one_context(self) -> ModelRankRequest:
        if self.context is not None and self.instance is not None:
            raise ValueError("send either 'context' or 'instance' (the same thing), not both")
        return self

    def all_context(self) -> dict[str, Any]:
        """The request's context (empty when it has none)."""
        return self.context if self.context is not None else (self.instance or {})


class RankRequest(BoundedBody):
    """Body of ``POST /v1/rank``, the example shop's route: ``candidates``, ``k`` and ``model``
    as for ``/v1/models/{model}/rank``; every other field is the context."""

    model_config = ConfigDict(extra="allow")
    bounds: ClassVar = _BOUNDS

    candidates: list[Any] | None = None
    k: int = Field(default=10, ge=1, strict=True)
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


async def _rank_body(request: Request, model: type[BoundedBody]) -> Any:
    """The body read and validated within the server's limits (its fields and extra fields).

    Raises:
        HTTPException: 413 for a body over the limit; 422 for a body that is not ``model`` or
            has a string over the limit or a number JSON has not.
    """
    ctx = context_of(request)
    body = await parse_json(
        bounded_model(model, ctx.limits), await read_body(request, ctx.limits.max_body_bytes)
    )
    for name, value in body:  # the extra fields too
        check_values(value, ctx.limits, (name,))
    return body


def _check_context(
    context: dict[str, Any], limits: ServingLimits, loc: tuple[str, ...]
) -> dict[str, Any]:
    """The context, each of its fields one column of the rows scored (its arrays and objects
    of one type throughout)."""
    check_objects([context], limits, loc, indexed=False)
    return context


def rank_router(limits: ServingLimits) -> APIRouter:
    """The rank routes (bearer token checked when the server has one).

    Both read their bodies themselves (:func:`_rank_body`): the body's size is checked before
    it is parsed, and parsed by pydantic-core; the ranking runs on a worker thread.
    """
    router = APIRouter()

    @router.post(
        "/v1/models/{model}/rank",
        response_model=dict[str, Any],
        openapi_extra={"requestBody": body_schema(bounded_model(ModelRankRequest, limits))},
    )
    async def rank_model(model: str, request: Request) -> Response:
        """Rank candidates (or the model's declared retrieval's) for a context with any model:
        items best first with their scores, the version that answered (null for the declared
        baseline) and why the fallback was taken (null when it was not)."""
        context_of(request).check_token(request)
        state = model_state(request, model)
        body: ModelRankRequest = await _rank_body(request, ModelRankRequest)
        where = "instance" if body.instance is not None else "context"
        context = _check_context(body.all_context(), context_of(request).limits, (where,))
        answer = await run_in_threadpool(
            _answer, context_of(request), state, context, body.candidates, body.k
        )
        return JSONResponse(answer)

    @router.post(
        "/v1/rank",
        response_model=dict[str, Any],
        openapi_extra={"requestBody": body_schema(bounded_model(RankRequest, limits))},
    )
    async def rank(request: Request) -> Response:
        """The example's ranking route: the body's fields other than candidates, k and model
        are the context; ranks with the server's default model unless ``model`` names one."""
        ctx = context_of(request)
        ctx.check_token(request)
        body: RankRequest = await _rank_body(request, RankRequest)
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
        context = _check_context(dict(body.model_extra or {}), ctx.limits, ())
        answer = await run_in_threadpool(_answer, ctx, state, context, body.candidates, body.k)
        return JSONResponse(answer)

    return router
