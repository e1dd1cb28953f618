"""Feature views declared in the workspace: the view's SQL runs as of each day's cutoff over
sources spindle filters to what was known then; values match a brute-force recomputation from
the raw tables; a view cannot read the future whatever its SQL asks; bad declarations and
failing SQL are one clear error naming the file and view."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pytest

from spindle.core import ConfigError, FeatureError, open_dataset
from spindle.features import (
    FeatureRegistry,
    compute_features,
    compute_group,
    substitute_times,
    view_rows,
)

DAYS = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
DAY = DAYS[-1]


def _raw(tables: Path, source: str) -> pd.DataFrame:
    return open_dataset(tables / "raw" / source).to_table().to_pandas()


def _registry(root: Path) -> FeatureRegistry:
    return FeatureRegistry.load(root / "features")


def _add_view(root: Path, name: str, body: str) -> FeatureRegistry:
    (root / "features" / f"{name}.yaml").write_text(body)
    return _registry(root)


def test_product_view_matches_a_brute_force_recomputation(workspace_copy: Path) -> None:
    tables = workspace_copy / ".spindle" / "tables"
    rows = compute_group(tables, _registry(workspace_copy), "product", DAY).to_pandas()
    cutoff = pd.Timestamp(DAY)
    products = _raw(tables, "products")
    products = products[products["date"].astype(str) == DAY].drop_duplicates("product_id")
    fx = _raw(tables, "fx_rates")
    fx = fx[fx["date"].astype(str) == DAY].set_index("currency")["usd_per_unit"]
    flags = _raw(tables, "fraud_flags")
    fraud = set(flags.loc[flags["flagged_ts"] < cutoff, "transaction_id"])
    purchases = _raw(tables, "purchases")
    week = purchases[
        (purchases["ts"] >= cutoff - pd.Timedelta(days=7))
        & (purchases["ts"] < cutoff)
        & ~purchases["transaction_id"].isin(fraud)
    ].drop_duplicates("transaction_id")
    assert len(week) > 0  # the trailing window has purchases to count
    expected_popularity = week.groupby("product_id").size()
    expected_price = (
        products["list_price"]
        * (1 - products["discount_pct"].fillna(0.0))
        * products["currency"].map(fx)
    )
    expected = pd.DataFrame(
        {
            "price": expected_price.to_numpy(),
            "popularity": products["product_id"].map(expected_popularity).fillna(0).to_numpy(),
        },
        index=products["product_id"].to_numpy(),
    ).sort_index()
    got = rows.set_index("product_id").sort_index()
    assert list(got.index) == list(expected.index)  # one row per product of the day's snapshot
    assert got["product__price_usd__v1"].to_numpy() == pytest.approx(expected["price"].to_numpy())
    assert (got["product__popularity_7d__v1"].to_numpy() == expected["popularity"]).all()
    assert (got["popularity"].to_numpy() == expected["popularity"]).all()  # a kept column
    assert list(rows.columns[:4]) == ["product_id", "name_words", "product_type", "popularity"]
    assert rows.columns[-1] == "feature_ts" and (rows["feature_ts"] == cutoff).all()


def test_user_view_counts_only_purchases_before_the_cutoff(workspace_copy: Path) -> None:
    tables = workspace_copy / ".spindle" / "tables"
    rows = compute_group(tables, _registry(workspace_copy), "user", DAY).to_pandas()
    cutoff = pd.Timestamp(DAY)
    flags = _raw(tables, "fraud_flags")
    fraud = set(flags.loc[flags["flagged_ts"] < cutoff, "transaction_id"])
    purchases = _raw(tables, "purchases")
    known = purchases[
        (purchases["ts"] < cutoff)
        & (purchases["ts"] >= cutoff - pd.Timedelta(days=28))
        & ~purchases["transaction_id"].isin(fraud)
    ].drop_duplicates("transaction_id")
    users = _raw(tables, "users")
    visible = sorted(set(users.loc[users["date"].astype(str) < DAY, "user_id"]))
    assert sorted(rows["user_id"]) == visible  # users logged on DAY itself are not known yet
    expected = known.groupby("user_id").size()
    got = rows.set_index("user_id")["user__purchases_28d__v1"]
    assert (got == got.index.map(expected).fillna(0).astype("int64")).all()
    assert got.sum() > 0


PEEK = """group: peek
owner: me@example
entity: {{name: product, keys: [product_id]}}
sources: [purchases, products]
view:
  sql: |
    SELECT product_id, max(ts) AS last_ts, count(*) AS n,
           (SELECT max(date) FROM products) AS snapshot
    FROM purchases WHERE {where} GROUP BY product_id
features:
  - {{name: n, version: 1, dtype: int64, sql: n, encoding: {{kind: numeric}}}}
"""


def test_a_view_cannot_see_rows_at_or_after_its_cutoff(workspace_copy: Path) -> None:
    tables = workspace_copy / ".spindle" / "tables"
    day = DAYS[1]
    purchases = _raw(tables, "purchases")
    assert (purchases["ts"] >= pd.Timestamp(day)).sum() > 0  # the future exists in the table
    # The SQL asks for everything, the future included, in two ways.
    where = "ts >= TIMESTAMP '2000-01-01' OR ts >= cutoff"
    registry = _add_view(workspace_copy, "peek", PEEK.format(where=where))
    rows = view_rows(tables, registry.view("peek"), day).to_pandas()
    assert rows["last_ts"].max() < pd.Timestamp(day)
    assert rows["n"].sum() == (purchases["ts"] < pd.Timestamp(day)).sum()
    assert str(rows["snapshot"].iloc[0]) == day  # a snapshot is visible up to its own day


def test_cutoff_identifiers_are_replaced_outside_literals_only() -> None:
    literals = {"cutoff": "TIMESTAMP '2026-01-02 00:00:00'", "cutoff_date": "DATE '2026-01-02'"}
    sql = (
        "SELECT 'cutoff' AS s, \"cutoff\", t.cutoff, cutoff_date -- cutoff\n"
        "FROM t WHERE ts < CUTOFF /* cutoff */"
    )
    assert substitute_times(sql, literals) == (
        "SELECT 'cutoff' AS s, \"cutoff\", t.cutoff, DATE '2026-01-02' -- cutoff\n"
        "FROM t WHERE ts < TIMESTAMP '2026-01-02 00:00:00' /* cutoff */"
    )
    con = duckdb.connect()
    week_before = con.execute(
        substitute_times("SELECT cutoff - INTERVAL 7 DAY", literals)
    ).fetchone()
    assert week_before == (dt.datetime(2025, 12, 26),)


def test_a_failing_view_sql_names_the_file_and_view_and_writes_nothing(
    workspace_copy: Path,
) -> None:
    tables = workspace_copy / ".spindle" / "tables"
    registry = _add_view(workspace_copy, "peek", PEEK.format(where="no_such_column > 1"))
    before = open_dataset(tables / "features" / "product").to_table().num_rows
    with pytest.raises(FeatureError) as info:
        compute_features(tables, registry, DAY)
    message = str(info.value)
    assert "peek.yaml" in message and "view peek" in message and "no_such_column" in message
    assert "\n" not in message
    assert open_dataset(tables / "features" / "product").to_table().num_rows == before
    assert not (tables / "features" / "peek").exists()


def test_a_table_missing_from_the_view_sources_is_named(workspace_copy: Path) -> None:
    """Named when the workspace loads (the view may read its declared sources only), and
    again if such a view is run anyway."""
    body = PEEK.format(where="true").replace(
        "sources: [purchases, products]", "sources: [purchases]"
    )
    (workspace_copy / "features" / "peek.yaml").write_text(body)
    expected = r"reads 'products', which is not a table it may read \(purchases\); .*source"
    with pytest.raises(ConfigError, match=r"peek\.yaml: line \d+, key 'view\.sql': .*" + expected):
        _registry(workspace_copy)
    (workspace_copy / "features" / "peek.yaml").unlink()
    view = replace(_registry(workspace_copy).view("user"), sources=("purchases",))
    with pytest.raises(FeatureError, match=r"view user: key 'view\.sql': the view's SQL reads"):
        view_rows(workspace_copy / ".spindle" / "tables", view, DAY)


def test_a_duplicate_entity_key_is_refused_with_an_example(workspace_copy: Path) -> None:
    body = PEEK.format(where="true").replace("GROUP BY product_id", "GROUP BY product_id, user_id")
    registry = _add_view(workspace_copy, "peek", body)
    with pytest.raises(
        FeatureError, match=r"view peek returned \d+ rows for entity key \{'product_id'"
    ):
        view_rows(workspace_copy / ".spindle" / "tables", registry.view("peek"), DAY)


def test_a_missing_key_or_kept_column_is_named(workspace_copy: Path) -> None:
    body = PEEK.format(where="true").replace("keys: [product_id]", "keys: [product_id, sku]")
    registry = _add_view(workspace_copy, "peek", body)
    with pytest.raises(FeatureError, match=r"returns no column\(s\) \['sku'\]"):
        view_rows(workspace_copy / ".spindle" / "tables", registry.view("peek"), DAY)


BAD = """group: bad
owner: me@example
entity: {name: thing, keys: [thing_id]}
sources: [purchases, no_such_source]
ttl: two days
view: {sql: SELECT 1 AS thing_id, colour: red}
features:
  - {name: x, version: 1, dtype: int64, sql: "1", encoding: {kind: numeric}}
"""


def test_bad_declarations_are_reported_all_at_once(workspace_copy: Path) -> None:
    (workspace_copy / "features" / "bad.yaml").write_text(BAD)
    (workspace_copy / "features" / "req.yaml").write_text(
        "group: req\nowner: me@example\nsources: [nowhere]\nrequest: {columns: {q: string}}\n"
        "features:\n  - {name: y, version: 1, dtype: int64, sql: '1', encoding: {kind: numeric}}\n"
    )
    (workspace_copy / "features" / "half.yaml").write_text(
        "group: half\nowner: me@example\nentity: {name: a, keys: [a]}\nfeatures: []\n"
    )
    with pytest.raises(ConfigError) as info:
        _registry(workspace_copy)
    message = str(info.value)
    assert "bad.yaml" in message and "ttl" in message and "line 5" in message
    assert "colour" in message and "keep" in message  # an unknown key lists the allowed keys
    assert "req.yaml: line 3, key 'sources': 'nowhere' is not a declared source" in message
    assert "req.y@1" in message and "replace `sql` by `python`" in message
    assert "half.yaml" in message and "needs `entity: {name, keys}` and `view: {sql}`" in message


def test_undeclared_view_source_is_refused(workspace_copy: Path) -> None:
    body = BAD.replace("ttl: two days\n", "").replace(", colour: red", "")
    (workspace_copy / "features" / "bad.yaml").write_text(body)
    with pytest.raises(ConfigError, match="'no_such_source' is not a declared source"):
        _registry(workspace_copy)


def test_registry_lists_views_and_request_groups(workspace_copy: Path) -> None:
    registry = _registry(workspace_copy)
    views = registry.views()
    assert sorted(views) == ["product", "user"]
    product = views["product"]
    assert (product.entity, product.keys, product.ttl_s) == ("product", ("product_id",), 2 * 86400)
    assert product.keep == ("name_words", "product_type", "popularity")
    assert dict(product.event_times)["purchases"] == "ts"
    assert dict(product.event_times)["products"] is None
    assert registry.request_groups() == {"query": {"query": "string"}}
    text = registry.get("query.text@1")
    assert text.computation == "request" and text.python is not None and text.entity_keys == ()
    price = registry.get("product.price_usd@1")
    assert price.entity_keys == ("product_id",) and price.ttl_s == 2 * 86400


def test_a_changed_view_sql_changes_every_fingerprint_of_the_view(workspace_copy: Path) -> None:
    before = {ref: d.fingerprint for ref, d in _registry(workspace_copy).definitions.items()}
    path = workspace_copy / "features" / "product.yaml"
    path.write_text(path.read_text().replace("INTERVAL 7 DAY", "INTERVAL 14 DAY"))
    after = {ref: d.fingerprint for ref, d in _registry(workspace_copy).definitions.items()}
    changed = {ref for ref in before if before[ref] != after[ref]}
    assert changed == {ref for ref in before if ref.startswith("product.")}


def test_view_rows_are_ordered_by_key_and_deterministic(workspace_copy: Path) -> None:
    tables = workspace_copy / ".spindle" / "tables"
    registry = _registry(workspace_copy)
    first = compute_group(tables, registry, "user", DAY)
    second = compute_group(tables, registry, "user", DAY)
    assert first.equals(second)
    ids = first.column("user_id").to_pylist()
    assert ids == sorted(ids) and isinstance(first, pa.Table)


def test_a_materialised_view_whose_sql_changed_is_refused(workspace_copy: Path) -> None:
    tables = workspace_copy / ".spindle" / "tables"
    path = workspace_copy / "features" / "product.yaml"
    path.write_text(path.read_text().replace("INTERVAL 7 DAY", "INTERVAL 14 DAY"))
    with pytest.raises(FeatureError) as info:
        compute_features(tables, _registry(workspace_copy), DAY)
    message = str(info.value)
    assert "product.popularity_7d@1: its computation changed" in message.replace("feature ", "")
    assert "over view product (view sha256" in message and "@2" in message
