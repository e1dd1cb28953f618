"""Python feature computations: a plain typed function over a view's rows, in Arrow.

A feature may name ``python: file.py:function`` instead of ``sql``. The file lives in the
workspace's ``features/`` directory; the function takes the day's rows of its feature view (the
same columns a SQL expression sees) — or, for a request feature, the request rows — and returns
one value per row, in the rows' order::

    def minutes_per_day(base: pa.Table) -> pa.Array:
        return pc.divide(base["minutes_28d"], 28.0)

The definition is checked at load without running any code (the file exists and defines a
one-argument function of that name); the file runs only when the feature is computed. Its
bytes are hashed at load, and the same bytes are executed, so the fingerprint of a version is
exactly the code that computed it.
"""

from __future__ import annotations

import ast
import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING

from spindle.core import FeatureError, sha256_bytes

if TYPE_CHECKING:
    import pyarrow as pa

# Arrow type names by declared dtype; pyarrow itself is imported only when a feature runs
# (loading definitions, as `spindle status` does, must stay light).
ARROW_TYPE_NAMES = {"float64": "float64", "int64": "int64", "bool": "bool_", "string": "string"}

_MODULES: dict[str, ModuleType] = {}


@dataclass(frozen=True)
class PythonComputation:
    """Where a Python feature's function lives, and the hash of its file when loaded."""

    spec: str
    """As written in the YAML, ``file.py:function`` (file relative to ``features/``)."""
    file: Path
    function: str
    source_sha256: str
    # the file's bytes as loaded: what runs on a node that does not have the workspace's folder
    # (a cluster's worker); where the file is, it is read again and must still be these bytes
    source: bytes = field(default=b"", repr=False, compare=False)


def parse_python(spec: str, features_dir: Path) -> tuple[PythonComputation | None, str | None]:
    """Check ``file.py:function`` without running it; return the computation or the problem."""
    file_part, sep, function = spec.rpartition(":")
    if not sep or not file_part.endswith(".py") or not function.isidentifier():
        return None, f"python: {spec!r} must be `file.py:function` (file relative to features/)"
    relative = Path(file_part)
    if relative.is_absolute() or ".." in relative.parts:
        return None, f"python: {spec!r}: the file must be inside the features directory"
    path = (features_dir / relative).resolve()
    if not path.is_file():
        return None, f"python: {spec!r}: no file {path}"
    data = path.read_bytes()
    try:
        tree = ast.parse(data, filename=str(path))
    except SyntaxError as exc:
        return None, f"python: {spec!r}: {path} does not parse (line {exc.lineno}: {exc.msg})"
    found = next(
        (
            node
            for node in tree.body
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == function
        ),
        None,
    )
    if found is None:
        return None, f"python: {spec!r}: {path} defines no top-level function {function}"
    args = found.args
    if len(args.posonlyargs) + len(args.args) != 1 or args.vararg or args.kwonlyargs:
        return None, (
            f"python: {spec!r}: {function} must take exactly one argument, the rows "
            "(`def f(base: pa.Table) -> pa.Array`)"
        )
    return PythonComputation(spec, path, function, sha256_bytes(data), data), None


def _module(computation: PythonComputation) -> ModuleType:
    """Execute the file's bytes once per content hash (the bytes the fingerprint names)."""
    cached = _MODULES.get(computation.source_sha256)
    if cached is not None:
        return cached
    elsewhere = not computation.file.is_file() and computation.source
    data = computation.source if elsewhere else computation.file.read_bytes()
    if sha256_bytes(data) != computation.source_sha256:
        raise FeatureError(
            f"{computation.file} changed after the feature definitions were loaded; run the "
            "command again so the new code is fingerprinted (and versioned) before it runs"
        )
    name = f"spindle_features_{computation.source_sha256[:16]}"
    spec = importlib.util.spec_from_file_location(name, computation.file)
    if spec is None:
        raise FeatureError(f"cannot load {computation.file} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        exec(compile(data, str(computation.file), "exec"), module.__dict__)
    except Exception as exc:
        del sys.modules[name]
        raise FeatureError(
            f"importing {computation.file} failed: {type(exc).__name__}: {exc}"
        ) from exc
    _MODULES[computation.source_sha256] = module
    return module


def apply_python(
    computation: PythonComputation, ref: str, dtype: str, base: pa.Table, date: str
) -> pa.Array:
    """Call the feature's function on the day's view rows; check and cast what it returns.

    Raises:
        FeatureError: the function raised, returned something other than an Arrow array, the
            wrong number of values, or values that cannot be cast to ``dtype``; the message
            names the feature, file, function and day.
    """
    import pyarrow as pa

    where = f"feature {ref} (python {computation.file.name}:{computation.function}, day {date})"
    function: Callable[[pa.Table], object] = getattr(_module(computation), computation.function)
    try:
        values = function(base)
    except Exception as exc:
        raise FeatureError(f"{where} raised {type(exc).__name__}: {exc}") from exc
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if not isinstance(values, pa.Array):
        raise FeatureError(
            f"{where} returned {type(values).__name__}; expected a pyarrow Array with one "
            f"value per row ({base.num_rows} rows)"
        )
    if len(values) != base.num_rows:
        raise FeatureError(
            f"{where} returned {len(values)} values for {base.num_rows} rows; it must "
            "return one value per row, in the rows' order"
        )
    try:
        return values.cast(getattr(pa, ARROW_TYPE_NAMES[dtype])())
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise FeatureError(
            f"{where} returned {values.type} values that cannot be cast to the declared dtype "
            f"{dtype}: {exc}"
        ) from exc
