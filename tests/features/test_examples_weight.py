"""``examples.weight``: a column of the examples SQL rides into the training set, checked."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pyarrow.compute as pc
import pytest

from spindle.core import ConfigError, DataError, ModelConfig
from spindle.features import build_rows
from spindle.orchestrate import Context, load_config

DATES = ("2026-01-02", "2026-01-03")


def _weighted(config: ModelConfig, expression: str, declare: bool = True) -> ModelConfig:
    """``config`` whose examples add column ``w`` = ``expression`` (declared as the weight)."""
    data = config.model_dump()
    sql = f"SELECT *, {expression} AS w FROM ({data['examples']['sql']})"
    data["examples"] = {**data["examples"], "sql": sql, "weight": "w" if declare else None}
    return ModelConfig.model_validate(data)


def _build(workspace: Path, expression: str, declare: bool = True) -> object:
    with Context.open(workspace) as ctx:
        loaded = load_config(ctx, "purchase_propensity")
        config = _weighted(loaded.config, expression, declare)
        return build_rows(
            ctx.workspace.tables_dir, config, loaded.definitions, DATES, sources=ctx.sources
        )


def _leftovers(workspace: Path) -> list[Path]:
    return list((workspace / ".spindle" / "tmp" / "duckdb").glob("*"))


def test_a_declared_weight_is_a_column_of_the_training_set(ingested_workspace: Path) -> None:
    expression = "CASE WHEN purchased_today THEN 3 ELSE 1 END"
    rows = _build(ingested_workspace, expression).table  # type: ignore[attr-defined]
    plain = _build(ingested_workspace, expression, declare=False).table  # type: ignore[attr-defined]
    assert rows.equals(plain)  # the same rows, in the same order: only checked
    weights = rows["w"].to_numpy()
    labels = rows["purchased_today"].to_numpy(zero_copy_only=False)
    assert np.array_equal(weights, np.where(labels, 3, 1))


BAD_ROW = "CASE WHEN hash(user_id) % 11 = 3 THEN {bad} ELSE 1.0 END"


@pytest.mark.parametrize("bad", ["-1.5", "'nan'::DOUBLE", "'inf'::DOUBLE", "NULL"])
def test_a_bad_weight_is_one_error_naming_the_file_column_and_first_row(
    ingested_workspace: Path, bad: str
) -> None:
    expression = BAD_ROW.format(bad=bad)
    with pytest.raises(DataError) as info:
        _build(ingested_workspace, expression)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith("models/purchase_propensity.yaml: key 'examples.weight'")
    assert "column 'w' must be finite and >= 0" in message
    # the row it names is the first bad one of the training set, in the set's order
    table = _build(ingested_workspace, expression, declare=False).table  # type: ignore[attr-defined]
    values = table["w"].to_numpy(zero_copy_only=False).astype(float)
    bad_rows = np.flatnonzero(~(np.isfinite(values) & (values >= 0)))
    assert bad_rows.size > 0
    found = re.search(r"first: row (\d+), ts = ([^,]+),", message)
    assert found is not None and int(found.group(1)) == int(bad_rows[0])
    assert found.group(2) == str(table["ts"][int(bad_rows[0])].as_py())
    assert f"{bad_rows.size} row(s) are not" in message
    assert _leftovers(ingested_workspace) == []


def test_all_zero_weights_are_refused(ingested_workspace: Path) -> None:
    with pytest.raises(DataError, match=r"column 'w' is 0 on all \d+ rows") as info:
        _build(ingested_workspace, "0.0")
    assert "\n" not in str(info.value)


def test_a_weight_that_is_not_a_number_is_a_config_error(ingested_workspace: Path) -> None:
    with pytest.raises(ConfigError, match=r"examples\.weight.*'w' is VARCHAR, not a number"):
        _build(ingested_workspace, "'heavy'")


def test_a_weight_the_sql_does_not_produce_is_a_config_error(ingested_workspace: Path) -> None:
    with Context.open(ingested_workspace) as ctx:
        loaded = load_config(ctx, "purchase_propensity")
        data = loaded.config.model_dump()
        data["examples"]["weight"] = "importance"
        with pytest.raises(ConfigError, match=r"examples\.weight.*'importance' is not produced"):
            build_rows(
                ctx.workspace.tables_dir,
                ModelConfig.model_validate(data),
                loaded.definitions,
                DATES,
                sources=ctx.sources,
            )


def test_weights_leave_the_features_alone(ingested_workspace: Path) -> None:
    """The weight is no feature: the transform's columns are the pinned features only."""
    from spindle.features import Transform

    rows = _build(ingested_workspace, "2.0").table  # type: ignore[attr-defined]
    with Context.open(ingested_workspace) as ctx:
        definitions = load_config(ctx, "purchase_propensity").definitions
    assert "w" not in Transform.fit(rows, definitions).columns()
    assert pc.all(pc.equal(rows["w"], 2.0)).as_py()
