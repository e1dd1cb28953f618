"""Every fault kind has exactly its described effect, compared with the clean baseline."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from spindle.sim import FAULT_KINDS, Fault, SimulationResult, simulate
from tests.sim.conftest import Runner
from tests.sim.simdata import DAYS, SEED, START, day, digests, read

Baseline = tuple[Path, SimulationResult]
EVENTS = ("searches", "impressions", "purchases")


def changed_files(base: Path, root: Path) -> set[str]:
    a, b = digests(base), digests(root)
    return {path for path in a.keys() | b.keys() if a.get(path) != b.get(path)}


def midnight(n: int) -> dt.datetime:
    return dt.datetime.combine(day(n), dt.time())


def on(n: int) -> str:
    return f"date={day(n).isoformat()}"


def test_the_fault_kinds() -> None:
    assert set(FAULT_KINDS) == {
        "discount_drop", "missing_day", "missing_slice", "duplicate_burst",
        "schema_change", "corrupt_rows", "label_flip", "late_data",
    }  # fmt: skip


def test_discount_drop_loses_discounted_purchases_from_then_on(
    baseline: Baseline, with_fault: Runner
) -> None:
    base, _ = baseline
    root, result = with_fault("discount_drop@3")
    assert [str(f) for f in result.faults] == [f"discount_drop@{day(3)}"]
    assert {p.split("/")[0] for p in changed_files(base, root)} == {"purchases"}
    for n in range(1, DAYS + 1):
        got, want = read(root, "purchases", day(n)), read(base, "purchases", day(n))
        if n < 3:
            assert got.equals(want)
            continue
        assert pc.sum(pc.greater(want["discount_pct"], 0)).as_py() > 0
        assert got.equals(want.filter(pc.equal(want["discount_pct"], 0.0)))


def test_missing_day_writes_no_event_partitions(baseline: Baseline, with_fault: Runner) -> None:
    base, _ = baseline
    root, result = with_fault("missing_day@2")
    gone = {f"{t}/{on(2)}/part-00000.parquet" for t in EVENTS}
    assert changed_files(base, root) == gone
    assert all(not (root / t / on(2)).exists() for t in EVENTS)
    assert (
        result.rows["searches"]
        == read(base, "searches").num_rows - read(base, "searches", day(2)).num_rows
    )


def test_missing_slice_drops_one_country_for_one_day(
    baseline: Baseline, with_fault: Runner
) -> None:
    base, _ = baseline
    root, _ = with_fault("missing_slice:DE@2")
    assert changed_files(base, root) == {f"{t}/{on(2)}/part-00000.parquet" for t in EVENTS}
    users = read(base, "users")
    german = set(users.filter(pc.equal(users["country"], "DE"))["user_id"].to_pylist())
    for table in EVENTS:
        got, want = read(root, table, day(2)), read(base, table, day(2))
        is_german = pc.is_in(want["user_id"], pa.array(sorted(german)))
        assert pc.sum(is_german).as_py() > 0
        assert got.equals(want.filter(pc.invert(is_german)))


def test_duplicate_burst_repeats_purchases_and_one_user_bursts(
    baseline: Baseline, with_fault: Runner
) -> None:
    base, _ = baseline
    root, _ = with_fault("duplicate_burst@2")
    assert {p.split("/")[1] for p in changed_files(base, root)} == {on(2)}
    searches, clean = read(root, "searches", day(2)), read(base, "searches", day(2))
    assert searches.slice(0, clean.num_rows).equals(clean)  # the burst is appended
    burst = searches.slice(clean.num_rows).to_pylist()
    assert 180 <= len(burst) <= 220
    assert len({(s["user_id"], s["query"]) for s in burst}) == 1
    assert (burst[-1]["ts"] - burst[0]["ts"]) <= dt.timedelta(minutes=5)
    imps = read(root, "impressions", day(2))
    burst_ids = pa.array([s["search_id"] for s in burst])
    assert pc.sum(pc.is_in(imps["search_id"], burst_ids)).as_py() == 20 * len(burst)
    counts = pc.value_counts(read(root, "purchases", day(2))["transaction_id"])
    repeated = counts.field("counts").to_numpy()
    assert repeated.max() <= 20 and set(repeated) - {1} <= set(range(5, 21))
    assert 0.02 < np.mean(repeated > 1) < 0.1


def test_schema_change_adds_device_from_then_on(baseline: Baseline, with_fault: Runner) -> None:
    base, _ = baseline
    root, _ = with_fault("schema_change@3")
    assert {p.split("/")[0] for p in changed_files(base, root)} == {"impressions"}
    for n in range(1, DAYS + 1):
        got, want = read(root, "impressions", day(n)), read(base, "impressions", day(n))
        if n < 3:
            assert got.equals(want)
            continue
        assert got.column_names == [*want.column_names, "device"]
        assert got.schema.field("device").type == pa.string()
        assert set(got["device"].to_pylist()) == {"web", "ios", "android"}
        assert got.drop_columns(["device"]).equals(want)


def test_corrupt_rows_break_prices_currencies_ids_and_timestamps(tmp_path: Path) -> None:
    faults = _parse("corrupt_rows@2")
    simulate(tmp_path, start=START, days=2, seed=SEED, scale=2.0, faults=faults)
    purchases = read(tmp_path, "purchases", day(2)).to_pylist()
    day_start = dt.datetime.combine(day(2), dt.time())
    kinds = {
        "negative": [p for p in purchases if p["price"] < 0],
        "nan": [p for p in purchases if p["price"] != p["price"]],
        "currency": [p for p in purchases if p["currency"] == "XXX"],
        "null id": [p for p in purchases if p["product_id"] is None],
        "ts": [p for p in purchases if not day_start <= p["ts"] < day_start + dt.timedelta(1)],
    }
    assert all(kinds.values()), {k: len(v) for k, v in kinds.items()}
    assert 0.01 < sum(map(len, kinds.values())) / len(purchases) < 0.04
    products = read(tmp_path, "products", day(2)).to_pylist()
    bad = [
        p
        for p in products
        if p["product_id"] is None
        or p["currency"] == "XXX"
        or not p["list_price"] > 0  # negative or NaN
    ]
    assert 0.004 < len(bad) / len(products) < 0.02
    clean = read(tmp_path, "purchases", day(1)).to_pylist()
    assert all(p["price"] > 0 and p["currency"] != "XXX" and p["product_id"] for p in clean)
    assert all(p["list_price"] > 0 for p in read(tmp_path, "products", day(1)).to_pylist())


def test_label_flip_anticorrelates_labels_with_the_truth(
    baseline: Baseline, with_fault: Runner
) -> None:
    base, _ = baseline
    root, _ = with_fault("label_flip@2")
    assert {p.split("/")[1] for p in changed_files(base, root)} <= {on(2), on(4), on(5)}
    got, want = read(root, "impressions", day(2)), read(base, "impressions", day(2))
    truth = ["impression_id", "product_id", "position", "true_purchase_prob", "true_relevance"]
    assert got.select(truth).equals(want.select(truth))
    n_got = read(root, "purchases", day(2)).num_rows
    n_want = read(base, "purchases", day(2)).num_rows
    assert 0.7 < n_got / n_want < 1.3
    assert _bought_relevance_gap(root) < 0 < _bought_relevance_gap(base)


def _bought_relevance_gap(root: Path) -> float:
    """Mean true relevance of purchased impressions minus that of the others, on day 2."""
    imps = read(root, "impressions", day(2))
    bought = read(root, "purchases", day(2))
    keys = pc.binary_join_element_wise(imps["search_id"], imps["product_id"], "|")
    sold = pc.binary_join_element_wise(bought["search_id"], bought["product_id"], "|")
    mask = pc.is_in(keys, sold).to_numpy(zero_copy_only=False)
    relevance = imps["true_relevance"].to_numpy()
    return float(relevance[mask].mean() - relevance[~mask].mean())


def test_late_data_moves_a_third_of_a_day_into_the_next(
    baseline: Baseline, with_fault: Runner
) -> None:
    base, _ = baseline
    root, _ = with_fault("late_data@2")
    changed = changed_files(base, root)
    assert {p.split("/")[1] for p in changed} == {on(2), on(3)}
    assert {p.split("/")[0] for p in changed} == set(EVENTS)
    for table, key in (("searches", "search_id"), ("impressions", "impression_id")):
        kept = read(root, table, day(2)).num_rows / read(base, table, day(2)).num_rows
        assert 0.6 < kept < 0.8
        arrived = read(root, table, day(3))
        late = arrived.filter(pc.less(arrived["ts"], pa.scalar(midnight(3), pa.timestamp("us"))))
        assert late.num_rows > 0
        assert set(late["date"].to_pylist()) == {day(3)}  # stamped with the arrival day
        assert all(i.startswith(f"{key[0]}{day(2):%Y%m%d}") for i in late[key].to_pylist())
        both = set(read(root, table, day(2))[key].to_pylist()) | set(arrived[key].to_pylist())
        baseline_ids = set(read(base, table, day(2))[key].to_pylist())
        baseline_ids |= set(read(base, table, day(3))[key].to_pylist())
        assert both == baseline_ids
    assert read(root, "purchases").num_rows == read(base, "purchases").num_rows


def test_faults_before_the_range_reach_in_only_when_they_should(tmp_path: Path) -> None:
    faults = _parse("late_data@1", "discount_drop@1", "missing_day@1")
    simulate(tmp_path, start=day(2), days=1, seed=SEED, scale=0.2, faults=faults, epoch=START)
    purchases = read(tmp_path, "purchases", day(2))
    assert pc.max(purchases["discount_pct"]).as_py() == 0.0  # discount_drop persists
    searches = read(tmp_path, "searches", day(2))
    early = pc.less(searches["ts"], pa.scalar(midnight(2), pa.timestamp("us")))
    assert pc.sum(early).as_py() > 0  # the late third of day 1 arrived
    assert not (tmp_path / "searches" / on(1)).exists()


def _parse(*texts: str) -> list[Fault]:
    return [Fault.parse(t, START) for t in texts]
