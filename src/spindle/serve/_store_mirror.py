"""A server's local mirror of a model repository on an object store.

``spindle serve`` never loads from the store: :class:`StoreMirror` copies the routed versions
and each routing.json into a cache folder (verified against the manifests and the registry;
see ``S3Repository.sync``) before the server's first load and before each poll, and the server
runs on that folder as on a local repository. When the store cannot be reached, the error is
logged and kept in :attr:`StoreMirror.problems` (``/v1/versions`` shows it) and the versions
loaded keep serving.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from dataclasses import dataclass, field
from pathlib import Path

from spindle.core import Location, SpindleError
from spindle.serve._integrity import Registered
from spindle.serve._repository_s3 import S3Repository

log = logging.getLogger(__name__)


@dataclass
class StoreMirror:
    """Mirror ``store`` into the local folder ``cache`` (see the module docstring).

    Args:
        store: the repository on the object store.
        cache: the local folder the server loads from.
        registered: the registry's content hash of each version; None checks the manifests only.
    """

    store: S3Repository
    cache: Path
    registered: Registered | None = None
    problems: list[str] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def refresh(self) -> None:
        """Mirror the store now; log and keep what failed (never raises a store error)."""
        with self._lock:
            try:
                problems = self.store.sync(self.cache, registered=self.registered)
            except (SpindleError, OSError) as exc:
                problems = [str(exc)]
            for line in problems:
                if line not in self.problems:
                    log.error("model repository %s: %s", self.store.url, line)
            self.problems = problems


def store_mirror(
    repo: str | Path | Location | S3Repository,
    cache: Path | None,
    registered: Registered | None,
) -> StoreMirror | None:
    """The mirror of ``repo`` when it is on an object store (None for a local folder).

    Args:
        cache: where to mirror it; None: ``<scratch>/model_cache/<digest of the URL>`` (the
            workspace's ``<state_dir>/tmp`` for a workspace's location).
    """
    if isinstance(repo, Location) and not repo.is_local:
        repo = S3Repository(repo)
    if not isinstance(repo, S3Repository):
        return None
    if cache is None:
        digest = hashlib.sha256(repo.url.encode()).hexdigest()[:16]
        cache = repo.location.scratch_dir / "model_cache" / digest
    return StoreMirror(repo, cache, registered)
