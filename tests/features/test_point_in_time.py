"""Point-in-time joins against a brute-force reference: no future values, TTL respected, no event lost."""

from __future__ import annotations

import datetime as dt
from bisect import bisect_right
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from deltalake import DeltaTable, write_deltalake

from spindle.core import FeatureError
from spindle.features import TTL_S, build_rows, pin_versions, stream_rows
from spindle.orchestrate import Context, load_config


def _reference(
    tables: Path, version: int
) -> dict[str, tuple[list[dt.datetime], list[float | None]]]:
    rows = (
        DeltaTable(str(tables / "features" / "product"), version=version)
        .to_pyarrow_table(columns=["product_id", "feature_ts", "product__price_usd__v1"])
        .to_pylist()
    )
    by_product: dict[str, list[tuple[dt.datetime, float | None]]] = {}
    for row in rows:
        by_product.setdefault(row["product_id"], []).append(
            (row["feature_ts"], row["product__price_usd__v1"])
        )
    return {
        pid: ([t for t, _ in sorted(v)], [x for _, x in sorted(v)]) for pid, v in by_product.items()
    }


def test_training_rows_match_brute_force(ingested_workspace: Path) -> None:
    with Context.open(ingested_workspace) as ctx:
        loaded = load_config(ctx, "search_ranker")
        tables = ctx.workspace.tables_dir
        versions = pin_versions(tables)
        dates = ("2026-01-03", "2026-01-04")
        rows = build_rows(tables, loaded.config, loaded.definitions, dates, versions).table
    reference = _reference(tables, versions["features/product"])
    raw_events = DeltaTable(str(tables / "raw" / "impressions")).to_pyarrow_table(
        columns=["impression_id", "ts"]
    )
    in_window = pc.sum(
        pc.is_in(
            pc.strftime(raw_events["ts"], "%Y-%m-%d"), value_set=__import__("pyarrow").array(dates)
        )
    ).as_py()
    assert rows.num_rows == in_window  # every event kept, none duplicated
    assert (
        pc.min(rows["product_feature_age_s"]).as_py() >= 0
    )  # never a feature from after the event
    checked = 0
    for row in rows.select(["product_id", "ts", "product__price_usd__v1"]).to_pylist()[::97]:
        times, values = reference.get(row["product_id"], ([], []))
        i = bisect_right(times, row["ts"]) - 1
        expected = None
        if i >= 0 and (row["ts"] - times[i]).total_seconds() <= TTL_S["product"]:
            expected = values[i]
        assert row["product__price_usd__v1"] == pytest.approx(expected), row
        checked += 1
    assert checked > 100


def test_time_travel_and_ttl(ingested_workspace: Path) -> None:
    """Events of day 4 joined with the feature table as of day 1 only: the rows are too old (TTL)."""
    with Context.open(ingested_workspace) as ctx:
        loaded = load_config(ctx, "search_ranker")
        tables = ctx.workspace.tables_dir
        versions = pin_versions(tables) | {"features/product": 0, "features/user": 0}
        rows = build_rows(
            tables, loaded.config, loaded.definitions, ("2026-01-04",), versions
        ).table
        again = build_rows(
            tables, loaded.config, loaded.definitions, ("2026-01-04",), versions
        ).table
    assert rows.num_rows > 0
    assert rows["product__price_usd__v1"].null_count == rows.num_rows
    assert pc.min(rows["product_feature_age_s"]).as_py() > TTL_S["product"]
    assert rows.equals(again)  # same pinned versions → identical rows


def _spill_leftovers(tables: Path) -> list[Path]:
    spill = tables.parent / "tmp" / "duckdb"
    return list(spill.iterdir()) if spill.is_dir() else []


def test_memory_limit_gives_identical_rows_and_cleans_its_spill(ingested_workspace: Path) -> None:
    with Context.open(ingested_workspace) as ctx:
        loaded = load_config(ctx, "search_ranker")
        tables = ctx.workspace.tables_dir
        versions = pin_versions(tables)
        dates = ("2026-01-02", "2026-01-03", "2026-01-04")
        default = build_rows(tables, loaded.config, loaded.definitions, dates, versions).table
        tight = build_rows(
            tables, loaded.config, loaded.definitions, dates, versions, memory_limit_mb=64
        ).table
        with pytest.raises(FeatureError, match="at least 64 MB"):
            build_rows(tables, loaded.config, loaded.definitions, dates, versions, 16)
    assert tight.equals(default)
    assert _spill_leftovers(tables) == []  # the spill database is removed with the stream


def _scale_impressions(tables: Path, factor: int) -> int:
    """Make every impression ``factor`` impressions (new ids, ts a microsecond apart)."""
    path = tables / "raw" / "impressions"
    impressions = DeltaTable(str(path)).to_pyarrow_table()
    con = duckdb.connect()
    con.register("imp", impressions)
    scaled = con.sql(
        "SELECT imp.* REPLACE (impression_id || '-' || k AS impression_id, "
        f"ts + k * INTERVAL 1 MICROSECOND AS ts) FROM imp, range({factor}) t(k)"
    ).to_arrow_table()
    con.close()
    write_deltalake(str(path), scaled, mode="overwrite", partition_by=["date"])
    return int(scaled.nbytes)


@pytest.mark.slow
def test_training_set_larger_than_the_memory_limit(workspace_copy: Path) -> None:
    """~320 MB of impressions (2.9M) joined under a 128 MB DuckDB limit: it spills instead of
    failing, and the rows are those of the unlimited build, in the same order."""
    with Context.open(workspace_copy) as ctx:
        loaded = load_config(ctx, "search_ranker")
        tables = ctx.workspace.tables_dir
        input_bytes = _scale_impressions(tables, 60)
        assert input_bytes > 2 * 128 * 2**20
        dates = ("2026-01-02", "2026-01-03", "2026-01-04")
        versions = pin_versions(tables)
        tight = stream_rows(
            tables, loaded.config, loaded.definitions, dates, versions, memory_limit_mb=128
        )
        limited = pa.Table.from_batches(list(tight.batches), schema=tight.schema)
        unlimited = build_rows(
            tables, loaded.config, loaded.definitions, dates, versions, memory_limit_mb=8192
        ).table
    assert limited.num_rows > 2_000_000
    assert limited.equals(unlimited)
    assert _spill_leftovers(tables) == []
