from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pytest
from deltalake import DeltaTable

from spindle.core import FeatureError, Workspace, WorkspaceConfig
from spindle.features import OnlineStore, SQLiteOnlineStore, catch_up_online, open_online_backend
from spindle.orchestrate import Context


def _products(popularity: list[int]) -> pa.Table:
    return pa.table(
        {
            "product_id": ["p1", "p2", "p3"],
            "name_words": ["merino sock yarn", "steel crochet hooks", "linen dk yarn"],
            "product_type": ["yarn", "hooks", "yarn"],
            "popularity": popularity,
            "product__is_discounted__v1": [True, False, None],
            "product__price_usd__v1": [12.5, 3.0, None],
            "feature_ts": pa.array([dt.datetime(2026, 1, 2)] * 3, pa.timestamp("us")),
        }
    )


def test_materialize_read_back_types_keys_and_versions(tmp_path: Path) -> None:
    store = OnlineStore(tmp_path / "online.db")
    assert store.as_of("product") is None and store.version() is None
    assert store.key_columns("product") is None
    store.materialize("product", _products([5, 9, 1]), "2026-01-02")
    store.materialize(
        "user", pa.table({"user_id": ["u1"], "user__country__v1": ["DE"]}), "2026-01-02"
    )
    rows = store.rows("product", ["p2", "nope", "p1"])
    assert rows.column("product_id").to_pylist() == ["p2", "p1"]
    assert rows.column("product__is_discounted__v1").to_pylist() == [False, True]
    assert rows.schema.field("product__is_discounted__v1").type == pa.bool_()
    assert store.key_columns("product") == ("product_id",)  # kept columns are no keys
    assert store.get("user", "u1") == {"user_id": "u1", "user__country__v1": "DE"}
    assert store.get("user", "u2") is None
    reader = OnlineStore(tmp_path / "online.db")  # another process sees every write
    seen = reader.version()
    assert seen is not None and reader.get("product", "p1")["popularity"] == 5  # type: ignore[index]
    store.materialize("product", _products([50, 9, 1]), "2026-01-03")
    assert reader.version() != seen and reader.as_of("product") == "2026-01-03"
    assert reader.get("product", "p1")["popularity"] == 50  # type: ignore[index]
    pair = pa.table({"a": ["x"], "b": [1], "pair__n__v1": [2.0]})
    store.materialize("pair", pair, "2026-01-03", keys=["a", "b"])
    assert store.key_columns("pair") is None  # a composite key's parts: declared
    store.close()
    reader.close()


def test_a_reader_sees_another_writers_new_columns_and_reads_views_at_once(
    tmp_path: Path,
) -> None:
    """A reader keeps each entity's layout (columns, types, key) between reads while the store
    is unchanged; a write by another process changes the store's version, and the next read
    takes the new layout: a new feature column comes back, a dropped one does not."""
    reader = OnlineStore(tmp_path / "online.db")
    writer = OnlineStore(tmp_path / "online.db")
    writer.materialize("product", _products([5, 9, 1]), "2026-01-02")
    writer.materialize("user", pa.table({"user_id": ["u1"], "user__n__v1": [1.0]}), "2026-01-02")
    first = reader.rows("product", ["p1"])
    assert "product__v2" not in first.column_names
    assert reader.rows("product", ["p1"]).equals(first)  # from the kept layout
    wider = _products([7, 9, 1]).append_column("product__v2", pa.array([1, 2, 3], pa.int64()))
    writer.materialize("product", wider.drop_columns(["popularity"]), "2026-01-03")
    again = reader.rows("product", ["p3", "p1", "p3"])
    assert again.column("product__v2").to_pylist() == [3, 1, 3]
    assert "popularity" not in again.column_names
    products, users, unknown = reader.rows_many(
        [("product", ["p2"]), ("user", ["u1", "u9"]), ("nothing", ["x"])]
    )
    assert products.column("product__v2").to_pylist() == [2]
    assert users.to_pylist() == [{"user_id": "u1", "user__n__v1": 1.0}]
    assert unknown.num_columns == 0
    reader.close()
    writer.close()


def test_backend_chosen_by_url(tmp_path: Path) -> None:
    absolute = OnlineStore(f"sqlite:///{tmp_path / 'a.db'}")
    assert isinstance(absolute.backend, SQLiteOnlineStore)
    assert absolute.backend.path == tmp_path / "a.db"
    absolute.close()
    plain = OnlineStore(tmp_path / "b.db")
    assert plain.url == f"sqlite:///{tmp_path / 'b.db'}"
    plain.close()
    with pytest.raises(FeatureError, match=r"no Redis backend.*OnlineStoreBackend"):
        open_online_backend("redis://localhost:6379/0")
    with pytest.raises(FeatureError, match="unknown scheme"):
        open_online_backend("mysql://db/features")
    with pytest.raises(FeatureError, match=r"postgresql://spindle:\*\*\*@127.0.0.1:1/f: cannot"):
        open_online_backend("postgresql://spindle:s3cret@127.0.0.1:1/f")  # nothing listens
    with pytest.raises(FeatureError, match=r"lack key column\(s\) \['sku'\]"):
        OnlineStore(tmp_path / "c.db").materialize(
            "shop", _products([1, 2, 3]), "2026-01-02", keys=["sku"]
        )


def test_generic_reads_and_a_composite_key(tmp_path: Path) -> None:
    store = OnlineStore(tmp_path / "online.db")
    assert store.rows("route", [("a", 1)]).num_rows == 0 and store.get("route", ("a", 1)) is None
    routes = pa.table(
        {
            "origin": ["EWR", "EWR", "JFK"],
            "hour": [6, 7, 6],
            "route__delay_7d__v1": [1.5, 2.5, None],
            "feature_ts": pa.array([dt.datetime(2026, 1, 2)] * 3, pa.timestamp("us")),
        }
    )
    done = store.materialize("route", routes, "2026-01-02", keys=["origin", "hour"])
    assert done.inserted == 3
    rows = store.rows("route", [("JFK", 6), ("EWR", 9), ("EWR", 7)])
    assert rows.column_names == ["origin", "hour", "route__delay_7d__v1", "feature_ts"]
    assert rows.column("route__delay_7d__v1").to_pylist() == [None, 2.5]
    assert store.get("route", ("EWR", 6))["route__delay_7d__v1"] == 1.5  # type: ignore[index]
    changed = routes.set_column(2, "route__delay_7d__v1", pa.array([1.5, 9.0, 3.0]))
    later = store.materialize("route", changed.slice(1), "2026-01-03", keys=["origin", "hour"])
    assert (later.updated, later.deleted, later.unchanged) == (2, 1, 0)
    assert store.get("route", ("EWR", 6)) is None  # gone from the day's complete snapshot
    store.materialize("account", pa.table({"account_id": ["a1"], "x": [1]}), "2026-01-02")
    assert store.get("account", "a1") == {"account_id": "a1", "x": 1}  # first column is the key
    store.close()


def test_aligned_many_lines_up_every_view_with_the_keys_asked(tmp_path: Path) -> None:
    """A request's lookups: each view's columns aligned with one key per instance (repeats,
    unknown and null keys, composite keys), typed as materialised, from one read."""
    store = OnlineStore(tmp_path / "online.db")
    store.materialize("product", _products([5, 9, 1]), "2026-01-02")
    routes = pa.table({"origin": ["EWR", "JFK"], "hour": [6, 6], "route__n__v1": [1.5, None]})
    store.materialize("route", routes, "2026-01-02", keys=["origin", "hour"])
    product, route, nothing = store.aligned_many(
        [
            ("product", ["p3", None, "p1", "p3", "nope"]),
            ("route", [("JFK", 6), ("EWR", None), ("EWR", 6)]),
            ("user", ["u1", "u2"]),
        ]
    )
    assert nothing is None
    assert product is not None and route is not None
    columns, unknown = product
    assert unknown == 2
    assert columns["product_id"].to_pylist() == ["p3", None, "p1", "p3", None]
    assert columns["popularity"].to_pylist() == [1, None, 5, 1, None]
    assert columns["popularity"].type == pa.int64()
    assert columns["product__is_discounted__v1"].to_pylist() == [None, None, True, None, None]
    assert columns["product__is_discounted__v1"].type == pa.bool_()
    assert columns["product__price_usd__v1"].to_pylist() == [None, None, 12.5, None, None]
    expected = store.rows("product", ["p1"]).to_pylist()[0]
    assert {name: column[2].as_py() for name, column in columns.items()} == expected
    columns, unknown = route
    assert unknown == 1 and "__spindle_key" not in columns
    assert columns["route__n__v1"].to_pylist() == [None, None, 1.5]
    assert columns["origin"].to_pylist() == ["JFK", None, "EWR"]
    store.close()


def test_workspace_config_names_the_store(tmp_path: Path) -> None:
    config = WorkspaceConfig(name="w", online_store_url="sqlite:///state/features.db")
    workspace = Workspace(root=tmp_path, config=config)
    assert workspace.online_store_path == tmp_path / "state" / "features.db"
    assert workspace.online_store_url == f"sqlite:///{tmp_path / 'state' / 'features.db'}"
    redis = Workspace(root=tmp_path, config=WorkspaceConfig(name="w", online_store_url="redis://h"))
    assert redis.online_store_url == "redis://h"
    default = Workspace(root=tmp_path, config=WorkspaceConfig(name="w"))
    assert default.online_store_url == f"sqlite:///{tmp_path / '.spindle' / 'online.db'}"


def _partition(tables: Path, entity: str, day: str) -> pa.Table:
    rows = DeltaTable(str(tables / "features" / entity)).to_pyarrow_table(
        filters=[("date", "=", day)]
    )
    return rows.drop_columns(["date"]).sort_by(f"{entity}_id")


def test_catch_up_applies_each_missing_partition_in_order(workspace_copy: Path) -> None:
    """An online store left at day 2 (an outage) catches up day by day to day 4, then holds
    exactly day 4's values; a rerun and an older day change nothing. (Day 1 has no user rows:
    users logged on a day are not known at its 00:00.)"""
    days = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
    with Context.open(workspace_copy) as ctx:
        tables = ctx.workspace.tables_dir
        views = {name: view.keys for name, view in ctx.features.views().items()}
        store = OnlineStore(workspace_copy / "fresh.db")
        first = catch_up_online(store, tables, days[1], views=views)
        assert [(r.entity, r.partition) for r in first] == [("product", days[1]), ("user", days[1])]
        assert first[0].inserted == _partition(tables, "product", days[1]).num_rows
        results = catch_up_online(store, tables, days[3], views=views)
        assert [(r.entity, r.partition) for r in results] == [
            ("product", days[2]),
            ("product", days[3]),
            ("user", days[2]),
            ("user", days[3]),
        ]
        assert all(not r.skipped and not r.rewritten for r in results)
        assert any(r.unchanged > 0 for r in results)  # incremental: not every row rewritten
        assert store.watermark("product") == store.watermark("user") == days[3]
        for entity in ("product", "user"):
            expected = _partition(tables, entity, days[3])
            held = store.backend.read(entity)
            assert held is not None
            held = held.sort_by(f"{entity}_id")
            assert held.num_rows == expected.num_rows
            for name in expected.column_names:
                if name == "feature_ts":
                    continue  # an unchanged row keeps the day it last changed
                got, want = held[name].to_pylist(), expected[name].to_pylist()
                if held.schema.field(name).type != expected.schema.field(name).type:
                    want = [None if v is None else str(v) for v in want]  # dates as ISO text
                assert got == want, name
        version = store.version()
        again = catch_up_online(store, tables, days[3], views=views)  # a rerun: the day is restated
        assert all(r.inserted == r.updated == r.deleted == 0 for r in again)
        assert catch_up_online(store, tables, days[1])[
            0
        ].skipped  # default: every table  # an older day
        assert store.version() != version  # the restated day moved the version, nothing else
        store.close()


def test_the_store_serves_what_an_example_at_the_days_end_would_take() -> None:
    """An event-time partition (a departure per plane, ``feature_ts`` when it was known): per
    plane the online store keeps the latest row known before the next 00:00 and within the TTL
    at that time, as a training example at the end of the day would join it."""
    from spindle.features._online import served_rows

    day = dt.datetime(2013, 1, 2)
    rows = pa.table(
        {
            "tailnum": ["N1", "N1", "N2", "N3", "N3"],
            "d": [1.0, 2.0, 3.0, 4.0, 5.0],
            "feature_ts": pa.array(
                [
                    day + dt.timedelta(hours=9),
                    day + dt.timedelta(hours=14),  # N1's latest by the day's end
                    day + dt.timedelta(hours=11, minutes=59),  # older than 12h at 24:00
                    day + dt.timedelta(hours=20),  # N3's latest known by the day's end
                    day + dt.timedelta(hours=24, minutes=30),  # left after midnight
                ],
                pa.timestamp("us"),
            ),
        }
    )
    served = served_rows(rows, ["tailnum"], "2013-01-02", 12 * 3600)
    assert dict(zip(served["tailnum"].to_pylist(), served["d"].to_pylist(), strict=True)) == {
        "N1": 2.0,
        "N3": 4.0,
    }
    everything = served_rows(rows, ["tailnum"], "2013-01-02", None)
    assert everything["d"].to_pylist() == [2.0, 3.0, 4.0]  # no TTL: still nothing after 24:00
