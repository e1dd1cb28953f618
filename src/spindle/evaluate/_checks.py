"""Gate checks beyond the regression rule: calibration, score shift, per-slice disparity.

Each function returns one ``GateReason`` with its evidence; ``None`` thresholds are handled by
the caller (the check is not run), and so is whether a check fits the task (calibration is
judged for binary models only). Calibration and score shift are relative to production: no
absolute constant blocks a candidate (see ``calibration_reason``, ``score_shift_reason``).
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import numpy.typing as npt

from spindle.evaluate._bootstrap import paired_bootstrap
from spindle.evaluate._metrics import FloatArray, expected_calibration_error
from spindle.evaluate._report import GateReason
from spindle.evaluate._rule import regression_reason
from spindle.evaluate._systems import HIGHER_IS_BETTER, Scored

PSI_BINS = 10
"""Quantile bins of the baseline's probabilities for the population stability index."""
_PSI_FLOOR = 1e-4  # share given to an empty bin, so one empty bin cannot make the PSI infinite


NO_PRODUCTION = "no production to compare with"
"""Said by the relative checks (calibration, score shift) when there is no production version."""


def _calibration_evidence(system: Scored) -> str:
    assert system.probs is not None
    mean_p, rate = float(system.probs.mean()), float(system.holdout.positive.mean())
    return f"mean predicted {mean_p:.4f}, observed rate {rate:.4f}"


def calibration_reason(
    cand: Scored,
    base: Scored | None,
    margin: float,
    seed: int,
    n_resamples: int,
    confidence: float,
) -> GateReason:
    """Judge the candidate's expected calibration error (10 bins) against production's.

    With production, the paired bootstrap interval of ECE(candidate) - ECE(production) on the
    same holdout units decides, as for a regression: the candidate is blocked only when it is
    significantly worse calibrated by more than ``margin``. Production's own ECE, with its
    noise, is the reference; an absolute bound would block a model that is no worse than the
    one serving. Without production (or without its probabilities), an ECE above ``margin``
    is a WARN, never a block.
    """
    if cand.probs is None:
        return GateReason(
            "calibration",
            True,
            "ece",
            None,
            float("nan"),
            None,
            None,
            margin,
            "WARN: the candidate emits no probabilities; calibration not checked",
            warning=True,
        )
    if base is None or not base.finite or base.probs is None:
        ece = expected_calibration_error(cand.holdout.positive, cand.probs)
        high = not ece <= margin
        why = NO_PRODUCTION if base is None else f"{base.name} has no usable probabilities"
        message = (
            f"candidate ECE {ece:.4f} {'above' if high else 'within'} max_calibration_error "
            f"{margin:g} ({_calibration_evidence(cand)}); {why}"
        )
        if high:
            message = "WARN: " + message + ": flagged, not blocked"
        return GateReason(
            "calibration", True, "ece", None, ece, None, None, margin, message, warning=high
        )
    h = cand.holdout
    units = None if h.groups is None else h.unit
    iv = paired_bootstrap(
        expected_calibration_error,
        h.positive,
        cand.probs,
        base.probs,
        units,
        n_resamples,
        seed,
        confidence,
    )
    reason = regression_reason(
        "ece",
        iv,
        (cand.name, base.name),
        margin,
        None,
        basis="max_calibration_error",
        check="calibration",
    )
    evidence = f" ({cand.name}: {_calibration_evidence(cand)})"
    return replace(reason, message=reason.message + evidence)


def reference_reason(reference: Scored) -> GateReason:
    """Block when ground-truth scores rank the holdout no better than chance (AUC <= 0.5).

    Labels drawn from the world rank with the truth; a holdout where the truth looks worse
    than chance has broken labels (flipped, shuffled, joined to the wrong rows), and any
    verdict on it, pass or block, would be meaningless.
    """
    value = reference.metrics().get("auc", float("nan"))
    ok = not math.isfinite(value) or value > 0.5
    message = f"{reference.name} AUC {value:.4f} on the holdout labels" + (
        " (> 0.5): the labels agree with the ground truth"
        if ok
        else " (<= 0.5): the holdout's labels contradict the ground truth (a label fault "
        "such as label_flip); no candidate can be judged on this day"
    )
    return GateReason("sanity_labels", ok, "auc", None, value, None, None, 0.5, message)


def population_stability_index(expected: FloatArray, actual: FloatArray) -> float:
    """PSI of ``actual`` against ``expected``, over ``PSI_BINS`` quantile bins of ``expected``.

    PSI = sum over bins of (a - e) * ln(a / e) with a, e the shares of rows per bin. Rules of
    thumb: < 0.1 no shift, 0.1-0.25 moderate, > 0.25 large.

    Example:
        >>> x = np.linspace(0, 1, 1000)
        >>> population_stability_index(x, x)
        0.0
    """
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
    e = np.bincount(np.searchsorted(edges, expected, side="right"), minlength=edges.size + 1)
    return _psi(e, np.searchsorted(edges, actual, side="right"), edges.size + 1)


def _psi(expected_counts: npt.NDArray[np.intp], actual_bins: npt.NDArray[np.intp], n: int) -> float:
    """PSI from the expected rows per bin and the bin of every actual row."""
    a = np.bincount(actual_bins, minlength=n)
    e_share = np.maximum(expected_counts / max(int(expected_counts.sum()), 1), _PSI_FLOOR)
    a_share = np.maximum(a / max(actual_bins.size, 1), _PSI_FLOOR)
    return float(np.sum((a_share - e_share) * np.log(a_share / e_share)))


PSI_NOISE_RESAMPLES = 50
"""Resamples of production's own predictions that measure the PSI a holdout's noise alone gives."""


def psi_noise(base: Scored, seed: int, confidence: float) -> float:
    """The PSI production's predictions show against a resample of themselves (upper quantile).

    Resampling the holdout's units (users, queries or rows) and comparing production with
    itself measures how far the PSI moves from sampling noise alone at this holdout's size:
    a candidate's shift below it cannot be told from noise.
    """
    h = base.holdout
    values = base.probs if base.probs is not None else base.scores
    edges = np.unique(np.quantile(values, np.linspace(0, 1, PSI_BINS + 1)[1:-1]))
    bins = np.searchsorted(edges, values, side="right")
    counts = np.bincount(bins, minlength=edges.size + 1)
    rng = np.random.default_rng(seed)
    psis = np.empty(PSI_NOISE_RESAMPLES)
    for i in range(PSI_NOISE_RESAMPLES):
        draws = np.bincount(rng.integers(0, h.n_units, size=h.n_units), minlength=h.n_units)
        psis[i] = _psi(counts, np.repeat(bins, draws[h.unit]), edges.size + 1)
    return float(np.quantile(psis, confidence))


def score_shift_reason(
    cand: Scored, base: Scored | None, bound: float, seed: int = 0, confidence: float = 0.95
) -> GateReason:
    """Flag a candidate whose prediction distribution moved far from production's (PSI).

    A WARN, never a block: a retrain legitimately moves scores (a full retrain moved them by a
    PSI of up to 0.51 on a healthy simulation), and whether a move made predictions worse is
    what the regression and calibration checks judge against production with its noise. The
    WARN fires above ``bound`` or production's own PSI noise (``psi_noise``), the larger.
    Without production there is nothing to compare with.
    """
    if base is None or not base.finite:
        why = NO_PRODUCTION if base is None else f"{base.name}'s scores are not all finite"
        return GateReason(
            "score_shift", True, "psi", None, float("nan"), None, None, bound, f"not checked: {why}"
        )
    c = cand.probs if cand.probs is not None else cand.scores
    b = base.probs if base.probs is not None else base.scores
    psi = population_stability_index(b, c)
    noise = psi_noise(base, seed, confidence)
    limit = max(bound, noise)
    high = psi > limit
    message = (
        f"PSI of {cand.name} vs {base.name} predictions {psi:.4f} "
        f"{'above' if high else 'within'} max(max_score_psi {bound:g}, {base.name}'s own PSI "
        f"noise {noise:.4f}) = {limit:.4g} (means {float(c.mean()):.4f} vs {float(b.mean()):.4f})"
    )
    if high:
        message = (
            f"WARN: {message}: the prediction distribution shifted; not blocked (the regression "
            "and calibration checks judge it against production); check features and labels"
        )
    return GateReason(
        "score_shift", True, "psi", None, psi, float(b.mean()), None, limit, message, warning=high
    )


def _gap(metric: str, overall: float, part: float) -> float:
    """How far the slice falls behind the overall value (> 0: the slice is worse)."""
    return overall - part if HIGHER_IS_BETTER[metric] else part - overall


def disparity_reason(
    metric: str,
    slice_key: str,
    cand: tuple[float, float],
    base: tuple[float, float] | None,
    widening: tuple[float, float] | None,
    max_gap: float,
    max_regression: float,
    reliable: bool = True,
) -> GateReason:
    """A slice may not fall behind the overall metric by more than ``max_gap``.

    ``cand`` and ``base`` are (overall, slice) values; ``widening`` is the interval of how much
    further behind the candidate's slice falls than the baseline's. A gap above ``max_gap``
    blocks when there is no baseline, or when the candidate widens it *significantly* (the
    whole interval) by more than ``max_regression``; otherwise it is a pre-existing or
    noise-level disparity, flagged for a human but not blocked. A slice with too few
    informative units (``reliable`` False) is flagged, never blocked.
    """
    gap = _gap(metric, *cand)
    base_gap = None if base is None else _gap(metric, *base)
    if not (math.isfinite(gap) and (base_gap is None or math.isfinite(base_gap))):
        return GateReason(
            "slice_disparity",
            True,
            metric,
            slice_key,
            cand[1],
            None,
            None,
            max_gap,
            f"not checked: {metric} is undefined on this slice",
        )
    numbers = f"{metric} {cand[1]:.4f} on the slice vs {cand[0]:.4f} overall (gap {gap:+.4f}"
    if base_gap is not None:
        numbers += f"; baseline gap {base_gap:+.4f}"
    if widening is not None:
        numbers += f"; widened by {widening[0]:+.4f} to {widening[1]:+.4f}"
    numbers += ")"
    if gap <= max_gap:
        verdict, passed, warning = f"within the allowed gap {max_gap:g}", True, False
    elif base is not None and (widening is None or widening[0] <= max_regression):
        verdict = (
            f"beyond the allowed gap {max_gap:g}, but not significantly wider than the "
            f"baseline's by more than max_regression {max_regression:g}: pre-existing disparity"
        )
        passed, warning = True, True
    elif not reliable:
        verdict = f"beyond the allowed gap {max_gap:g}, but too few units on the slice to block"
        passed, warning = True, True
    else:
        verdict, passed, warning = f"beyond the allowed gap {max_gap:g}: blocked", False, False
    return GateReason(
        check="slice_disparity",
        passed=passed,
        metric=metric,
        slice=slice_key,
        candidate=cand[1],
        baseline=None if base is None else base[1],
        interval=widening,
        threshold=max_gap,
        message=("WARN: " if warning else "") + f"{numbers}; {verdict}",
        warning=warning,
    )
