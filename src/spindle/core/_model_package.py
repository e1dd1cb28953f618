"""The model-version package: one owner for its file names, manifest and checksums.

A model version directory holds the serving files (``model.onnx``, ``transform.json``), the
training-only files (weights, ``input_spec.json``) and ``manifest.json``: the model, version,
the sha256 of every file, and the lineage of the version (training set, config, metrics, ...).
The version's *content hash* (:attr:`ModelPackage.content_hash`, the sha256 of its files'
checksums) is what the registry records when the version is trained: a directory whose manifest
lists other checksums is not that version, whatever its manifest says
(``verify_package(..., registered=...)``).
This module is the only one that spells those file names or opens the manifest: everything
else calls :func:`write_package`, :func:`read_package`, :func:`verify_package` and the path
helpers. The JSON is written as before (indented, key-sorted), so versions written by older
code read unchanged.

Reads are cached per manifest file (path, mtime, size): a run that reads the same version's
manifest in its train, evaluate and push steps parses it once. A :class:`ModelPackage` is
shared between readers and must not be modified.
"""

from __future__ import annotations

import copy
import json
import subprocess
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from spindle.core._atomic import atomic_write_json
from spindle.core._errors import ServingError
from spindle.core._hashing import sha256_file, sha256_json

MODEL_FILE = "model.onnx"
TRANSFORM_FILE = "transform.json"
MANIFEST_FILE = "manifest.json"
#: The files a serving copy of a model version holds (besides the generated config.pbtxt).
SERVING_FILES = (MODEL_FILE, TRANSFORM_FILE, MANIFEST_FILE)
#: The files every package's manifest lists and every copy of it holds.
REQUIRED_FILES = (MODEL_FILE, TRANSFORM_FILE)


@dataclass(frozen=True)
class ModelPackage:
    """The manifest of one model version: model, version, file checksums and lineage.

    ``data`` is the whole manifest as written (training versions, replicas and older versions
    carry different lineage keys); the properties read the keys every reader needs.
    """

    path: Path
    data: Mapping[str, Any]

    @property
    def model(self) -> str:
        return str(self.data["model"])

    @property
    def version(self) -> int:
        return int(self.data["version"])

    @property
    def files(self) -> dict[str, str]:
        """``{file name: sha256}`` of every file of the version."""
        return dict(self.data["files"])

    @property
    def content_hash(self) -> str:
        """The sha256 of the canonical JSON of :attr:`files`: the version's content hash.

        The train step records it in the registry when it completes the version; serving and
        ``spindle doctor`` compare a directory's manifest with that record, so a manifest
        rewritten to match other files is caught.
        """
        return sha256_json(self.files)

    @property
    def features(self) -> list[str]:
        """The feature pins the version was trained on (empty for an old manifest)."""
        return list(self.data.get("features") or [])

    @property
    def training_set_id(self) -> str | None:
        """The training set's id (a dict in a version's manifest, a string in a replica's)."""
        value = self.data.get("training_set")
        found = value.get("id") if isinstance(value, dict) else value
        return found if isinstance(found, str) else None

    @property
    def config_hash(self) -> str | None:
        found = self.data.get("config_hash")
        return found if isinstance(found, str) else None

    @property
    def base_version(self) -> int | None:
        found = self.data.get("base_version")
        return int(found) if found is not None else None

    @property
    def metrics(self) -> dict[str, Any]:
        return dict(self.data.get("metrics") or {})

    def get(self, key: str, default: Any = None) -> Any:
        """Any other manifest key (``config``, ``seed``, ``framework``, ...)."""
        return self.data.get(key, default)

    def to_json(self) -> dict[str, Any]:
        """The manifest as a plain dict (a deep copy: the package itself is shared)."""
        return copy.deepcopy(dict(self.data))


def model_file(directory: str | Path) -> Path:
    """The ONNX model of a version directory."""
    return Path(directory) / MODEL_FILE


def transform_file(directory: str | Path) -> Path:
    """The feature transform of a version directory."""
    return Path(directory) / TRANSFORM_FILE


def manifest_file(directory: str | Path) -> Path:
    """The manifest of a version directory."""
    return Path(directory) / MANIFEST_FILE


def read_transform_text(directory: str | Path) -> str:
    """The text of a version's transform (``Transform.from_json`` reads it)."""
    return transform_file(directory).read_text("utf-8")


def write_package(
    directory: str | Path, fields: Mapping[str, Any], files: Sequence[str]
) -> ModelPackage:
    """Write the manifest of the version in ``directory``: ``fields`` plus the files' sha256.

    ``fields`` must hold ``model`` and ``version``; ``files`` names the files of ``directory``
    to list (``model.onnx`` and ``transform.json`` are always listed). The manifest is written
    atomically (indented, key-sorted JSON, as every earlier version).

    Raises:
        ServingError: a field is invalid or a named file is missing.
        FileNotFoundError: a named file is missing from ``directory``.
    """
    root = Path(directory)
    names = list(dict.fromkeys([*REQUIRED_FILES, *files]))
    manifest = {**fields, "files": {name: sha256_file(root / name) for name in names}}
    path = manifest_file(root)
    _check(manifest, path)
    atomic_write_json(path, manifest)
    return ModelPackage(path.parent, manifest)


_CACHE: dict[Path, tuple[tuple[int, int], ModelPackage]] = {}


def read_package(directory: str | Path) -> ModelPackage:
    """Read and check the shape of the manifest of a model version directory.

    Raises:
        ServingError: the manifest is missing, not JSON, or lacks model/version/files (one
            line naming the file and the keys).
    """
    path = manifest_file(directory)
    try:
        stat = path.stat()
        key = (stat.st_mtime_ns, stat.st_size)
        cached = _CACHE.get(path)
        if cached is not None and cached[0] == key:
            return cached[1]
        manifest = json.loads(path.read_text("utf-8"))
    except FileNotFoundError as exc:
        raise ServingError(f"{path}: missing; a model version directory needs a manifest") from exc
    except (OSError, ValueError) as exc:
        raise ServingError(f"{path}: unreadable manifest: {exc}") from exc
    package = ModelPackage(path.parent, _check(manifest, path))
    _CACHE[path] = (key, package)
    return package


def _check(manifest: Any, path: Path) -> dict[str, Any]:
    if not isinstance(manifest, dict):
        raise ServingError(f"{path}: expected a JSON object, found {type(manifest).__name__}")
    problems = []
    if not isinstance(manifest.get("model"), str):
        problems.append("`model` must be a string")
    version = manifest.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        problems.append(f"`version` must be a positive integer, found {version!r}")
    files = manifest.get("files")
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        problems.append("`files` must map file names to sha256 hex digests")
    else:
        problems += [f"`files` lacks {name}" for name in REQUIRED_FILES if name not in files]
        problems += [
            f"`files` names {name!r}, which leaves the version directory"
            for name in files
            if Path(name).is_absolute() or ".." in Path(name).parts
        ]
    if problems:
        raise ServingError(f"{path}: invalid manifest: {'; '.join(problems)}")
    return manifest


def verify_package(
    directory: str | Path,
    package: ModelPackage,
    *,
    only_present: bool = False,
    registered: str | None = None,
) -> list[str]:
    """The files of ``directory`` that are missing or differ from ``package``'s checksums.

    Args:
        directory: the version directory (or a serving copy of it).
        package: its manifest.
        only_present: skip files other than model.onnx and transform.json that are absent
            (a serving copy holds no training-only files).
        registered: the content hash the registry recorded for the version; when given, a
            manifest whose checksums hash to anything else is a problem too (the first line).

    Returns:
        One line per problem (``"<file>: missing ..."``, ``"<file>: sha256 mismatch ..."``);
        empty when every file matches.
    """
    root = Path(directory)
    problems = []
    if registered is not None and package.content_hash != registered:
        problems.append(
            f"{root / MANIFEST_FILE}: not the version the registry recorded: its checksums hash "
            f"to {package.content_hash}, the registry recorded {registered} for "
            f"{package.data.get('model')}@{package.data.get('version')} when it was trained"
        )
    for name, expected in sorted(package.files.items()):
        path = root / name
        if Path(name).is_absolute() or ".." in Path(name).parts:
            problems.append(f"{root / MANIFEST_FILE}: file name {name!r} leaves the version dir")
            continue
        if only_present and name not in REQUIRED_FILES and not path.exists():
            continue
        if not path.is_file():
            problems.append(f"{path}: missing; the manifest expects sha256 {expected}")
            continue
        found = sha256_file(path)
        if found != expected:
            problems.append(
                f"{path}: sha256 mismatch: the manifest expects {expected}, found {found}"
            )
    return problems


def code_version() -> str:
    """The code's git commit as a version records it (``git rev-parse HEAD`` beside the
    spindle package; ``unknown`` outside a checkout)."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=False,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or "unknown"
    except OSError:
        return "unknown"


def package_version(name: str) -> str:
    """An installed distribution's version as a version records it (``absent`` when not
    installed)."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "absent"
