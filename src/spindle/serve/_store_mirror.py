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
import json
import logging
import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path

from spindle.core import (
    Location,
    ServingError,
    SpindleError,
    atomic_write_bytes,
    atomic_write_json,
)
from spindle.serve._integrity import Registered
from spindle.serve._repository import REPOSITORY_ID_FILE, ROUTING_FILE
from spindle.serve._repository_s3 import S3Repository
from spindle.serve._runtime import ModelRuntime

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
    _verified: dict[Path, object] = field(default_factory=dict, repr=False)

    def refresh(self) -> None:
        """Mirror the store now; log and keep what failed (never raises a store error)."""
        with self._lock:
            try:
                problems = self.sync()
            except (SpindleError, OSError) as exc:
                problems = [str(exc)]
            for line in problems:
                if line not in self.problems:
                    log.error("model repository %s: %s", self.store.url, line)
            self.problems = problems

    def sync(self) -> list[str]:
        """Mirror the routed versions (and each ``previous``) and the routing of every model.

        A cached version is verified again when its files changed on disk, and fetched afresh
        when that fails. Each model's routing.json is written after its versions, and only
        when it changed, so a server on the cache never routes to a version it lacks and does
        not reload for nothing.

        Returns:
            One line per model that could not be mirrored (its cached state is kept).

        Raises:
            DataError: the store cannot be listed.
        """
        problems = []
        for model in self.store.models():
            try:
                self._sync_model(model)
            except (SpindleError, OSError) as exc:  # one model's failure stops no other
                problems.append(f"{model}: {exc}")
        identity = self.store.repository_id()
        if identity is not None and not (self.cache / REPOSITORY_ID_FILE).exists():
            self.cache.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.cache / REPOSITORY_ID_FILE, (identity + "\n").encode())
        return problems

    def _sync_model(self, model: str) -> None:
        routing = self.store.read_routing(model)
        wanted = {v for v, w in routing.weights.items() if w > 0}
        if routing.previous is not None:
            wanted.add(routing.previous)
        for version in sorted(wanted):
            expected = self.registered(model, version) if self.registered is not None else None
            target = self.cache / model / str(version)
            if target.exists():
                if self._cached(target, expected):
                    continue
                shutil.rmtree(target, ignore_errors=True)
            self.store.download(model, version, target, registered=expected)
        path = self.cache / model / ROUTING_FILE
        if not path.exists() or json.loads(path.read_bytes()) != routing.to_json():
            atomic_write_json(path, routing.to_json())

    def _cached(self, target: Path, registered: str | None) -> bool:
        """Whether the cached copy ``target`` verifies (again only when its files changed)."""
        stamp = tuple((p.name, p.stat().st_size, p.stat().st_mtime_ns) for p in target.iterdir())
        if self._verified.get(target) == (stamp, registered):
            return True
        try:
            ModelRuntime.load(target, registered=registered)
        except ServingError:
            return False
        self._verified[target] = (stamp, registered)
        return True


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
