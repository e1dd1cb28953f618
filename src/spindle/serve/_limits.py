"""What one request may hold (:class:`ServingLimits`), and reading a body within them.

Every route that takes a body reads it through :func:`read_body` (413 above
``max_body_bytes``, by Content-Length or while it streams in, before anything is parsed) and
validates it with pydantic-core's JSON parser (:func:`parse_json`): lone surrogates, nesting
past its recursion limit and malformed JSON are 422s there, and a 422 carries pydantic's
location, message and type, never the input it was about. :func:`check_values` walks what was
parsed for the limits pydantic cannot see (strings in free-form objects) and for what JSON
does not allow but the parser accepts (NaN, Infinity, numbers beyond 64 bits).
"""

from __future__ import annotations

import asyncio
import functools
import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Annotated, Any, ClassVar, TypeVar, cast

import pyarrow as pa
from fastapi import HTTPException, Request
from pydantic import BaseModel, Field, ValidationError, create_model

from spindle.core import ServingError

_PARSE_ON_LOOP_BYTES = 64 * 1024  # a larger body is parsed on a thread
_MAX_ERRORS = 20  # a 422 lists at most this many errors (a 10,000-instance body has more)
_INT64 = (-(2**63), 2**63 - 1)


@dataclass(frozen=True)
class ServingLimits:
    """What the server accepts in one request (``serving.limits`` in ``spindle.yaml``).

    A request over a limit is refused before it is scored: 413 for a body over
    ``max_body_bytes`` (before it is parsed) and for a V2 tensor of more rows; 422 for the
    others, naming the limit.

    Attributes:
        max_body_bytes: the largest body read, on every route.
        max_instances: instances of one predict request; rows (first dimension) of a V2
            infer's tensors.
        max_candidates: candidates of one rank request.
        max_string_chars: the longest string in an instance, a rank context or a candidate
            (a key, a search query, any request column).
        max_k: the most items one rank request may ask for.

    Example:
        >>> create_app(repo, store, limits=ServingLimits(max_body_bytes=1 << 20))  # doctest: +SKIP
    """

    max_body_bytes: int = 16 * 1024 * 1024
    max_instances: int = 10_000
    max_candidates: int = 10_000
    max_string_chars: int = 4096
    max_k: int = 1000

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ServingError(
                    f"serving.limits.{name} must be a positive integer, found {value!r}"
                )


class BoundedBody(BaseModel):
    """A request body whose fields are bounded by the server's :class:`ServingLimits`.

    ``bounds`` maps a field to the limit and the constraint (``max_length`` of a list,
    ``le`` of a number) that :func:`bounded_model` gives it; the class itself leaves them
    open, so that each server can set its own.
    """

    bounds: ClassVar[Mapping[str, tuple[str, str]]] = {}


B = TypeVar("B", bound=BoundedBody)


def bounded_model(model: type[B], limits: ServingLimits) -> type[B]:
    """``model`` with each field of its ``bounds`` constrained by ``limits`` (one class per
    model and limits; its JSON schema shows the limits)."""
    return cast("type[B]", _bounded(model, limits))


@functools.cache
def _bounded(model: type[BoundedBody], limits: ServingLimits) -> type[BoundedBody]:
    fields: dict[str, Any] = {}
    for name, (limit, constraint) in model.bounds.items():
        info = model.model_fields[name]
        bound = Field(**{constraint: getattr(limits, limit)})
        fields[name] = (Annotated[info.annotation, info, bound], info.default)
    made = create_model(model.__name__, __base__=model, **fields)
    made.__doc__ = model.__doc__
    return made


def limit_hint(name: str) -> str:
    """The words a refusal ends with: which limit, and where it is set."""
    return f"the server's limit serving.limits.{name} (spindle.yaml)"


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
        detail=f"request body of {size}+ bytes exceeds {limit_bytes} bytes, "
        f"{limit_hint('max_body_bytes')}; send fewer instances per request",
    )


_OVER = frozenset({"too_long", "less_than_equal"})


def validation_errors(
    errors: Sequence[Mapping[str, Any]],
    prefix: tuple[str, ...] = ("body",),
    bounds: Mapping[str, tuple[str, str]] | None = None,
) -> list[dict[str, Any]]:
    """pydantic's errors as a 422 lists them: location, message and type; never the input
    (it may be megabytes, or text that cannot be encoded), at most 20 of them. An error
    over one of ``bounds`` names the limit."""
    shown: list[dict[str, Any]] = []
    for e in errors[:_MAX_ERRORS]:
        msg, loc = str(e.get("msg", "")), tuple(e.get("loc", ()))
        bound = (bounds or {}).get(str(loc[0])) if len(loc) == 1 else None
        if bound is not None and e.get("type") in _OVER:
            msg = f"{msg}: {limit_hint(bound[0])}"
        shown.append({"loc": [*prefix, *loc], "msg": msg, "type": str(e.get("type", ""))})
    if len(errors) > _MAX_ERRORS:
        more = f"and {len(errors) - _MAX_ERRORS} more errors"
        shown.append({"loc": list(prefix), "msg": more, "type": "more"})
    return shown


async def parse_json(model: type[B], body: bytes) -> B:
    """``body`` validated as ``model`` by pydantic-core (a body over 64 KiB on a thread, so
    the event loop runs between the steps around it).

    Raises:
        HTTPException: 422 with pydantic's errors, without the input they were about.
    """
    try:
        if len(body) > _PARSE_ON_LOOP_BYTES:
            return await asyncio.to_thread(model.model_validate_json, body)
        return model.model_validate_json(body)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        detail = validation_errors(errors, bounds=model.bounds)
        raise HTTPException(status_code=422, detail=detail) from None


def unprocessable(loc: Iterable[str | int], msg: str, kind: str) -> HTTPException:
    """A 422 shaped as pydantic's: one error at ``loc``."""
    return HTTPException(
        status_code=422, detail=[{"loc": ["body", *loc], "msg": msg, "type": kind}]
    )


def check_values(value: object, limits: ServingLimits, loc: tuple[str | int, ...]) -> None:
    """Walk a parsed JSON value: no string longer than ``max_string_chars`` (keys included),
    no NaN or Infinity (JSON has none; the parser takes them), no integer beyond 64 bits.

    Raises:
        HTTPException: 422 at the first such value, naming its place and the limit.
    """
    if isinstance(value, str):
        if len(value) > limits.max_string_chars:
            raise unprocessable(
                loc,
                f"a string of {len(value)} characters exceeds {limits.max_string_chars}, "
                f"{limit_hint('max_string_chars')}",
                "string_too_long",
            )
    elif isinstance(value, bool):
        return
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise unprocessable(
                loc,
                "NaN and Infinity are not JSON numbers; send null for a missing value",
                "finite_number",
            )
    elif isinstance(value, int):
        if not _INT64[0] <= value <= _INT64[1]:
            raise unprocessable(loc, "an integer beyond 64 bits", "int_too_large")
    elif isinstance(value, dict):
        for key, item in value.items():
            check_values(key, limits, loc)
            check_values(item, limits, (*loc, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            check_values(item, limits, (*loc, i))


_KINDS: dict[type, str] = {
    str: "string",
    bool: "boolean",
    int: "number",
    float: "number",
    list: "array",
    dict: "object",
}


def check_objects(
    objects: Sequence[Mapping[str, Any]],
    limits: ServingLimits,
    loc: tuple[str | int, ...],
    indexed: bool = True,
    typed: Mapping[str, str] | None = None,
) -> None:
    """:func:`check_values` over objects (instances) that become the rows a model scores, at
    ``loc`` (+ their index when ``indexed``), and each field of one type in all of them
    (null aside): the rows' column of a field holding a string in one instance and a number
    in another cannot be built, nor one whose arrays or objects hold such a mixture. Fields
    in ``typed`` (the model's request schema) are left to its check, whose message names the
    type the model expects.

    Raises:
        HTTPException: 422 at the first such field.
    """
    longest = limits.max_string_chars
    first: dict[str, tuple[str, int, type]] = {}
    whole: set[str] = set()  # fields whose values Arrow must be asked about
    for i, obj in enumerate(objects):
        at = (*loc, i) if indexed else loc
        for key, value in obj.items():
            if len(key) > longest:
                check_values(key, limits, at)
            kind = type(value)
            if kind is not str or len(value) > longest:  # the common case without a call
                check_values(value, limits, (*at, key))
            if value is None:
                continue
            name = _KINDS.get(kind, "value")
            seen = first.setdefault(key, (name, i, kind))
            if seen[0] != name and typed and key in typed:
                continue  # the schema's check names the type the model expects
            if seen[0] != name:
                where = f"{'.'.join(str(p) for p in loc)}[{seen[1]}].{key}"
                raise unprocessable(
                    (*at, key),
                    f"a {name}, where {where} is a {seen[0]}: a field holds one type in "
                    "every instance (or null)",
                    "type_mismatch",
                )
            if name in ("array", "object") or kind is not seen[2]:  # nested, or int and float
                whole.add(key)
    for key in sorted(whole):
        try:
            pa.array([obj.get(key) for obj in objects])
        except (pa.ArrowInvalid, pa.ArrowTypeError, pa.ArrowNotImplementedError) as exc:
            raise unprocessable(
                (*loc, key),
                f"its values make no column ({exc}): a field holds one type in every "
                "instance, its arrays and objects too",
                "type_mismatch",
            ) from None
