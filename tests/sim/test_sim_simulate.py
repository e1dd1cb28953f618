"""simulate(): layout, the raw-table contract, determinism, behaviour and the scale knob."""

from __future__ import annotations

import datetime as dt
import math
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

import spindle.sim as sim
from spindle.core import ConfigError, SpindleError
from spindle.sim import COUNTRIES, PRODUCT_TYPES, TABLES, Fault, SimulationResult, simulate
from tests.sim.simdata import DAYS, SCALE, SEED, START, day, digests, read

TS, DATE, STR, F64 = pa.timestamp("us"), pa.date32(), pa.string(), pa.float64()
CONTRACT: dict[str, list[tuple[str, pa.DataType]]] = {  # docs/contracts.md, "Raw logs"
    "products": [
        ("product_id", STR), ("name", STR), ("product_type", STR), ("list_price", F64),
        ("currency", STR), ("is_partner", pa.bool_()), ("created_date", DATE),
        ("discount_pct", F64), ("date", DATE),
    ],
    "users": [("user_id", STR), ("country", STR), ("signup_date", DATE), ("date", DATE)],
    "fx_rates": [("date", DATE), ("currency", STR), ("usd_per_unit", F64)],
    "searches": [
        ("search_id", STR), ("ts", TS), ("user_id", STR), ("country", STR), ("query", STR),
        ("date", DATE),
    ],
    "impressions": [
        ("impression_id", STR), ("search_id", STR), ("ts", TS), ("user_id", STR),
        ("product_id", STR), ("position", pa.int32()), ("clicked", pa.bool_()),
        ("true_purchase_prob", F64), ("true_relevance", F64), ("date", DATE),
    ],
    "purchases": [
        ("transaction_id", STR), ("ts", TS), ("search_id", STR), ("user_id", STR),
        ("product_id", STR), ("price", F64), ("currency", STR), ("quantity", pa.int32()),
        ("discount_pct", F64), ("date", DATE),
    ],
    "fraud_flags": [("transaction_id", STR), ("flagged_ts", TS), ("reason", STR), ("date", DATE)],
}  # fmt: skip
Baseline = tuple[Path, SimulationResult]


def test_public_names_are_sorted_and_complete() -> None:
    public = {n for n in vars(sim) if not n.startswith("_") and n != "annotations"}
    # ruff's RUF022 order (as in spindle.core): CONSTANTS, then Classes, then functions.
    assert sim.__all__ == sorted(sim.__all__, key=lambda n: (not n.isupper(), n[0].islower(), n))
    assert set(sim.__all__) == public
    assert dict(COUNTRIES)["US"] == "USD" and COUNTRIES["DE"] == COUNTRIES["FR"] == "EUR"
    assert PRODUCT_TYPES == ("yarn", "needles", "hooks", "patterns", "kits", "notions")
    assert set(TABLES) == set(CONTRACT)
    assert len(sim.FAULT_KINDS) == 8


def test_every_partition_matches_the_contract(baseline: Baseline) -> None:
    root, result = baseline
    for table, columns in CONTRACT.items():
        files = sorted((root / table).glob("date=*/*"))
        assert [f.parent.name for f in files] == [f"date={d}" for d in result.dates]
        assert {f.name for f in files} == {"part-00000.parquet"}
        for date in result.dates:
            got = read(root, table, date)
            assert [(f.name, f.type) for f in got.schema] == columns, (table, date)
            assert pc.all(pc.equal(got["date"], pa.scalar(date, DATE))).as_py() in (True, None)
    assert not [f for f in root.rglob("*") if f.name.startswith(".")]  # no temp files left


def test_result_counts_what_was_written(baseline: Baseline) -> None:
    root, result = baseline
    assert result.dates == tuple(day(i) for i in range(1, DAYS + 1))
    assert result.rows == {t: read(root, t).num_rows for t in TABLES}
    assert result.impressions == result.rows["impressions"] > 0
    assert result.out_dir == root and result.seconds > 0 and result.faults == ()


def test_same_arguments_give_identical_bytes(baseline: Baseline, tmp_path: Path) -> None:
    root, _ = baseline
    simulate(tmp_path / "raw", start=START, days=DAYS, seed=SEED, scale=SCALE)
    assert digests(tmp_path / "raw") == digests(root)
    other = tmp_path / "other"
    simulate(other, start=START, days=1, seed=SEED + 1, scale=SCALE)
    assert read(other, "impressions", START) != read(root, "impressions", START)


def test_split_runs_equal_one_run(tmp_path: Path) -> None:
    faults = [Fault.parse(f, START) for f in ("late_data@3", "label_flip@4", "schema_change@2")]
    common = {"seed": SEED, "scale": 0.15, "faults": faults, "epoch": START}
    simulate(tmp_path / "one", start=START, days=6, **common)  # type: ignore[arg-type]
    simulate(tmp_path / "two", start=START, days=3, **common)  # type: ignore[arg-type]
    simulate(tmp_path / "two", start=day(4), days=3, **common)  # type: ignore[arg-type]
    one = digests(tmp_path / "one")
    assert one == digests(tmp_path / "two")
    # A fraud flag raised on day 6 or later can belong to a purchase of day 1-4: the second
    # half regenerated days 1-3 in memory to find it.
    assert read(tmp_path / "one", "fraud_flags").num_rows > 0


def test_purchases_are_clicked_impressions_at_the_listed_price(baseline: Baseline) -> None:
    root, _ = baseline
    for n in range(1, DAYS + 1):
        imps = read(root, "impressions", day(n)).to_pylist()
        clicked = {(r["search_id"], r["product_id"]) for r in imps if r["clicked"]}
        products = {r["product_id"]: r for r in read(root, "products", day(n)).to_pylist()}
        purchases = read(root, "purchases", day(n)).to_pylist()
        assert purchases
        for p in purchases:
            assert (p["search_id"], p["product_id"]) in clicked
            listed = products[p["product_id"]]
            assert p["currency"] == listed["currency"]
            assert p["discount_pct"] == listed["discount_pct"]
            digits = 0 if p["currency"] == "JPY" else 2
            expected = round(listed["list_price"] * (1 - listed["discount_pct"]), digits)
            assert p["price"] == pytest.approx(expected, abs=0.0101)  # rounding of halves
            assert 1 <= p["quantity"] <= 3
            assert (
                dt.datetime.combine(day(n), dt.time())
                <= p["ts"]
                < dt.datetime.combine(day(n + 1), dt.time())
            )


def test_behaviour_is_plausible_and_positions_are_random(baseline: Baseline) -> None:
    root, _ = baseline
    imps = read(root, "impressions")
    searches = read(root, "searches")
    purchases = read(root, "purchases")
    bought_share = len(set(purchases["search_id"].to_pylist())) / searches.num_rows
    assert 0.30 <= bought_share <= 0.45
    ctr = pc.mean(imps["clicked"].cast(pa.float64())).as_py()
    assert 0.03 <= ctr <= 0.15
    position = imps["position"].to_numpy()
    relevance = imps["true_relevance"].to_numpy()
    exam = 1.0 / np.log2(position + 2.0)
    assert np.allclose(imps["true_purchase_prob"].to_numpy(), exam * relevance)
    # Shown in random order: relevance does not depend on position.
    top, bottom = relevance[position < 5].mean(), relevance[position >= 15].mean()
    assert abs(top - bottom) < 0.15 * relevance.mean()
    per_search = pc.value_counts(imps["search_id"]).field("counts").to_numpy()
    assert per_search.max() == 20 and per_search.mean() > 19
    for table, key in (("searches", "search_id"), ("impressions", "impression_id")):
        column = read(root, table)[key]
        assert pc.count_distinct(column).as_py() == len(column)
    assert pc.count_distinct(purchases["transaction_id"]).as_py() == purchases.num_rows
    queries = searches["query"].to_pylist()
    assert all(q and q == q.lower() and 1 <= len(q.split()) <= 3 for q in queries)


def test_catalogue_users_and_fx(baseline: Baseline) -> None:
    root, _ = baseline
    first, last = read(root, "products", day(1)), read(root, "products", day(DAYS))
    assert last.num_rows > first.num_rows  # new products arrive
    rows = last.to_pylist()
    assert {r["product_type"] for r in rows} == set(PRODUCT_TYPES)
    assert all(r["name"] == r["name"].lower() and r["created_date"] <= day(DAYS) for r in rows)
    assert any(r["created_date"] < START for r in rows)
    assert 0.08 <= np.mean([r["discount_pct"] > 0 for r in rows]) <= 0.25
    assert {r["discount_pct"] for r in rows} <= {0.0, 0.1, 0.2, 0.3, 0.5}
    assert 0.2 <= np.mean([r["is_partner"] for r in rows]) <= 0.4
    assert {r["currency"] for r in rows} == set(COUNTRIES.values())
    users = read(root, "users")
    epoch_users = read(root, "users", START)
    assert pc.max(epoch_users["signup_date"]).as_py() == START
    for n in range(2, DAYS + 1):  # later partitions: only that day's signups
        assert set(read(root, "users", day(n))["signup_date"].to_pylist()) == {day(n)}
    assert set(read(root, "searches")["user_id"].to_pylist()) <= set(users["user_id"].to_pylist())
    assert set(users["country"].to_pylist()) == set(COUNTRIES)
    for n in range(1, DAYS + 1):
        rates = read(root, "fx_rates", day(n)).to_pydict()
        fx = dict(zip(rates["currency"], rates["usd_per_unit"], strict=True))
        assert fx["USD"] == 1.0 and set(fx) == set(COUNTRIES.values())
        assert 1.1 < fx["GBP"] < 1.45 and 0.005 < fx["JPY"] < 0.008


def test_fraud_flags_follow_purchases_by_two_to_ten_days(tmp_path: Path) -> None:
    simulate(tmp_path, start=START, days=14, seed=SEED, scale=0.3)
    flags = read(tmp_path, "fraud_flags").to_pylist()
    purchases = {r["transaction_id"]: r for r in read(tmp_path, "purchases").to_pylist()}
    assert 0.004 < len(flags) / len(purchases) < 0.02
    for flag in flags:
        bought = purchases[flag["transaction_id"]]
        assert 2 <= (flag["date"] - bought["date"]).days <= 10
        assert flag["flagged_ts"].date() == flag["date"] and flag["reason"] == "chargeback"


def test_scale_multiplies_traffic_users_and_products(baseline: Baseline, tmp_path: Path) -> None:
    root, result = baseline
    double = simulate(tmp_path, start=START, days=DAYS, seed=SEED, scale=2 * SCALE)
    assert 1.8 < double.impressions / result.impressions < 2.2
    for table in ("users", "products"):
        ratio = read(tmp_path, table, START).num_rows / read(root, table, START).num_rows
        assert 1.9 < ratio < 2.1


def test_progress_is_called_once_per_day_in_order(tmp_path: Path) -> None:
    seen: list[dt.date] = []
    simulate(tmp_path, start=START, days=3, scale=0.05, progress=seen.append)
    assert seen == [day(1), day(2), day(3)]


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"days": 0}, "days"),
        ({"scale": 0.0}, "scale"),
        ({"scale": math.nan}, "scale"),
        ({"scale": 5000.0}, "scale"),
        ({"seed": -1}, "seed"),
        ({"epoch": dt.date(2026, 3, 2)}, "epoch"),
        ({"faults": ["late_data@2"]}, "Fault.parse"),
    ],
)
def test_bad_arguments_raise_before_writing(
    tmp_path: Path, kwargs: dict[str, object], needle: str
) -> None:
    args: dict[str, object] = {"start": START, "days": 2, "scale": 0.05, **kwargs}
    with pytest.raises(ConfigError, match=needle) as info:
        simulate(tmp_path / "raw", **args)  # type: ignore[arg-type]
    assert isinstance(info.value, SpindleError)
    assert not (tmp_path / "raw").exists()


def test_rerun_with_missing_day_removes_the_stale_partition(tmp_path: Path) -> None:
    simulate(tmp_path, start=START, days=2, scale=0.05)
    assert (tmp_path / "searches" / f"date={day(2)}").is_dir()
    simulate(tmp_path, start=START, days=2, scale=0.05, faults=[Fault("missing_day", day(2))])
    assert not (tmp_path / "searches" / f"date={day(2)}").exists()
    assert (tmp_path / "products" / f"date={day(2)}" / "part-00000.parquet").is_file()
