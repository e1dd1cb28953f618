"""prediction_difference: how far two models' scores of the same rows lie apart."""

from __future__ import annotations

import numpy as np
import pytest

from spindle.evaluate import PredictionDiff, prediction_difference


def test_equal_scores_differ_by_nothing() -> None:
    scores = np.linspace(0, 1, 50)
    d = prediction_difference(scores, scores.copy(), k=10)
    assert d == PredictionDiff(50, 0.0, 0.0, 1.0, 10, 1.0, None)


def test_absolute_differences_and_a_reversed_order() -> None:
    a = np.array([0.0, 1.0, 2.0, 3.0])
    b = np.array([3.0, 2.0, 1.0, 0.0])
    d = prediction_difference(a, b, k=2)
    assert d.max_abs == 3.0 and d.mean_abs == 2.0
    assert d.spearman == pytest.approx(-1.0)
    assert d.top_k_overlap == 0.0  # top-2 of a: rows 3, 2; of b: rows 0, 1


def test_a_monotone_change_keeps_the_ranks() -> None:
    a = np.array([0.1, 0.4, 0.2, 0.9, 0.5])
    d = prediction_difference(a, a**2, k=3)
    assert d.spearman == pytest.approx(1.0) and d.top_k_overlap == 1.0
    assert d.max_abs == pytest.approx(0.5 - 0.25)  # the largest of x - x**2 here


def test_ties_get_average_ranks() -> None:
    a = [1.0, 1.0, 2.0, 3.0]
    b = [0.0, 1.0, 2.0, 3.0]
    d = prediction_difference(a, b, k=2)
    # ranks a: 0.5 0.5 2 3, b: 0 1 2 3 -> Pearson of the ranks
    ra, rb = np.array([0.5, 0.5, 2, 3]), np.array([0, 1, 2, 3.0])
    assert d.spearman == pytest.approx(float(np.corrcoef(ra, rb)[0, 1]))


def test_ranking_overlap_is_the_mean_over_result_lists() -> None:
    # list x: the same top-2; list y: top-2 {0,1} vs {1,2} -> 1/2
    a = np.array([0.9, 0.8, 0.1, 0.9, 0.8, 0.1])
    b = np.array([0.9, 0.8, 0.1, 0.1, 0.8, 0.9])
    groups = np.array(["x", "x", "x", "y", "y", "y"])
    d = prediction_difference(a, b, groups=groups, k=2)
    assert d.lists == 2 and d.top_k_overlap == pytest.approx(0.75)


def test_a_list_shorter_than_k_counts_its_own_size() -> None:
    d = prediction_difference([1.0, 2.0], [2.0, 1.0], groups=[7, 7], k=10)
    assert d.top_k_overlap == 1.0  # both rows are in both top lists


def test_multiclass_outputs_compare_entry_by_entry() -> None:
    a = np.array([[0.1, 0.9], [0.7, 0.3]])
    b = np.array([[0.2, 0.8], [0.7, 0.3]])
    d = prediction_difference(a, b, k=1)
    assert d.rows == 2 and d.max_abs == pytest.approx(0.1)
    assert d.mean_abs == pytest.approx(0.05)


def test_constant_scores_have_no_rank_correlation() -> None:
    assert prediction_difference([1.0, 1.0, 1.0], [0.0, 1.0, 2.0]).spearman is None
    assert prediction_difference([1.0, 1.0], [1.0, 1.0]).spearman == 1.0


def test_to_dict_is_plain() -> None:
    assert prediction_difference([1.0], [1.0]).to_dict()["rows"] == 1


@pytest.mark.parametrize(
    ("a", "b", "kwargs", "message"),
    [
        ([1.0, 2.0], [1.0], {}, "different shapes"),
        ([1.0], [float("nan")], {}, "finite"),
        ([1.0], [1.0], {"k": 0}, "k must be"),
        ([1.0, 2.0], [1.0, 2.0], {"groups": [1]}, "groups has 1 entries"),
    ],
)
def test_bad_input_says_what(
    a: list[float], b: list[float], kwargs: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        prediction_difference(a, b, **kwargs)  # type: ignore[arg-type]
