"""Whole files at a :class:`~spindle.core.Location`: put one, or get a local copy of one."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from spindle.core._errors import DataError

if TYPE_CHECKING:
    from spindle.core._location import Location

BLOCK = 1 << 20
"""The bytes copied at a time."""


def put_file(where: Location, source: Path) -> None:
    """See :meth:`Location.put_file`."""
    if where.is_local:
        where.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = where.path.with_name(f".{where.path.name}.{os.getpid()}.tmp")
        shutil.copyfile(source, tmp)
        tmp.replace(where.path)
        return
    filesystem, key = where.filesystem()
    with (
        where.translated("writing"),
        source.open("rb") as file,
        filesystem.open_output_stream(key) as stream,
    ):
        while block := file.read(BLOCK):
            stream.write(block)


def local_copy(where: Location, cache: Path | None) -> Path:
    """See :meth:`Location.local_copy`."""
    if where.is_local:
        if not where.path.is_file():
            raise FileNotFoundError(where.url)
        return where.path
    size, mtime = where.stat()
    key = hashlib.sha256(f"{where.url}|{size}|{mtime}".encode()).hexdigest()[:20]
    target = (cache or where.scratch_dir / "objects") / key / where.name
    if target.is_file() and target.stat().st_size == size:
        with contextlib.suppress(OSError):  # its time says it is in use (kept by the doctor)
            os.utime(target)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    with where.open_input() as stream, tmp.open("wb") as out:
        while block := stream.read(BLOCK):
            out.write(block)
    if tmp.stat().st_size != size:
        got = tmp.stat().st_size
        tmp.unlink()
        raise DataError(f"copying {where.url} gave {got} bytes, not {size}; try again")
    tmp.replace(target)
    return target
