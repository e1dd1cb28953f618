"""The feature matrix the ``lightgbm`` family sees, and its ONNX export with raw scores.

The trees see one float matrix built from the Transform's arrays, in this column order:

* ``cat_<j>``: categorical column ``j``'s id, as a LightGBM categorical feature;
* ``text_words_<t>``: the number of words (non-zero ids) of text column ``t``;
* ``text_overlap`` (two or more text columns): how many words of text column 0 also occur in
  text column 1 (padding ignored; a repeated word counts each time) — the relevance signal
  the neural ranker takes from the dot product of the first two pooled text vectors;
* ``dense_<d>``: the dense columns as they are.

``export_lightgbm`` writes ``model.onnx`` as one graph: a preamble of standard ONNX operators
that assembles this matrix from the served inputs (``cat`` int64, ``text`` int64, ``dense``
float32, as present), then the tree ensemble converted by onnxmltools. The output ``score``
(float32) is the raw score, never a probability: binary and ranking trees are converted as a
regression (the sum of the trees is the logit), a multiclass ensemble with its softmax turned
off (``post_transform: NONE``: the K raw scores).

LightGBM splits ``x <= t`` with ``t`` a double (the midpoint of two bin boundaries), while the
ONNX trees hold float32 thresholds. Rounded to the nearest float32, ``t`` can land on a value
just above it, and a row holding that value went right in LightGBM but left in ONNX (the
flights data: two standardised values one float32 step apart). The thresholds handed to the
converter are therefore rounded down (``_thresholds_rounded_down``): for a float32 ``x``,
``x <= t`` exactly when ``x <=`` the largest float32 not above ``t``, so the float32 trees
split every float32 row as LightGBM does.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

from spindle.core import TrainingError
from spindle.train._export import MODEL_FILE, OUTPUT_NAME, predict
from spindle.train._spec import InputSpec

_OPSET = 15
TOLERANCE = 1e-4


def feature_names(spec: InputSpec) -> list[str]:
    """The columns of ``feature_matrix(…, spec)``, in order (see the module docstring)."""
    names = [f"cat_{j}" for j in range(len(spec.cat_cardinalities))]
    names += [f"text_words_{t}" for t in range(spec.n_text)]
    names += ["text_overlap"] if spec.n_text >= 2 else []
    return names + [f"dense_{d}" for d in range(spec.n_dense)]


def feature_matrix(inputs: dict[str, np.ndarray], spec: InputSpec) -> np.ndarray:
    """The float32 matrix ``[N, len(feature_names(spec))]`` the trees are trained on.

    Args:
        inputs: the Transform's arrays (checked against ``spec`` by the caller).
        spec: their input spec.

    Returns:
        float32 features, the same numbers the exported preamble computes.
    """
    parts: list[np.ndarray] = []
    if spec.cat_cardinalities:
        parts.append(inputs["cat"].astype(np.float32))
    if spec.n_text:
        text = inputs["text"]
        parts.append((text != 0).sum(axis=2).astype(np.float32))
        if spec.n_text >= 2:
            first, second = text[:, 0, :], text[:, 1, :]
            found = (first[:, :, None] == second[:, None, :]).any(axis=2) & (first != 0)
            parts.append(found.sum(axis=1, keepdims=True).astype(np.float32))
    if spec.n_dense:
        parts.append(inputs["dense"].astype(np.float32))
    return np.ascontiguousarray(np.concatenate(parts, axis=1), dtype=np.float32)


def export_lightgbm(booster: Any, spec: InputSpec, path: Path) -> None:
    """Write ``booster`` as ``path`` (ONNX): the preamble, then its trees, raw scores out.

    Args:
        booster: a trained ``lightgbm.Booster`` of objective binary, regression or multiclass.
        spec: the input spec the booster's features were built from.
        path: the file to write.

    Raises:
        TrainingError: onnxmltools cannot convert the booster (e.g. a ``params`` option such
            as ``linear_tree`` that it does not support), naming the error.
    """
    trees, ml_opset = _tree_node(booster, spec)
    nodes, inits, inputs = _preamble(spec)
    trees.input[0] = "features"
    raw = "raw_scores"
    del trees.output[:]
    if spec.task == "multiclass":
        trees.output.extend(["labels_unused", raw])
    else:
        trees.output.append(raw)
    nodes.append(trees)
    shape = [-1, spec.classes] if spec.task == "multiclass" else [-1]
    inits.append(numpy_helper.from_array(np.array(shape, np.int64), "score_shape"))
    nodes.append(helper.make_node("Reshape", [raw, "score_shape"], [OUTPUT_NAME]))
    dims: list[str | int] = ["N", spec.classes] if spec.task == "multiclass" else ["N"]
    output = helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, dims)
    graph = helper.make_graph(nodes, "spindle_lightgbm", inputs, [output], inits)
    opsets = [helper.make_opsetid("", _OPSET), helper.make_opsetid("ai.onnx.ml", ml_opset)]
    model = helper.make_model(graph, opset_imports=opsets)
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, str(path))


def verify_export(
    model_dir: Path, inputs: dict[str, np.ndarray], expected: np.ndarray, where: Path
) -> None:
    """Check onnxruntime's ``score`` on ``inputs`` against the booster's raw scores.

    Args:
        model_dir: the (temporary) directory holding ``model.onnx``.
        inputs: rows to score.
        expected: the booster's raw scores of those rows.
        where: the version directory to name in errors.

    Raises:
        TrainingError: a shape or dtype that differs, or a difference above 1e-4 (relative
            to the score's size when that is above 1).
    """
    got = predict(model_dir, inputs)
    want = np.asarray(expected, dtype=np.float64)
    if got.shape != want.shape or got.dtype != np.float32:
        raise TrainingError(
            f"{where / MODEL_FILE}: onnxruntime returned {got.dtype} {got.shape}, expected "
            f"float32 {want.shape}"
        )
    error = np.abs(got - want) / np.maximum(1.0, np.abs(want))
    if error.size and float(error.max()) > TOLERANCE:
        raise TrainingError(
            f"{where / MODEL_FILE}: the exported trees and LightGBM disagree by "
            f"{float(error.max()):.3g} (> {TOLERANCE}) on {len(want)} rows; a "
            "training.lightgbm.params option the ONNX converter does not support (such as "
            "linear_tree) is the likely cause: remove it"
        )


def _tree_node(booster: Any, spec: InputSpec) -> tuple[onnx.NodeProto, int]:
    """The converted tree ensemble node (raw scores) and the ``ai.onnx.ml`` opset it needs."""
    import lightgbm as lgb
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    text = _thresholds_rounded_down(booster.model_to_string())
    if spec.task != "multiclass":  # the sum of the trees, without the sigmoid
        text = re.sub(r"^objective=.*$", "objective=regression", text, count=1, flags=re.M)
        text = re.sub(r"^\[objective: .*\]$", "[objective: regression]", text, flags=re.M)
    width = booster.num_feature()
    try:
        converted = onnxmltools.convert_lightgbm(
            lgb.Booster(model_str=text),
            initial_types=[("features", FloatTensorType([None, width]))],
            target_opset=_OPSET,
            zipmap=False,
        )
    except Exception as error:  # the converter raises many types; all mean "not exported"
        raise TrainingError(
            f"onnxmltools cannot convert this LightGBM model: {type(error).__name__}: {error}; "
            "remove the training.lightgbm.params option it does not support"
        ) from error
    found = [n for n in converted.graph.node if n.op_type.startswith("TreeEnsemble")]
    if len(found) != 1:
        raise TrainingError(f"onnxmltools produced {len(found)} tree ensembles, expected 1")
    node = onnx.NodeProto()
    node.CopyFrom(found[0])
    for attribute in node.attribute:
        if attribute.name == "post_transform":
            attribute.s = b"NONE"  # multiclass: raw scores, not the softmax
    ml = [o.version for o in converted.opset_import if o.domain == "ai.onnx.ml"]
    return node, ml[0] if ml else 1


def _thresholds_rounded_down(text: str) -> str:
    """``text`` (a booster's model text) with every numerical threshold rounded down to float32.

    Args:
        text: LightGBM model text; per tree, ``threshold=`` precedes ``decision_type=``, whose
            bit 0 marks a categorical split (its threshold is an index, left as it is).

    Returns:
        the text with each numerical ``t`` replaced by the largest float32 ``<= t``, written
        exactly; the same splits for float32 inputs. The header's ``tree_sizes`` (byte
        counts that no longer hold) is dropped: LightGBM then reads the trees one by one.
    """
    lines = [line for line in text.split("\n") if not line.startswith("tree_sizes=")]
    at: int | None = None
    for i, line in enumerate(lines):
        if line.startswith("Tree="):
            at = None
        elif line.startswith("threshold="):
            at = i
        elif line.startswith("decision_type=") and at is not None:
            kinds = [int(v) for v in line.split("=", 1)[1].split()]
            values = lines[at].split("=", 1)[1].split()
            lines[at] = "threshold=" + " ".join(
                value if kind & 1 else _float32_below(value)
                for value, kind in zip(values, kinds, strict=True)
            )
    return "\n".join(lines)


def _float32_below(value: str) -> str:
    """The largest float32 ``<=`` the double ``value``, as a string that parses to it exactly."""
    exact = float(value)
    with np.errstate(over="ignore"):
        rounded = np.float32(exact)
    if float(rounded) > exact:
        rounded = np.nextafter(rounded, np.float32(-np.inf))
    return repr(float(rounded))


def _preamble(
    spec: InputSpec,
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto], list[onnx.ValueInfoProto]]:
    """Nodes computing ``features`` (float ``[N, F]``) from the served inputs, as numpy does."""
    nodes: list[onnx.NodeProto] = []
    inits: list[onnx.TensorProto] = []
    inputs: list[onnx.ValueInfoProto] = []
    parts: list[str] = []
    if spec.cat_cardinalities:
        width = len(spec.cat_cardinalities)
        inputs.append(helper.make_tensor_value_info("cat", TensorProto.INT64, ["N", width]))
        nodes.append(helper.make_node("Cast", ["cat"], ["cat_f"], to=TensorProto.FLOAT))
        parts.append("cat_f")
    if spec.n_text:
        shape: list[str | int] = ["N", spec.n_text, spec.text_len]
        inputs.append(helper.make_tensor_value_info("text", TensorProto.INT64, shape))
        nodes += _text_nodes(spec, inits)
        parts += ["text_words"] + (["text_overlap"] if spec.n_text >= 2 else [])
    if spec.n_dense:
        shape = ["N", spec.n_dense]
        inputs.append(helper.make_tensor_value_info("dense", TensorProto.FLOAT, shape))
        parts.append("dense")
    nodes.append(helper.make_node("Concat", parts, ["features"], axis=1))
    return nodes, inits, inputs


def _text_nodes(spec: InputSpec, inits: list[onnx.TensorProto]) -> list[onnx.NodeProto]:
    """``text_words`` ``[N, T]`` and, with two text columns or more, ``text_overlap``
    ``[N, 1]``."""
    make = helper.make_node
    inits += [
        numpy_helper.from_array(np.array(0, np.int64), "zero"),
        numpy_helper.from_array(np.array(1, np.int64), "one"),
        numpy_helper.from_array(np.array([1], np.int64), "axis_1"),
        numpy_helper.from_array(np.array([2], np.int64), "axis_2"),
    ]
    nodes = [
        make("Equal", ["text", "zero"], ["text_pad"]),
        make("Not", ["text_pad"], ["text_word"]),
        make("Cast", ["text_word"], ["text_word_f"], to=TensorProto.FLOAT),
        make("ReduceSum", ["text_word_f", "axis_2"], ["text_words"], keepdims=0),
    ]
    if spec.n_text < 2:
        return nodes
    return [
        *nodes,
        make("Gather", ["text", "zero"], ["first"], axis=1),  # [N, L]
        make("Gather", ["text", "one"], ["second"], axis=1),
        make("Unsqueeze", ["first", "axis_2"], ["first_col"]),  # [N, L, 1]
        make("Unsqueeze", ["second", "axis_1"], ["second_row"]),  # [N, 1, L]
        make("Equal", ["first_col", "second_row"], ["same"]),  # [N, L, L]
        make("Cast", ["same"], ["same_f"], to=TensorProto.FLOAT),
        make("ReduceMax", ["same_f"], ["in_second"], axes=[2], keepdims=0),  # [N, L]
        make("Gather", ["text_word_f", "zero"], ["first_is_word"], axis=1),
        make("Mul", ["in_second", "first_is_word"], ["shared"]),
        make("ReduceSum", ["shared", "axis_1"], ["text_overlap"], keepdims=1),
    ]
