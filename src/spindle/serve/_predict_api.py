"""The HTTP face of :mod:`._predict`: ``POST /v1/models/{model}/predict``, its schema route, and
each served model's request schema in the OpenAPI document."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Mapping
from typing import Any, ClassVar

from fastapi import APIRouter, Depends, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from pydantic import ConfigDict, Field, model_validator

from spindle.core import ServingError
from spindle.serve._context import ServerContext, context_of, require_token
from spindle.serve._limits import (
    BoundedBody,
    ServingLimits,
    bounded_model,
    check_objects,
    parse_json,
    read_body,
)
from spindle.serve._predict import NoVersion
from spindle.serve._state import ModelState

PREDICT_PATH = "/v1/models/{model}/predict"
_RENDER_ON_LOOP = 1000  # more predictions are rendered to JSON on a thread


class PredictRequest(BoundedBody):
    """Body of ``POST /v1/models/{model}/predict``: ``instances`` (a batch) or one ``instance``.

    Each instance holds the model's entity keys and request columns (``GET
    /v1/models/{model}/schema``); other fields are passed to its request features as they are.
    At most ``serving.limits.max_instances`` instances; no string longer than
    ``serving.limits.max_string_chars``.
    """

    model_config = ConfigDict(extra="forbid")
    bounds: ClassVar = {"instances": ("max_instances", "max_length")}

    instances: list[dict[str, Any]] | None = Field(default=None, min_length=1)
    instance: dict[str, Any] | None = None

    @model_validator(mode="after")
    def _one_of(self) -> PredictRequest:
        if (self.instances is None) == (self.instance is None):
            raise ValueError("send either 'instances' (a list) or 'instance' (one object)")
        return self

    def all(self) -> list[dict[str, Any]]:
        """The instances of the request, one or many."""
        return self.instances if self.instances is not None else [self.instance or {}]


async def parse_predict(
    body: bytes, limits: ServingLimits, typed: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """The instances of a predict body within ``limits``, validated by ``PredictRequest``
    (JSON parsed by pydantic-core; a body over 64 KiB on a thread), each field of one type in
    all of them (``typed``: the fields the model's request schema checks itself).

    Raises:
        HTTPException: 422 with pydantic's errors, without the input they were about, or
            naming the limit a count or a string is over.
    """
    parsed = await parse_json(bounded_model(PredictRequest, limits), body)
    if parsed.instance is not None:
        check_objects([parsed.instance], limits, ("instance",), indexed=False)
    else:
        check_objects(parsed.instances or [], limits, ("instances",), typed=typed)
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


def _typed(ctx: ServerContext, state: ModelState) -> Mapping[str, str]:
    """The fields the model's main version types (none before a version is loaded)."""
    try:
        return ctx.predictor.main_schema(state).fields
    except ServingError:
        return {}


async def _require_token(request: Request) -> None:
    """:func:`require_token` on the event loop: it only reads a header, and a sync dependency
    would cost every predict request a trip through the thread pool."""
    require_token(request)


def predict_router(limits: ServingLimits) -> APIRouter:
    """The predict and schema routes (bearer token checked when the server has one)."""
    router = APIRouter()
    request_body = body_schema(bounded_model(PredictRequest, limits))

    # async, the body read and validated here rather than by FastAPI's dependency machinery
    # (a third of a small request's server time went there), and answered with a ready
    # JSONResponse: the request waits for its scoring thread on the event loop (no
    # thread-pool thread held), and the answer skips FastAPI's encoder. openapi_extra and
    # response_model keep the documented shapes.
    @router.post(
        PREDICT_PATH,
        response_model=dict[str, Any],
        openapi_extra={"requestBody": request_body},
    )
    async def predict(model: str, request: Request) -> Response:
        """Score instances with any model: entity keys and request columns in; a score,
        probability or value per instance out, with the version that answered and why the
        fallback was taken (null when it was not)."""
        ctx = context_of(request)
        ctx.check_token(request)
        state = model_state(request, model)
        instances = await parse_predict(
            await read_body(request, ctx.limits.max_body_bytes), ctx.limits, _typed(ctx, state)
        )
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
        if len(instances) > _RENDER_ON_LOOP:  # a large answer is rendered off the loop
            return await asyncio.to_thread(lambda: JSONResponse(result.to_json()))
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


_REF = "#/components/schemas/{model}"


def body_schema(model: type[BoundedBody]) -> dict[str, Any]:
    """The OpenAPI ``requestBody`` of a route that reads its body itself: a reference to
    ``model``'s schema (:func:`document_models` puts it among the components)."""
    ref = {"$ref": _REF.format(model=model.__name__)}
    return {"required": True, "content": {"application/json": {"schema": ref}}}


def document_models(app: FastAPI, bodies: list[type[BoundedBody]]) -> None:
    """Make ``/openapi.json`` show the request bodies and each served model's predict route
    with its request schema.

    ``bodies``: the models of the bodies that routes read themselves (:func:`body_schema`),
    with the server's limits. The generic predict route stays; for every model loaded now, a
    copy of it under the model's own path names the model's instance schema (keys and
    request columns, typed).
    """

    def openapi() -> dict[str, Any]:
        spec = copy.deepcopy(FastAPI.openapi(app))
        ctx: ServerContext = app.state.spindle
        schemas = spec.setdefault("components", {}).setdefault("schemas", {})
        for body in bodies:
            schema = body.model_json_schema(ref_template=_REF)
            schemas.update(schema.pop("$defs", {}))
            schemas[body.__name__] = schema
        generic = spec.get("paths", {}).get(PREDICT_PATH, {}).get("post")
        if generic is None:
            return spec
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
