"""The online-store backend contract: every backend passes this same suite.

SQLite (the default) runs it for real. A new backend (Redis) adds a factory to ``BACKENDS``:
a function of a temp dir that opens a *new connection* to one store per call (the concurrency
test opens a writer and a reader).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from spindle.core import FeatureError
from spindle.features import OnlineStoreBackend, SQLiteOnlineStore, open_online_backend

Factory = Callable[[Path], OnlineStoreBackend]
BACKENDS: dict[str, Factory] = {
    "sqlite": lambda tmp: SQLiteOnlineStore(tmp / "online.db"),
    "sqlite-url": lambda tmp: open_online_backend(f"sqlite:///{tmp / 'online.db'}"),
}
KEY = "product_id"


@pytest.fixture(params=[*sorted(BACKENDS), "postgresql"])
def factory(
    request: pytest.FixtureRequest, tmp_path: Path
) -> Iterator[Callable[[], OnlineStoreBackend]]:
    """Opens a new connection to one store per call: a temp dir's SQLite file, or a database
    of its own on the throwaway PostgreSQL server (``tests/postgres.py``)."""
    opened: list[OnlineStoreBackend] = []
    url = (
        request.getfixturevalue("postgres").database("online")
        if request.param == "postgresql"
        else ""
    )

    def open_one() -> OnlineStoreBackend:
        if url:
            opened.append(open_online_backend(url))
        else:
            opened.append(BACKENDS[request.param](tmp_path))
        return opened[-1]

    yield open_one
    for backend in opened:
        backend.close()


def _day(day: str, prices: dict[str, float | None], popular: bool = True) -> pa.Table:
    ids = sorted(prices)
    columns: dict[str, pa.Array] = {
        KEY: pa.array(ids, pa.string()),
        "price__v1": pa.array([prices[i] for i in ids], pa.float64()),
        "is_new__v1": pa.array([i.endswith("9") for i in ids], pa.bool_()),
        "feature_ts": pa.array([dt.datetime.fromisoformat(day)] * len(ids), pa.timestamp("us")),
    }
    if popular:
        columns["popularity"] = pa.array([len(i) for i in ids], pa.int64())
    return pa.table(columns)


def test_first_partition_inserts_and_reads_back_typed(
    factory: Callable[[], OnlineStoreBackend],
) -> None:
    store = factory()
    assert store.watermark("product") is None and store.read("product") is None
    done = store.materialize(
        "product", KEY, _day("2026-01-01", {"p1": 1.0, "p9": None}), "2026-01-01"
    )
    assert (done.inserted, done.updated, done.deleted, done.skipped) == (2, 0, 0, False)
    assert store.watermark("product") == done.watermark == "2026-01-01"
    rows = store.read("product", ["p9", "nope", "p1"])
    assert rows is not None
    assert rows[KEY].to_pylist() == ["p9", "p1"]  # the order asked, unknown keys left out
    assert rows["price__v1"].to_pylist() == [None, 1.0]
    assert rows.schema.field("is_new__v1").type == pa.bool_()
    assert rows["is_new__v1"].to_pylist() == [True, False]
    assert rows["popularity"].type == pa.int64()
    assert store.read("user") is None  # entities are independent


def test_next_partition_writes_only_what_changed(factory: Callable[[], OnlineStoreBackend]) -> None:
    store = factory()
    store.materialize(
        "product", KEY, _day("2026-01-01", {"p1": 1.0, "p2": 2.0, "p3": 3.0}), "2026-01-01"
    )
    version = store.version()
    # p1 unchanged (only feature_ts moves), p2 changed, p3 delisted, p4 new
    done = store.materialize(
        "product", KEY, _day("2026-01-02", {"p1": 1.0, "p2": 2.5, "p4": 4.0}), "2026-01-02"
    )
    assert (done.inserted, done.updated, done.deleted, done.unchanged) == (1, 1, 1, 1)
    assert store.version() != version
    rows = store.read("product")
    assert rows is not None
    values = dict(zip(rows[KEY].to_pylist(), rows["price__v1"].to_pylist(), strict=True))
    assert values == {"p1": 1.0, "p2": 2.5, "p4": 4.0}
    stamps = dict(zip(rows[KEY].to_pylist(), rows["feature_ts"].to_pylist(), strict=True))
    assert stamps["p1"].startswith("2026-01-01") and stamps["p2"].startswith("2026-01-02")


def test_partitions_at_or_before_the_watermark_are_skipped(
    factory: Callable[[], OnlineStoreBackend],
) -> None:
    store = factory()
    store.materialize("product", KEY, _day("2026-01-02", {"p1": 1.0}), "2026-01-02")
    version = store.version()
    for day in ("2026-01-01", "2026-01-02"):
        done = store.materialize("product", KEY, _day(day, {"p1": 9.0}), day)
        assert done.skipped and done.watermark == "2026-01-02"
    assert store.version() == version
    restated = store.materialize(
        "product", KEY, _day("2026-01-02", {"p1": 9.0}), "2026-01-02", restate=True
    )
    assert restated.updated == 1 and not restated.skipped
    rows = store.read("product", ["p1"])
    assert rows is not None and rows["price__v1"].to_pylist() == [9.0]


def test_a_change_log_partition_deletes_nothing(factory: Callable[[], OnlineStoreBackend]) -> None:
    store = factory()
    store.materialize("product", KEY, _day("2026-01-01", {"p1": 1.0, "p2": 2.0}), "2026-01-01")
    done = store.materialize(
        "product", KEY, _day("2026-01-02", {"p2": 5.0}), "2026-01-02", snapshot=False
    )
    assert (done.updated, done.deleted) == (1, 0)
    rows = store.read("product")
    assert rows is not None and rows.num_rows == 2


@pytest.mark.parametrize("problem", ["duplicate", "null_key", "no_key"])
def test_bad_partition_raises_and_writes_nothing(
    factory: Callable[[], OnlineStoreBackend], problem: str
) -> None:
    store = factory()
    store.materialize("product", KEY, _day("2026-01-01", {"p1": 1.0}), "2026-01-01")
    version = store.version()
    bad = _day("2026-01-02", {"p1": 2.0, "p2": 3.0})
    if problem == "duplicate":
        bad = pa.concat_tables([bad, bad.slice(0, 1)])
    elif problem == "null_key":
        bad = bad.set_column(0, KEY, pa.array(["p1", None], pa.string()))
    else:
        bad = bad.drop_columns([KEY])
    with pytest.raises(FeatureError, match=KEY):
        store.materialize("product", KEY, bad, "2026-01-02")
    assert store.watermark("product") == "2026-01-01" and store.version() == version
    rows = store.read("product")
    assert rows is not None and rows.to_pydict()["price__v1"] == [1.0]


def test_a_new_column_rewrites_the_entity(factory: Callable[[], OnlineStoreBackend]) -> None:
    store = factory()
    store.materialize("product", KEY, _day("2026-01-01", {"p1": 1.0}, popular=False), "2026-01-01")
    done = store.materialize(
        "product", KEY, _day("2026-01-02", {"p1": 1.0, "p22": 2.0}), "2026-01-02"
    )
    assert done.rewritten and done.inserted == 2
    rows = store.read("product")
    assert rows is not None and rows["popularity"].to_pylist() == [2, 3]
    with pytest.raises(FeatureError, match="complete snapshot"):
        store.materialize(
            "product",
            KEY,
            _day("2026-01-03", {"p1": 1.0}, popular=False),
            "2026-01-03",
            snapshot=False,
        )


def test_a_reader_never_sees_half_a_partition(factory: Callable[[], OnlineStoreBackend]) -> None:
    """Each day rewrites every row with that day's value and a different number of keys: a
    reader must always see one day whole (one value, that day's row count)."""
    writer, reader = factory(), factory()
    days = [(dt.date(2026, 1, 1) + dt.timedelta(days=i)).isoformat() for i in range(16)]
    sizes = {day: 1000 + 150 * (i % 4) for i, day in enumerate(days)}
    stop, seen, errors = threading.Event(), set[str](), list[str]()

    def read() -> None:
        while not stop.is_set():
            rows = reader.read("product")
            if rows is None:
                continue
            stamps = set(rows["feature_ts"].to_pylist())
            day = min(stamps)[:10]
            if len(stamps) != 1 or rows.num_rows != sizes[day]:
                errors.append(f"{len(stamps)} days, {rows.num_rows} rows (day {day})")
            seen.add(day)

    thread = threading.Thread(target=read)
    thread.start()
    try:
        for i, day in enumerate(days):
            prices = {f"p{k:05d}": float(i) for k in range(sizes[day])}
            writer.materialize("product", KEY, _day(day, prices), day)
    finally:
        stop.set()
        thread.join()
    assert not errors, errors[:3]
    assert len(seen) > 1  # the reader did overlap with several partitions


def test_read_rows_many_holds_what_read_many_does(
    factory: Callable[[], OnlineStoreBackend],
) -> None:
    """The stored Python values of several entities (one snapshot) type back to the same
    tables :meth:`read_many` gives."""
    store = factory()
    store.materialize("product", KEY, _day("2026-01-01", {"p1": 1.0, "p9": None}), "2026-01-01")
    asks = [("product", ["p9", "nope", "p1"]), ("product", None), ("user", ["u1"])]
    stored = store.read_rows_many(asks)
    tables = store.read_many(asks)
    assert stored[2] is None and tables[2] is None
    for rows, table in zip(stored[:2], tables[:2], strict=True):
        assert rows is not None and table is not None
        assert rows.key == KEY and list(rows.names) == table.column_names
        assert rows.table().equals(table)
    first = stored[0]
    assert first is not None
    assert [row[list(first.names).index(KEY)] for row in first.rows] == ["p9", "p1"]
    assert dict(zip(first.names, first.types, strict=True))["is_new__v1"] == "bool"


def test_delete_keys_removes_rows_and_every_copy(
    factory: Callable[[], OnlineStoreBackend], tmp_path: Path
) -> None:
    store = factory()
    assert store.delete_keys("product", ["p1"]) == 0  # nothing materialised yet
    store.materialize(
        "product", KEY, _day("2026-01-01", {"pgone1": 1.0, "pgone2": 2.0, "p3": 3.0}), "2026-01-01"
    )
    version = store.version()
    assert store.delete_keys("product", ["pgone1", "pgone2", "nope"]) == 2
    assert store.version() != version  # readers reload
    rows = store.read("product")
    assert rows is not None and rows[KEY].to_pylist() == ["p3"]
    assert store.watermark("product") == "2026-01-01"
    assert store.delete_keys("product", ["pgone1"]) == 0  # idempotent
    # no copy left in the store's files (freed pages, WAL): a deletion request's promise (a
    # PostgreSQL server's own files and WAL are its administrator's; its table is rewritten)
    files = [p for p in tmp_path.iterdir() if p.name.startswith("online.db")]
    assert not any(b"pgone" in p.read_bytes() for p in files)
