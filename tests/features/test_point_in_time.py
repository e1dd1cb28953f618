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

from spindle.core import ConfigError, FeatureError, ModelConfig, load_sources
from spindle.features import build_rows, pin_versions, stream_rows
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


def _ttl_s(definitions: list, view: str) -> int:
    return next(d.ttl_s for d in definitions if d.group == view)


def test_training_rows_match_brute_force(ingested_workspace: Path) -> None:
    with Context.open(ingested_workspace) as ctx:
        loaded = load_config(ctx, "search_ranker")
        tables = ctx.workspace.tables_dir
        versions = pin_versions(tables)
        dates = ("2026-01-03", "2026-01-04")
        rows = build_rows(
            tables, loaded.config, loaded.definitions, dates, versions, sources=ctx.sources
        ).table
        ttl_s = _ttl_s(loaded.definitions, "product")
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
        if i >= 0 and (row["ts"] - times[i]).total_seconds() <= ttl_s:
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
            tables,
            loaded.config,
            loaded.definitions,
            ("2026-01-04",),
            versions,
            sources=ctx.sources,
        ).table
        again = build_rows(
            tables,
            loaded.config,
            loaded.definitions,
            ("2026-01-04",),
            versions,
            sources=ctx.sources,
        ).table
        ttl_s = _ttl_s(loaded.definitions, "product")
    assert rows.num_rows > 0
    assert rows["product__price_usd__v1"].null_count == rows.num_rows
    ages = rows["product_feature_age_s"].drop_null()  # null: no row within the TTL was read
    assert len(ages) == 0 or pc.min(ages).as_py() > ttl_s
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
        args = (tables, loaded.config, loaded.definitions, dates, versions)
        default = build_rows(*args, sources=ctx.sources).table
        tight = build_rows(*args, memory_limit_mb=64, sources=ctx.sources).table
        with pytest.raises(FeatureError, match="at least 64 MB"):
            build_rows(*args, 16, sources=ctx.sources)
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
        args = (tables, loaded.config, loaded.definitions, dates, versions)
        tight = stream_rows(*args, memory_limit_mb=128, sources=ctx.sources)
        limited = pa.Table.from_batches(list(tight.batches), schema=tight.schema)
        unlimited = build_rows(*args, memory_limit_mb=8192, sources=ctx.sources).table
    assert limited.num_rows > 2_000_000
    assert limited.equals(unlimited)
    assert _spill_leftovers(tables) == []


def _with_examples(config: ModelConfig, **changes: object) -> ModelConfig:
    data = config.model_dump()
    data["examples"] = {**data["examples"], **changes}
    return ModelConfig.model_validate(data)


def test_label_delay_leaves_out_and_counts_the_immature_examples(ingested_workspace: Path) -> None:
    """With label_delay 2d, a window of four days keeps the first two days' examples only."""
    dates = ("2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04")
    with Context.open(ingested_workspace) as ctx:
        loaded = load_config(ctx, "purchase_propensity")
        tables = ctx.workspace.tables_dir
        versions = pin_versions(tables)
        args = (tables, loaded.config, loaded.definitions, dates, versions)
        every = build_rows(*args, sources=ctx.sources)
        delayed_config = _with_examples(loaded.config, label_delay="2d")
        delayed = build_rows(
            tables, delayed_config, loaded.definitions, dates, versions, sources=ctx.sources
        )
    days = pc.strftime(every.table["ts"], "%Y-%m-%d")
    late = pc.sum(pc.is_in(days, value_set=pa.array(dates[2:]))).as_py()
    assert every.immature_examples == 0 and late > 0
    assert delayed.immature_examples == late
    assert delayed.table.num_rows == every.table.num_rows - late
    kept_days = set(pc.strftime(delayed.table["ts"], "%Y-%m-%d").to_pylist())
    assert kept_days == set(dates[:2])
    # the mature examples are the same rows, features included
    early = every.table.filter(pc.is_in(days, value_set=pa.array(dates[:2])))
    assert delayed.table.equals(early)


def test_examples_see_no_source_row_from_after_the_cutoff(ingested_workspace: Path) -> None:
    """Even SQL that asks for the latest purchase sees nothing at or after the window's end."""
    sql = (
        "SELECT s.user_id, s.ts, (SELECT max(ts) FROM purchases) AS latest_purchase, "
        "(SELECT max(date) FROM products) AS latest_snapshot, false AS y FROM searches s"
    )
    with Context.open(ingested_workspace) as ctx:
        loaded = load_config(ctx, "purchase_propensity")
        config = _with_examples(
            loaded.config, sql=sql, sources=["searches", "purchases", "products"], label="y"
        )
        rows = build_rows(
            ctx.workspace.tables_dir,
            config,
            loaded.definitions,
            ("2026-01-02",),
            sources=ctx.sources,
        ).table
    assert rows.num_rows > 0
    latest = pc.max(rows["latest_purchase"]).as_py()
    assert latest is not None and latest < dt.datetime(2026, 1, 3)
    assert str(pc.max(rows["latest_snapshot"]).as_py()) <= "2026-01-03"
    assert pc.max(rows["ts"]).as_py() < dt.datetime(2026, 1, 3)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"sql": "SELECT * FROM no_such_table"},
            r"models/purchase_propensity\.yaml.*examples\.sql.*no_such_table",
        ),
        ({"label": "bought"}, r"examples\.label.*'bought' is not produced"),
        (
            {"sql": "SELECT min(ts) AS ts, false AS purchased_today FROM searches"},
            r"feature view user joins on user_id but the examples lack user_id",
        ),
        ({"sources": ["searches", "nope"]}, r"examples\.sources.*nope not declared"),
    ],
)
def test_bad_examples_give_one_clear_error(
    ingested_workspace: Path, changes: dict[str, object], message: str
) -> None:
    with Context.open(ingested_workspace) as ctx:
        loaded = load_config(ctx, "purchase_propensity")
        config = _with_examples(loaded.config, **changes)
        with pytest.raises(ConfigError, match=message) as info:
            build_rows(
                ctx.workspace.tables_dir,
                config,
                loaded.definitions,
                ("2026-01-02",),
                sources=load_sources(ingested_workspace),
            )
    assert "\n" not in str(info.value) and "Traceback" not in str(info.value)
    assert _spill_leftovers(ctx.workspace.tables_dir) == []


def test_a_key_of_another_type_than_the_views_is_one_clear_error(ingested_workspace: Path) -> None:
    sql = "SELECT 1 AS user_id, min(ts) AS ts, false AS purchased_today FROM searches"
    with Context.open(ingested_workspace) as ctx:
        loaded = load_config(ctx, "purchase_propensity")
        config = _with_examples(loaded.config, sql=sql)
        with pytest.raises(ConfigError, match=r"joining feature view\(s\) user") as info:
            build_rows(
                ctx.workspace.tables_dir,
                config,
                loaded.definitions,
                ("2026-01-02",),
                sources=ctx.sources,
            )
    assert "\n" not in str(info.value)


def test_a_holdout_holds_the_examples_whose_label_matured_on_the_day(
    ingested_workspace: Path,
) -> None:
    """label_delay 12h: the holdout of 01-03 is the examples from 01-02 12:00 to 01-03 12:00
    (all known by 01-03's end), the very rows a training window leaves out as immature at 01-03's
    start plus the morning of 01-03; with no delay a holdout is the day's events as before."""
    with Context.open(ingested_workspace) as ctx:
        loaded = load_config(ctx, "purchase_propensity")
        tables = ctx.workspace.tables_dir
        versions = pin_versions(tables)
        config = _with_examples(loaded.config, label_delay="12h")
        args = (tables, config, loaded.definitions)
        every = build_rows(
            tables,
            loaded.config,
            loaded.definitions,
            ("2026-01-02", "2026-01-03"),
            versions,
            sources=ctx.sources,
        ).table
        holdout = build_rows(*args, ("2026-01-03",), versions, sources=ctx.sources, holdout=True)
        train = build_rows(*args, ("2026-01-02",), versions, sources=ctx.sources)
        plain = build_rows(
            tables,
            loaded.config,
            loaded.definitions,
            ("2026-01-03",),
            versions,
            sources=ctx.sources,
            holdout=True,
        ).table
    noon_before, noon = dt.datetime(2026, 1, 2, 12), dt.datetime(2026, 1, 3, 12)
    ts = [t.replace(tzinfo=None) for t in holdout.table["ts"].to_pylist()]
    assert ts and all(noon_before <= t < noon for t in ts)
    expected = sum(noon_before <= t.replace(tzinfo=None) < noon for t in every["ts"].to_pylist())
    assert holdout.table.num_rows == expected and holdout.immature_examples == 0
    # the afternoon of 01-02 was immature for the window that ends at 01-03 00:00: disjoint
    assert train.immature_examples == sum(
        noon_before <= t.replace(tzinfo=None)
        for t in every["ts"].to_pylist()
        if t.replace(tzinfo=None) < dt.datetime(2026, 1, 3)
    )
    trained = {t.replace(tzinfo=None) for t in train.table["ts"].to_pylist()}
    assert max(trained) < noon_before
    days = set(pc.strftime(plain["ts"], "%Y-%m-%d").to_pylist())
    assert days == {"2026-01-03"}
