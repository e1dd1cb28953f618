"""InputSpec, the input checks, and the package's public names."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from spindle.core import TrainingError
from spindle.train import InputSpec, check_inputs

SPEC = InputSpec(cat_cardinalities=(5, 3), text_vocab_size=10, n_text=2, text_len=4, n_dense=2)


def test_all_is_sorted_and_complete() -> None:
    # ``spindle.train`` the attribute is the orchestrator's step; the package is in sys.modules.
    package = importlib.import_module("spindle.train")
    # dir(), not vars(): the public names resolve lazily (``core.lazy_names``), so vars() holds
    # only those some earlier test happened to touch.
    public = {name for name in dir(package) if not name.startswith("_")} - {"annotations"}
    assert package.__all__ == sorted(package.__all__)
    assert set(package.__all__) == public


def test_spec_round_trips_through_its_json_form() -> None:
    assert InputSpec.from_dict(SPEC.to_dict()) == SPEC
    assert SPEC.present_inputs() == ("cat", "text", "dense")
    assert InputSpec(n_dense=3).present_inputs() == ("dense",)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "no inputs"),
        ({"cat_cardinalities": (3, 0)}, "cat_cardinalities"),
        ({"n_text": 1, "text_len": 0, "text_vocab_size": 10}, "text_len"),
    ],
)
def test_invalid_spec_is_refused(fields: dict[str, object], message: str) -> None:
    with pytest.raises(TrainingError, match=message):
        InputSpec(**fields)  # type: ignore[arg-type]


def _inputs(rows: int = 4) -> dict[str, np.ndarray]:
    return {
        "cat": np.zeros((rows, 2), np.int64),
        "text": np.ones((rows, 2, 4), np.int64),
        "dense": np.zeros((rows, 2), np.float32),
    }


def test_check_inputs_accepts_matching_arrays() -> None:
    assert check_inputs(_inputs(), SPEC) == 4


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda x: x.pop("text"), "keys"),
        (lambda x: x.update(dense=np.zeros((4, 3), np.float32)), "shape"),
        (lambda x: x.update(dense=np.zeros((4, 2), np.float64)), "dtype"),
        (lambda x: x.update(cat=np.zeros((5, 2), np.int64)), "rows"),
        (lambda x: x["cat"].__setitem__((2, 1), 3), r"column 1 has ids outside \[0, 3\).*row 2"),
        (lambda x: x["text"].__setitem__((1, 0, 0), 10), r"inputs\['text'\] has ids outside"),
    ],
)
def test_check_inputs_names_the_problem(change: object, message: str) -> None:
    inputs = _inputs()
    change(inputs)  # type: ignore[operator]
    with pytest.raises(TrainingError, match=message):
        check_inputs(inputs, SPEC)
