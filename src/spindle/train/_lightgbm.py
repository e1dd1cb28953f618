"""The ``lightgbm`` model family: gradient-boosted trees behind the trainer contract.

The trees see the feature matrix of ``_lightgbm_onnx.feature_matrix`` (categorical ids as
LightGBM categorical features, per text column its word count, the overlap of the first two
text columns, dense columns as they are). Objectives by ``spec.task``: ``binary`` and
``ranking`` logistic (ranking is pointwise, as the torch head: no query groups reach the
trainer), ``regression`` squared error on the raw label, ``multiclass`` softmax over
``spec.classes``. Training is deterministic (``deterministic``, ``force_row_wise``, the
config's seed and threads).

A version directory holds ``booster.txt`` (LightGBM's own text format, never a pickle),
``input_spec.json`` and ``model.onnx`` (see ``export_lightgbm``). Warm start continues boosting
the base version's booster for ``warm_start_rounds`` rounds. Every
``checkpoint_every_steps`` rounds the booster text is checkpointed (``CheckpointStore``, keyed
by a fingerprint of data, spec, config and base), and a killed run continues from it.
"""

from __future__ import annotations

import json
import resource
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from spindle.core import (
    TrainingConfig,
    TrainingError,
    atomic_directory,
    sha256_bytes,
    sha256_json,
)
from spindle.train._checkpoint import CheckpointStore
from spindle.train._export import MODEL_FILE
from spindle.train._lightgbm_onnx import (
    export_lightgbm,
    feature_matrix,
    feature_names,
    verify_export,
)
from spindle.train._spec import InputSpec, check_inputs, check_labels
from spindle.train._train import TrainResult, _check_weights, data_sha256
from spindle.train._warm_start import SPEC_FILE, WEIGHTS_FILE

BOOSTER_FILE = "booster.txt"
_SAMPLE_ROWS = 256
_MAX_CATEGORIES = 2**24  # every id below it is exact in float32, the trees' feature type
# Parameters the task and this module set; ``training.lightgbm.params`` may not override them.
_RESERVED = ("objective", "num_class", "seed", "num_threads", "deterministic", "verbosity")
# What another family leaves in its version directory, to name it in the warm-start error.
_OTHER_FAMILIES = {WEIGHTS_FILE: "torch", "weights.json": "sklearn"}


class LightGBMTrainer:
    """Gradient-boosted trees (LightGBM), exported to ONNX with raw scores."""

    framework = "lightgbm"

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
        """Boost, export and verify; see ``Trainer.train``. ``progress`` hears
        ``(rounds done, rounds of this run)`` after every boosting round; ``steps`` of the
        result counts every tree round of the booster (the base's too when warm starting).

        Raises:
            TrainingError: an empty training set, inputs that do not match the spec,
                non-finite dense values, labels that do not fit the task, bad weights, a base
                version of another family or another InputSpec, a reserved key in
                ``training.lightgbm.params``, ``out_dir`` exists, or an export that does not
                verify. Nothing is written then.
        """
        out_dir = Path(out_dir)
        if out_dir.exists():
            raise TrainingError(f"{out_dir} exists; model versions are immutable: choose a new dir")
        rows = _check(inputs, labels, spec, config, weights)
        base_text = _base_booster(Path(base_dir), spec) if base_dir is not None else None
        rounds = config.lightgbm.warm_start_rounds if base_text else config.lightgbm.num_boost_round
        features = feature_matrix(inputs, spec)
        fingerprint = _fingerprint(inputs, labels, weights, spec, config, base_text)
        store = CheckpointStore(checkpoint_dir, fingerprint)
        try:
            wall0, cpu0 = time.perf_counter(), time.process_time()
            booster, resumed, notes = _boost(
                features, labels, weights, spec, config, rounds, base_text, store, progress
            )
            seconds, cpu_s = time.perf_counter() - wall0, time.process_time() - cpu0
        finally:
            store.close()
        ran = rounds - (resumed or 0)  # the rounds boosted in this call: rows pass once each
        raw = _raw_scores(booster, features, spec)
        text = booster.model_to_string()
        _write_version(out_dir, booster, text, spec, inputs, raw)
        if base_text:
            notes.append(f"warm started from {base_dir}: {rounds} rounds added to its trees")
        if spec.task == "ranking":
            notes.append("ranking is trained pointwise (binary logistic loss): no query groups")
        return TrainResult(
            out_dir=out_dir,
            onnx_path=out_dir / MODEL_FILE,
            weights_path=out_dir / BOOSTER_FILE,
            weights_sha256=model_sha256(text),
            examples=rows,
            epochs=1,
            steps=booster.current_iteration(),
            seconds=seconds,
            examples_per_s=rows * ran / seconds if seconds > 0 else 0.0,
            cpu_s=cpu_s,
            m_examples_per_cpu_s=rows * ran / 1e6 / cpu_s if cpu_s > 0 else 0.0,
            utilisation=cpu_s / (seconds * config.threads) if seconds > 0 else 0.0,
            peak_rss_mb=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            final_loss=_loss(raw, labels, weights, spec),
            resumed_from_step=resumed,
            warm_started=base_text is not None,
            notes=tuple(notes),
        )

    def predict(self, out_dir: Path, inputs: dict[str, np.ndarray]) -> np.ndarray:
        """Raw scores of ``booster.txt`` (the numbers ``model.onnx`` gives): logits ``[N]``,
        values ``[N]`` or K raw scores ``[N, K]``, float32.

        Raises:
            TrainingError: ``out_dir`` is not a lightgbm version, or the inputs do not match
                its InputSpec.
        """
        import lightgbm as lgb

        out_dir = Path(out_dir)
        if not (out_dir / BOOSTER_FILE).is_file():
            raise TrainingError(
                f"{out_dir} has no {BOOSTER_FILE}: it is not a lightgbm model version; score it "
                "with the trainer of its own framework"
            )
        spec = InputSpec.from_dict(json.loads((out_dir / SPEC_FILE).read_text()))
        check_inputs(inputs, spec)
        booster = lgb.Booster(model_file=str(out_dir / BOOSTER_FILE))
        return _raw_scores(booster, feature_matrix(inputs, spec), spec).astype(np.float32)


def model_sha256(text: str) -> str:
    """sha256 of a booster's text without its ``parameters:`` section: equal exactly when the
    trees (and feature info) are, however many runs a resumed booster took to grow them."""
    return sha256_bytes(text.split("\nparameters:\n")[0].encode())


def _write_version(
    out_dir: Path,
    booster: Any,
    text: str,
    spec: InputSpec,
    inputs: dict[str, np.ndarray],
    raw: np.ndarray,
) -> None:
    """Write the version directory atomically: booster text, spec, verified ONNX."""
    with atomic_directory(out_dir) as tmp:
        (tmp / BOOSTER_FILE).write_text(text)
        (tmp / SPEC_FILE).write_text(json.dumps(spec.to_dict(), indent=2, sort_keys=True))
        export_lightgbm(booster, spec, tmp / MODEL_FILE)
        sample = {name: array[:_SAMPLE_ROWS] for name, array in inputs.items()}
        verify_export(tmp, sample, raw[:_SAMPLE_ROWS], out_dir)


def _fingerprint(
    inputs: dict[str, np.ndarray],
    labels: np.ndarray,
    weights: np.ndarray | None,
    spec: InputSpec,
    config: TrainingConfig,
    base_text: str | None,
) -> str:
    """The identity of a run: only a checkpoint with the same fingerprint is resumed."""
    identity = {
        "family": "lightgbm",
        "config": config.model_dump(mode="json"),
        "spec": spec.to_dict(),
        "data": data_sha256(inputs, labels, weights),
        "base": sha256_bytes(base_text.encode()) if base_text is not None else None,
    }
    return sha256_json(identity)


def _check(
    inputs: dict[str, np.ndarray],
    labels: np.ndarray,
    spec: InputSpec,
    config: TrainingConfig,
    weights: np.ndarray | None,
) -> int:
    """The checks of ``train`` before anything is trained; return the rows."""
    reserved = sorted(set(config.lightgbm.params) & set(_RESERVED))
    if reserved:
        raise TrainingError(
            f"training.lightgbm.params sets {', '.join(reserved)}, which spindle sets (from "
            "model.task, training.seed and training.threads): remove them from params"
        )
    too_many = [c for c in spec.cat_cardinalities if c > _MAX_CATEGORIES]
    if too_many:
        raise TrainingError(
            f"a categorical column has {too_many[0]} ids; the lightgbm family takes at most "
            f"{_MAX_CATEGORIES} (ids travel as float32): hash that feature into fewer buckets"
        )
    rows = check_inputs(inputs, spec)
    check_labels(labels, rows, spec)
    if rows == 0:
        raise TrainingError(
            "the training set is empty (0 rows): check the date window and the data validation "
            "report of those days; there is nothing to train on"
        )
    if weights is not None:
        _check_weights(weights, rows)
    dense = inputs.get("dense")
    if dense is not None and not np.isfinite(dense).all():
        row = int(np.flatnonzero(~np.isfinite(dense).all(axis=1))[0])
        raise TrainingError(
            f"non-finite value in inputs['dense'] row {row}: {dense[row].tolist()}; fix or "
            "drop that row upstream"
        )
    return rows


def _params(spec: InputSpec, config: TrainingConfig) -> dict[str, Any]:
    """LightGBM parameters of this task and config (``params`` passed through last)."""
    tree = config.lightgbm
    objective = {"regression": "regression", "multiclass": "multiclass"}.get(spec.task, "binary")
    params: dict[str, Any] = {
        "objective": objective,
        "learning_rate": tree.learning_rate,
        "num_leaves": tree.num_leaves,
        "min_data_in_leaf": tree.min_data_in_leaf,
        "feature_fraction": tree.feature_fraction,
        "bagging_fraction": tree.bagging_fraction,
        "bagging_freq": tree.bagging_freq,
        "lambda_l2": tree.lambda_l2,
        "max_bin": tree.max_bin,
        "seed": config.seed,
        "num_threads": config.threads,
        "deterministic": True,
        "force_row_wise": True,
        "verbosity": -1,
    }
    if spec.task == "multiclass":
        params["num_class"] = spec.classes
    return params | dict(tree.params)


def _boost(
    features: np.ndarray,
    labels: np.ndarray,
    weights: np.ndarray | None,
    spec: InputSpec,
    config: TrainingConfig,
    rounds: int,
    base_text: str | None,
    store: CheckpointStore,
    progress: Callable[[int, int], None] | None,
) -> tuple[Any, int | None, list[str]]:
    """Train ``rounds`` rounds on top of the base (or this run's latest checkpoint).

    Returns:
        (the booster, the round resumed from or None, notes).
    """
    import lightgbm as lgb

    state, done, notes = store.load_latest()
    start_text = str(state["booster"]) if state is not None else base_text
    if state is not None:
        notes.append(f"resumed from the checkpoint of round {done} of {rounds}")
    params = _params(spec, config)
    dataset = lgb.Dataset(
        features,
        labels,
        weight=weights,
        feature_name=feature_names(spec),
        categorical_feature=list(range(len(spec.cat_cardinalities))),
        params=params,
        free_raw_data=False,
    )
    every = config.checkpoint_every_steps

    def after_round(env: Any) -> None:
        finished = done + env.iteration - env.begin_iteration + 1
        if finished % every == 0 or finished == rounds:
            store.save(finished, {"booster": env.model.model_to_string()})
        if progress is not None:
            progress(finished, rounds)

    init = lgb.Booster(model_str=start_text) if start_text else None
    if done >= rounds and init is not None:
        return init, done, notes
    booster = lgb.train(
        params,
        dataset,
        num_boost_round=rounds - done,
        init_model=init,
        callbacks=[after_round],
        keep_training_booster=False,
    )
    return booster, done if state is not None else None, notes


def _base_booster(base_dir: Path, spec: InputSpec) -> str:
    """The booster text of the base version, which must be a lightgbm model of ``spec``.

    Raises:
        TrainingError: the base is of another family, has another InputSpec, or is missing.
    """
    file = base_dir / BOOSTER_FILE
    if not file.is_file():
        others = [family for name, family in _OTHER_FAMILIES.items() if (base_dir / name).exists()]
        family = others[0] if others else "not a lightgbm model (no booster.txt)"
        raise TrainingError(
            f"cannot warm start a lightgbm model from {base_dir}: the base is {family}, and "
            "trees cannot continue another family's model; train from scratch "
            "(training.warm_start: false, or retrain fully once after changing framework)"
        )
    try:
        base_spec = InputSpec.from_dict(json.loads((base_dir / SPEC_FILE).read_text()))
    except (OSError, ValueError) as error:
        raise TrainingError(
            f"base version {base_dir} has no readable {SPEC_FILE}: {error}"
        ) from None
    keep = ("cat_cardinalities", "n_text", "n_dense", "task", "classes")
    old, new = base_spec.to_dict(), spec.to_dict()
    changed = [f"{k} {old.get(k)} -> {new.get(k)}" for k in keep if old.get(k) != new.get(k)]
    if changed:
        raise TrainingError(
            f"cannot warm start from {base_dir}: its inputs differ ({'; '.join(changed)}); "
            "train from scratch (training.warm_start: false)"
        )
    return file.read_text()


def _raw_scores(booster: Any, features: np.ndarray, spec: InputSpec) -> np.ndarray:
    """The booster's raw scores: ``[N]``, or ``[N, K]`` multiclass (float64)."""
    raw = np.asarray(booster.predict(features, raw_score=True), dtype=np.float64)
    return raw.reshape(-1, spec.classes) if spec.task == "multiclass" else raw.reshape(-1)


def _loss(
    raw: np.ndarray, labels: np.ndarray, weights: np.ndarray | None, spec: InputSpec
) -> float:
    """The (weighted) mean training loss: logistic, squared error or softmax cross-entropy."""
    y = labels.astype(np.float64)
    if spec.task == "regression":
        per_row = (raw - y) ** 2
    elif spec.task == "multiclass":
        top = raw.max(axis=1, keepdims=True)
        log_norm = np.log(np.exp(raw - top).sum(axis=1)) + top[:, 0]
        per_row = log_norm - raw[np.arange(len(y)), y.astype(np.int64)]
    else:
        per_row = np.logaddexp(0.0, raw) - y * raw
    return float(np.average(per_row, weights=weights))
