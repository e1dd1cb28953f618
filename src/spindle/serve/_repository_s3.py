"""The model repository on an S3-compatible object store: the local layout, without renames.

Same layout as the local repository (``<repo>/<model>/<version>/{model.onnx, transform.json,
config.pbtxt, manifest.json}``, ``<repo>/<model>/routing.json``), so Triton or KServe can read
it. An object store has no rename, so:

* a version's files are uploaded first and its manifest last, created with
  ``If-None-Match: *``; a version exists only when its manifest does. Readers ignore a prefix
  without one; :meth:`S3Repository.leftovers` finds those a dead writer left (older than
  ``grace_s``) and :meth:`S3Repository.remove_leftovers` removes them. A push never overwrites
  an existing version's objects: it compares them.
* routing.json changes by compare-and-swap: :meth:`S3Repository.read_routing` keeps the ETag it
  read and :meth:`S3Repository.write_routing` writes with ``If-Match`` on it (``If-None-Match:
  *`` for a model's first routing). Of two writers that read the same routing, one wins and the
  other gets :class:`RoutingConflict`; a routing change is never lost.

Servers do not load from the store: ``StoreMirror`` (serve/_store_mirror.py) copies the routed
versions into a local cache folder with :meth:`S3Repository.download`, verifying every file
against its manifest and the registry, so a server runs on the cache as on a local repository.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
import uuid
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path

from spindle.core import (
    Location,
    ServingError,
    atomic_directory,
    atomic_write_bytes,
    file_lock,
    kill_point,
    sha256_bytes,
)
from spindle.serve._bucket import Bucket
from spindle.serve._integrity import Registered
from spindle.serve._repository import (
    CONFIG_FILE,
    REPOSITORY_ID_FILE,
    ROUTING_FILE,
    InstalledVersion,
    PushResult,
    Routing,
    check_model_name,
    check_version,
    plan_weights,
    push_routing,
    render_config,
)
from spindle.serve._runtime import MANIFEST_FILE, MODEL_FILE, TRANSFORM_FILE, ModelRuntime
from spindle.serve._runtime import read_manifest as _read_manifest

_UPLOADS = (MODEL_FILE, TRANSFORM_FILE, CONFIG_FILE)  # the manifest goes last, on its own
LEFTOVER_GRACE_S = 3600.0
"""A version prefix without a manifest this old was left by a writer that died."""


class RoutingConflict(ServingError):
    """routing.json changed between this writer's read and its write (another writer won)."""


@dataclass
class S3Repository:
    """A model repository at ``s3://bucket/prefix`` (see the module docstring).

    Args:
        location: the repository's object-store location with its ``storage_options``.
    """

    location: Location
    bucket: Bucket = field(init=False)
    _etags: dict[str, str | None] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        self.bucket = Bucket(self.location)

    @property
    def url(self) -> str:
        return self.location.url

    def __str__(self) -> str:
        return self.url

    def version_url(self, model: str, version: int) -> str:
        return f"{self.url}/{check_model_name(model)}/{check_version(version)}"

    # -- reading ---------------------------------------------------------------------------

    def models(self) -> list[str]:
        """Models with a routing.json or a version in the repository, sorted."""
        names = {key.partition("/")[0] for key in self.bucket.listing() if "/" in key}
        return sorted(n for n in names if _valid_name(n))

    def list_versions(self, model: str) -> list[int]:
        """Versions of ``model`` whose manifest exists (a version's last object), ascending."""
        found = self.bucket.listing(check_model_name(model))
        return sorted(
            int(parts[1])
            for parts in (key.split("/") for key in found)
            if len(parts) == 3 and parts[1].isdigit() and parts[2] == MANIFEST_FILE
        )

    def read_routing(self, model: str) -> Routing:
        """Read ``<model>/routing.json`` (empty weights when there is none) and keep its ETag
        for the next :meth:`write_routing` of the model.

        Raises:
            ServingError: not a valid routing file.
            DataError: the store cannot be read.
        """
        key = f"{check_model_name(model)}/{ROUTING_FILE}"
        found = self.bucket.get(key)
        self._etags[model] = None if found is None else found.etag
        if found is None:
            return Routing(model, {})
        try:
            payload = json.loads(found.data)
        except ValueError as exc:
            raise ServingError(f"{self.url}/{key}: invalid routing file: {exc}") from exc
        return Routing.from_json(model, payload, f"{self.url}/{key}")

    # -- routing ---------------------------------------------------------------------------

    def lock(self, model: str) -> AbstractContextManager[None]:
        """Serialise this machine's writers of ``model`` (a local ``flock``; across machines
        :meth:`write_routing`'s compare-and-swap decides)."""
        digest = hashlib.sha256(f"{self.url}/{check_model_name(model)}".encode()).hexdigest()
        return file_lock(self.location.scratch_dir / "locks" / f"repo-{digest[:16]}.lock")

    def write_routing(self, routing: Routing) -> Routing:
        """Write ``routing`` if routing.json is still what :meth:`read_routing` last read.

        Raises:
            RoutingConflict: another writer changed it since (nothing written: read again).
            ServingError: the model's routing was not read first by this repository object.
            DataError: the store cannot be written.
        """
        import datetime as dt

        model = check_model_name(routing.model)
        if model not in self._etags:
            raise ServingError(f"{self.url}: read {model}'s routing before writing it")
        stamped = Routing(
            model, routing.weights, routing.previous, dt.datetime.now(dt.UTC).isoformat()
        )
        data = (json.dumps(stamped.to_json(), indent=2, sort_keys=True) + "\n").encode()
        etag = self._etags[model]
        key = f"{model}/{ROUTING_FILE}"
        written = self.bucket.put(key, data, if_match=etag, create=etag is None)
        if written is None:
            self._etags.pop(model, None)
            raise RoutingConflict(
                f"{self.url}/{key} changed since it was read (another push or route won the "
                "race); nothing was written: run the command again"
            )
        self._etags[model] = written
        return stamped

    def change_routing(
        self, model: str, plan: Callable[[Routing], Routing], *, attempts: int = 5
    ) -> Routing:
        """Read, plan and write the routing of ``model``, again from a fresh read when another
        writer won (up to ``attempts`` times); a plan that changes nothing writes nothing.

        Raises:
            RoutingConflict: every attempt lost a race.
            ServingError: ``plan`` refused.
        """
        for attempt in range(attempts):
            current = self.read_routing(model)
            target = plan(current)
            if target == current:
                return current
            try:
                return self.write_routing(target)
            except RoutingConflict:
                if attempt == attempts - 1:
                    raise
                time.sleep(0.05 * (attempt + 1))
        raise AssertionError("unreachable")

    def set_routing(self, model: str, weights: dict[int, float]) -> Routing:
        """Route ``model`` by ``weights`` (see ``set_routing`` of the local repository).

        Raises:
            ServingError: bad weights, a version not in the repository, or a lost race.
        """
        present = self.list_versions(model)
        return self.change_routing(
            model, lambda current: plan_weights(current, weights, present, self.url)
        )

    def rollback_routing(
        self, current: Routing, *, registered: Registered | None = None
    ) -> Routing:
        """All traffic to ``previous`` once its files verify (nothing written).

        Raises:
            ServingError: no previous version, or its files fail verification.
        """
        model, target = current.model, current.previous
        if target is None:
            raise ServingError(
                f"{model}: nothing to roll back to: routing.json records no previous version "
                f"(weights: {current.to_json()['weights']}); use `spindle route` to pick one"
            )
        expected = registered(model, target) if registered is not None else None
        with tempfile.TemporaryDirectory(prefix="spindle-version-") as tmp:
            self.download(model, target, Path(tmp) / "v", registered=expected)
        older = [v for v in self.list_versions(model) if v < target]
        return Routing(model, {target: 1.0}, older[-1] if older else None)

    def rollback(self, model: str, *, registered: Registered | None = None) -> int:
        """Route all traffic of ``model`` to its previous version; return that version.

        Raises:
            ServingError: nothing to roll back to, bad files, or a lost race.
        """
        routing = self.read_routing(model)
        written = self.write_routing(self.rollback_routing(routing, registered=registered))
        assert written.main is not None
        return written.main

    # -- versions --------------------------------------------------------------------------

    def install_version(
        self, version_dir: str | Path, *, registered: str | None = None
    ) -> InstalledVersion:
        """Upload a verified version unless it is there already (then compare, never write).

        Raises:
            ServingError: invalid files, or the version exists with different files.
            DataError: the store cannot be written.
        """
        source = Path(version_dir)
        manifest = _read_manifest(source)
        model, version = check_model_name(manifest["model"]), check_version(manifest["version"])
        runtime = ModelRuntime.load(source, registered=registered)  # verifies and loads
        config = render_config(model, runtime.inputs, runtime.outputs).encode("utf-8")
        payload = {name: (source / name).read_bytes() for name in (MODEL_FILE, TRANSFORM_FILE)}
        payload[CONFIG_FILE] = config
        manifest_bytes = (source / MANIFEST_FILE).read_bytes()
        wanted = {name: sha256_bytes(data) for name, data in payload.items()}
        wanted[MANIFEST_FILE] = sha256_bytes(manifest_bytes)
        base = f"{model}/{version}"
        created = False
        if version not in self.list_versions(model):
            for name in _UPLOADS:
                self._upload(f"{base}/{name}", payload[name])
            kill_point("repository:uploaded")  # a crash here leaves objects, never a version
            created = (
                self.bucket.put(f"{base}/{MANIFEST_FILE}", manifest_bytes, create=True) is not None
            )
        self._compare(model, version, wanted, "after uploading" if created else "already there")
        self.repository_id(create=True)
        return InstalledVersion(model, version, Path(base), created, wanted)

    def repair_version(self, version_dir: str | Path, *, registered: str) -> list[str]:
        """Put back, from the verified artifact ``version_dir``, every object of a version whose
        bytes are not the registered ones (the manifest last); the caller holds :meth:`lock`.

        A version on the store is immutable: this never changes what it is, only restores the
        bytes the registry recorded (``registered``, checked against ``version_dir`` first).
        Each object is replaced only if it is still the damaged one read here (``If-Match``
        its ETag; created with ``If-None-Match`` when missing), so a concurrent writer is never
        overwritten.

        Returns:
            The names of the objects put back (empty: nothing was damaged).

        Raises:
            ServingError: ``version_dir`` is not the registered version, an object changed
                while this ran, or the version still differs afterwards.
            DataError: the store cannot be written.
        """
        source = Path(version_dir)
        manifest = _read_manifest(source)
        model, version = check_model_name(manifest["model"]), check_version(manifest["version"])
        runtime = ModelRuntime.load(source, registered=registered)  # the artifact is the truth
        payload = {name: (source / name).read_bytes() for name in (MODEL_FILE, TRANSFORM_FILE)}
        payload[CONFIG_FILE] = render_config(model, runtime.inputs, runtime.outputs).encode()
        payload[MANIFEST_FILE] = (source / MANIFEST_FILE).read_bytes()
        base, repaired = f"{model}/{version}", []
        for name in (*_UPLOADS, MANIFEST_FILE):  # the manifest last, as in a push
            found = self.bucket.get(f"{base}/{name}")
            if found is not None and found.data == payload[name]:
                continue
            etag = found.etag if found is not None else None
            put = self.bucket.put(
                f"{base}/{name}", payload[name], if_match=etag, create=found is None
            )
            if put is None:
                raise ServingError(
                    f"{self.url}/{base}/{name} changed while it was being repaired (another "
                    "writer): run `spindle doctor --fix` again"
                )
            repaired.append(name)
        wanted = {name: sha256_bytes(data) for name, data in payload.items()}
        self._compare(model, version, wanted, "after the repair")
        return repaired

    def _upload(self, key: str, data: bytes) -> None:
        """Create the object ``key`` of a version being pushed, never overwriting a version's:
        an object already there with other bytes is replaced only when it is a leftover (no
        manifest was found, and it is older than :data:`LEFTOVER_GRACE_S`).

        Raises:
            ServingError: other bytes, written recently: another push of this version may be
                at work (or just died).
        """
        if self.bucket.put(key, data, create=True) is not None:
            return
        found = self.bucket.get(key)
        if found is None or found.data == data:
            return
        if time.time() - found.modified < LEFTOVER_GRACE_S:
            raise ServingError(
                f"{self.url}/{key}: another push of this version wrote other bytes "
                f"{int(time.time() - found.modified)} s ago (it may be at work or have died); "
                "nothing of a version is overwritten: retry after it finishes, or after an "
                "hour `spindle doctor --fix` removes what a dead push left"
            )
        self.bucket.put(key, data, if_match=found.etag)  # a dead writer's leftover

    def _compare(self, model: str, version: int, wanted: dict[str, str], when: str) -> None:
        problems = []
        for name, expected in sorted(wanted.items()):
            found = self.bucket.get(f"{model}/{version}/{name}")
            digest = "no object" if found is None else sha256_bytes(found.data)
            if digest != expected:
                problems.append(f"{name}: expected sha256 {expected}, found {digest}")
        if problems:
            raise ServingError(
                f"{self.version_url(model, version)}: {when}, the objects differ from the "
                f"version being pushed: {'; '.join(problems)}. Versions are immutable: export "
                "the change as a new version"
            )

    def push(
        self,
        version_dir: str | Path,
        *,
        weight: float | None = None,
        route: bool = True,
        registered: str | None = None,
    ) -> PushResult:
        """Upload a version and route traffic to it (see ``push`` of the local repository);
        a routing write that loses a race is planned again from a fresh read.

        Raises:
            ServingError: invalid files or weight, a version with different files, or every
                routing attempt lost a race.
        """
        if weight is not None and not 0 < weight <= 1:
            raise ServingError(f"push weight must be in (0, 1], found {weight}")
        model = check_model_name(_read_manifest(version_dir)["model"])
        self.remove_leftovers(model)
        installed = self.install_version(version_dir, registered=registered)
        if route:
            routing = self.change_routing(
                model, lambda current: push_routing(current, installed.version, weight)
            )
        else:
            routing = self.read_routing(model)
        url = self.version_url(model, installed.version)
        return PushResult(
            model, installed.version, Path(url), installed.sha256, installed.created, routing,
            installed.files,
        )  # fmt: skip

    def repository_id(self, *, create: bool = False) -> str | None:
        """The repository's random id (created once, by a conditional put, with ``create``)."""
        found = self.bucket.get(REPOSITORY_ID_FILE)
        if found is None and create:
            self.bucket.put(REPOSITORY_ID_FILE, (uuid.uuid4().hex + "\n").encode(), create=True)
            found = self.bucket.get(REPOSITORY_ID_FILE)
        return None if found is None else found.data.decode("utf-8").strip() or None

    # -- leftovers -------------------------------------------------------------------------

    def leftovers(self, *, grace_s: float = LEFTOVER_GRACE_S) -> list[str]:
        """Version prefixes (``<model>/<n>``) with objects but no manifest, untouched for
        ``grace_s`` seconds: a writer died before its last upload. Sorted."""
        found: dict[str, float] = {}
        manifests = set()
        for key, modified in self.bucket.listing().items():
            parts = key.split("/")
            if len(parts) != 3 or not _valid_name(parts[0]) or not parts[1].isdigit():
                continue
            prefix = f"{parts[0]}/{parts[1]}"
            found[prefix] = max(found.get(prefix, 0.0), modified)
            if parts[2] == MANIFEST_FILE:
                manifests.add(prefix)
        now = time.time()
        return sorted(p for p, t in found.items() if p not in manifests and now - t >= grace_s)

    def remove_leftovers(self, model: str, *, grace_s: float = LEFTOVER_GRACE_S) -> list[str]:
        """Delete the objects of ``model``'s leftover prefixes; return the prefixes."""
        check_model_name(model)
        mine = [p for p in self.leftovers(grace_s=grace_s) if p.partition("/")[0] == model]
        for prefix in mine:
            self.bucket.delete(sorted(self.bucket.listing(prefix)))
        return mine

    # -- the local cache -------------------------------------------------------------------

    def manifest_dir(self, model: str, version: int) -> Path:
        """A local folder holding only the version's manifest (to read what it records).

        Raises:
            ServingError: the version is not in the repository.
        """
        base = f"{check_model_name(model)}/{check_version(version)}"
        found = self.bucket.get(f"{base}/{MANIFEST_FILE}")
        if found is None:
            raise ServingError(f"{self.url}/{base}: no such version (no {MANIFEST_FILE})")
        digest = hashlib.sha256(self.url.encode()).hexdigest()[:16]
        folder = self.location.scratch_dir / "manifests" / digest / base
        folder.mkdir(parents=True, exist_ok=True)
        atomic_write_bytes(folder / MANIFEST_FILE, found.data)
        return folder

    def download(
        self, model: str, version: int, target: Path, *, registered: str | None = None
    ) -> Path:
        """Copy a version into the local folder ``target`` (absent), verified, by one rename.

        Raises:
            ServingError: the version is not in the repository, or its files do not verify
                against the manifest (and ``registered``) or do not load.
        """
        base = f"{check_model_name(model)}/{check_version(version)}"
        manifest = self.bucket.get(f"{base}/{MANIFEST_FILE}")
        if manifest is None:
            raise ServingError(f"{self.url}/{base}: no such version (no {MANIFEST_FILE})")
        with atomic_directory(target) as tmp:
            (tmp / MANIFEST_FILE).write_bytes(manifest.data)
            for name in _UPLOADS:
                found = self.bucket.get(f"{base}/{name}")
                if found is None:
                    raise ServingError(f"{self.url}/{base}/{name}: missing")
                (tmp / name).write_bytes(found.data)
            ModelRuntime.load(tmp, registered=registered)  # the manifest's and registry's hashes
        return target


def _valid_name(name: str) -> bool:
    try:
        check_model_name(name)
    except ServingError:
        return False
    return True


_OPENED: dict[Location, S3Repository] = {}


def model_repository(location: Location) -> Path | S3Repository:
    """The model repository at ``location``: its local folder, or this process's one
    :class:`S3Repository` for it (which keeps the ETags it read, so a command's read of
    routing.json and its later write are one compare-and-swap)."""
    if location.is_local:
        return location.path
    found = _OPENED.get(location)
    if found is None:
        found = _OPENED[location] = S3Repository(location)
    return found
