"""A second framework behind the trainer contract: scikit-learn logistic regression.

For binary models on categorical and dense inputs (e.g. ``purchase_propensity``): every
categorical column is one-hot encoded over its ``[0, cardinality)`` ids (a sparse matrix,
no per-row Python), dense columns are taken as they are, and ``LogisticRegression`` (lbfgs,
deterministic) fits them. The fitted model is a linear logit, so it is exported to ONNX by
hand — ``Gather`` of each column's weights, ``ReduceSum``, ``MatMul``, ``Add``: no skl2onnx
needed — and is servable like the ranker. Weights are stored as JSON (no pickle).

Warm start: when the base version has ``weights.json`` of the same shape, lbfgs starts from its
coefficients. There are no mid-run checkpoints: one fit takes seconds, and a killed run simply
fits again (with the same result: the fit is deterministic).
"""

from __future__ import annotations

import json
import math
import resource
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnx
import scipy.sparse as sp
import torch
from onnx import TensorProto, helper, numpy_helper
from sklearn.linear_model import LogisticRegression

from spindle.core import TrainingConfig, TrainingError, atomic_directory
from spindle.train._batches import check_weights
from spindle.train._export import MODEL_FILE, OUTPUT_NAME, predict
from spindle.train._spec import InputSpec, check_inputs
from spindle.train._train import TrainResult, state_dict_sha256
from spindle.train._warm_start import SPEC_FILE

WEIGHTS_JSON = "weights.json"
_OPSET = 17


class SklearnTrainer:
    """``LogisticRegression`` over one-hot categorical and dense columns, exported to ONNX."""

    framework = "sklearn"

    def train(
        self,
        inputs: dict[str, np.ndarray],
        labels: np.ndarray,
        spec: InputSpec,
        config: TrainingConfig,
        out_dir: Path,
        *,
        checkpoint_dir: Path,
        base_dir: Path | None = None,
        progress: Callable[[int, int], None] | None = None,
        weights: np.ndarray | None = None,
    ) -> TrainResult:
        """Fit, export and verify; see ``Trainer.train``. ``checkpoint_dir`` is unused;
        ``progress`` hears ``(1, 1)`` once the one fit is done (it has no steps to count).
        ``weights`` reach ``LogisticRegression.fit`` as ``sample_weight`` (an integer weight
        fits as that many copies of the row would), and ``final_loss`` is their weighted mean.

        Raises:
            TrainingError: a regression or multiclass spec, text inputs (use the torch
                framework for both), an
                empty or single-class training set, non-finite inputs, weights that are
                negative, non-finite or all zero, ``out_dir`` exists.
        """
        out_dir = Path(out_dir)
        if out_dir.exists():
            raise TrainingError(f"{out_dir} exists; model versions are immutable")
        if spec.task not in ("binary", "ranking"):
            raise TrainingError(
                f"framework sklearn trains binary and ranking models only, this one is "
                f"{spec.task}: set training.framework: torch"
            )
        rows = check_inputs(inputs, spec)
        _check(inputs, labels, spec, rows)
        if weights is not None:
            _check_weights(weights, rows)
        wall0, cpu0 = time.perf_counter(), time.process_time()
        features = _design_matrix(inputs, spec)
        model = LogisticRegression(C=1.0, max_iter=100 * config.epochs, tol=1e-6)
        notes: list[str] = []
        warm = _base_coefficients(base_dir, features.shape[1], notes)
        if warm is not None:
            model.set_params(warm_start=True)
            model.coef_, model.intercept_ = warm[None, 1:], warm[:1]
        model.fit(features, labels.astype(np.int64), sample_weight=weights)
        if progress is not None:
            progress(1, 1)
        seconds, cpu_s = time.perf_counter() - wall0, time.process_time() - cpu0
        coef = np.asarray(model.coef_[0], dtype=np.float32)
        bias = np.float32(model.intercept_[0])
        logits = np.asarray(features @ coef, dtype=np.float64) + float(bias)
        loss = float(np.average(np.logaddexp(0.0, logits) - labels * logits, weights=weights))
        with atomic_directory(out_dir) as tmp:
            stored = {"coef": coef.tolist(), "intercept": float(bias), "spec": spec.to_dict()}
            (tmp / WEIGHTS_JSON).write_text(json.dumps(stored) + "\n")
            (tmp / SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=2, sort_keys=True))
            _export(coef, bias, spec, tmp / MODEL_FILE)
            _verify(tmp, inputs, logits)
        sha = state_dict_sha256(
            {"coef": torch.from_numpy(coef), "intercept": torch.tensor([float(bias)])}
        )
        return TrainResult(
            out_dir=out_dir,
            onnx_path=out_dir / MODEL_FILE,
            weights_path=out_dir / WEIGHTS_JSON,
            weights_sha256=sha,
            examples=rows,
            epochs=1,
            steps=int(model.n_iter_[0]),
            seconds=seconds,
            examples_per_s=rows / seconds if seconds > 0 else 0.0,
            cpu_s=cpu_s,
            m_examples_per_cpu_s=rows / 1e6 / cpu_s if cpu_s > 0 else 0.0,
            utilisation=cpu_s / (seconds * config.threads) if seconds > 0 else 0.0,
            peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            final_loss=loss,
            resumed_from_step=None,
            warm_started=warm is not None,
            notes=tuple(notes),
        )

    def predict(self, out_dir: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Logits from ``weights.json`` (the same numbers ``model.onnx`` gives)."""
        weights = json.loads((Path(out_dir) / WEIGHTS_JSON).read_text())
        spec = InputSpec.from_dict(weights["spec"])
        coef = np.asarray(weights["coef"], dtype=np.float32)
        scores = _design_matrix(inputs, spec) @ coef + np.float32(weights["intercept"])
        return np.asarray(scores, dtype=np.float32)


def _check(inputs: dict[str, np.ndarray], labels: np.ndarray, spec: InputSpec, rows: int) -> None:
    if spec.n_text:
        raise TrainingError(
            "the sklearn framework takes categorical and dense inputs only, this model has "
            f"{spec.n_text} text column(s): set training.framework=torch"
        )
    if rows == 0:
        raise TrainingError("the training set is empty (0 rows): nothing to train on")
    if labels.shape != (rows,) or len(np.unique(labels)) != 2:
        raise TrainingError(
            f"labels must be [{rows}] with both classes 0 and 1 present, got shape "
            f"{labels.shape} with values {np.unique(labels)[:5].tolist()}"
        )
    dense = inputs.get("dense")
    if dense is not None and not np.isfinite(dense).all():
        row = int(np.flatnonzero(~np.isfinite(dense).all(axis=1))[0])
        raise TrainingError(
            f"non-finite value in inputs['dense'] row {row}: {dense[row].tolist()}; fix or "
            "drop that row upstream"
        )


def _check_weights(weights: np.ndarray, rows: int) -> None:
    if weights.shape != (rows,):
        raise TrainingError(f"example weights must be [{rows}], got {weights.shape}")
    check_weights(weights)
    if not weights.any():
        raise TrainingError(f"every one of the {rows} example weights is 0: nothing to fit")


def _design_matrix(inputs: dict[str, np.ndarray], spec: InputSpec) -> sp.csr_matrix:
    """One-hot categorical columns then dense columns, as one sparse matrix."""
    blocks = []
    if spec.cat_cardinalities:
        cat = inputs["cat"]
        rows = cat.shape[0]
        offsets = np.cumsum((0, *spec.cat_cardinalities[:-1]))
        columns = (cat + offsets).ravel()
        blocks.append(
            sp.csr_matrix(
                (
                    np.ones(columns.size, np.float32),
                    (np.repeat(np.arange(rows), cat.shape[1]), columns),
                ),
                shape=(rows, sum(spec.cat_cardinalities)),
            )
        )
    if spec.n_dense:
        blocks.append(sp.csr_matrix(inputs["dense"].astype(np.float32)))
    return sp.hstack(blocks, format="csr", dtype=np.float32)


def _base_coefficients(base_dir: Path | None, width: int, notes: list[str]) -> np.ndarray | None:
    """``[intercept, *coef]`` of the base when it fits this design, else None (with a note)."""
    if base_dir is None:
        return None
    file = Path(base_dir) / WEIGHTS_JSON
    if not file.is_file():
        notes.append(f"no warm start: {file} does not exist (the base is not a sklearn model)")
        return None
    weights = json.loads(file.read_text())
    coef = np.asarray(weights["coef"], dtype=np.float64)
    if coef.shape != (width,):
        notes.append(f"no warm start: the base has {coef.size} coefficients, this model {width}")
        return None
    notes.append(f"warm started from {base_dir}")
    return np.concatenate([[float(weights["intercept"])], coef])


def _export(coef: np.ndarray, bias: np.float32, spec: InputSpec, path: Path) -> None:
    """Write the linear logit as an ONNX graph with the ranker's input and output names."""
    nodes, inputs, inits, parts = [], [], [], []
    if spec.cat_cardinalities:
        width = sum(spec.cat_cardinalities)
        offsets = np.cumsum((0, *spec.cat_cardinalities[:-1])).astype(np.int64)
        inputs.append(helper.make_tensor_value_info("cat", TensorProto.INT64, ["N", len(offsets)]))
        inits += [
            numpy_helper.from_array(offsets, "cat_offsets"),
            numpy_helper.from_array(coef[:width].astype(np.float32), "cat_weights"),
            numpy_helper.from_array(np.array([1], np.int64), "axis_1"),
        ]
        nodes += [
            helper.make_node("Add", ["cat", "cat_offsets"], ["cat_ids"]),
            helper.make_node("Gather", ["cat_weights", "cat_ids"], ["cat_terms"]),
            helper.make_node("ReduceSum", ["cat_terms", "axis_1"], ["cat_logit"], keepdims=0),
        ]
        parts.append("cat_logit")
    if spec.n_dense:
        inputs.append(
            helper.make_tensor_value_info("dense", TensorProto.FLOAT, ["N", spec.n_dense])
        )
        dense_coef = coef[len(coef) - spec.n_dense :].astype(np.float32)
        inits.append(numpy_helper.from_array(dense_coef, "dense_weights"))
        nodes.append(helper.make_node("MatMul", ["dense", "dense_weights"], ["dense_logit"]))
        parts.append("dense_logit")
    inits.append(numpy_helper.from_array(np.array([bias], np.float32), "bias"))
    total = parts[0]
    for i, part in enumerate(parts[1:]):
        nodes.append(helper.make_node("Add", [total, part], [f"sum_{i}"]))
        total = f"sum_{i}"
    nodes.append(helper.make_node("Add", [total, "bias"], [OUTPUT_NAME]))
    output = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, ["N"])
    graph = helper.make_graph(nodes, "spindle_logistic", inputs, [output], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", _OPSET)])
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def _verify(out_dir: Path, inputs: dict[str, np.ndarray], logits: np.ndarray) -> None:
    sample = {name: array[:256] for name, array in inputs.items()}
    got = predict(out_dir, sample)
    error = np.abs(got - logits[:256]) / np.maximum(1.0, np.abs(logits[:256]))
    if error.size and not math.isclose(float(error.max()), 0.0, abs_tol=1e-4):
        raise TrainingError(
            f"{out_dir / MODEL_FILE}: onnxruntime and scikit-learn disagree by "
            f"{float(error.max()):.3g}"
        )
