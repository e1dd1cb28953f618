"""The model runtime: one verified model version (ONNX + transform) that scores raw feature rows.

The server and offline evaluation both score through :class:`ModelRuntime`, so a model sees the
same inputs and gives the same scores offline and online. Loading verifies every file against
the sha256 recorded in the version's manifest; the bytes that were hashed are the bytes that are
loaded (no window in which a file could change between the check and the load). Given the
content hash the registry recorded for the version (``registered``), loading also refuses a
manifest whose checksums are not that version's: a manifest rewritten to match other files
(version 3's files copied into version 4's directory) is not version 4.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spindle.core import MANIFEST_FILE as MANIFEST_FILE
from spindle.core import MODEL_FILE as MODEL_FILE
from spindle.core import (
    REQUIRED_FILES,
    FeatureError,
    ModelPackage,
    ServingError,
    read_package,
    sha256_bytes,
    verify_package,
)
from spindle.core import SERVING_FILES as SERVING_FILES
from spindle.core import TRANSFORM_FILE as TRANSFORM_FILE

if TYPE_CHECKING:
    import numpy as np
    import pyarrow as pa

    from spindle.features import Transform

# onnxruntime, numpy, pyarrow and the transform are imported where a model is loaded or run:
# the repository (and `spindle models list`, which reads routing through it) needs none of them.
# The package's file names and manifest belong to spindle.core (_model_package); they are
# re-exported here for serve's callers.
_REQUIRED = REQUIRED_FILES
SCORE_OUTPUT = "score"
SCORE_BATCH_ROWS = 65_536
"""Rows scored at once from a file: at scale 128 (5.1M rows a day) scoring a day's holdout
whole held its inputs and the network's activations for every row at once."""

# onnxruntime type strings -> KServe V2 datatypes
_V2_TYPES = {
    "tensor(float)": "FP32",
    "tensor(double)": "FP64",
    "tensor(int64)": "INT64",
    "tensor(int32)": "INT32",
    "tensor(int16)": "INT16",
    "tensor(int8)": "INT8",
    "tensor(uint8)": "UINT8",
    "tensor(bool)": "BOOL",
    "tensor(float16)": "FP16",
    "tensor(string)": "BYTES",
}


class ChecksumMismatch(ServingError):
    """A file of a model version is missing or its sha256 differs from the manifest."""


@dataclass(frozen=True)
class TensorSpec:
    """Name, KServe V2 datatype and shape (-1 = dynamic) of one model input or output."""

    name: str
    datatype: str
    shape: tuple[int, ...]

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "datatype": self.datatype, "shape": list(self.shape)}


def read_manifest(version_dir: str | Path) -> dict[str, Any]:
    """Read and check the shape of the manifest of a model version (see ``read_package``).

    Raises:
        ServingError: the manifest is missing, not JSON, or lacks model/version/files.
    """
    return read_package(version_dir).to_json()


def _read_verified(version_dir: Path, name: str, expected: str) -> bytes:
    path = version_dir / name
    try:
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise ChecksumMismatch(
            f"{path}: missing; the manifest expects sha256 {expected}, found no file"
        ) from exc
    found = sha256_bytes(data)
    if found != expected:
        raise ChecksumMismatch(
            f"{path}: sha256 mismatch: the manifest expects {expected}, found {found}; "
            "the file was changed or corrupted after export: push the version again"
        )
    return data


def verify_files(version_dir: str | Path, manifest: dict[str, Any]) -> dict[str, str]:
    """Check the manifest's checksums of the files present in ``version_dir``.

    ``model.onnx`` and ``transform.json`` must be present; other files the manifest lists
    (training-only ones such as ``weights.pt``) are checked when present, since a serving copy
    never holds them.

    Returns:
        ``{name: sha256}`` of every file checked.

    Raises:
        ChecksumMismatch: a needed file is missing or a file's sha256 differs.
    """
    root = Path(version_dir)
    package = ModelPackage(root, manifest)
    problems = verify_package(root, package, only_present=True)
    if problems:
        raise ChecksumMismatch(problems[0])
    return {
        name: digest
        for name, digest in sorted(package.files.items())
        if name in _REQUIRED or (root / name).exists()
    }


def _spec(arg: Any) -> TensorSpec:
    shape = tuple(d if isinstance(d, int) and d >= 0 else -1 for d in (arg.shape or ()))
    return TensorSpec(arg.name, _V2_TYPES.get(arg.type, arg.type), shape)


class ModelRuntime:
    """A loaded, verified model version: ``score(rows)`` maps raw feature rows to scores.

    Create it with :meth:`load`. Scoring is thread-safe (onnxruntime sessions are).
    """

    def __init__(
        self, path: Path, manifest: dict[str, Any], transform: Transform, session: Any, sha: str
    ) -> None:
        self._path = path
        self._manifest = manifest
        self.transform = transform
        self.session = session
        self._sha256 = sha
        self.inputs = tuple(_spec(i) for i in session.get_inputs())
        self.outputs = tuple(_spec(o) for o in session.get_outputs())
        self._input_names = [i.name for i in self.inputs]
        names = [o.name for o in self.outputs]
        self._output = SCORE_OUTPUT if SCORE_OUTPUT in names else names[0]
        self.user_columns = [c for c in transform.columns() if c.startswith("user__")]
        self._read_columns = list(dict.fromkeys(transform.columns()))

    @classmethod
    def load(cls, version_dir: str | Path, *, registered: str | None = None) -> ModelRuntime:
        """Verify and load a model version directory.

        Args:
            version_dir: the version directory (or its copy in a model repository).
            registered: the content hash the registry recorded for the version (see
                ``ModelPackage.content_hash``); None checks the files against the manifest only.

        Raises:
            ChecksumMismatch: model.onnx or transform.json is missing or differs from the
                manifest, or the manifest's checksums are not the ``registered`` version's.
            ServingError: the manifest is invalid, or the files do not load.

        Example:
            >>> runtime = ModelRuntime.load("repo/search_ranker/3")  # doctest: +SKIP
            >>> runtime.score(rows)  # doctest: +SKIP
        """
        path = Path(version_dir)
        manifest = read_manifest(path)
        files = manifest["files"]
        found = ModelPackage(path, manifest).content_hash
        if registered is not None and found != registered:
            # the manifest's checksums pin the bytes loaded below; the registry pins the manifest
            raise ChecksumMismatch(
                f"{path}: not the version the registry recorded: its manifest's checksums hash "
                f"to {found}, the registry recorded {registered} for "
                f"{manifest['model']}@{manifest['version']}; the files were replaced after "
                "training: `spindle doctor --fix` copies the version back from its artifact"
            )
        # the two serving files are hashed below from the very bytes that get loaded
        others = {k: v for k, v in files.items() if k not in _REQUIRED}
        problems = verify_package(path, ModelPackage(path, {"files": others}), only_present=True)
        if problems:
            raise ChecksumMismatch(problems[0])
        model_bytes = _read_verified(path, MODEL_FILE, files[MODEL_FILE])
        transform_bytes = _read_verified(path, TRANSFORM_FILE, files[TRANSFORM_FILE])
        import onnxruntime as ort

        from spindle.features import Transform

        try:
            transform = Transform.from_json(transform_bytes.decode("utf-8"))
        except (FeatureError, UnicodeDecodeError) as exc:
            raise ServingError(f"{path / TRANSFORM_FILE}: {exc}") from exc
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        options.inter_op_num_threads = 1
        try:
            session = ort.InferenceSession(
                model_bytes, sess_options=options, providers=["CPUExecutionProvider"]
            )
        except Exception as exc:  # onnxruntime raises its own untyped errors
            raise ServingError(f"{path / MODEL_FILE}: onnxruntime cannot load it: {exc}") from exc
        runtime = cls(path, manifest, transform, session, files[MODEL_FILE])
        runtime._check_inputs()
        return runtime

    def _check_inputs(self) -> None:
        t = self.transform
        expected = {
            "cat": (-1, len(t.cat)),
            "text": (-1, len(t.text), t.text_len),
            "dense": (-1, len(t.dense)),
        }
        for spec in self.inputs:
            want = expected.get(spec.name)
            if want is None or want[1] == 0:
                raise ServingError(
                    f"{self._path / MODEL_FILE}: input {spec.name!r} is not produced by "
                    f"{TRANSFORM_FILE} (it produces {[k for k, v in expected.items() if v[1]]})"
                )
            fits = len(spec.shape) == len(want) and all(
                s in (-1, w) for s, w in zip(spec.shape[1:], want[1:], strict=True)
            )
            if not fits:
                raise ServingError(
                    f"{self._path / MODEL_FILE}: input {spec.name!r} has shape {list(spec.shape)} "
                    f"but {TRANSFORM_FILE} produces {list(want)}: model and transform do not match"
                )

    @cached_property
    def stored_columns(self) -> frozenset[str]:
        """The columns the transform reads that come from feature views (the online store):
        every column but those the request features compute per request."""
        computed = {feature.column for feature in self.transform.request}
        return frozenset(self.transform.columns()) - computed

    @property
    def model(self) -> str:
        return str(self._manifest["model"])

    @property
    def version(self) -> int:
        return int(self._manifest["version"])

    @property
    def manifest(self) -> dict[str, Any]:
        return dict(self._manifest)

    @property
    def path(self) -> Path:
        return self._path

    @property
    def score_width(self) -> int:
        """Scores per row: K for a model whose output is ``[N, K]`` (multiclass), else 1."""
        spec = next(o for o in self.outputs if o.name == self._output)
        return spec.shape[1] if len(spec.shape) == 2 and spec.shape[1] > 1 else 1

    @property
    def sha256(self) -> str:
        """The sha256 of model.onnx."""
        return self._sha256

    def score(self, rows: pa.Table) -> np.ndarray:
        """Score raw feature rows (the columns of a training set) and return float64 ``[N]``
        (``[N, K]`` for a model with K outputs per row: a multiclass model's logits).

        Raises:
            FeatureError: a column the transform reads is missing from ``rows``.
            ServingError: the model's output is not one finite score per row.
        """
        import numpy as np

        if rows.num_rows == 0:
            width = self.score_width
            return np.zeros((0, width) if width > 1 else 0, np.float64)
        present = set(rows.column_names)
        if present.issuperset(self._read_columns):  # else the transform names what is missing
            # only the columns the transform reads: it looks its columns up in the table's
            # names once per encoding, and a served row carries keys and fields besides
            rows = rows.select(self._read_columns)
        arrays = self.transform.transform(rows)
        missing = [n for n in self._input_names if n not in arrays]
        if missing:
            raise ServingError(
                f"{self.model}@{self.version}: the transform yields no {missing} input "
                f"(it yields {sorted(arrays)})"
            )
        return self._scores(self.infer({n: arrays[n] for n in self._input_names}), rows.num_rows)

    def score_file(self, path: str | Path, batch_rows: int = SCORE_BATCH_ROWS) -> np.ndarray:
        """:meth:`score` of every row of a Parquet file (a holdout), ``batch_rows`` at a time:
        only the columns the transform reads are read, and no more than one batch's inputs
        and activations are held (a whole day's holdout at once held gigabytes).

        Raises:
            FeatureError: a column the transform reads is not in the file.
            ServingError: the model's output is not one finite score per row.
        """
        import numpy as np
        import pyarrow as pa
        import pyarrow.parquet as pq

        source = pq.ParquetFile(path)
        names = set(source.schema_arrow.names)
        columns = [c for c in self._read_columns if c in names]
        parts = [
            self.score(pa.Table.from_batches([batch]))
            for batch in source.iter_batches(batch_size=batch_rows, columns=columns)
            if batch.num_rows
        ]
        if not parts:
            return self.score(source.schema_arrow.empty_table())
        return np.concatenate(parts)

    def infer(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the ONNX graph on named input tensors and return every output by name."""
        import numpy as np

        values = self.session.run(None, inputs)
        return {spec.name: np.asarray(v) for spec, v in zip(self.outputs, values, strict=True)}

    def _scores(self, outputs: dict[str, np.ndarray], n: int) -> np.ndarray:
        """The output as float64: ``[n]`` (one score or value per row), or ``[n, K]`` when the
        model answers K scores per row (a multiclass model's logits)."""
        import numpy as np

        raw = outputs[self._output]
        wide = raw.ndim == 2 and raw.shape[0] == n and raw.shape[1] > 1
        scores = raw.astype(np.float64) if wide else raw.astype(np.float64).reshape(-1)
        if not wide and scores.shape != (n,):
            raise ServingError(
                f"{self.model}@{self.version}: output {self._output!r} has {scores.size} values "
                f"for {n} rows"
            )
        if not np.all(np.isfinite(scores)):
            raise ServingError(f"{self.model}@{self.version}: non-finite scores (NaN or inf)")
        return scores
