"""The model repository on disk: immutable version directories and each model's routing.json.

Layout (Triton-style, so Triton or KServe can read the same tree)::

    <repo>/<model>/routing.json          {"model", "weights": {"<version>": w}, "previous", ...}
    <repo>/<model>/<version>/model.onnx
    <repo>/<model>/<version>/transform.json
    <repo>/<model>/<version>/manifest.json
    <repo>/<model>/<version>/config.pbtxt

A version directory appears by one rename (never half-written) and never changes afterwards;
routing.json is replaced atomically, under a per-model file lock. Every writer of a model's
directory holds that lock, so a temp file or directory (``.*.tmp``) found there by a holder of
the lock was left by a writer that died: :func:`remove_leftovers` removes it.

Given the registry's record of a version (``registered``: its content hash), installing,
rolling back to and restoring a version refuse files that are not the ones the registry
recorded, whatever their manifest says.

The routing and version functions also take an ``S3Repository`` (a repository at
``s3://bucket/prefix``, ``serve/_repository_s3.py``): same layout, the manifest uploaded last
instead of a rename, routing.json by compare-and-swap instead of the lock alone.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import re
import shutil
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from spindle.core import (
    ServingError,
    atomic_directory,
    atomic_write_json,
    file_lock,
    kill_point,
    sha256_bytes,
    sha256_file,
)
from spindle.serve._integrity import Registered
from spindle.serve._runtime import (
    MANIFEST_FILE,
    MODEL_FILE,
    SERVING_FILES,
    TRANSFORM_FILE,
    ModelRuntime,
    TensorSpec,
    read_manifest,
)

if TYPE_CHECKING:
    from spindle.serve._repository_s3 import S3Repository

ROUTING_FILE = "routing.json"
REPOSITORY_ID_FILE = "repository_id"
CONFIG_FILE = "config.pbtxt"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_WEIGHT_TOLERANCE = 1e-6
_PBTXT_TYPES = {"FP32": "TYPE_FP32", "FP64": "TYPE_FP64", "INT64": "TYPE_INT64"}


def check_model_name(model: object) -> str:
    """Return ``model`` if it is a valid model name (``^[a-z][a-z0-9_]{0,63}$``).

    Raises:
        ServingError: anything else, e.g. ``../etc`` (names become directory names).
    """
    if not isinstance(model, str) or not _NAME.fullmatch(model):
        raise ServingError(
            f"invalid model name {model!r}: use lowercase letters, digits and _, "
            "starting with a letter (at most 64 characters)"
        )
    return model


def check_version(version: object) -> int:
    """Return ``version`` if it is a positive int (a string of digits is accepted).

    Raises:
        ServingError: anything else.
    """
    if isinstance(version, str) and version.isascii() and version.isdigit():
        version = int(version)
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ServingError(f"invalid model version {version!r}: expected a positive integer")
    return version


def version_dir(repo: str | Path, model: str, version: int) -> Path:
    """The directory of one version in the repository (names validated first)."""
    return Path(repo) / check_model_name(model) / str(check_version(version))


@dataclass(frozen=True)
class Routing:
    """Traffic weights of one model's versions, and the version to fall back to."""

    model: str
    weights: dict[int, float]
    previous: int | None = None
    updated_at: str | None = None

    @property
    def main(self) -> int | None:
        """The version with the most traffic (the newest on a tie); None when nothing routes."""
        live = [(w, v) for v, w in self.weights.items() if w > 0]
        return max(live)[1] if live else None

    @classmethod
    def from_json(cls, model: str, payload: Any, where: str) -> Routing:
        """The routing of ``model`` in a parsed routing file found at ``where``.

        Raises:
            ServingError: the payload is not a valid routing file (names ``where``).
        """
        try:
            weights = {check_version(v): float(w) for v, w in dict(payload["weights"]).items()}
            previous = payload.get("previous")
            return cls(
                model,
                weights,
                None if previous is None else check_version(previous),
                payload.get("updated_at"),
            )
        except (KeyError, TypeError, ValueError, ServingError) as exc:
            raise ServingError(f"{where}: invalid routing file: {exc}") from exc

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "weights": {str(v): w for v, w in sorted(self.weights.items())},
            "previous": self.previous,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class InstalledVersion:
    """A version copied (or found) in the repository: where, its files' sha256, whether new."""

    model: str
    version: int
    path: Path
    created: bool
    files: dict[str, str] = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        """The sha256 of its model file."""
        return self.files[MODEL_FILE]


@dataclass(frozen=True)
class PushResult:
    """What :func:`push` did: where the version lives and how traffic is now routed."""

    model: str
    version: int
    path: Path
    sha256: str
    created: bool
    routing: Routing
    files: dict[str, str] = field(default_factory=dict)


def read_routing(repo: str | Path | S3Repository, model: str) -> Routing:
    """Read ``<repo>/<model>/routing.json`` (empty weights when the model has none yet).

    Raises:
        ServingError: invalid model name, or the file is not a valid routing file.
    """
    if not isinstance(repo, str | Path):  # on an object store
        return repo.read_routing(model)
    path = Path(repo) / check_model_name(model) / ROUTING_FILE
    try:
        payload = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return Routing(model, {})
    except (OSError, ValueError) as exc:
        raise ServingError(f"{path}: unreadable routing file: {exc}") from exc
    return Routing.from_json(model, payload, str(path))


def write_routing(repo: str | Path | S3Repository, routing: Routing) -> Routing:
    """Replace ``<repo>/<model>/routing.json`` atomically (temp file + rename) and stamp it.

    Callers hold :func:`routing_lock` of the model while they read, decide and write.
    """
    if not isinstance(repo, str | Path):  # on an object store
        return repo.write_routing(routing)  # compare-and-swap on the ETag read
    stamped = Routing(
        routing.model, routing.weights, routing.previous, dt.datetime.now(dt.UTC).isoformat()
    )
    atomic_write_json(
        Path(repo) / check_model_name(routing.model) / ROUTING_FILE, stamped.to_json()
    )
    return stamped


def routing_lock(repo: str | Path | S3Repository, model: str) -> AbstractContextManager[None]:
    """Serialise pushes and routing changes of one model, across processes (not re-entrant)."""
    if not isinstance(repo, str | Path):  # on an object store
        return repo.lock(model)
    return file_lock(Path(repo) / check_model_name(model) / ".lock")


def repository_id(repo: str | Path | S3Repository, *, create: bool = False) -> str | None:
    """The random id of a model repository (``<repo>/repository_id``), None when it has none.

    With ``create`` the id is made once, by a link that fails if another process won the race,
    so every server and client of one repository reads the same id. A server reports it in
    ``/v1/versions`` so that ``spindle status`` can tell whose repository a server serves.
    """
    if not isinstance(repo, str | Path):  # on an object store
        return repo.repository_id(create=create)
    path = Path(repo) / REPOSITORY_ID_FILE
    try:
        return path.read_text("utf-8").strip() or None
    except FileNotFoundError:
        if not create:
            return None
    except OSError:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{REPOSITORY_ID_FILE}.{uuid.uuid4().hex}")
        tmp.write_text(uuid.uuid4().hex + "\n", "utf-8")
        try:
            os.link(tmp, path)
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        return path.read_text("utf-8").strip() or None
    except OSError:
        return None


def list_versions(repo: str | Path | S3Repository, model: str) -> list[int]:
    """Versions of ``model`` present in the repository, ascending."""
    if not isinstance(repo, str | Path):  # on an object store
        return repo.list_versions(model)
    root = Path(repo) / check_model_name(model)
    if not root.is_dir():
        return []
    return sorted(int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit())


def render_config(
    model: str, inputs: tuple[TensorSpec, ...], outputs: tuple[TensorSpec, ...]
) -> str:
    """A Triton ``config.pbtxt`` for an ONNX model (batch dimension left dynamic as -1)."""

    def tensors(specs: tuple[TensorSpec, ...]) -> str:
        items = [
            f'  {{\n    name: "{s.name}"\n'
            f"    data_type: {_PBTXT_TYPES.get(s.datatype, 'TYPE_' + s.datatype)}\n"
            f"    dims: [ {', '.join(str(d) for d in s.shape)} ]\n  }}"
            for s in specs
        ]
        return ",\n".join(items)

    return (
        f'name: "{model}"\nplatform: "onnxruntime_onnx"\nmax_batch_size: 0\n'
        f"input [\n{tensors(inputs)}\n]\noutput [\n{tensors(outputs)}\n]\n"
    )


def push(
    version_dir: str | Path,
    repo: str | Path,
    *,
    weight: float | None = None,
    route: bool = True,
    registered: str | None = None,
) -> PushResult:
    """Copy a model version into the repository and route traffic to it.

    The version is verified and loaded (a model that does not load is refused), copied into
    ``<repo>/<model>/<version>/`` through a temp dir and one rename, and verified again (see
    :func:`install_version`). With ``weight`` None or 1.0 it takes all traffic and the version
    that served most becomes ``previous``; with ``0 < weight < 1`` it takes that share and the
    other versions keep their proportions (the first version of a model takes all traffic, as
    there is nothing to share with). Pushing the same files again is a no-op.

    Args:
        registered: the content hash the registry recorded for the version; when given, files
            that are not that version's are refused.

    Raises:
        ServingError: invalid files or checksums, invalid weight, or the version already exists
            with different files (versions are immutable: export a new version).

    Example:
        >>> push("artifacts/search_ranker/3", "model_repo", weight=0.1)  # doctest: +SKIP
    """
    if weight is not None and not (0 < weight <= 1 and math.isfinite(weight)):
        raise ServingError(f"push weight must be in (0, 1], found {weight}")
    root = Path(repo)
    model = check_model_name(read_manifest(version_dir)["model"])
    with routing_lock(root, model):
        remove_leftovers(root, model)
        installed = install_version(version_dir, root, registered=registered)
        current = read_routing(root, model)
        routing = push_routing(current, installed.version, weight) if route else current
        if route and routing != current:
            routing = write_routing(root, routing)
    return PushResult(
        model,
        installed.version,
        installed.path,
        installed.sha256,
        installed.created,
        routing,
        installed.files,
    )


def install_version(
    version_dir: str | Path, repo: str | Path | S3Repository, *, registered: str | None = None
) -> InstalledVersion:
    """Copy a model version into ``<repo>/<model>/<version>/`` unless it is there already.

    The caller holds :func:`routing_lock` of the model. The version is verified (against
    ``registered``, the registry's content hash, when given) and loaded first; the copy is
    made in a temp dir, verified, and renamed into place. A version already in the repository
    must hold the same files (it is compared, never overwritten).

    Raises:
        ServingError: invalid files or checksums, or the version exists with different files.
    """
    if not isinstance(repo, str | Path):  # on an object store
        return repo.install_version(version_dir, registered=registered)
    source, root = Path(version_dir), Path(repo)
    manifest = read_manifest(source)
    model, version = check_model_name(manifest["model"]), check_version(manifest["version"])
    # verifies checksums (and the registry's record) and that onnxruntime loads it
    runtime = ModelRuntime.load(source, registered=registered)
    config = render_config(model, runtime.inputs, runtime.outputs)
    # the checksums the copy must have: the manifest's, which ModelRuntime.load just verified
    wanted = {name: manifest["files"][name] for name in (MODEL_FILE, TRANSFORM_FILE)}
    wanted[MANIFEST_FILE] = sha256_file(source / MANIFEST_FILE)
    wanted[CONFIG_FILE] = sha256_bytes(config.encode("utf-8"))
    target = root / model / str(version)
    created = not target.exists()
    if created:
        with atomic_directory(target) as tmp:
            for name in SERVING_FILES:
                shutil.copyfile(source / name, tmp / name)
            (tmp / CONFIG_FILE).write_text(config, "utf-8")
            kill_point("repository:copied")  # a crash here leaves a .tmp dir, never a version
            _compare(tmp, wanted, target, "after copying")
    else:
        _compare(target, wanted, target, "already in the repository")
    repository_id(root, create=True)
    return InstalledVersion(model, version, target, created, wanted)


def restore_version(
    version_dir: str | Path, repo: str | Path, *, registered: str
) -> InstalledVersion:
    """Replace the repository's copy of a version by a verified copy of ``version_dir``.

    For a copy whose files are not the ones the registry recorded (changed or replaced after
    the push): ``version_dir`` (the version's artifact) is verified against ``registered``
    first, copied beside the damaged copy, and swapped in. The caller holds
    :func:`routing_lock` of the model.

    Raises:
        ServingError: ``version_dir`` itself is not the registered version, or does not load.
    """
    source, root = Path(version_dir), Path(repo)
    manifest = read_manifest(source)
    model, version = check_model_name(manifest["model"]), check_version(manifest["version"])
    ModelRuntime.load(source, registered=registered)
    target = root / model / str(version)
    if target.exists():
        # a temp name (.N.<hex>.tmp): a crash before it is removed leaves a leftover, no version
        damaged = target.with_name(f".{version}.{uuid.uuid4().hex}.tmp")
        target.rename(damaged)
        shutil.rmtree(damaged, ignore_errors=True)
    return install_version(source, root, registered=registered)


def _compare(directory: Path, wanted: dict[str, str], target: Path, when: str) -> None:
    problems = []
    for name, expected in sorted(wanted.items()):
        path = directory / name
        found = sha256_file(path) if path.is_file() else "no file"
        if found != expected:
            problems.append(f"{name}: expected sha256 {expected}, found {found}")
    if problems:
        raise ServingError(
            f"{target}: {when}, the files differ from the version being pushed: "
            f"{'; '.join(problems)}. Versions are immutable: export the change as a new version"
        )


def push_routing(current: Routing, version: int, weight: float | None) -> Routing:
    """The routing after pushing ``version`` with ``weight`` onto ``current`` (nothing written).

    Returns ``current`` itself when the version is already routed as asked.
    """
    model = current.model
    share = 1.0 if weight is None else weight
    if math.isclose(current.weights.get(version, 0.0), share, abs_tol=_WEIGHT_TOLERANCE):
        return current  # already routed as asked: pushing again is a no-op
    others = {v: w for v, w in current.weights.items() if v != version and w > 0}
    incumbent = Routing(model, others).main
    if share >= 1.0 or not others:
        previous = incumbent if incumbent is not None else current.previous
        if previous == version:
            previous = None
        return Routing(model, {version: 1.0}, previous)
    scale = (1.0 - share) / sum(others.values())
    weights = {v: w * scale for v, w in others.items()} | {version: share}
    return Routing(model, weights, incumbent)


def set_routing(repo: str | Path | S3Repository, model: str, weights: dict[int, float]) -> Routing:
    """Route traffic of ``model`` by ``weights`` (version -> share; shares sum to 1).

    When the version with the most traffic changes, the one it replaces becomes ``previous``.

    Raises:
        ServingError: a weight is negative or not finite, the sum is not 1 (within 1e-6), or a
            version is not in the repository.
    """
    if not isinstance(repo, str | Path):  # on an object store
        return repo.set_routing(model, weights)
    root = Path(repo)
    with routing_lock(root, check_model_name(model)):
        routing = weights_routing(root, read_routing(root, model), weights)
        return write_routing(root, routing)


def weights_routing(
    repo: str | Path | S3Repository, current: Routing, weights: dict[int, float]
) -> Routing:
    """The routing :func:`set_routing` would write for ``weights`` (validated; nothing written).

    Raises:
        ServingError: as :func:`set_routing`.
    """
    if not isinstance(repo, str | Path):  # on an object store
        return plan_weights(current, weights, repo.list_versions(current.model), repo.url)
    root = Path(repo)
    return plan_weights(current, weights, list_versions(root, current.model), str(root))


def plan_weights(
    current: Routing, weights: dict[int, float], present: list[int], where: str
) -> Routing:
    """:func:`weights_routing` given the versions ``present`` in the repository ``where``.

    Raises:
        ServingError: as :func:`set_routing`.
    """
    model = current.model
    clean: dict[int, float] = {}
    for v, w in weights.items():
        if not isinstance(w, int | float) or not math.isfinite(w) or w < 0:
            raise ServingError(f"{model}: weight of version {v} must be a number >= 0, found {w}")
        if w > 0:
            clean[check_version(v)] = float(w)
    total = sum(clean.values())
    if abs(total - 1.0) > _WEIGHT_TOLERANCE:
        raise ServingError(f"{model}: weights must sum to 1 (within 1e-6), they sum to {total}")
    missing = sorted(v for v in clean if v not in present)
    if missing:
        raise ServingError(
            f"{model}: versions {missing} are not in the repository {where} "
            f"(present: {present}); push them first"
        )
    new = Routing(model, clean)
    previous = current.previous
    if current.main is not None and current.main != new.main:
        previous = current.main
    if previous == new.main:
        previous = None
    return Routing(model, clean, previous)


def rollback(
    repo: str | Path | S3Repository, model: str, *, registered: Registered | None = None
) -> int:
    """Route all traffic of ``model`` to its ``previous`` version and return that version.

    The version rolled back from is not kept as the new ``previous`` (it was bad); the newest
    version older than the one now serving is, so a second rollback goes one further back.

    Raises:
        ServingError: no previous version is recorded, or its files fail verification.
    """
    if not isinstance(repo, str | Path):  # on an object store
        return repo.rollback(model, registered=registered)
    root = Path(repo)
    with routing_lock(root, check_model_name(model)):
        routing = rollback_routing(root, read_routing(root, model), registered=registered)
        write_routing(root, routing)
    target = routing.main
    assert target is not None  # rollback_routing routes all traffic to one version
    return target


def rollback_routing(
    repo: str | Path | S3Repository, current: Routing, *, registered: Registered | None = None
) -> Routing:
    """The routing :func:`rollback` would write: all traffic to ``previous`` (nothing written).

    Args:
        registered: the registry's content hash of each version; when given, a ``previous``
            whose files are not the ones the registry recorded is refused.

    Raises:
        ServingError: no previous version is recorded, or its files fail verification.
    """
    if not isinstance(repo, str | Path):  # on an object store
        return repo.rollback_routing(current, registered=registered)
    root, model = Path(repo), current.model
    target = current.previous
    if target is None:
        raise ServingError(
            f"{model}: nothing to roll back to: routing.json records no previous version "
            f"(weights: {current.to_json()['weights']}); use `spindle route` to pick one"
        )
    expected = registered(model, target) if registered is not None else None
    ModelRuntime.load(version_dir(root, model, target), registered=expected)  # refuse a bad one
    older = [v for v in list_versions(root, model) if v < target]
    return Routing(model, {target: 1.0}, older[-1] if older else None)


def leftovers(repo: str | Path) -> list[Path]:
    """Temp files and directories (``<repo>/<model>/.*.tmp``) that writers left, sorted.

    Read without the lock: a write in progress shows here too; :func:`remove_leftovers`,
    called under the model's lock, removes only what a dead writer left.
    """
    root = Path(repo)
    if not root.is_dir():
        return []
    return sorted(
        path
        for model_dir in root.iterdir()
        if model_dir.is_dir() and _NAME.fullmatch(model_dir.name)
        for path in model_dir.glob(".*.tmp")
    )


def remove_leftovers(repo: str | Path | S3Repository, model: str) -> list[Path]:
    """Remove the temp files and directories a crashed writer left in ``<repo>/<model>/``.

    The caller holds :func:`routing_lock` of the model: every writer of the model's directory
    holds it while its temp files exist, so none found now belongs to a live writer.

    Returns:
        What was removed.
    """
    if not isinstance(repo, str | Path):  # on an object store
        return [Path(prefix) for prefix in repo.remove_leftovers(model)]
    found = sorted((Path(repo) / check_model_name(model)).glob(".*.tmp"))
    for path in found:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    return found
