"""Declared baselines scored on rows: a feature's value, a SQL expression, or a constant (evaluation
scores them on a holdout, serving on the rows of a request when no model version can answer).

A model's ``baselines:`` (``core.BaselineConfig``) name what a trained model must be worth more
than: the route's trailing delay rate, an item's popularity, a prior. Each is scored on the same
holdout rows as the candidate and reported beside it; ``evaluation.must_beat`` makes beating one
a gate rule. A baseline's score is used as given (a rate or a probability is compared on log
loss and calibration too, when every score lies in [0, 1]). A row whose baseline value is null
(a route never flown before) scores the mean of the other rows: neutral, never an error.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.dataset as pads

from spindle.core import SQL_RULES, BaselineConfig, ConfigError, expression_problem, lock_connection


def baseline_scores(
    baseline: BaselineConfig,
    holdout: pa.Table | pads.Dataset,
    feature_columns: Mapping[str, str],
    where: str = "baselines",
) -> npt.NDArray[np.float64]:
    """One score per holdout row for ``baseline``.

    Args:
        baseline: the declaration.
        holdout: the holdout's rows (examples' columns and feature columns), or a dataset of
            them (a file: a SQL baseline's DuckDB then reads only the columns it names).
        feature_columns: pinned feature ref -> its column in ``holdout``.
        where: the file and key to name in errors (e.g. ``models/delay.yaml: baselines.0``).

    Returns:
        float64 scores aligned with the holdout's rows; nulls and NaN filled with the mean of
        the others (0 when every value is null).

    Raises:
        ConfigError: the feature is not in the holdout, or the SQL does not run or returns
            something that is not a number.

    Example:
        >>> table = pa.table({"rate": [0.1, None, 0.3]})
        >>> baseline_scores(BaselineConfig(name="r", sql="rate * 2"), table, {}).tolist()
        [0.2, 0.4, 0.6]
    """
    if baseline.constant is not None:
        rows = holdout.num_rows if isinstance(holdout, pa.Table) else holdout.count_rows()
        return np.full(rows, float(baseline.constant))
    if baseline.feature is not None:
        names = holdout.schema.names
        column = feature_columns.get(baseline.feature)
        if column is None or column not in names:
            raise ConfigError(
                where,
                [
                    f"feature: {baseline.feature} is not a feature of the holdout; pin a feature "
                    "the workspace defines (spindle features list)"
                ],
            )
        values = (
            holdout.column(column)
            if isinstance(holdout, pa.Table)
            else holdout.to_table(columns=[column]).column(0)
        )
    else:
        values = _sql_values(str(baseline.sql), holdout, where)
    return _filled(values, baseline.name, where)


def _sql_values(expression: str, holdout: pa.Table | pads.Dataset, where: str) -> pa.ChunkedArray:
    import duckdb

    found = expression_problem(expression, ["holdout"])
    if found is not None:  # validated at load too; a config built in code gets here unchecked
        raise ConfigError(where, [f"sql: the baseline's sql {found}; {SQL_RULES['baseline']}"])
    con = duckdb.connect()
    try:
        lock_connection(con)
        con.register("holdout", holdout)
        result = con.sql(f"SELECT ({expression})::DOUBLE AS score FROM holdout").to_arrow_table()
    except duckdb.Error as error:
        first = str(error).splitlines()[0]
        raise ConfigError(
            where, [f"sql: {expression!r} does not run on the holdout: {first}"]
        ) from None
    finally:
        con.close()
    column: pa.ChunkedArray = result.column("score")
    return column


def _filled(values: pa.ChunkedArray | pa.Array, name: str, where: str) -> npt.NDArray[np.float64]:
    try:
        array = np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ConfigError(where, [f"baseline {name!r} is not a number: {error}"]) from None
    bad = ~np.isfinite(array)
    if bad.any():
        array[bad] = float(array[~bad].mean()) if (~bad).any() else 0.0
    return array
