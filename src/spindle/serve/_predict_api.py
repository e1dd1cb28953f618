"""The HTTP face of :mod:`._predict`: ``POST /v1/models/{model}/predict``, its schema route, and
each served model's request schema in the OpenAPI document."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from spindle.core import ServingError
from spindle.serve._context import ServerContext, context_of, require_token
from spindle.serve._predict import NoVersion
from spindle.serve._state import ModelState

_MAX_INSTANCES = 10_000
MAX_BODY_BYTES = 16 * 1024 * 1024
"""The largest predict body read (413 above it, before anything is parsed)."""
_PARSE_ON_LOOP_BYTES = 64 * 1024  # a larger body is parsed on a thread: the loop stays free
PREDICT_PATH = "/v1/models/{model}/predict"


class PredictRequest(BaseModel):
    """Body of ``POST /v1/models/{model}/predict``: ``instances`` (a batch) or one ``instance``.

    Each instance holds the model's entity keys and request columns (``GET
    /v1/models/{model}/schema``); other fields are passed to its request features as they are.
    """

    model_config = ConfigDict(extra="forbid")

    instances: list[dict[str, Any]] | None = Field(
        default=None, min_length=1, max_length=_MAX_INSTANCES
    )
    instance: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> PredictRequest:
        if (self.instances is None) == (self.instance is None):
            raise ValueError("send either 'instances' (a list) or 'instance' (one object)")
        return self

    def all(self) -> list[dict[str, Any]]:
        """The instances of the request, one or many."""
        return self.instances if self.instances is not None else [self.instance or {}]


async def read_body(request: Request, limit_bytes: int) -> bytes:
    """The request's body, refused with 413 as soon as it is known to exceed ``limit_bytes``
    (by its Content-Length, or while it streams in), before any of it is parsed.

    Raises:
        HTTPException: 413 naming the limit.
    """
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit_bytes:
        raise _too_large(int(declared), limit_bytes)
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit_bytes:
            raise _too_large(size, limit_bytes)
        chunks.append(chunk)
    return b"".join(chunks)


def _too_large(size: int, limit_bytes: int) -> HTTPException:
    return HTTPException(
        status_code=413,
        detail=f"request body of {size}+ bytes exceeds the limit of {limit_bytes} bytes; "
        "send fewer instances per request",
    )


async def parse_predict(body: bytes) -> list[dict[str, Any]]:
    """The instances of a predict body, validated by ``PredictRequest`` (JSON parsed by
    pydantic-core; a body over 64 KiB on a thread, so the event loop keeps answering).

    Raises:
        HTTPException: 422 with pydantic's errors, without the input they were about.
    """
    try:
        if len(body) > _PARSE_ON_LOOP_BYTES:
            parsed = await asyncio.to_thread(PredictRequest.model_validate_json, body)
        else:
            parsed = PredictRequest.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        detail = [{**e, "loc": ("body", *e["loc"])} for e in errors]
        raise HTTPException(status_code=422, detail=detail) from None
    return parsed.all()


def model_state(request: Request, model: str) -> ModelState:
    """The served state of ``model``.

    Raises:
        HTTPException: 404 when the repository has no routing.json for it.
    """
    state = context_of(request).reloader.state.models.get(model)
    if state is None:
        known = ", ".join(sorted(context_of(request).reloader.state.models)) or "none"
        raise HTTPException(
            status_code=404,
            detail=f"unknown model {model!r}: no routing.json for it in the model repository "
            f"(models: {known})",
        )
    return state


async def _require_token(request: Request) -> None:
    """:func:`require_token` on the event loop: it only reads a header, and a sync dependency
    would cost every predict request a trip through the thread pool."""
    require_token(request)


def predict_router() -> APIRouter:
    """The predict and schema routes (bearer token checked when the server has one)."""
    router = APIRouter()

    # async, the body read and validated here rather than by FastAPI's dependency machinery
    # (a third of a small request's server time went there), and answered with a ready
    # JSONResponse: the request waits for its scoring thread on the event loop (no
    # thread-pool thread held), and the answer skips FastAPI's encoder. openapi_extra and
    # response_model keep the documented shapes.
    @router.post(
        PREDICT_PATH,
        response_model=dict[str, Any],
        openapi_extra={"requestBody": _REQUEST_BODY},
    )
    async def predict(model: str, request: Request) -> Response:
        """Score instances with any model: entity keys and request columns in; a score,
        probability or value per instance out, with the version that answered and why the
        fallback was taken (null when it was not)."""
        ctx = context_of(request)
        ctx.check_token(request)
        state = model_state(request, model)
        instances = await parse_predict(await read_body(request, MAX_BODY_BYTES))
        try:
            result = await ctx.predictor.predict_async(state, instances)
        except NoVersion as exc:
            ctx.metrics.requests.labels("predict", model, "").inc()
            raise HTTPException(status_code=503, detail=str(exc)) from exc
        except ServingError as exc:
            raise HTTPException(status_code=422, detail=str(exc)) from exc
        ctx.metrics.requests.labels("predict", model, str(result.version)).inc()
        for kind in result.fallback_kinds:
            ctx.metrics.fallbacks.labels(model, kind).inc()
        for view, count in result.missing.items():
            ctx.metrics.missing_entities.labels(model, view).inc(count)
        return JSONResponse(result.to_json())

    @router.get("/v1/models/{model}/schema", dependencies=[Depends(_require_token)])
    def schema(model: str, request: Request) -> dict[str, Any]:
        """The model's request schema: entity keys and request columns with their types."""
        state = model_state(request, model)
        try:
            return context_of(request).predictor.main_schema(state).to_json()
        except ServingError as exc:
            raise HTTPException(status_code=503, detail=str(exc)) from exc

    return router


_REQUEST_BODY = {
    "required": True,
    "content": {"application/json": {"schema": PredictRequest.model_json_schema()}},
}


def document_models(app: FastAPI) -> None:
    """Make ``/openapi.json`` show each served model's predict route with its request schema.

    The generic route stays; for every model loaded now, a copy of it under the model's own
    path names the model's instance schema (keys and request columns, typed).
    """

    def openapi() -> dict[str, Any]:
        spec = copy.deepcopy(FastAPI.openapi(app))
        ctx: ServerContext = app.state.spindle
        generic = spec.get("paths", {}).get(PREDICT_PATH, {}).get("post")
        if generic is None:
            return spec
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for model, state in sorted(ctx.reloader.state.models.items()):
            try:
                instance = ctx.predictor.main_schema(state).json_schema()
            except ServingError:
                continue  # nothing loaded: the generic route documents it
            ref = {"$ref": f"#/components/schemas/{model}_instance"}
            schemas[f"{model}_instance"] = instance
            schemas[f"{model}_request"] = {
                "type": "object",
                "title": f"{model} request",
                "properties": {"instances": {"type": "array", "items": ref}, "instance": ref},
            }
            spec["paths"][PREDICT_PATH.replace("{model}", model)] = {
                "post": _model_operation(generic, model, f"{model}_request")
            }
        return spec

    app.openapi = openapi  # type: ignore[method-assign]


def _model_operation(generic: dict[str, Any], model: str, schema_name: str) -> dict[str, Any]:
    op = copy.deepcopy(generic)
    op["operationId"] = f"predict_{model}"
    op["summary"] = f"Predict with {model}"
    op["parameters"] = [p for p in op.get("parameters", []) if p.get("name") != "model"]
    op["requestBody"] = {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": f"#/components/schemas/{schema_name}"}}
        },
    }
    return op
