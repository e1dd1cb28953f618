"""What a model version must hash to: the content hash the registry recorded when it was trained.

Whoever can write the model repository can write a manifest there, so a manifest alone proves
nothing about which version a directory holds: version 3's files copied into version 4's
directory, with the manifest's checksums rewritten to match, verify against that manifest. The
train step records each version's content hash (``ModelPackage.content_hash``, the sha256 of its
files' checksums) in the registry when it completes the version; serving, push, rollback and
``spindle doctor`` compare a directory with that record (``ModelRuntime.load(...,
registered=...)``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from spindle.core import ServingError, SpindleError

if TYPE_CHECKING:
    from spindle.registry import RegistryReader

#: ``registered(model, version)``: the content hash the registry recorded for the version;
#: raises ServingError when the registry does not know it as a ready version.
Registered = Callable[[str, int], str]


def registered_hash(reader: RegistryReader, model: str, version: int) -> str:
    """The content hash the registry recorded for ``model@version`` when it was trained.

    Raises:
        ServingError: the registry has no such version, the version is not ready (reserved or
            failed: only a completed version serves), or the registry cannot be read.

    Example:
        >>> registered_hash(store, "search_ranker", 3)  # doctest: +SKIP
        '5c1f...'
    """
    try:
        record = reader.get_version(model, version)
        if record.status != "ready" or record.artifact_id is None:
            raise ServingError(
                f"{model}@{version} is {record.status} in the registry, not ready: "
                "only a completed version serves"
            )
        return reader.get_artifact(record.artifact_id).content_hash
    except ServingError:
        raise
    except SpindleError as exc:  # NotFound, RegistryError
        raise ServingError(f"cannot verify {model}@{version} against the registry: {exc}") from exc


class RegistryHashes:
    """:data:`Registered` for a server: reads the registry at ``url`` when a version loads.

    A reader is opened per lookup and closed after it (versions load rarely: at start, on a
    push, on a change of files); a ready version is immutable, so a hash found is kept.

    Args:
        url: the metadata store's URL (``sqlite:///.spindle/metadata.db``).

    Example:
        >>> hashes = RegistryHashes("sqlite:///.spindle/metadata.db")  # doctest: +SKIP
        >>> ModelRuntime.load(path, registered=hashes("search_ranker", 3))  # doctest: +SKIP
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self._known: dict[tuple[str, int], str] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"RegistryHashes({self.url!r})"

    def __call__(self, model: str, version: int) -> str:
        with self._lock:
            known = self._known.get((model, version))
            if known is not None:
                return known
            from spindle.registry import open_reader  # only when a version loads

            try:
                reader = open_reader(self.url)
            except SpindleError as exc:
                raise ServingError(
                    f"cannot verify {model}@{version} against the registry: {exc}"
                ) from exc
            try:
                found = registered_hash(reader, model, version)
            finally:
                reader.close()
            self._known[(model, version)] = found
            return found
