"""ONNX export of a trained ranker (dynamo exporter, dynamic batch), verified with onnxruntime."""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch

from spindle.core import MODEL_FILE as MODEL_FILE
from spindle.core import TrainingError, model_file
from spindle.train._model import Model
from spindle.train._spec import InputSpec

OUTPUT_NAME = "score"
TOLERANCE = 1e-5


def export_onnx(
    model: Model,
    spec: InputSpec,
    path: Path,
    sample: dict[str, np.ndarray] | None = None,
) -> None:
    """Write ``model`` as ONNX to ``path`` and check onnxruntime agrees with torch.

    The graph has the inputs of ``spec`` (``cat`` int64 ``[N, C]``, ``text`` int64
    ``[N, T, L]``, ``dense`` float32 ``[N, D]``, as present) with a dynamic batch dimension,
    and one output ``score``, float32: the logit ``[N]`` (binary, ranking), the value ``[N]``
    (regression: un-standardised in the graph) or the K logits ``[N, K]`` (multiclass).

    Args:
        model: the trained model (switched to eval mode).
        spec: its input spec.
        path: the file to write.
        sample: rows to verify on (e.g. the first training rows); random valid rows if None.
            Batch size 1 is always verified as well.

    Raises:
        TrainingError: the export failed, or onnxruntime's scores differ from torch's by more
            than 1e-5 (relative to the score's size when that is above 1).

    Example:
        >>> export_onnx(model, spec, Path("out/model.onnx"))  # doctest: +SKIP
    """
    model.eval()
    example = {name: torch.from_numpy(a) for name, a in _sample_inputs(spec, 8).items()}
    batch = torch.export.Dim("batch", min=1)
    try:
        with _quiet_exporter():
            torch.onnx.export(
                _Served(model).eval() if spec.task == "regression" else model,
                (),
                str(path),
                kwargs=example,
                input_names=list(example),
                output_names=[OUTPUT_NAME],
                dynamic_shapes={name: {0: batch} for name in example},
                dynamo=True,
                external_data=False,
                verbose=False,
            )
    except Exception as error:  # the exporter raises many types; all mean "not exported"
        raise TrainingError(f"ONNX export to {path} failed: {export_failure(error)}") from None
    checks = [sample if sample is not None else _sample_inputs(spec, 64)]
    checks.append({name: array[:1] for name, array in checks[0].items()})
    session = _session(path)
    for inputs in checks:
        _verify(model, session, inputs, path)


def export_failure(error: Exception) -> str:
    """One line for an exporter's error: the operator it could not translate when it names
    one (``prims.bessel_j0.default``), else the error's first line."""
    text = str(error)
    found = re.search(r"op='([\w.]+)', overload='(\w+)'", text) or re.search(
        r"target=torch\.ops\.([\w.]+)()", text
    )
    if found:
        op = found.group(1) + (f".{found.group(2)}" if found.group(2) else "")
        return (
            f"torch has no ONNX translation for operator {op} ({type(error).__name__}); "
            "compute it with other operators"
        )
    lines = text.strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"


def predict(model_dir: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
    """Score ``inputs`` with the ``model.onnx`` of a model version directory (onnxruntime).

    Returns:
        float32 scores: logits ``[N]``, values ``[N]`` (regression) or logits ``[N, K]``
        (multiclass).
    """
    session = _session(model_file(model_dir))
    names = [i.name for i in session.get_inputs()]
    result = session.run([OUTPUT_NAME], {name: inputs[name] for name in names})[0]
    return np.asarray(result, dtype=np.float32)


def _verify(
    model: Model, session: ort.InferenceSession, inputs: dict[str, np.ndarray], path: Path
) -> None:
    with torch.no_grad():
        expected = model.served(**{n: torch.from_numpy(a) for n, a in inputs.items()}).numpy()
    got = session.run([OUTPUT_NAME], dict(inputs))[0]
    if got.shape != expected.shape or got.dtype != np.float32:
        raise TrainingError(
            f"{path}: onnxruntime returned {got.dtype} {got.shape}, expected float32 "
            f"{expected.shape}"
        )
    error = np.abs(got - expected) / np.maximum(1.0, np.abs(expected))
    if error.size and float(error.max()) > TOLERANCE:
        raise TrainingError(
            f"{path}: onnxruntime and torch disagree by {float(error.max()):.3g} "
            f"(> {TOLERANCE}) on a batch of {len(expected)} rows"
        )


class _Served(torch.nn.Module):
    """The graph that is exported when the head maps the model's output (regression)."""

    def __init__(self, model: Model) -> None:
        super().__init__()
        self.model = model

    def forward(
        self,
        cat: torch.Tensor | None = None,
        text: torch.Tensor | None = None,
        dense: torch.Tensor | None = None,
    ) -> torch.Tensor:
        inputs = {"cat": cat, "text": text, "dense": dense}
        return self.model.served(**{n: t for n, t in inputs.items() if t is not None})


def _session(path: Path) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.log_severity_level = 3
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _sample_inputs(spec: InputSpec, rows: int) -> dict[str, np.ndarray]:
    """Random valid inputs (fixed seed), with some padding in text."""
    rng = np.random.default_rng(0)
    out: dict[str, np.ndarray] = {}
    if spec.cat_cardinalities:
        out["cat"] = np.stack(
            [rng.integers(0, c, rows) for c in spec.cat_cardinalities], axis=1
        ).astype(np.int64)
    if spec.n_text:
        text = rng.integers(1, spec.text_vocab_size, (rows, spec.n_text, spec.text_len))
        text[:, :, spec.text_len // 2 + 1 :] = 0
        text[0] = 0  # an all-padding row exercises the empty mean
        out["text"] = text.astype(np.int64)
    if spec.n_dense:
        out["dense"] = rng.standard_normal((rows, spec.n_dense)).astype(np.float32)
    return out


_EXPORTING = threading.Lock()


@contextlib.contextmanager
def _quiet_exporter() -> Iterator[None]:
    """One export at a time in this process, with the exporter's logs and known-harmless
    warnings off the console.

    torch.export is not safe to run from two threads at once (``run-all --max-parallel``
    crashed in torch.fx with ``KeyError: 'custom'``), and the logger level and warning filters
    set here are process-wide, so exports take turns. Nothing here touches ``sys.stdout``:
    ``verbose=False`` already keeps the exporter's progress lines off it, and redirecting it
    would swallow (or, with two exports interleaved, lose for good) every other thread's output.
    """
    with _EXPORTING:
        logger = logging.getLogger("torch.onnx")
        level = logger.level
        logger.setLevel(logging.ERROR)  # "torchvision is not installed. Skipping ..." at WARNING
        try:
            with warnings.catch_warnings():
                # Raised from copyreg (so the torch.* filters do not catch it) when
                # torch.export unpickles pytree specs: a deprecation inside torch.
                warnings.filterwarnings(
                    "ignore", message=r".*isinstance\(treespec, LeafSpec\)", category=FutureWarning
                )
                # One Dim shared by every input's batch axis: the exporter keeps one name.
                warnings.filterwarnings(
                    "ignore", message=r".*axis name: batch will not be used", category=UserWarning
                )
                yield
        finally:
            logger.setLevel(level)
