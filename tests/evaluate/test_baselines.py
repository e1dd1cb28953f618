"""Declared baselines scored on a holdout (features/_baselines.py, as the evaluation uses it)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from spindle.core import BaselineConfig, ConfigError
from spindle.features import baseline_scores

HOLDOUT = pa.table(
    {
        "route": ["a", "b", "c", "d"],
        "route__delay_rate_28d__v1": [0.1, None, 0.5, float("nan")],
        "pop": [3, 0, 7, 1],
    }
)
COLUMNS = {"route.delay_rate_28d@1": "route__delay_rate_28d__v1"}


def test_a_feature_baseline_reads_its_column_and_fills_nulls_with_the_mean() -> None:
    scores = baseline_scores(
        BaselineConfig(name="rate", feature="route.delay_rate_28d@1"), HOLDOUT, COLUMNS
    )
    assert scores.tolist() == pytest.approx([0.1, 0.3, 0.5, 0.3])


def test_sql_and_constant_baselines() -> None:
    sql = baseline_scores(BaselineConfig(name="p", sql="log(1 + pop)"), HOLDOUT, COLUMNS)
    assert sql == pytest.approx(np.log10(1 + np.array([3, 0, 7, 1])))  # DuckDB's log is base 10
    prior = baseline_scores(BaselineConfig(name="prior", constant=0.2), HOLDOUT, COLUMNS)
    assert prior.tolist() == [0.2] * 4


def test_bad_baselines_are_one_line_naming_the_model_file() -> None:
    where = "models/delay.yaml: baselines.0"
    with pytest.raises(ConfigError, match=r"^models/delay.yaml: baselines.0: feature: x.y@1"):
        baseline_scores(BaselineConfig(name="r", feature="x.y@1"), HOLDOUT, COLUMNS, where)
    with pytest.raises(ConfigError) as info:
        baseline_scores(BaselineConfig(name="r", sql="popp + 1"), HOLDOUT, COLUMNS, where)
    text = str(info.value)
    assert "\n" not in text and "does not run on the holdout" in text and "popp" in text
    with pytest.raises(ConfigError, match="does not run"):
        baseline_scores(BaselineConfig(name="r", sql="route"), HOLDOUT, COLUMNS, where)


def test_a_holdout_file_scores_as_its_table_does(tmp_path: Path) -> None:
    """The evaluation hands SQL baselines the holdout's file (DuckDB reads only the columns
    the expression names): every kind of baseline scores it as it scores the table."""
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    path = tmp_path / "holdout.parquet"
    pq.write_table(HOLDOUT, path, row_group_size=2)
    rows = pads.dataset(path, format="parquet")
    for declared in (
        BaselineConfig(name="p", sql="log(1 + pop)"),
        BaselineConfig(name="rate", feature="route.delay_rate_28d@1"),
        BaselineConfig(name="prior", constant=0.2),
    ):
        assert baseline_scores(declared, rows, COLUMNS).tolist() == pytest.approx(
            baseline_scores(declared, HOLDOUT, COLUMNS).tolist(), nan_ok=True
        )
