"""Storage failures of every library become one StorageError line; the free-space floor."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import duckdb
import pytest

from spindle.core import SpindleError, StorageCheck, StorageError, TrainingError, storage_error


def test_oserrors_by_errno_name_the_file(tmp_path: Path) -> None:
    target = tmp_path / "tables" / "x.parquet"
    full = storage_error(OSError(errno.ENOSPC, "No space left on device", str(target)))
    assert full is not None and not full.read_only
    assert str(full).startswith(f"disk full writing {target} (No space left on device): ")
    assert "MB free on /" in str(full) and "move state_dir (spindle.yaml)" in str(full)
    quota = storage_error(OSError(errno.EDQUOT, "Disk quota exceeded", str(target)))
    assert quota is not None and "disk full writing" in str(quota)
    read_only = storage_error(OSError(errno.EROFS, "Read-only file system", str(target)))
    assert read_only is not None and read_only.read_only
    assert "is read-only" in str(read_only) and "remount it read-write" in str(read_only)
    for code in (errno.EACCES, errno.EPERM):
        denied = storage_error(OSError(code, "Permission denied", str(target)))
        assert denied is not None and denied.read_only
        assert f"cannot write {target}: Permission denied" in str(denied)
        assert "`chattr -i`" in str(denied)


def test_not_storage_failures_stay_as_they_are(tmp_path: Path) -> None:
    assert storage_error(PermissionError(errno.EPERM, "Operation not permitted")) is None  # kill
    assert storage_error(ValueError("bad value"), tmp_path) is None
    policy = SpindleError("team ads may not read pii: permission denied by features/user.yaml")
    assert storage_error(policy, tmp_path) is None


def test_wrapped_and_library_errors(tmp_path: Path) -> None:
    onnx = tmp_path / "scratch" / "model.onnx"
    try:
        try:
            raise OSError(errno.ENOSPC, "No space left on device")  # a write names no file
        except OSError as exc:
            raise TrainingError(f"ONNX export to {onnx} failed: {exc}") from None
    except TrainingError as wrapped:
        found = storage_error(wrapped, tmp_path)
    assert found is not None and str(found).startswith(f"disk full writing {onnx} ")
    io = duckdb.IOException(f'IO Error: Could not write file "{onnx}": No space left on device')
    duck = storage_error(io, tmp_path)
    assert duck is not None and str(duck).startswith(f"disk full writing {onnx} ")
    sqlite = storage_error(
        sqlite3.OperationalError("attempt to write a readonly database"), tmp_path
    )
    assert sqlite is not None and sqlite.read_only and f"cannot write {tmp_path}" in str(sqlite)


def test_the_floor(tmp_path: Path) -> None:
    StorageCheck([tmp_path], min_free_mb=0).enough_space()
    StorageCheck([tmp_path], min_free_mb=1).enough_space()
    with pytest.raises(StorageError) as raised:
        StorageCheck([tmp_path / "not-yet"], min_free_mb=10**12).enough_space()
    assert f"({tmp_path / 'not-yet'}); spindle needs at least {10**12} MB" in str(raised.value)
    assert "(spindle.yaml min_free_mb) — free space or move state_dir" in str(raised.value)
