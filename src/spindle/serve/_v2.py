"""The KServe V2 / Open Inference Protocol endpoints (health, metadata, infer).

Inputs are the ONNX graph's tensors (``cat``, ``text``, ``dense``), in JSON (``data``) or in the
binary tensor extension (``parameters.binary_data_size`` plus the
``Inference-Header-Content-Length`` header). The body is parsed as JSON whatever its content
type, because tritonclient sends JSON without a JSON content type. Outputs are always JSON.
"""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, ValidationError
from starlette.concurrency import run_in_threadpool

from spindle.core import ServingError
from spindle.serve._context import context_of, require_token
from spindle.serve._repository import check_model_name, check_version
from spindle.serve._runtime import ModelRuntime
from spindle.serve._state import ModelState, ServingState

_DTYPES: dict[str, type[np.generic]] = {
    "BOOL": np.bool_,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT8": np.uint8,
    "FP16": np.float16,
    "FP32": np.float32,
    "FP64": np.float64,
}
PLATFORM = "onnxruntime_onnx"


class V2Error(Exception):
    """An error answered as ``{"error": message}`` with an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Tensor(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    shape: list[int]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: Any = None


class _Output(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    parameters: dict[str, Any] | None = None


class _InferRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = None
    parameters: dict[str, Any] | None = None
    inputs: list[_Tensor]
    outputs: list[_Output] | None = None


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def resolve(
    serving: ServingState, model: str, version: str | None
) -> tuple[ModelState, ModelRuntime]:
    """The model's state and loaded runtime (of ``version``, else of the main routed one)."""
    try:
        check_model_name(model)
        number = None if version is None else check_version(version)
    except ServingError as exc:
        raise V2Error(400, str(exc)) from exc
    state = serving.models.get(model)
    if state is None:
        raise V2Error(404, f"unknown model {model!r}: no routing.json for it in the repository")
    if number is None:
        routing = state.routing
        order = [routing.main, routing.previous, *reversed(state.serving_versions())]
        for candidate in order:
            loaded = state.versions.get(candidate) if candidate is not None else None
            if loaded is not None and loaded.runtime is not None:
                return state, loaded.runtime
        raise V2Error(503, f"model {model!r} has no loaded version")
    loaded = state.versions.get(number)
    if loaded is None:
        known = sorted(state.versions)
        raise V2Error(404, f"{model} version {number} is not routed (routed versions: {known})")
    if loaded.runtime is None:
        raise V2Error(503, f"{model} version {number} is not available: {loaded.status}")
    return state, loaded.runtime


def _metadata(runtime: ModelRuntime, versions: list[int]) -> dict[str, Any]:
    return {
        "name": runtime.model,
        "versions": [str(v) for v in versions],
        "platform": PLATFORM,
        "inputs": [s.to_json() for s in runtime.inputs],
        "outputs": [s.to_json() for s in runtime.outputs],
    }


def _split_body(raw: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    if header_length is None:
        return raw, b""
    try:
        n = int(header_length)
    except ValueError as exc:
        raise V2Error(
            400, f"Inference-Header-Content-Length {header_length!r} is no integer"
        ) from exc
    if not 0 <= n <= len(raw):
        raise V2Error(400, f"Inference-Header-Content-Length {n} exceeds the body ({len(raw)} B)")
    return raw[:n], raw[n:]


def parse_infer(raw: bytes, header_length: str | None) -> tuple[_InferRequest, bytes]:
    """Parse an infer body (JSON whatever the content type; binary tensors after the header)."""
    head, binary = _split_body(raw, header_length)
    try:
        return _InferRequest.model_validate(json.loads(head)), binary
    except (ValueError, ValidationError) as exc:
        raise V2Error(400, f"invalid V2 inference request: {exc}") from exc


def _to_array(tensor: _Tensor, binary: bytes, offset: int) -> tuple[np.ndarray, int]:
    dtype = _DTYPES.get(tensor.datatype)
    if dtype is None:
        raise V2Error(400, f"input {tensor.name}: unsupported datatype {tensor.datatype}")
    if any(d < 0 for d in tensor.shape):
        raise V2Error(400, f"input {tensor.name}: negative dimension in shape {tensor.shape}")
    size = math.prod(tensor.shape)
    params = tensor.parameters or {}
    if "binary_data_size" in params:
        nbytes = int(params["binary_data_size"])
        chunk = binary[offset : offset + nbytes]
        if len(chunk) != nbytes or nbytes != size * np.dtype(dtype).itemsize:
            raise V2Error(400, f"input {tensor.name}: binary data does not match shape and type")
        return np.frombuffer(chunk, dtype).reshape(tensor.shape), offset + nbytes
    try:
        array = np.asarray(tensor.data, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise V2Error(400, f"input {tensor.name}: data is not {tensor.datatype}: {exc}") from exc
    if array.size != size:
        raise V2Error(
            400, f"input {tensor.name}: shape {tensor.shape} needs {size} values, got {array.size}"
        )
    return array.reshape(tensor.shape), offset


def _check_inputs(
    runtime: ModelRuntime, arrays: dict[str, np.ndarray], given: dict[str, str]
) -> None:
    specs = {s.name: s for s in runtime.inputs}
    unknown = sorted(set(arrays) - set(specs))
    missing = sorted(set(specs) - set(arrays))
    if unknown or missing:
        raise V2Error(
            400,
            f"{runtime.model}@{runtime.version} takes inputs {sorted(specs)}; "
            f"unknown: {unknown}, missing: {missing}",
        )
    symbols: dict[str, tuple[str, int]] = {}  # a named dynamic dim (the batch) must agree
    for arg in runtime.session.get_inputs():
        name, spec, shape = arg.name, specs[arg.name], arrays[arg.name].shape
        if given[name] != spec.datatype:
            raise V2Error(400, f"input {name}: datatype {given[name]}, expected {spec.datatype}")
        fits = len(shape) == len(spec.shape) and all(
            s == -1 or s == d for s, d in zip(spec.shape, shape, strict=True)
        )
        if not fits:
            raise V2Error(400, f"input {name}: shape {list(shape)}, expected {list(spec.shape)}")
        for symbol, size in zip(arg.shape, shape, strict=True):
            if isinstance(symbol, str):
                first = symbols.setdefault(symbol, (name, size))
                if first[1] != size:
                    raise V2Error(
                        400,
                        f"input {name}: dimension {symbol!r} is {size} but {first[1]} in "
                        f"input {first[0]}",
                    )


def infer(runtime: ModelRuntime, request: _InferRequest, binary: bytes) -> dict[str, Any]:
    """Run one V2 inference request and build the V2 response."""
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for tensor in request.inputs:
        arrays[tensor.name], offset = _to_array(tensor, binary, offset)
    _check_inputs(runtime, arrays, {t.name: t.datatype for t in request.inputs})
    try:
        outputs = runtime.infer(arrays)
    except Exception as exc:  # onnxruntime's errors are untyped; report, never crash
        raise V2Error(500, f"{runtime.model}@{runtime.version} failed: {exc}") from exc
    wanted = [o.name for o in request.outputs] if request.outputs else list(outputs)
    unknown = [name for name in wanted if name not in outputs]
    if unknown:
        raise V2Error(400, f"unknown outputs {unknown}; the model has {sorted(outputs)}")
    specs = {s.name: s for s in runtime.outputs}
    result: list[dict[str, Any]] = []
    for name in wanted:
        value = outputs[name]
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            raise V2Error(500, f"{runtime.model}@{runtime.version}: output {name} is not finite")
        result.append(
            {
                "name": name,
                "datatype": specs[name].datatype,
                "shape": list(value.shape),
                "data": value.reshape(-1).tolist(),
            }
        )
    body: dict[str, Any] = {
        "model_name": runtime.model,
        "model_version": str(runtime.version),
        "outputs": result,
    }
    if request.id is not None:
        body["id"] = request.id
    return body


def v2_router() -> APIRouter:
    """The V2 routes; health routes need no token, model routes do (when one is set)."""
    router = APIRouter()

    @router.get("/v2")
    def server_metadata() -> dict[str, Any]:
        return {"name": "spindle", "version": "1", "extensions": []}

    @router.get("/v2/health/live")
    def live() -> dict[str, bool]:
        return {"live": True}

    @router.get("/v2/health/ready")
    def ready(request: Request) -> JSONResponse:
        # ready once the online store holds rows (a first materialisation gave it a version)
        held = context_of(request).store.version() is not None
        return JSONResponse({"ready": held}, status_code=200 if held else 503)

    models = APIRouter(dependencies=[Depends(require_token)])

    def answer(request: Request, model: str, version: str | None, what: str) -> JSONResponse:
        ctx = context_of(request)
        try:
            state, runtime = resolve(ctx.reloader.state, model, version)
            if what == "ready":
                return JSONResponse({"name": model, "ready": True})
            versions = [runtime.version] if version else state.serving_versions()
            return JSONResponse(_metadata(runtime, versions))
        except V2Error as exc:
            return _error(exc.status, exc.message)

    @models.get("/v2/models/{model}")
    def model_metadata(request: Request, model: str) -> JSONResponse:
        return answer(request, model, None, "metadata")

    @models.get("/v2/models/{model}/versions/{version}")
    def version_metadata(request: Request, model: str, version: str) -> JSONResponse:
        return answer(request, model, version, "metadata")

    @models.get("/v2/models/{model}/ready")
    def model_ready(request: Request, model: str) -> JSONResponse:
        return answer(request, model, None, "ready")

    @models.get("/v2/models/{model}/versions/{version}/ready")
    def version_ready(request: Request, model: str, version: str) -> JSONResponse:
        return answer(request, model, version, "ready")

    async def run_infer(request: Request, model: str, version: str | None) -> JSONResponse:
        ctx = context_of(request)
        raw = await request.body()
        try:
            _, runtime = resolve(ctx.reloader.state, model, version)
            parsed, binary = parse_infer(
                raw, request.headers.get("inference-header-content-length")
            )
            body = await run_in_threadpool(infer, runtime, parsed, binary)
        except V2Error as exc:
            return _error(exc.status, exc.message)
        ctx.metrics.requests.labels("v2_infer", model, str(runtime.version)).inc()
        return JSONResponse(body)

    @models.post("/v2/models/{model}/infer")
    async def model_infer(request: Request, model: str) -> JSONResponse:
        return await run_infer(request, model, None)

    @models.post("/v2/models/{model}/versions/{version}/infer")
    async def version_infer(request: Request, model: str, version: str) -> JSONResponse:
        return await run_infer(request, model, version)

    router.include_router(models)
    return router
