"""Keyed-hash load shedding: uniform, reproducible with the key, not steerable without it."""

from __future__ import annotations

import numpy as np
import pytest

from spindle.core import DataError
from spindle.data import shed_mask

KEY = b"secret-key-0123456789"


def test_keeps_a_uniform_share_reproducibly() -> None:
    ids = [f"s{i:07d}" for i in range(20_000)]
    mask = shed_mask(ids, 0.3, KEY)
    assert abs(mask.mean() - 0.3) < 0.02
    assert np.array_equal(mask, shed_mask(ids, 0.3, KEY))
    # uniform across any slice an attacker might pick, e.g. ids ending in 7
    picked = np.array([i.endswith("7") for i in ids])
    assert abs(mask[picked].mean() - 0.3) < 0.04


def test_another_key_drops_other_rows() -> None:
    ids = [f"s{i}" for i in range(5_000)]
    a, b = shed_mask(ids, 0.5, KEY), shed_mask(ids, 0.5, b"another-key-987654321")
    assert 0.4 < (a == b).mean() < 0.6  # independent decisions


def test_bad_arguments_are_refused() -> None:
    with pytest.raises(DataError, match="keep_fraction"):
        shed_mask(["a"], 1.5, KEY)
    with pytest.raises(DataError, match="16 to 64 bytes"):
        shed_mask(["a"], 0.5, b"short")
    assert shed_mask(["a", "b"], 1.0, KEY).all() and not shed_mask(["a"], 0.0, KEY).any()
