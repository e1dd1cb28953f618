"""The KServe V2 / Open Inference Protocol endpoints (health, metadata, infer).

Inputs are the ONNX graph's tensors (``cat``, ``text``, ``dense``), in JSON (``data``) or in the
binary tensor extension (``parameters.binary_data_size`` plus the
``Inference-Header-Content-Length`` header). The body is parsed as JSON whatever its content
type, because tritonclient sends JSON without a JSON content type. Outputs are always JSON.

Every error, on every path under ``/v2`` (unknown ones included), is ``{"error": message}``.
Bad tensors are 400s that name the input: a value that is not of its datatype or not finite,
an index outside what the model's transform produces, a shape the model does not take; a
tensor of more rows than ``serving.limits.max_instances`` and a body over
``serving.limits.max_body_bytes`` are 413s.
"""

from __future__ import annotations

import asyncio
import math
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool

from spindle.core import ServingError
from spindle.serve._context import context_of, require_token
from spindle.serve._limits import ServingLimits, limit_hint, read_body
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
#: The kinds of JSON values each datatype's kind takes (NumPy's kinds: b, i, u, f).
_JSON_KINDS = {"b": "b", "i": "biu", "u": "biu", "f": "biuf"}
PLATFORM = "onnxruntime_onnx"
_PARSE_ON_LOOP_BYTES = 64 * 1024
_MAX_MESSAGE_CHARS = 1000


class V2Error(Exception):
    """An error answered as ``{"error": message}`` with an HTTP status."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


class _Tensor(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    shape: list[Annotated[int, Field(strict=True)]]
    datatype: str
    parameters: dict[str, Any] | None = None
    data: Any = None


class _Output(BaseModel):
    model_config = ConfigDict(extra="allow")
    name: str
    parameters: dict[str, Any] | None = None


class _InferRequest(BaseModel):
    model_config = ConfigDict(extra="allow")
    id: str | None = Field(default=None, max_length=1024)  # echoed in the answer
    parameters: dict[str, Any] | None = None
    inputs: list[_Tensor]
    outputs: list[_Output] | None = None


def v2_error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """An error as the V2 protocol answers it: ``{"error": message}`` (at most 1,000
    characters: a message never carries megabytes of what it is about)."""
    if len(message) > _MAX_MESSAGE_CHARS:
        message = message[: _MAX_MESSAGE_CHARS - 1] + "…"
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def _named(name: str) -> str:
    """A client's tensor name as a message shows it (short, whatever was sent)."""
    return name if len(name) <= 60 else f"{name[:57]}..."


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


async def parse_infer_async(raw: bytes, header_length: str | None) -> tuple[_InferRequest, bytes]:
    """:func:`parse_infer`, on a thread for a body over 64 KiB."""
    if len(raw) > _PARSE_ON_LOOP_BYTES:
        return await asyncio.to_thread(parse_infer, raw, header_length)
    return parse_infer(raw, header_length)


def parse_infer(raw: bytes, header_length: str | None) -> tuple[_InferRequest, bytes]:
    """Parse an infer body (JSON whatever the content type, by pydantic-core; binary tensors
    after the header).

    Raises:
        V2Error: 400 naming what is wrong where, without the input.
    """
    head, binary = _split_body(raw, header_length)
    try:
        return _InferRequest.model_validate_json(head), binary
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        where = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'body'}: {e['msg']}" for e in errors[:3]
        )
        more = f" (and {len(errors) - 3} more)" if len(errors) > 3 else ""
        raise V2Error(400, f"invalid V2 inference request: {where}{more}") from None


def _check_shape(tensor: _Tensor, limits: ServingLimits) -> int:
    """The number of values ``tensor``'s shape holds.

    Raises:
        V2Error: 400 for a negative dimension; 413 for more rows than the limit.
    """
    name = _named(tensor.name)
    if any(d < 0 for d in tensor.shape):
        raise V2Error(400, f"input {name}: negative dimension in shape {tensor.shape}")
    if tensor.shape and tensor.shape[0] > limits.max_instances:
        raise V2Error(
            413,
            f"input {name}: {tensor.shape[0]} rows exceed {limits.max_instances}, "
            f"{limit_hint('max_instances')}; send fewer rows per request",
        )
    return math.prod(tensor.shape)


def _from_binary(
    tensor: _Tensor, dtype: type[np.generic], size: int, binary: bytes, offset: int
) -> tuple[np.ndarray, int]:
    nbytes = (tensor.parameters or {})["binary_data_size"]
    if isinstance(nbytes, bool) or not isinstance(nbytes, int) or nbytes < 0:
        raise V2Error(
            400,
            f"input {_named(tensor.name)}: parameters.binary_data_size must be a whole "
            "number of bytes",
        )
    chunk = binary[offset : offset + nbytes]
    if len(chunk) != nbytes or nbytes != size * np.dtype(dtype).itemsize:
        raise V2Error(
            400, f"input {_named(tensor.name)}: binary data does not match shape and type"
        )
    return np.frombuffer(chunk, dtype).reshape(tensor.shape), offset + nbytes


def _from_json(tensor: _Tensor, dtype: type[np.generic], size: int) -> np.ndarray:
    """The tensor's JSON ``data`` as ``dtype``: values of its kind only (no 1.5 for an
    integer, no text), within its range (no 2**70 in INT64, no 1e39 in FP32)."""
    name, wanted = _named(tensor.name), np.dtype(dtype)
    try:
        raw = np.asarray(tensor.data)
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        raise V2Error(
            400, f"input {name}: data is not a (nested) list of {tensor.datatype}: {exc}"
        ) from None
    if raw.size != size:
        raise V2Error(
            400, f"input {name}: shape {tensor.shape} needs {size} values, got {raw.size}"
        )
    if size and raw.dtype.kind not in _JSON_KINDS[wanted.kind]:
        found = "integers beyond 64 bits, nulls or objects" if raw.dtype.kind == "O" else raw.dtype
        raise V2Error(400, f"input {name}: data holds {found}, not {tensor.datatype} values")
    if size and wanted.kind in "iu" and raw.dtype.kind in "iu":
        info = np.iinfo(wanted)
        low, high = raw.min(), raw.max()
        if low < info.min or high > info.max:
            raise V2Error(
                400,
                f"input {name}: {low if low < info.min else high} is outside "
                f"{tensor.datatype}'s range [{info.min}, {info.max}]",
            )
    with np.errstate(over="ignore", invalid="ignore"):  # beyond the range: inf, refused below
        return raw.astype(wanted, copy=False).reshape(tensor.shape)


def _to_array(
    tensor: _Tensor, binary: bytes, offset: int, limits: ServingLimits
) -> tuple[np.ndarray, int]:
    dtype = _DTYPES.get(tensor.datatype)
    if dtype is None:
        raise V2Error(
            400, f"input {_named(tensor.name)}: unsupported datatype {tensor.datatype[:20]}"
        )
    size = _check_shape(tensor, limits)
    if "binary_data_size" in (tensor.parameters or {}):
        array, offset = _from_binary(tensor, dtype, size, binary, offset)
    else:
        array = _from_json(tensor, dtype, size)
    if array.dtype.kind == "f" and not np.isfinite(array).all():
        at = int(np.flatnonzero(~np.isfinite(array.reshape(-1)))[0])
        raise V2Error(
            400,
            f"input {_named(tensor.name)}: value {at} is not a finite {tensor.datatype} number "
            "(NaN, Infinity, or beyond the type's range)",
        )
    return array, offset


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


def _check_indices(runtime: ModelRuntime, arrays: dict[str, np.ndarray]) -> None:
    """Refuse an index the model's transform never produces: each categorical column's
    ``[0, cardinality)``, the text vocabulary's ``[0, size)`` (the ONNX graph would fail on
    one past its embedding, or silently read another row for a negative one)."""
    spec = runtime.transform.input_spec()
    ranges: list[tuple[str, np.ndarray, int, str]] = []
    cat = arrays.get("cat")
    if cat is not None and cat.ndim == 2:
        for j, cardinality in enumerate(spec["cat_cardinalities"][: cat.shape[1]]):
            ranges.append(("cat", cat[:, j], int(cardinality), f"column {j}"))
    text = arrays.get("text")
    if text is not None:
        ranges.append(("text", text, int(spec["text_vocab_size"]), "the vocabulary"))
    for name, values, size, what in ranges:
        if values.size and (values.min() < 0 or values.max() >= size):
            bad = values.min() if values.min() < 0 else values.max()
            raise V2Error(
                400,
                f"input {name}: index {bad} is outside [0, {size - 1}], the indices of "
                f"{what} in {runtime.model}@{runtime.version}'s transform",
            )


def _run(runtime: ModelRuntime, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    try:
        return runtime.infer(arrays)
    except Exception as exc:  # onnxruntime's errors are untyped; report, never crash
        # INVALID_ARGUMENT is about the inputs (what the checks above do not know of a graph)
        status = 400 if "INVALID_ARGUMENT" in str(exc) else 500
        raise V2Error(status, f"{runtime.model}@{runtime.version} failed: {exc}") from exc


def infer(
    runtime: ModelRuntime,
    request: _InferRequest,
    binary: bytes,
    limits: ServingLimits | None = None,
) -> dict[str, Any]:
    """Run one V2 inference request and build the V2 response.

    Raises:
        V2Error: 400 for bad tensors (naming the input), 413 for more rows than
            ``limits.max_instances``, 500 when the model fails on good ones.
    """
    arrays: dict[str, np.ndarray] = {}
    offset = 0
    for tensor in request.inputs:
        arrays[tensor.name], offset = _to_array(tensor, binary, offset, limits or ServingLimits())
    _check_inputs(runtime, arrays, {t.name: t.datatype for t in request.inputs})
    _check_indices(runtime, arrays)
    outputs = _run(runtime, arrays)
    wanted = [o.name for o in request.outputs] if request.outputs else list(outputs)
    unknown = [_named(name) for name in wanted if name not in outputs]
    if unknown:
        raise V2Error(400, f"unknown outputs {unknown}; the model has {sorted(outputs)}")
    specs = {s.name: s for s in runtime.outputs}
    result: list[dict[str, Any]] = []
    for name in wanted:
        value = outputs[name]
        if value.dtype.kind == "f" and not np.all(np.isfinite(value)):
            # finite inputs far outside what the model was trained on (a dense input of 1e38)
            raise V2Error(
                400,
                f"{runtime.model}@{runtime.version}: output {name} is not finite for these "
                "inputs; are they what the model's transform produces?",
            )
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
    async def live() -> dict[str, bool]:
        # on the event loop: a liveness probe needs no worker thread (those may all be busy)
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
            return v2_error(exc.status, exc.message)

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
        try:
            _, runtime = resolve(ctx.reloader.state, model, version)
            raw = await read_body(request, ctx.limits.max_body_bytes)
            header = request.headers.get("inference-header-content-length")
            parsed, binary = await parse_infer_async(raw, header)
            # converted, checked, scored and rendered on a worker thread
            answer = await run_in_threadpool(
                lambda: JSONResponse(infer(runtime, parsed, binary, ctx.limits))
            )
        except V2Error as exc:
            return v2_error(exc.status, exc.message)
        except HTTPException as exc:  # the body over the limit
            return v2_error(exc.status_code, str(exc.detail))
        ctx.metrics.requests.labels("v2_infer", model, str(runtime.version)).inc()
        return answer

    @models.post("/v2/models/{model}/infer")
    async def model_infer(request: Request, model: str) -> JSONResponse:
        return await run_infer(request, model, None)

    @models.post("/v2/models/{model}/versions/{version}/infer")
    async def version_infer(request: Request, model: str, version: str) -> JSONResponse:
        return await run_infer(request, model, version)

    router.include_router(models)
    return router
