"""Raw files on an S3-compatible store (moto's server on loopback), read through a
``SourceRoot``: ``Location``'s whole-file operations (put, stat, sha256, a cached local copy),
a daily source's objects listed, dated, hashed and read like local files, and the one-line
errors (a source outside raw_dir, a file that cannot be read named by its URL, an unreachable
store)."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.objectstore import Bucket, MotoServer, options_for, running_moto

from spindle.core import ConfigError, DataError, Location, SourceDeclaration, Workspace
from spindle.data import (
    SourceRoot,
    list_partition_dates,
    raw_files_of,
    raw_partitions,
    read_source_day,
    source_files,
    unread_files,
)

CSV = "order_id,ts,price\na1,2026-01-01T10:00:00,3.5\na2,2026-01-01T11:00:00,4.0\n"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    yield from running_moto()


@pytest.fixture
def bucket(moto: MotoServer) -> Bucket:
    return moto.bucket()


def _decl(location: str) -> SourceDeclaration:
    spec: dict[str, Any] = {
        "name": "orders",
        "location": location,
        "format": "csv",
        "event_time": {"column": "ts"},
        "primary_key": ["order_id"],
        "columns": {"order_id": "string", "ts": "timestamp", "price": "float64"},
        "provenance": {"origin": "test shop"},
    }
    return SourceDeclaration.model_validate(spec)


def _put(raw: Location, key: str, text: str | bytes, tmp: Path) -> None:
    local = tmp / "upload"
    local.write_bytes(text.encode() if isinstance(text, str) else text)
    (raw / key).put_file(local)


def test_whole_files_go_up_and_come_back_as_one_cached_copy(tmp_path: Path, bucket: Bucket) -> None:
    where = Location.of(f"{bucket.url}/files/a.csv", bucket.options, scratch=tmp_path / "tmp")
    with pytest.raises(FileNotFoundError):
        where.local_copy()
    _put(where.parent, "a.csv", CSV, tmp_path)
    assert where.is_file() and where.stat()[0] == len(CSV)
    assert where.sha256() == hashlib.sha256(CSV.encode()).hexdigest()
    copy = where.local_copy()
    assert copy.read_text() == CSV and copy.is_relative_to(tmp_path / "tmp" / "objects")
    os.utime(copy, (1_000_000_000, 1_000_000_000))  # long unused
    assert where.local_copy() == copy  # kept by name, size and time: fetched once
    assert copy.stat().st_mtime > time.time() - 600  # and touched: in use (doctor keeps it)
    _put(where.parent, "a.csv", CSV + "a3,2026-01-01T12:00:00,1\n", tmp_path)
    assert where.local_copy() != copy and where.local_copy().read_text().endswith("1\n")
    assert [str(f) for f in where.parent.files()] == [where.url]
    local = Location.of(tmp_path / "here" / "b.csv")
    local.put_file(where.local_copy())
    assert local.local_copy() == local.path and local.sha256() == where.sha256()


def test_a_daily_source_on_the_store_is_listed_hashed_and_read(
    tmp_path: Path, bucket: Bucket
) -> None:
    raw = Location.of(f"{bucket.url}/raw", bucket.options, scratch=tmp_path / "tmp")
    root = SourceRoot(str(tmp_path), raw)
    decl = _decl(f"{bucket.url}/raw/orders/{{date}}.csv")
    _put(raw, "orders/2026-01-01.csv", CSV, tmp_path)
    _put(raw, "orders/2026-01-02.csv", CSV.replace("01T", "02T"), tmp_path)
    _put(raw, "stray/2026-01-01.txt", "?", tmp_path)
    assert list_partition_dates(root, decl) == ["2026-01-01", "2026-01-02"]
    assert source_files(root, decl, "2026-01-01") == [f"{raw.url}/orders/2026-01-01.csv"]
    read = read_source_day(root, decl, "2026-01-01")
    assert read.problem is None and read.table.num_rows == 2
    assert read.table.column("price").to_pylist() == [3.5, 4.0]
    (part,) = raw_partitions(root, {"orders": decl}, "2026-01-01")
    assert part.uri == f"{raw.url}/orders"
    assert unread_files(root, {"orders": decl}, raw, "2026-01-01") == ["stray/2026-01-01.txt"]
    _put(raw, "orders/2026-01-01.csv", CSV.replace("3.5", "3.6"), tmp_path)
    (changed,) = raw_partitions(root, {"orders": decl}, "2026-01-01")
    assert changed.content_hash != part.content_hash  # the object's bytes are hashed
    assert not list((tmp_path / "tmp" / "raw").glob("*/*"))  # the read's copies are removed


def test_a_bad_object_quarantines_its_day_naming_its_url(tmp_path: Path, bucket: Bucket) -> None:
    raw = Location.of(f"{bucket.url}/raw", bucket.options, scratch=tmp_path / "tmp")
    decl = _decl(f"{bucket.url}/raw/orders/{{date}}.csv").model_copy(update={"format": "jsonl"})
    _put(raw, "orders/2026-01-01.csv", b"\x00\xff not json {", tmp_path)
    read = read_source_day(SourceRoot(str(tmp_path), raw), decl, "2026-01-01")
    assert read.problem is not None and "\n" not in read.problem
    assert read.problem.startswith(f"{raw.url}/orders/2026-01-01.csv: cannot be read as jsonl")
    assert str(tmp_path) not in read.problem  # named by its URL, not the local copy


def test_a_source_outside_raw_dir_or_an_unreachable_store_is_one_line(
    tmp_path: Path, bucket: Bucket
) -> None:
    raw = Location.of(f"{bucket.url}/raw", bucket.options)
    outside = _decl("s3://elsewhere/orders/{date}.csv")
    for root in (SourceRoot(str(tmp_path), raw), tmp_path):
        with pytest.raises(DataError, match="must be under the workspace's raw_dir") as err:
            source_files(root, outside, "2026-01-01")
        assert "\n" not in str(err.value)
    dead = Location.of(f"{bucket.url}/raw", options_for("http://127.0.0.1:9"))
    decl = _decl(f"{bucket.url}/raw/orders/{{date}}.csv")
    with pytest.raises(DataError, match=r"^listing s3://.*failed") as err:
        source_files(SourceRoot(str(tmp_path), dead), decl, "2026-01-01")
    assert "\n" not in str(err.value)


def test_raw_dir_and_artifacts_url_may_be_urls_state_dir_may_not(tmp_path: Path) -> None:
    (tmp_path / "spindle.yaml").write_text(
        "name: shop\nraw_dir: s3://b/raw\nartifacts_url: s3://b/art\n"
        "storage_options: {AWS_REGION: x}\n"
    )
    ws = Workspace.load(tmp_path)
    assert ws.raw_location.url == "s3://b/raw" and dict(ws.raw_location.options) == {
        "AWS_REGION": "x"
    }
    assert ws.artifacts_location.url == "s3://b/art"
    with pytest.raises(DataError, match="object store"):
        _ = ws.raw_dir
    (tmp_path / "spindle.yaml").write_text("name: shop\n")
    ws = Workspace.load(tmp_path)
    assert ws.raw_location.path == tmp_path / "raw"
    assert ws.artifacts_location.path == tmp_path / ".spindle" / "artifacts"
    for bad in ("state_dir: s3://b/state", "raw_dir: gs://b/raw", "artifacts_url: s3://"):
        (tmp_path / "spindle.yaml").write_text(f"name: shop\n{bad}\n")
        with pytest.raises(ConfigError):
            Workspace.load(tmp_path)


def test_simulate_into_an_object_store_raw_dir_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "spindle.yaml").write_text("name: shop\nraw_dir: s3://b/raw\n")
    exe = Path(sys.executable).parent / "spindle"
    done = subprocess.run(
        [str(exe), "simulate", "--workspace", str(tmp_path), "--days", "1"],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 1 and done.stdout == ""
    (line,) = done.stderr.strip().splitlines()
    assert "raw_dir is s3://b/raw, on an object store" in line and "upload" in line
    assert not any(p.name.startswith("s3:") for p in tmp_path.rglob("*"))


def test_forget_names_raw_files_on_the_store_as_not_rewritten(tmp_path: Path) -> None:
    decl = _decl("s3://b/raw/orders/{date}.csv")
    files, notes = raw_files_of(tmp_path, decl)
    assert files == []
    assert notes == [
        "source orders: landed rows at s3://b/raw/orders/{date}.csv"
        " (on an object store: not rewritten)"
    ]
