"""The evaluation gate: score every system on one holdout and decide whether the candidate ships.

The gate is noise-aware: a candidate is blocked for a regression only when the paired bootstrap
says it is *significantly* worse than the baseline (the whole interval of candidate - baseline
is on the bad side of zero) AND the point regression is larger than ``max_regression``. A model
retrained on the same data with a different seed is therefore not blocked for noise. The same
rule, with a wider tolerance, applies to every slice; a slice that falls further behind the
overall metric than ``max_slice_gap`` (and further than the baseline did) blocks too. The
calibration error of a binary model follows the same rule against production's own ECE (a WARN
when there is no production); a shift of the prediction distribution is only ever a WARN.
With seed replicas of the candidate (``replicas=``), the training noise is measured too and a
regression must also exceed ``REPLICA_NOISE_FACTOR`` x the replicas' std to block.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from spindle.core import EvaluationConfig, GateDecision
from spindle.evaluate._bootstrap import Interval
from spindle.evaluate._checks import (
    calibration_reason,
    disparity_reason,
    reference_reason,
    score_shift_reason,
)
from spindle.evaluate._feature_health import FeatureValues, feature_health_reasons
from spindle.evaluate._holdout import (
    Holdout,
    SliceColumn,
    SliceValues,
    build_holdout,
    encode_slices,
)
from spindle.evaluate._metrics import BoolArray
from spindle.evaluate._report import EvaluationReport, GateReason, SystemScores
from spindle.evaluate._rule import must_beat_check, regression_reason
from spindle.evaluate._spread import (
    REPLICA_NOISE_FACTOR,
    ReplicaSpread,
    replica_spread,
    spread_reason,
)
from spindle.evaluate._systems import (
    HIGHER_IS_BETTER,
    Scored,
    check_metric,
    paired_interval,
    prepare_system,
    system_intervals,
)

MIN_SCORE_STD = 1e-9
"""Candidate scores with a smaller standard deviation are constant: the model learnt nothing."""
SLICE_TOLERANCE_FACTOR = 2.0
"""A slice is blocked when it regresses significantly by more than this × max_regression."""
MAX_SLICE_RESAMPLES = 4000
"""Upper bound of bootstrap resamples per slice (Bonferroni-corrected intervals need more)."""


def _sanity_reasons(cand: Scored) -> list[GateReason]:
    n_bad = int((~np.isfinite(cand.scores)).sum())
    finite_message = (
        "all candidate scores are finite"
        if n_bad == 0
        else f"{n_bad} of {cand.scores.shape[0]} candidate scores are NaN or inf: the model is "
        "broken (diverged training or a bad export); it cannot ship"
    )
    reasons = [
        GateReason(
            check="sanity_finite",
            passed=n_bad == 0,
            metric="scores",
            slice=None,
            candidate=float(n_bad),
            baseline=None,
            interval=None,
            threshold=0.0,
            message=finite_message,
        )
    ]
    if n_bad == 0:
        scale = float(np.abs(cand.scores).max())
        # scaled so that huge logits cannot overflow the squares inside np.std; over rows, per
        # class for class probabilities (a fixed distribution over classes is constant too)
        std = scale * float(np.std(cand.scores / scale, axis=0).max()) if scale > 0 else 0.0
        ok = std > MIN_SCORE_STD
        reasons.append(
            GateReason(
                check="sanity_variance",
                passed=ok,
                metric="scores",
                slice=None,
                candidate=std,
                baseline=None,
                interval=None,
                threshold=MIN_SCORE_STD,
                message=f"candidate scores vary (std {std:.3g})"
                if ok
                else f"candidate scores are constant (std {std:.3g} <= {MIN_SCORE_STD:g}): "
                "the model ranks nothing",
            )
        )
    return reasons


def _metric_defined_reason(metric: str, value: float) -> GateReason:
    ok = math.isfinite(value)
    message = (
        f"{metric} is defined on this holdout"
        if ok
        else f"{metric} is undefined on this holdout (e.g. no positive or no negative labels, or "
        "no probabilities): the gate cannot judge the candidate; check the holdout"
    )
    return GateReason("sanity_metric", ok, metric, None, value, None, None, None, message)


def _floor_reason(metric: str, value: float, floor: float) -> GateReason:
    higher = HIGHER_IS_BETTER[metric]
    ok = value >= floor if higher else value <= floor
    relation = ("at least" if higher else "at most") + f" {floor:g}"
    verdict = "meets" if ok else "fails"
    message = f"candidate {metric} {value:.4f} {verdict} the required {relation}"
    return GateReason("min_metric", ok, metric, None, value, None, None, floor, message)


def _baseline_reason(
    metric: str,
    value: float,
    cand: Scored,
    base: Scored | None,
    config: EvaluationConfig,
    seed: int,
    n_resamples: int,
    spread: ReplicaSpread | None = None,
) -> GateReason:
    """The regression check on the whole holdout (passes when there is no usable baseline).

    With seed replicas, the tolerance is the larger of ``max_regression`` and the replica noise.
    """
    if base is None or not base.finite:
        message = (
            "no production version yet"
            if base is None
            else f"WARN: baseline {base.name!r} has NaN/inf scores; regression not checked"
        )
        return GateReason(
            check="regression",
            passed=True,
            metric=metric,
            slice=None,
            candidate=value,
            baseline=None,
            interval=None,
            threshold=config.max_regression,
            message=message,
            warning=base is not None,
        )
    iv = paired_interval(metric, cand, base, seed, n_resamples, config.confidence)
    tolerance, basis = _tolerance(config.max_regression, "max_regression", spread)
    return regression_reason(metric, iv, (cand.name, base.name), tolerance, None, 0, basis)


def _tolerance(configured: float, basis: str, spread: ReplicaSpread | None) -> tuple[float, str]:
    """The tolerance of a regression check and its basis: widened by the replica noise if larger."""
    if spread is None or spread.noise <= configured:
        return configured, basis
    return spread.noise, f"max({basis} {configured:g}, {REPLICA_NOISE_FACTOR:g} x replica std)"


def _missing_slice_reasons(
    config: EvaluationConfig, slice_columns: Mapping[str, SliceValues] | None
) -> list[GateReason]:
    """A WARN for every column of ``evaluation.slices`` the caller could not provide."""
    given = set(slice_columns or {})
    return [
        GateReason(
            check="slice_coverage",
            passed=True,
            metric=config.metric,
            slice=column,
            candidate=float("nan"),
            baseline=None,
            interval=None,
            threshold=None,
            message=f"WARN: slice column {column!r} of evaluation.slices is missing from the "
            "holdout; this slice was not evaluated",
            warning=True,
        )
        for column in config.slices
        if column not in given
    ]


def _index_systems(
    systems: Sequence[SystemScores],
    candidate: str,
    baseline: str | None,
    replicas: Sequence[str] = (),
) -> dict[str, SystemScores]:
    by_name: dict[str, SystemScores] = {}
    for system in systems:
        if system.name in by_name:
            raise ValueError(f"two systems are named {system.name!r}; names must be unique")
        by_name[system.name] = system
    if candidate not in by_name:
        raise ValueError(f"no system named {candidate!r} among {sorted(by_name)}")
    if baseline == candidate:
        raise ValueError(f"the baseline and the candidate are the same system {candidate!r}")
    unknown = [r for r in replicas if r not in by_name]
    if unknown:
        raise ValueError(f"replica system(s) {unknown} are not among {sorted(by_name)}")
    if candidate in replicas or (baseline is not None and baseline in replicas):
        raise ValueError("the candidate and the baseline cannot be listed as replicas")
    return by_name


@dataclass
class _SliceResults:
    metrics: dict[str, dict[str, dict[str, float]]]
    reasons: list[GateReason]
    skipped: dict[str, int]
    spread: list[ReplicaSpread]


def _slice_settings(n_slices: int, confidence: float, n_resamples: int) -> tuple[float, int]:
    """Bonferroni: each of ``n_slices`` intervals at 1 - (1 - confidence) / n, so that the
    chance that *any* slice of a healthy candidate looks significantly worse stays at most
    1 - confidence; more resamples keep the far percentiles stable."""
    alpha = (1.0 - confidence) / max(n_slices, 1)
    resamples = min(MAX_SLICE_RESAMPLES, max(n_resamples, math.ceil(20 / alpha)))
    return 1.0 - alpha, resamples


def _evaluate_slices(
    columns: list[SliceColumn],
    holdout: Holdout,
    scored: dict[str, Scored],
    pair: tuple[Scored, Scored] | None,
    overall: dict[str, dict[str, float]],
    candidate: str,
    config: EvaluationConfig,
    seed: int,
    n_resamples: int,
    min_slice_size: int,
    seeds: tuple[str, ...],
) -> _SliceResults:
    """Metrics of every system on every large-enough slice, with regression and disparity reasons
    (and the spread of the primary metric over the seed replicas, when there are some)."""
    results = _SliceResults({}, [], {}, [])
    configured = SLICE_TOLERANCE_FACTOR * config.max_regression
    slice_basis = f"{SLICE_TOLERANCE_FACTOR:g} x max_regression"
    eligible: list[tuple[str, BoolArray]] = []
    for column in columns:
        sizes = column.unit_counts(holdout)
        for value_index, key in enumerate(column.keys):
            if sizes[value_index] < min_slice_size:
                results.skipped[key] = int(sizes[value_index])
            else:
                eligible.append((key, column.mask(value_index)))
    confidence, resamples = _slice_settings(len(eligible), config.confidence, n_resamples)
    for key, mask in eligible:
        part = holdout.subset(mask)
        parts = {name: system.subset(mask, part) for name, system in scored.items()}
        results.metrics[key] = {name: s.metrics() for name, s in parts.items()}
        spread = None
        if seeds:
            spread = replica_spread(results.metrics[key], config.metric, seeds, key)
            results.spread.append(spread)
        iv = None
        if pair is not None:
            cand, base = parts[pair[0].name], parts[pair[1].name]
            iv = paired_interval(config.metric, cand, base, seed, resamples, confidence)
            names = (cand.name, base.name)
            tolerance, basis = _tolerance(configured, slice_basis, spread)
            results.reasons.append(
                regression_reason(config.metric, iv, names, tolerance, key, min_slice_size, basis)
            )
        if config.max_slice_gap is not None:
            base_name = None if pair is None else pair[1].name
            results.reasons.append(
                _disparity(
                    config,
                    key,
                    overall,
                    results.metrics[key],
                    (candidate, base_name),
                    iv,
                    _informative_units(parts[candidate]) >= min_slice_size,
                )
            )
    return results


def _disparity(
    config: EvaluationConfig,
    key: str,
    overall: Mapping[str, Mapping[str, float]],
    on_slice: Mapping[str, Mapping[str, float]],
    names: tuple[str, str | None],
    iv: Interval | None,
    reliable: bool,
) -> GateReason:
    """The candidate's slice gap to its overall metric, next to the baseline's gap.

    How much the candidate widens the gap, (overall diff) - (slice diff), gets its interval from
    the slice's paired interval, the overall difference being far better estimated.
    """
    metric, nan = config.metric, float("nan")
    candidate, baseline = names
    cand = (overall[candidate].get(metric, nan), on_slice[candidate].get(metric, nan))
    base, widening = None, None
    if baseline is not None:
        base = (overall[baseline].get(metric, nan), on_slice[baseline].get(metric, nan))
        diff = cand[0] - base[0]
        if iv is not None and math.isfinite(iv.lower):
            if HIGHER_IS_BETTER[metric]:
                widening = (diff - iv.upper, diff - iv.lower)
            else:
                widening = (iv.lower - diff, iv.upper - diff)
    max_gap = config.max_slice_gap if config.max_slice_gap is not None else math.inf
    return disparity_reason(
        metric, key, cand, base, widening, max_gap, config.max_regression, reliable
    )


def _informative_units(system: Scored) -> int:
    """Units a slice metric rests on: queries with a positive label for ranking, else units."""
    if system.holdout.task == "ranking":
        return int(system.ndcg_values.shape[0])
    return system.holdout.n_units


def evaluate_scores(
    task: str,
    labels: np.ndarray,
    groups: np.ndarray | None,
    systems: Sequence[SystemScores],
    config: EvaluationConfig,
    *,
    slice_columns: Mapping[str, SliceValues] | None = None,
    candidate: str = "candidate",
    baseline: str | None = "production",
    seed: int = 0,
    n_resamples: int = 200,
    min_slice_size: int = 30,
    reference: str | None = "oracle",
    replicas: Sequence[str] = (),
    features: Sequence[FeatureValues] = (),
) -> EvaluationReport:
    """Compute metrics of every system overall and per slice, and the gate's decision.

    Checks, each recorded as a ``GateReason`` (any failure blocks): the candidate's scores are
    finite and not constant; ``config.metric`` is defined on the holdout; it meets
    ``config.min_metric`` when set (a ceiling for ``log_loss``); and it has not regressed against
    the baseline (noise-aware, see the module docstring, at ``config.confidence``). Slices with
    at least ``min_slice_size`` units (queries, users or rows) are reported; a slice regressing
    significantly by more than 2 x ``max_regression`` blocks, and so does a slice falling
    behind the overall metric by more than ``max_slice_gap`` when the baseline did not.
    Optional, relative to production: for a binary task, the expected calibration error may
    not be significantly worse than production's by more than ``max_calibration_error`` (no
    production: a WARN above it); the PSI of the candidate's predictions against production's
    above ``max_score_psi`` is a WARN (not for multiclass). A check that does not fit the
    task is not applied.
    ``max_regression`` is an absolute difference of the metric (0.02 = 2 NDCG points).

    Args:
        task: ``"ranking"`` (NDCG@10, MRR, recall@10, AUC, log loss), ``"binary"`` (AUC,
            PR-AUC, log loss, ECE), ``"regression"`` (RMSE, MAE, R²) or ``"multiclass"``
            (accuracy, log loss, macro-F1); ``config.metric`` must be one of them.
        labels: per row, validated for the task (``validate_labels``): gains >= 0 for ranking
            (positive = gain > 0), 0/1 for binary, finite numbers for regression, class
            indices for multiclass.
        groups: query id per row for ranking (required); otherwise an optional user id per
            row, used as the bootstrap unit (rows otherwise).
        systems: scores of every system (``[rows, classes]`` for multiclass); see
            ``SystemScores.logits`` for probabilities.
        config: the model's evaluation block (metric, max_regression, min_metric, slices).
        slice_columns: slice column name -> one value per row (NumPy or Arrow; null/NaN values
            form a ``<missing>`` slice). A column of ``config.slices`` that is not given gets a
            WARN ``slice_coverage`` reason. For ranking, a per-row attribute (product type)
            cuts result lists: the slice's NDCG ranks only that slice's rows of each list.
        candidate, baseline: system names; a missing or ``None`` baseline means no production
            version yet, and the regression check passes.
        seed, n_resamples: of the paired bootstrap; equal inputs give an equal report.
        min_slice_size: smaller slices are listed in ``skipped_slices`` instead; a slice
            regression on fewer informative units (queries with a positive) is never blocking.
        reference: a system of ground-truth scores (the simulator's true relevance), when
            present: its AUC must be above 0.5, otherwise the holdout's labels contradict the
            truth (a label fault) and nothing can be judged on it (``sanity_labels`` blocks).
        replicas: systems that are the candidate retrained with other seeds. Their spread
            (with the candidate) of every metric overall, and of ``config.metric`` per slice,
            is reported (``spread``, and a ``replica_spread`` reason); a regression then blocks
            only when also larger than ``REPLICA_NOISE_FACTOR`` x the spread's std.
        features: the candidate's pinned features on the holdout rows (with production's
            pins of the same features): ``feature_health`` blocks a pin that is all null or
            constant where production's version is not, or lost values (see
            ``feature_health_reasons``).

    Returns:
        The ``EvaluationReport``; ``decision`` is ``"block"`` when any reason failed.

    Raises:
        DataError: bad labels, groups, scores or slice columns (the message says which).
        ConfigError: ``config.metric`` does not fit ``task`` (the message lists what does).
        ValueError: unknown task, duplicate system names, unknown candidate.

    Example:
        report = evaluate_scores("ranking", labels, search_ids,
                                 [SystemScores("candidate", new), SystemScores("production", old)],
                                 model_config.evaluation)
        if report.decision == "block": print(*(r.line() for r in report.failures), sep="\n")
    """
    holdout = build_holdout(task, labels, groups)
    metric = config.metric
    check_metric(holdout.task, metric)
    by_name = _index_systems(systems, candidate, baseline, replicas)
    base_name = baseline if baseline is not None and baseline in by_name else None
    # seed replicas are the candidate's model too: logits unless their SystemScores say otherwise
    models = (candidate, *replicas) if base_name is None else (candidate, base_name, *replicas)
    scored = {name: prepare_system(s, holdout, models) for name, s in by_name.items()}
    cand = scored[candidate]
    base = scored[base_name] if base_name is not None else None
    columns = encode_slices(slice_columns, holdout.n_rows)

    metrics = {name: system.metrics() for name, system in scored.items()}
    seeds = (candidate, *replicas) if replicas else ()
    spread = [replica_spread(metrics, m, seeds, None) for m in metrics[candidate]] if seeds else []
    primary = next((s for s in spread if s.metric == metric), None)
    reasons = _sanity_reasons(cand)
    if cand.finite:
        value = metrics[candidate].get(metric, float("nan"))
        reasons.append(_metric_defined_reason(metric, value))
        if config.min_metric is not None:
            reasons.append(_floor_reason(metric, value, config.min_metric))
        reasons.append(
            _baseline_reason(metric, value, cand, base, config, seed, n_resamples, primary)
        )
    if primary is not None:
        reasons.append(spread_reason(primary, config.max_regression))
    if cand.finite:
        for name in config.must_beat:
            reasons.append(
                must_beat_check(
                    metric, cand, scored.get(name), name, config.confidence, seed, n_resamples
                )
            )
    # the ground truth's AUC sanity check needs relevant / not relevant labels
    labelled = holdout.task in ("binary", "ranking")
    if labelled and reference is not None and reference in scored and reference != candidate:
        reasons.append(reference_reason(scored[reference]))
    pair = (cand, base) if cand.finite and base is not None and base.finite else None
    # calibration is a property of probabilities of a binary outcome: a ranker's scores only
    # order a result list, so ECE does not fit its task and is not applied
    if cand.finite and holdout.task == "binary" and config.max_calibration_error is not None:
        bound = config.max_calibration_error
        reasons.append(calibration_reason(cand, base, bound, seed, n_resamples, config.confidence))
    # the PSI compares distributions of one number per row: class probabilities have K
    if cand.finite and holdout.task != "multiclass" and config.max_score_psi is not None:
        shift = score_shift_reason(cand, base, config.max_score_psi, seed, config.confidence)
        reasons.append(shift)
    sliced = _evaluate_slices(
        columns,
        holdout,
        scored,
        pair,
        metrics,
        candidate,
        config,
        seed,
        n_resamples,
        min_slice_size,
        seeds,
    )
    reasons.extend(sliced.reasons)
    reasons.extend(_missing_slice_reasons(config, slice_columns))
    reasons.extend(feature_health_reasons(features))
    decision: GateDecision = "pass" if all(r.passed for r in reasons) else "block"
    return EvaluationReport(
        task=holdout.task,
        metrics=metrics,
        slices=sliced.metrics,
        decision=decision,
        reasons=tuple(reasons),
        n_groups=holdout.n_units,
        n_rows=holdout.n_rows,
        candidate=candidate,
        baseline=base_name,
        primary_metric=metric,
        skipped_slices=sliced.skipped,
        spread=(*spread, *sliced.spread),
        intervals=system_intervals(metric, scored, seed, n_resamples, config.confidence),
    )
