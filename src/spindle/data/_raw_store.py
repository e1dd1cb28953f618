"""Raw files on an object store: a source whose ``location`` is an ``s3://`` URL under the
workspace's ``raw_dir: s3://bucket/prefix``.

A :class:`SourceRoot` is what the readers take as their ``root`` when the raw files may be on
an object store: it is the workspace's folder (``os.fspath`` gives it, so relative and package
locations are found as before) and carries ``raw_dir`` as a :class:`~spindle.core.Location`
with its storage options, which every ``s3://`` location is listed, hashed and read through.
A glob of such a location is matched against the objects listed below its fixed prefix (a
matched "folder" stands for the visible objects below it, as locally); a file is read from a
copy in the node's scratch folder by the readers of local files, then the copy is removed.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from spindle.core import PACKAGE_SCHEME, DataError, Location, SourceDeclaration, is_object_store_url

Root = str | os.PathLike[str]
"""A readers' ``root``: the workspace's folder, or a :class:`SourceRoot`."""


@dataclass(frozen=True)
class SourceRoot:
    """The workspace's folder (relative locations) and its ``raw_dir`` (``s3://`` locations).

    Example:
        >>> root = SourceRoot("/ws", Location.of("s3://bucket/raw", {"AWS_REGION": "x"}))
        >>> os.fspath(root), str(raw_object(root, "s3://bucket/raw/a/1.csv"))
        ('/ws', 's3://bucket/raw/a/1.csv')
    """

    folder: str
    raw: Location

    def __fspath__(self) -> str:
        return self.folder

    def __str__(self) -> str:
        return self.folder


def raw_object(root: Root, url: str) -> Location:
    """The object-store location of ``url``, with the options of the ``raw_dir`` it is under.

    Raises:
        DataError: ``url`` is not under the workspace's ``raw_dir`` on an object store.
    """
    raw = root.raw if isinstance(root, SourceRoot) else None
    if raw is None or raw.is_local or not (url == raw.url or url.startswith(raw.url + "/")):
        where = f"raw_dir is {raw.url}" if raw is not None else "no raw_dir on an object store"
        raise DataError(
            f"{url}: a source on an object store must be under the workspace's raw_dir ({where});"
            " set raw_dir: s3://bucket/prefix (storage_options) in spindle.yaml, or fix the location"
        )
    return Location(url, raw.options, raw.scratch)


def location_regex(text: str) -> re.Pattern[str]:
    """A regex over POSIX paths or URLs for a location (globs, ``{date}`` a named group)."""
    out, i = [], 0
    while i < len(text):
        if text.startswith(SourceDeclaration.DATE_FIELD, i):
            out.append(r"(?P<date>\d{4}-\d{2}-\d{2})")
            i += len(SourceDeclaration.DATE_FIELD)
        elif text.startswith("**", i):
            out.append(".*")
            i += 2
        else:
            out.append({"*": "[^/]*", "?": "[^/]"}.get(text[i], re.escape(text[i])))
            i += 1
    return re.compile("".join(out))


def _fixed_prefix(url: str) -> str:
    """The folder of ``url`` before its first wildcard or ``{date}`` (what to list)."""
    cut = re.split(r"[*?\[]|\{date\}", url)[0]
    return cut if cut.endswith("/") else cut.rpartition("/")[0] + "/"


def _ancestors(url: str, base: str) -> Iterator[str]:
    """``url`` and its folders down to (not including) ``base``."""
    path = url
    while len(path) > len(base.rstrip("/")) and "/" in path:
        yield path
        path = path.rpartition("/")[0]


def _listed(root: Root, base: str) -> list[str]:
    """Every object's URL below ``base`` (a folder URL; ``raw_dir`` itself when above it)."""
    folder = base.rstrip("/")
    if isinstance(root, SourceRoot) and root.raw.url.startswith(folder + "/"):
        folder = root.raw.url  # nothing of the bucket above raw_dir is read
    return [str(f) for f in raw_object(root, folder).files()]


def store_files(root: Root, pattern: str) -> list[str]:
    """The objects a location matches (a matched folder: its visible objects), sorted.

    Raises:
        DataError: the location is not under ``raw_dir``, or the store cannot be listed.
    """
    regex = location_regex(pattern)
    base = _fixed_prefix(pattern)
    found = []
    for url in _listed(root, base):
        for match in _ancestors(url, base):
            if regex.fullmatch(match):
                below = url[len(match) :].split("/")[1:]
                hidden = PurePosixPath(url).name.startswith(".")  # as a glob's * skips them
                if not hidden and not any(part[:1] in "._" for part in below):
                    found.append(url)
                break
    return sorted(found)


def store_dates(root: Root, location: str) -> list[str]:
    """The ``{date}`` values of the objects (or folders) a daily location matches."""
    regex = location_regex(location)
    base = _fixed_prefix(location)
    dates: set[str] = set()
    for url in _listed(root, base):
        for match in map(regex.fullmatch, _ancestors(url, base)):
            if match:
                dates.add(match.group("date"))
    return sorted(dates)


def store_undeclared(raw: Location, patterns: Iterable[str]) -> list[str]:
    """The objects below ``raw`` that none of ``patterns`` (locations) covers, as URLs."""
    regexes = [location_regex(p) for p in patterns]
    found = []
    for url in map(str, raw.files()):
        if PurePosixPath(url).name.startswith("."):
            continue
        if not any(r.fullmatch(c) for r in regexes for c in _ancestors(url, raw.url)):
            found.append(url)
    return sorted(found)


def undeclared_files(
    root: Root, sources: Iterable[SourceDeclaration], raw_dir: str | Location = "raw"
) -> list[str]:
    """Files under ``raw_dir`` that no declaration's location covers (to warn, never to ignore).

    Returns:
        Paths relative to ``root``, sorted (URLs for a ``raw_dir`` on an object store).
    """
    if isinstance(raw_dir, Location) and not raw_dir.is_local:
        return store_undeclared(raw_dir, (s.location for s in sources))
    raw_dir = str(raw_dir)
    base = Path(root)
    regexes = [
        location_regex((base / s.location).as_posix())
        for s in sources
        if not s.location.startswith(PACKAGE_SCHEME)
    ]
    found: list[str] = []
    for folder, dirs, names in os.walk(base / raw_dir):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        for name in sorted(names):
            if name.startswith("."):
                continue
            path = Path(folder, name)
            candidates = [path.as_posix(), *(p.as_posix() for p in path.parents)]
            if not any(r.fullmatch(c) for r in regexes for c in candidates):
                found.append(path.relative_to(base).as_posix())
    return sorted(found)


@contextmanager
def fetched(root: Root, url: str) -> Iterator[str]:
    """A local copy of the object ``url`` in the node's scratch folder, removed after.

    Raises:
        FileNotFoundError: the object is gone.
        DataError: it cannot be read.
    """
    where = raw_object(root, url)
    scratch = where.scratch_dir / "raw"
    scratch.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="object-", dir=scratch) as folder:
        yield str(where.local_copy(Path(folder)))


def object_identity(root: Root, url: str) -> tuple[int, int]:
    """An object's size and modification time (ns), what a cached hash or read is kept by."""
    return raw_object(root, url).stat()


__all__ = [
    "Root",
    "SourceRoot",
    "fetched",
    "is_object_store_url",
    "location_regex",
    "object_identity",
    "raw_object",
    "store_dates",
    "store_files",
    "store_undeclared",
    "undeclared_files",
]
