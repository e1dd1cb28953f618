"""core._delta: one open handle per table, fragments reused across versions, the same datasets.

Every dataset ``open_dataset`` gives must be the one deltalake builds from the log for that
version (same files in the same order, same partition and statistics expressions, same rows),
however the process got there: version after version, back in time, after a write by
another handle, after the table was removed and created again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pyarrow as pa
import pyarrow.dataset as pads
import pytest
from deltalake import DeltaTable, write_deltalake
from pyarrow import fs

from spindle.core import DataError, open_dataset, write_partition


def _day(date: str, n: int, offset: float = 0.0, extra: bool = False) -> pa.Table:
    columns = {
        "key": pa.array([f"k{i}" for i in range(n)]),
        "value": pa.array([offset + i for i in range(n)], pa.float64()),
    }
    if extra:
        columns["added"] = pa.array([i * 2 for i in range(n)], pa.int64())
    return pa.table(columns)


def _fresh(path: Path, version: int) -> pads.Dataset:
    sub = fs.SubTreeFileSystem(str(path.resolve()), fs.LocalFileSystem())
    return DeltaTable(str(path), version=version).to_pyarrow_dataset(filesystem=sub)


def _same(path: Path, version: int) -> None:
    mine, ref = open_dataset(path, version), _fresh(path, version)
    got = [(f.path, str(f.partition_expression)) for f in mine.get_fragments()]
    want = [(f.path, str(f.partition_expression)) for f in ref.get_fragments()]
    assert got == want
    assert mine.schema.equals(ref.schema)
    assert mine.to_table().equals(ref.to_table())


def test_every_version_reads_as_deltalake_builds_it(tmp_path: Path) -> None:
    path = tmp_path / "t"
    for i, date in enumerate(["2026-01-01", "2026-01-02", "2026-01-03"]):
        write_partition(path, _day(date, 3 + i), date, "t")
        _same(path, i)  # the latest, through the handle the write used
    write_partition(path, _day("2026-01-02", 2, offset=100.0), "2026-01-02", "t")  # overwrite
    write_partition(path, _day("2026-01-04", 2, extra=True), "2026-01-04", "t")  # new column
    for version in [4, 0, 3, 1, 4, 2]:  # forward, back in time, and forward again
        _same(path, version)
    assert open_dataset(path).to_table().num_rows == 3 + 2 + 5 + 2
    rows = open_dataset(path, 3).to_table(filter=pads.field("date") == "2026-01-02")
    assert sorted(rows.column("value").to_pylist()) == [100.0, 101.0]


def test_a_write_by_another_handle_is_seen_and_written_after(tmp_path: Path) -> None:
    path = tmp_path / "t"
    write_partition(path, _day("2026-01-01", 2), "2026-01-01", "t")
    open_dataset(path)  # the process holds the table at version 0
    other = _day("2026-01-02", 4).append_column("date", pa.array(["2026-01-02"] * 4))
    write_deltalake(str(path), other, mode="append", partition_by=["date"])  # version 1
    version = write_partition(path, _day("2026-01-03", 1), "2026-01-03", "t")
    assert version.version == 2
    _same(path, 2)
    assert open_dataset(path).count_rows() == 2 + 4 + 1


def test_a_table_created_again_is_not_read_from_the_old_handle(tmp_path: Path) -> None:
    path = tmp_path / "t"
    write_partition(path, _day("2026-01-01", 5), "2026-01-01", "t")
    assert open_dataset(path).count_rows() == 5
    shutil.rmtree(path)
    write_partition(path, _day("2026-02-01", 1, offset=7.0), "2026-02-01", "t")
    _same(path, 0)
    assert open_dataset(path).to_table().column("value").to_pylist() == [7.0]


def test_a_version_that_does_not_exist_is_a_one_line_error(tmp_path: Path) -> None:
    path = tmp_path / "t"
    write_partition(path, _day("2026-01-01", 1), "2026-01-01", "t")
    with pytest.raises(DataError, match=r"in version 9 .*pin a version that exists"):
        open_dataset(path, 9)
    _same(path, 0)  # the handle is still usable
    with pytest.raises(DataError, match="no Delta table"):
        open_dataset(tmp_path / "absent")


_WRITER = """
import sys
import pyarrow as pa
from spindle.core import CommitConflict, write_partition
from spindle.orchestrate import is_transient

path, writes, who = sys.argv[1], int(sys.argv[2]), sys.argv[3]
conflicts = 0
for i in range(writes):
    table = pa.table({"key": [who], "value": [float(i)]})
    while True:
        try:
            write_partition(path, table, "2026-01-01", "shared")
            break
        except CommitConflict as error:  # what the runner retries
            assert is_transient(error), error
            assert "another writer committed" in str(error) and "shared" in str(error)
            conflicts += 1
print(conflicts)
"""


def test_two_processes_writing_one_partition_retry_their_conflicts(tmp_path: Path) -> None:
    """Two processes overwrite the same partition of one table 15 times each: every commit
    conflict delta-rs reports is a ``CommitConflict`` the runner retries (a ``TransientError``,
    recognised by its type), and every write lands after its retries."""
    import subprocess
    import sys

    path = tmp_path / "shared"
    write_partition(path, pa.table({"key": ["init"], "value": [0.0]}), "2026-01-01", "shared")
    script = tmp_path / "writer.py"
    script.write_text(_WRITER)
    writers = [
        subprocess.Popen(
            [sys.executable, str(script), str(path), "15", who],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for who in ("a", "b")
    ]
    outputs = [w.communicate(timeout=300) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], [err[-2000:] for _, err in outputs]
    table = DeltaTable(str(path))
    assert table.version() >= 30  # the first write and 30 more commits, none lost
    last = table.to_pyarrow_table().to_pylist()
    assert len(last) == 1 and last[0]["value"] == 14.0
