"""Request-time features: one implementation for training sets and for live requests.

A request group (``features/<group>.yaml`` with ``request:``) declares the columns a caller
sends at serving time; each of its features is a Python function ``def f(rows: pa.Table) ->
pa.Array`` over rows holding those columns and the joined views' features and kept columns.
A training set calls the pinned functions on its rows (the examples SQL produces the request
columns); the server calls the very same code on the rows it assembles for a request.

So that a served model runs the code it was trained with, wherever it is served, the
transform of every model version records each pinned request feature's Python source and its
sha256 (:class:`RequestFeature`); serving executes that recorded source, never the workspace's
current file.
"""

from __future__ import annotations

import sys
import types
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import pyarrow as pa

from spindle.core import FeatureError, sha256_bytes
from spindle.features._definitions import FeatureDefinition
from spindle.features._python import ARROW_TYPE_NAMES

_MODULES: dict[str, types.ModuleType] = {}


@dataclass(frozen=True)
class RequestFeature:
    """A pinned request feature with its function's source, as a model version records it."""

    ref: str
    column: str
    dtype: str
    file: str
    function: str
    source: str
    sha256: str

    @classmethod
    def of(cls, definition: FeatureDefinition) -> RequestFeature:
        """The request feature of ``definition``, its source read from the workspace.

        Raises:
            FeatureError: the definition is not a request feature, or its file changed since
                the definitions were loaded.
        """
        python = definition.python
        if definition.computation != "request" or python is None:
            raise FeatureError(f"{definition.ref} is not a request feature (a Python function)")
        elsewhere = not python.file.is_file() and python.source  # a cluster's node: the bytes
        data = python.source if elsewhere else python.file.read_bytes()
        if sha256_bytes(data) != python.source_sha256:
            raise FeatureError(
                f"{python.file} changed after the feature definitions were loaded; run the "
                "command again so the new code is fingerprinted (and versioned) before it runs"
            )
        return cls(
            definition.ref,
            definition.column,
            definition.dtype,
            python.file.name,
            python.function,
            data.decode("utf-8"),
            python.source_sha256,
        )

    def to_dict(self) -> dict[str, str]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RequestFeature:
        """Load what :meth:`to_dict` wrote, checking the source against its sha256.

        Raises:
            FeatureError: a key is missing or the source does not match its sha256.
        """
        try:
            feature = cls(**{k: str(data[k]) for k in cls.__dataclass_fields__})
        except KeyError as exc:
            raise FeatureError(f"a recorded request feature lacks {exc}") from exc
        if sha256_bytes(feature.source.encode("utf-8")) != feature.sha256:
            raise FeatureError(
                f"request feature {feature.ref}: its recorded source does not match its sha256"
            )
        return feature


def request_features(definitions: Sequence[FeatureDefinition]) -> tuple[RequestFeature, ...]:
    """The pinned request features of ``definitions``, in pin order."""
    return tuple(RequestFeature.of(d) for d in definitions if d.computation == "request")


def _arrow_type(dtype: str) -> pa.DataType:
    factory: Callable[[], pa.DataType] = getattr(pa, ARROW_TYPE_NAMES[dtype])
    return factory()


def request_schema(schema: pa.Schema, features: Sequence[RequestFeature]) -> pa.Schema:
    """``schema`` with the request features' columns (replaced where already present)."""
    for feature in features:
        field = pa.field(feature.column, _arrow_type(feature.dtype))
        index = schema.get_field_index(feature.column)
        schema = schema.set(index, field) if index >= 0 else schema.append(field)
    return schema


def _function(feature: RequestFeature) -> Callable[[pa.Table], object]:
    """The feature's function, its recorded source executed once per content hash."""
    module = _MODULES.get(feature.sha256)
    if module is None:
        name = f"spindle_request_{feature.sha256[:16]}"
        module = types.ModuleType(name)
        module.__file__ = feature.file
        sys.modules[name] = module  # dataclasses and pickling look modules up by name
        try:
            exec(compile(feature.source, feature.file, "exec"), module.__dict__)
        except Exception as exc:
            del sys.modules[name]
            raise FeatureError(
                f"request feature {feature.ref}: importing {feature.file} failed: "
                f"{type(exc).__name__}: {exc}"
            ) from exc
        _MODULES[feature.sha256] = module
    function = getattr(module, feature.function, None)
    if not callable(function):
        raise FeatureError(
            f"request feature {feature.ref}: {feature.file} has no {feature.function}"
        )
    return function  # type: ignore[no-any-return]


def _values(feature: RequestFeature, rows: pa.Table) -> pa.Array:
    where = f"request feature {feature.ref} ({feature.file}:{feature.function})"
    try:
        values = _function(feature)(rows)
    except FeatureError:
        raise
    except Exception as exc:
        raise FeatureError(
            f"{where} raised {type(exc).__name__}: {exc} (rows have {rows.column_names})"
        ) from exc
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array) or len(values) != rows.num_rows:
        got = f"{len(values)} values" if isinstance(values, pa.Array) else type(values).__name__
        raise FeatureError(
            f"{where} returned {got}; expected a pyarrow Array of {rows.num_rows} values, "
            "one per row in the rows' order"
        )
    try:
        return values.cast(_arrow_type(feature.dtype))
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise FeatureError(
            f"{where} returned {values.type} values that cannot be cast to {feature.dtype}: {exc}"
        ) from exc


def apply_request_features(rows: pa.Table, features: Sequence[RequestFeature]) -> pa.Table:
    """Add (or replace) the column of each request feature, computed over ``rows``.

    Training sets and the server both call this function with the same recorded features.

    Raises:
        FeatureError: a function raised (e.g. a needed column is missing), or returned
            something other than one value per row of its declared dtype.

    Example:
        >>> apply_request_features(rows, transform.request).column_names  # doctest: +SKIP
    """
    for feature in features:
        rows = _set(rows, feature.column, _values(feature, rows))
    return rows


def _set(table: pa.Table, name: str, values: pa.Array) -> pa.Table:
    if name in table.column_names:
        return table.set_column(table.column_names.index(name), name, values)
    return table.append_column(name, values)


def assemble_request_rows(
    candidates: pa.Table,
    context: Mapping[str, object] | None,
    context_columns: Sequence[str],
    request: Mapping[str, object],
    features: Sequence[RequestFeature],
) -> pa.Table:
    """Build the rows a model scores for one request: candidates × context × request.

    Args:
        candidates: one row per candidate, as the online store serves a view's rows (keys,
            kept columns, features).
        context: the online row of the request's other entity (None when it is unknown:
            its features become null, as in a training set), broadcast to every row.
        context_columns: the columns of ``context`` the model reads.
        request: the request's columns (the request group's ``columns``), broadcast.
        features: the model's request features (``Transform.request``), computed last.

    Returns:
        The same columns a training set has, so the transform treats both alike.

    Raises:
        FeatureError: a request feature fails (see :func:`apply_request_features`).
    """
    n = candidates.num_rows
    table = candidates
    for column in context_columns:
        value = None if context is None else context.get(column)
        table = _set(table, column, pa.array([value] * n))
    for column, value in request.items():
        table = _set(table, column, pa.array([value] * n))
    return apply_request_features(table, features)
