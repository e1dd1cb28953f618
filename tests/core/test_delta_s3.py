"""core._delta on an S3-compatible object store (moto's server on loopback, a real HTTP server).

The same functions that keep Delta tables in a local folder keep them under ``s3://``: partition
overwrites, versions, time travel, schema evolution, a lost commit race as a CommitConflict, and
an unreachable endpoint, a missing bucket or bad credentials as one DataError line naming the
URL — quickly, without a storm of retries.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from tests.objectstore import Bucket, MotoServer, options_for, running_moto

from spindle.core import (
    DataError,
    Location,
    current_version,
    open_dataset,
    open_table,
    table_exists,
    write_partition,
)


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    yield from running_moto()


@pytest.fixture
def s3_bucket(moto: MotoServer) -> Bucket:
    return moto.bucket()


def _day(n: int, offset: float = 0.0) -> pa.Table:
    return pa.table(
        {
            "key": pa.array([f"k{i}" for i in range(n)]),
            "value": pa.array([offset + i for i in range(n)], pa.float64()),
        }
    )


def _root(bucket: Bucket) -> Location:
    return Location.of(f"{bucket.url}/ws/tables", bucket.options)


def test_partitions_versions_and_time_travel(s3_bucket: Bucket) -> None:
    table = _root(s3_bucket) / "raw" / "orders"
    assert not table_exists(table)
    assert write_partition(table, _day(3), "2026-01-01", "raw/orders").version == 0
    assert write_partition(table, _day(2, 10), "2026-01-02", "raw/orders").version == 1
    # re-running a day replaces its partition (idempotent), as locally
    version = write_partition(table, _day(4, 100), "2026-01-01", "raw/orders")
    assert version.version == 2
    assert version.uri == f"{s3_bucket.url}/ws/tables/raw/orders"
    assert table_exists(table)
    assert current_version(table, "raw/orders").version == 2
    latest = open_dataset(table).to_table().sort_by([("date", "ascending"), ("key", "ascending")])
    assert latest.column("value").to_pylist() == [100.0, 101.0, 102.0, 103.0, 10.0, 11.0]
    first = open_dataset(table, 0).to_table()
    assert sorted(first.column("value").to_pylist()) == [0.0, 1.0, 2.0]
    assert open_dataset(table, 1).count_rows() == 5
    assert open_table(table, 1).version() == 1
    # everything is in the bucket: data files and the commit log
    keys = s3_bucket.keys("ws/tables/raw/orders")
    assert "ws/tables/raw/orders/_delta_log/00000000000000000002.json" in keys
    assert any(k.startswith("ws/tables/raw/orders/date=2026-01-02/") for k in keys)


def test_schema_evolves_additively(s3_bucket: Bucket) -> None:
    table = _root(s3_bucket) / "stats"
    write_partition(table, _day(2), "2026-01-01", "stats")
    wider = _day(2).append_column("added", pa.array([1, 2], pa.int64()))
    write_partition(table, wider, "2026-01-02", "stats")
    rows = open_dataset(table).to_table()
    assert "added" in rows.column_names
    assert rows.column("added").null_count == 2


_WRITER = """
import json, sys
import pyarrow as pa
from spindle.core import CommitConflict, Location, write_partition

url, options, writes, who = sys.argv[1], json.loads(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
path = Location.of(url, options)
conflicts = 0
for i in range(writes):
    table = pa.table({"key": [who], "value": [float(i)]})
    while True:
        try:
            write_partition(path, table, "2026-01-01", "shared")
            break
        except CommitConflict as error:  # what the runner retries
            assert "another writer committed" in str(error), error
            conflicts += 1
print(conflicts)
"""


def test_two_processes_writing_one_partition_meet_as_commit_conflicts(
    s3_bucket: Bucket, tmp_path: Path
) -> None:
    """Two processes overwrite the same partition of one table on S3 8 times each: delta-rs
    puts each commit file only if it is absent (moto honours ``If-None-Match``), so a lost race
    is a ``CommitConflict`` that is retried, and no commit is lost or overwritten."""
    table = _root(s3_bucket) / "shared"
    write_partition(table, pa.table({"key": ["init"], "value": [0.0]}), "2026-01-01", "shared")
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    writers = [
        subprocess.Popen(
            [sys.executable, str(script), table.url, json.dumps(s3_bucket.options), "8", who],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("a", "b")
    ]
    outputs = [w.communicate(timeout=300) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], [err[-2000:] for _, err in outputs]
    assert current_version(table, "shared").version == 16  # the first write and 16 more
    last = open_dataset(table).to_table().to_pylist()
    assert len(last) == 1 and last[0]["value"] == 7.0


def test_location_operations(s3_bucket: Bucket) -> None:
    root = _root(s3_bucket)
    write_partition(root / "raw" / "a", _day(1), "2026-01-01", "raw/a")
    write_partition(root / "raw" / "b", _day(1), "2026-01-01", "raw/b")
    assert [p.name for p in (root / "raw").iterdir()] == ["a", "b"]
    assert (root / "raw").is_dir() and not (root / "nothing").exists()
    assert [str(t.relative_to(root)) for t in root.delta_tables()] == ["raw/a", "raw/b"]
    assert (root / "raw" / "a").parent == root / "raw"
    assert root.size_bytes(".parquet") > 0
    note = root / "features" / "_note.json"
    note.write_bytes(b'{"a": 1}')
    assert note.read_bytes() == b'{"a": 1}'
    (root / "raw" / "b").delete()
    assert [p.name for p in (root / "raw").iterdir()] == ["a"]
    with root.lock("note"):  # a local lock for this machine's writers
        pass
    assert not (root.scratch_dir / "s3:").exists()


def test_missing_bucket_is_one_line(s3_bucket: Bucket) -> None:
    root = Location.of("s3://no-such-bucket/tables", s3_bucket.options)
    with pytest.raises(DataError) as caught:
        root.check()
    assert "s3://no-such-bucket" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(DataError) as caught:
        write_partition(root / "raw" / "x", _day(1), "2026-01-01", "raw/x")
    message = str(caught.value)
    assert "s3://no-such-bucket/tables/raw/x" in message and "\n" not in message


def test_unreachable_endpoint_fails_fast_in_one_line(s3_bucket: Bucket) -> None:
    options = s3_bucket.options | {"AWS_ENDPOINT_URL": "http://127.0.0.1:9"}
    root = Location.of(f"{s3_bucket.url}/tables", options)
    started = time.monotonic()
    with pytest.raises(DataError) as caught:
        root.check()
    assert "AWS_ENDPOINT_URL" in str(caught.value) and "\n" not in str(caught.value)
    with pytest.raises(DataError) as caught:
        table_exists(root / "raw" / "x")
    with pytest.raises(DataError) as caught:
        write_partition(root / "raw" / "x", _day(1), "2026-01-01", "raw/x")
    assert f"{s3_bucket.url}/tables/raw/x" in str(caught.value)
    assert "\n" not in str(caught.value)
    assert time.monotonic() - started < 60  # bounded retries, not minutes


def test_a_malformed_endpoint_is_one_line(s3_bucket: Bucket) -> None:
    options = s3_bucket.options | {"AWS_ENDPOINT_URL": "::"}
    root = Location.of(f"{s3_bucket.url}/tables", options)
    with pytest.raises(DataError) as caught:
        root.check()
    assert "\n" not in str(caught.value)


def test_bad_credentials_are_one_line() -> None:
    """A server that checks keys (moto with authentication on) refuses ours: one line naming
    the URL and what to check, from the check and from a write alike."""
    with contextlib.closing(running_moto(enforce_auth=True)) as servers:
        server = next(servers)
        options = options_for(server.endpoint) | {"AWS_ACCESS_KEY_ID": "not-a-key"}
        root = Location.of("s3://spindle-locked/tables", options)
        with pytest.raises(DataError) as caught:
            root.check()
        message = str(caught.value)
        assert "s3://spindle-locked/tables" in message and "credentials" in message
        assert "\n" not in message
        with pytest.raises(DataError) as caught:
            write_partition(root / "raw" / "x", _day(1), "2026-01-01", "raw/x")
        assert "s3://spindle-locked/tables/raw/x" in str(caught.value)
        assert "\n" not in str(caught.value)


def test_forget_deletes_and_purges_old_versions_on_the_store(s3_bucket: Bucket) -> None:
    """``spindle forget``'s table work on S3: the rows go in one commit, then vacuum, a
    checkpoint and the log before it are removed, so no older version still holds them."""
    from spindle.data import forget_in_table, purge_table

    table = _root(s3_bucket) / "raw" / "users"
    write_partition(table, _day(3), "2026-01-01", "raw/users")
    write_partition(table, _day(2, 10), "2026-01-02", "raw/users")
    assert forget_in_table(table, ["key"], ["k1"], count_only=True) == 2
    assert forget_in_table(table, ["key"], ["k1"]) == 2
    assert sorted(open_dataset(table).to_table().column("key").to_pylist()) == ["k0", "k0", "k2"]
    removed = purge_table(table)
    assert removed  # the files that held k1 are gone from the bucket
    keys = s3_bucket.keys("ws/tables/raw/users/_delta_log")
    assert not any(
        k.endswith(("00000000000000000000.json", "00000000000000000001.json")) for k in keys
    )
    assert sorted(open_dataset(table).to_table().column("key").to_pylist()) == ["k0", "k0", "k2"]
