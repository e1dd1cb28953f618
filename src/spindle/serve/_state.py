"""What the server holds: the loaded versions of every model, sticky routing, and hot reload.

A :class:`ServingState` is immutable once built. The :class:`HotReloader` builds a new one when
a routing.json or a version's files change and swaps it in under a lock; a request takes the
current state once and uses it to the end, so a reload never disturbs a request in flight.
Given the registry's record of each version (``registered``), a version loads only when its
files are the ones the registry recorded; otherwise it is "failed checksum" like a damaged file,
and its traffic falls back.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from spindle.core import ServingError
from spindle.serve._integrity import Registered
from spindle.serve._repository import ROUTING_FILE, Routing, check_model_name, read_routing
from spindle.serve._runtime import SERVING_FILES, ChecksumMismatch, ModelRuntime

log = logging.getLogger(__name__)

# Fixed key: the user -> version assignment is stable across processes and restarts.
_ROUTING_KEY = b"spindle.serve/traffic-split/v1"
FileStat = tuple[int, int, int] | None


def traffic_point(key: str) -> float:
    """Map a routing key's value (a caller's id) to a stable point in [0, 1) with a keyed
    blake2b hash."""
    digest = hashlib.blake2b(key.encode("utf-8"), key=_ROUTING_KEY, digest_size=8).digest()
    return int.from_bytes(digest, "big") / float(1 << 64)


def choose_version(key: str, weights: Mapping[int, float]) -> int | None:
    """The version that serves routing key ``key`` under ``weights``; the same key always gets
    the same version.

    Versions own consecutive slices of [0, 1) in ascending order, so when a newer (higher)
    version's share grows, the callers it already had stay with it.
    """
    live = sorted((v, w) for v, w in weights.items() if w > 0)
    if not live:
        return None
    point = traffic_point(key) * sum(w for _, w in live)
    edge = 0.0
    for version, weight in live:
        edge += weight
        if point < edge:
            return version
    return live[-1][0]


@dataclass(frozen=True)
class LoadedVersion:
    """One version named by a routing.json and what became of loading it."""

    model: str
    version: int
    path: Path
    status: str  # "loaded", "failed checksum", "failed to load" or "missing"
    detail: str = ""
    runtime: ModelRuntime | None = None
    fingerprint: tuple[FileStat, ...] = ()

    @property
    def created_at(self) -> float | None:
        """The model's creation time (epoch seconds) from its manifest, when known."""
        text = self.runtime.manifest.get("created_at") if self.runtime else None
        if not isinstance(text, str):
            return None
        try:
            when = dt.datetime.fromisoformat(text)
        except ValueError:
            return None
        return (when if when.tzinfo else when.replace(tzinfo=dt.UTC)).timestamp()


@dataclass(frozen=True)
class ModelState:
    """The routing of one model and its loaded versions."""

    model: str
    routing: Routing
    versions: dict[int, LoadedVersion]

    def serving_versions(self) -> list[int]:
        return sorted(v for v, lv in self.versions.items() if lv.runtime is not None)


@dataclass(frozen=True)
class ServingState:
    """Everything the server serves at one moment."""

    models: dict[str, ModelState] = field(default_factory=dict)
    fingerprint: tuple[object, ...] = ()
    loaded_at: float = field(default_factory=time.time)


def _stat(path: Path) -> FileStat:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _version_fingerprint(path: Path) -> tuple[FileStat, ...]:
    return (_stat(path), *(_stat(path / name) for name in SERVING_FILES))


def _model_dirs(repo: Path) -> list[Path]:
    if not repo.is_dir():
        return []
    return sorted(p for p in repo.iterdir() if p.is_dir() and (p / ROUTING_FILE).is_file())


def _named_versions(routing: Routing) -> list[int]:
    named = set(routing.weights)
    if routing.previous is not None:
        named.add(routing.previous)
    return sorted(named)


def repo_fingerprint(repo: Path) -> tuple[object, ...]:
    """Cheap summary (file stats) of everything the state depends on; changes on any push."""
    parts: list[object] = [_stat(repo)]
    for directory in _model_dirs(repo):
        parts += [directory.name, _stat(directory / ROUTING_FILE)]
        try:
            routing = read_routing(repo, directory.name)
        except ServingError:
            continue
        parts += [(v, _version_fingerprint(directory / str(v))) for v in _named_versions(routing)]
    return tuple(parts)


def _load_version(
    model: str,
    version: int,
    path: Path,
    old: LoadedVersion | None,
    registered: Registered | None = None,
) -> LoadedVersion:
    fingerprint = _version_fingerprint(path)
    if old is not None and old.fingerprint == fingerprint:
        return old  # nothing changed on disk: keep the loaded session
    if fingerprint[0] is None:
        return LoadedVersion(model, version, path, "missing", f"{path} does not exist")
    try:
        expected = registered(model, version) if registered is not None else None
        runtime = ModelRuntime.load(path, registered=expected)
        if runtime.model != model or runtime.version != version:
            raise ServingError(
                f"{path}: the manifest names {runtime.model}@{runtime.version}, "
                f"the directory {model}@{version}"
            )
    except ChecksumMismatch as exc:
        log.error("not serving %s@%s: %s", model, version, exc)
        return LoadedVersion(model, version, path, "failed checksum", str(exc), None, fingerprint)
    except ServingError as exc:
        log.error("not serving %s@%s: %s", model, version, exc)
        return LoadedVersion(model, version, path, "failed to load", str(exc), None, fingerprint)
    return LoadedVersion(model, version, path, "loaded", "", runtime, fingerprint)


def load_state(
    repo: Path, old: ServingState | None = None, registered: Registered | None = None
) -> ServingState:
    """Build the state of ``repo``, reusing versions of ``old`` whose files did not change.

    With ``registered`` (the registry's content hash of each version), a version whose files
    are not the ones the registry recorded is not served ("failed checksum").
    """
    fingerprint = repo_fingerprint(repo)
    models: dict[str, ModelState] = {}
    for directory in _model_dirs(repo):
        model = directory.name
        previous_state = old.models.get(model) if old else None
        try:
            check_model_name(model)
            routing = read_routing(repo, model)
        except ServingError as exc:
            log.error("keeping the last good routing of %s: %s", model, exc)
            if previous_state is not None:
                models[model] = previous_state
            continue
        versions = {
            v: _load_version(
                model,
                v,
                directory / str(v),
                previous_state.versions.get(v) if previous_state else None,
                registered,
            )
            for v in _named_versions(routing)
        }
        models[model] = ModelState(model, routing, versions)
    return ServingState(models, fingerprint)


class HotReloader:
    """Holds the current :class:`ServingState` and reloads it when the repository changes.

    Args:
        repo: the model repository.
        poll_interval_s: how often the background thread (see :meth:`start`) looks for changes.
        registered: the registry's content hash of each version (``RegistryHashes``); None
            verifies the files against their manifests only.
        refresh: called before each look for changes, on the polling thread (its errors are
            logged; the loaded versions keep serving).
    """

    def __init__(
        self,
        repo: Path,
        poll_interval_s: float = 2.0,
        registered: Registered | None = None,
        refresh: Callable[[], None] | None = None,
    ) -> None:
        self.refresh = refresh  # e.g. mirror a repository on an object store into ``repo``
        self.repo = Path(repo)
        self.poll_interval_s = poll_interval_s
        self.registered = registered
        self._lock = threading.Lock()
        self._reload_lock = threading.Lock()
        self._state = load_state(self.repo, registered=registered)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.reloads = 0

    @property
    def state(self) -> ServingState:
        with self._lock:
            return self._state

    def reload_if_changed(self) -> bool:
        """Reload when the repository changed; True when a new state was swapped in."""
        with self._reload_lock:
            current = self.state
            if repo_fingerprint(self.repo) == current.fingerprint:
                return False
            new = load_state(self.repo, current, self.registered)  # slow: outside the swap lock
            with self._lock:
                self._state = new
            self.reloads += 1
            log.info("reloaded model repository %s: %s", self.repo, _describe(new))
            return True

    def start(self) -> None:
        """Start polling in a daemon thread (idempotent)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="spindle-reloader", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling and wait for the thread to finish."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None

    def _poll(self) -> None:
        while not self._stop.wait(self.poll_interval_s):
            try:
                if self.refresh is not None:
                    self.refresh()
                self.reload_if_changed()
            except Exception:  # the poller must outlive any one bad reload; the next one retries
                log.exception("reloading the model repository %s failed", self.repo)


def _describe(state: ServingState) -> str:
    parts = []
    for model, ms in sorted(state.models.items()):
        parts.append(f"{model}: " + ", ".join(f"{v}={lv.status}" for v, lv in ms.versions.items()))
    return "; ".join(parts) or "no models"
