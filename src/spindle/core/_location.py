"""Where Delta tables, raw files and training sets live: a local folder or a prefix in an
S3-compatible object store.

A :class:`Location` is what ``Workspace.tables_dir``, ``raw_location`` and
``artifacts_location`` return. It offers the few folder operations the stages need (join with
``/``, name, parent, exists, list, delete, read and write a small file; whole files: list
every file below, size and time, a streamed sha256, put one, a verified local copy) on a
local ``Path`` unchanged, and on ``s3://bucket/prefix`` through
``pyarrow.fs.S3FileSystem``, so an object-store root never becomes a local folder named
``s3:``. Delta tables themselves are read and written by delta-rs with
:attr:`Location.storage_options` (see ``core/_delta.py``).
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import tempfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, TYPE_CHECKING

from spindle.core._atomic import atomic_write_bytes, file_lock
from spindle.core._errors import DataError
from spindle.core._object_io import BLOCK as _BLOCK
from spindle.core._object_io import local_copy, put_file
from spindle.core._s3 import OBJECT_STORE_SCHEMES, is_object_store_url, store_error
from spindle.core._s3 import s3_client as _s3

__all__ = ["OBJECT_STORE_SCHEMES", "Location", "is_object_store_url", "store_error"]

if TYPE_CHECKING:
    from pyarrow import fs

# Bounded so that an unreachable endpoint or a wrong bucket fails in seconds with one line,
# not after minutes of retries (delta-rs' own defaults: 10 retries over up to 180 s).
_DELTA_DEFAULTS = {"connect_timeout": "5s", "timeout": "60s", "max_retries": "2"}


@dataclass(frozen=True, order=True)
class Location:
    """A folder of tables: a local path, or an ``s3://bucket/prefix`` with its options.

    Args:
        url: an absolute local path, or ``s3://bucket/prefix`` (no trailing ``/``).
        options: object-store options (delta-rs ``storage_options`` keys such as
            ``AWS_ENDPOINT_URL``, ``AWS_REGION``, ``AWS_ACCESS_KEY_ID``), as sorted pairs.
        scratch: a local folder for temporary files of work on these tables (DuckDB spill,
            locks); empty: ``<parent>/tmp`` of a local folder, the system's temp dir otherwise.

    Example:
        >>> root = Location.of("/data/ws/.spindle/tables")
        >>> str(root / "raw" / "orders"), (root / "raw").name
        ('/data/ws/.spindle/tables/raw/orders', 'raw')
    """

    url: str
    options: tuple[tuple[str, str], ...] = ()
    scratch: str = field(default="", compare=False)

    @classmethod
    def of(
        cls,
        root: str | Path | Location,
        options: Mapping[str, str] | None = None,
        scratch: str | Path = "",
    ) -> Location:
        """The location of ``root`` (a path, an ``s3://`` URL, or a location, returned as is)."""
        if isinstance(root, Location):
            return root
        text = str(root)
        if is_object_store_url(text):
            pairs = tuple(sorted((str(k), str(v)) for k, v in (options or {}).items()))
            return cls(text.rstrip("/"), pairs, str(scratch))
        return cls(str(Path(text)), (), str(scratch))

    # -- naming -------------------------------------------------------------------------

    @property
    def is_local(self) -> bool:
        return not is_object_store_url(self.url)

    @property
    def path(self) -> Path:
        """The local folder (raises for an object-store location).

        Raises:
            DataError: the location is in an object store.
        """
        if not self.is_local:
            raise DataError(f"{self.url} is in an object store, not a local folder")
        return Path(self.url)

    @property
    def storage_options(self) -> dict[str, str] | None:
        """delta-rs ``storage_options``: None for a local folder; bounded retries added."""
        if self.is_local:
            return None
        return _DELTA_DEFAULTS | dict(self.options)

    @property
    def name(self) -> str:
        return PurePosixPath(self._key()).name if not self.is_local else self.path.name

    @property
    def parent(self) -> Location:
        if self.is_local:
            return Location(str(self.path.parent), (), self.scratch)
        bucket, _, key = self.url.removeprefix("s3://").partition("/")
        up = str(PurePosixPath(key).parent) if key else ""
        return Location(f"s3://{bucket}" + ("" if up in ("", ".") else f"/{up}"), self.options)

    def __truediv__(self, part: str) -> Location:
        if self.is_local:
            return Location(str(self.path / part), (), self.scratch)
        return Location(f"{self.url}/{part.strip('/')}", self.options, self.scratch)

    def __str__(self) -> str:
        return self.url

    def relative_to(self, other: Location) -> PurePosixPath:
        """This location's path below ``other`` (``raw/orders``)."""
        if self.is_local:
            return PurePosixPath(self.path.relative_to(other.path).as_posix())
        return PurePosixPath(self.url).relative_to(PurePosixPath(other.url))

    @property
    def scratch_dir(self) -> Path:
        """A local folder for temporary files of work on these tables (not created): the
        workspace's, or this machine's temporary folder on a node that does not have the
        workspace's state folder (a cluster's worker reaching the tables on an object store)."""
        # the scratch is <state_dir>/tmp: the folder holding the state folder is here or not
        if self.scratch and (self.is_local or Path(self.scratch).parent.parent.is_dir()):
            return Path(self.scratch)
        if self.is_local:
            return self.path.parent / "tmp"
        return Path(tempfile.gettempdir()) / "spindle"

    # -- the file system ----------------------------------------------------------------

    def filesystem(self) -> tuple[fs.FileSystem, str]:
        """The pyarrow file system and this location's path in it.

        Raises:
            DataError: the options cannot make a client (e.g. a malformed endpoint).
        """
        from pyarrow import fs

        if self.is_local:
            return fs.LocalFileSystem(), self.url
        return _s3(self.options), self.url.removeprefix("s3://")

    def _key(self) -> str:
        return self.url.removeprefix("s3://")

    def _info(self) -> fs.FileInfo:
        filesystem, where = self.filesystem()
        with self.translated("reading"):
            return filesystem.get_file_info(where)

    def exists(self) -> bool:
        """Whether anything (a file, or a folder with files) is at this location."""
        if self.is_local:
            return self.path.exists()
        from pyarrow import fs

        return bool(self._info().type != fs.FileType.NotFound)

    def is_dir(self) -> bool:
        if self.is_local:
            return self.path.is_dir()
        from pyarrow import fs

        return bool(self._info().type == fs.FileType.Directory)

    def is_file(self) -> bool:
        if self.is_local:
            return self.path.is_file()
        from pyarrow import fs

        return bool(self._info().type == fs.FileType.File)

    def iterdir(self) -> list[Location]:
        """The entries directly below (none when the folder does not exist), sorted."""
        if self.is_local:
            if not self.path.is_dir():
                return []
            return sorted(
                (Location(str(p), (), self.scratch) for p in self.path.iterdir()), key=str
            )
        return [self / info.base_name for info in self._listing(recursive=False)]

    def _listing(self, recursive: bool) -> list[fs.FileInfo]:
        from pyarrow import fs

        filesystem, where = self.filesystem()
        selector = fs.FileSelector(where, allow_not_found=True, recursive=recursive)
        with self.translated("listing"):
            return sorted(filesystem.get_file_info(selector), key=lambda i: str(i.path))

    def delta_tables(self) -> list[Location]:
        """Every Delta table (a folder with a ``_delta_log``) at or below, sorted."""
        if self.is_local:
            logs = self.path.rglob("_delta_log") if self.path.is_dir() else iter(())
            return sorted(
                (Location(str(log.parent), (), self.scratch) for log in logs if log.is_dir()),
                key=str,
            )
        base = self._key()
        found = {
            info.path.rpartition("/_delta_log/")[0]
            for info in self._listing(recursive=True)
            if "/_delta_log/" in info.path
        }
        return [
            self / str(PurePosixPath(p).relative_to(base)) if p != base else self
            for p in sorted(found)
        ]

    def size_bytes(self, suffix: str = "") -> int:
        """The bytes of every file at or below whose name ends with ``suffix``."""
        if self.is_local:
            if not self.path.is_dir():
                return 0
            return sum(f.stat().st_size for f in self.path.rglob(f"*{suffix}") if f.is_file())
        return sum(i.size or 0 for i in self._listing(recursive=True) if i.path.endswith(suffix))

    def read_bytes(self) -> bytes:
        """The content of the file at this location.

        Raises:
            FileNotFoundError: there is none.
            DataError: the object store cannot be read.
        """
        if self.is_local:
            return self.path.read_bytes()
        if not self.exists():
            raise FileNotFoundError(self.url)
        filesystem, where = self.filesystem()
        with self.translated("reading"), filesystem.open_input_stream(where) as stream:
            return bytes(stream.read())

    def write_bytes(self, data: bytes) -> None:
        """Write the whole file atomically (a local temp file renamed; one object put)."""
        if self.is_local:
            atomic_write_bytes(self.path, data)
            return
        filesystem, where = self.filesystem()
        with self.translated("writing"), filesystem.open_output_stream(where) as stream:
            stream.write(data)  # an object appears whole when the put completes

    def files(self) -> list[Location]:
        """Every file at or below this location (a folder's, recursively), sorted."""
        if self.is_local:
            if self.path.is_file():
                return [self]
            found = self.path.rglob("*") if self.path.is_dir() else iter(())
            return sorted(
                (Location(str(p), (), self.scratch) for p in found if p.is_file()), key=str
            )
        from pyarrow import fs

        base = self._key()
        return [
            self / str(PurePosixPath(i.path).relative_to(base))
            for i in self._listing(recursive=True)
            if i.type == fs.FileType.File
        ]

    def stat(self) -> tuple[int, int]:
        """The file's size in bytes and its modification time (ns).

        Raises:
            FileNotFoundError: there is no file here.
            DataError: the object store cannot be read.
        """
        if self.is_local:
            info = self.path.stat()
            return info.st_size, info.st_mtime_ns
        from pyarrow import fs

        found = self._info()
        if found.type != fs.FileType.File:
            raise FileNotFoundError(self.url)
        return int(found.size or 0), int(found.mtime_ns or 0)

    def sha256(self) -> str:
        """The sha256 of the file's bytes, read a block at a time (hex).

        Raises:
            FileNotFoundError: there is no file here.
            DataError: the object store cannot be read.
        """
        digest = hashlib.sha256()
        with self.open_input() as stream:
            while block := stream.read(_BLOCK):
                digest.update(block)
        return digest.hexdigest()

    @contextlib.contextmanager
    def open_input(self) -> Iterator[IO[bytes]]:
        if self.is_local:
            with self.path.open("rb") as file:
                yield file
            return
        self.stat()  # FileNotFoundError for a missing object, not a store error
        filesystem, where = self.filesystem()
        with self.translated("reading"), filesystem.open_input_stream(where) as stream:
            yield stream

    def put_file(self, source: Path) -> None:
        """Copy the local file ``source`` here whole: a local temp file renamed, or one object
        put (an object appears whole when its upload completes, never half-written).

        Raises:
            DataError: the object store cannot be written.
        """
        put_file(self, source)

    def local_copy(self, cache: Path | None = None) -> Path:
        """A local file with this file's bytes: the file itself when local, else a copy in
        ``cache`` (default: ``<scratch_dir>/objects``) kept by the object's name, size and
        modification time, so a copy is downloaded once and never stale. The copy is written
        to a temp file, its size checked against the object's, then renamed.

        Raises:
            FileNotFoundError: there is no file here.
            DataError: the object store cannot be read, or the copy came out short.
        """
        return local_copy(self, cache)

    def delete(self) -> None:
        """Remove the file or folder (with everything below) at this location, if any."""
        if self.is_local:
            if self.path.is_dir():
                shutil.rmtree(self.path)
            elif self.path.exists():
                self.path.unlink()
            return
        filesystem, where = self.filesystem()
        info = self._info()
        from pyarrow import fs

        with self.translated("deleting"):
            if info.type == fs.FileType.Directory:
                filesystem.delete_dir(where)
            elif info.type == fs.FileType.File:
                filesystem.delete_file(where)

    @contextlib.contextmanager
    def lock(self, name: str) -> Iterator[None]:
        """Serialise this machine's writers of ``name`` here (a local ``flock``).

        For an object store the lock file lives in :attr:`scratch_dir`: it serialises the
        processes of one machine, not of several (Delta commits stay safe across machines).
        """
        if self.is_local:
            target = self.path / f"{name}.lock"
        else:
            digest = hashlib.sha256(f"{self.url}/{name}".encode()).hexdigest()[:16]
            target = self.scratch_dir / "locks" / f"{digest}.lock"
        with file_lock(target):
            yield

    @contextlib.contextmanager
    def translated(self, doing: str) -> Iterator[None]:
        """Turn an object-store failure into one ``DataError`` line naming the URL."""
        try:
            yield
        except FileNotFoundError:
            raise
        except OSError as exc:
            if self.is_local:
                raise
            raise store_error(self, doing, exc) from exc

    def check(self) -> None:
        """Raise unless the object store answers and its bucket exists (local: no-op).

        Raises:
            DataError: the endpoint is unreachable, the bucket is missing or access is refused.
        """
        if self.is_local:
            return
        from pyarrow import fs

        filesystem, _ = self.filesystem()
        bucket = self._key().partition("/")[0]
        with self.translated("reaching"):
            filesystem.get_file_info(fs.FileSelector(bucket, recursive=False))
