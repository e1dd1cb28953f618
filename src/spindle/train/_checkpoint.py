"""Checkpoint files: atomic writes with a sha256 sidecar, the last two kept, corrupt ones skipped.

A checkpoint directory belongs to one run (the caller keys it by the run's idempotency key).
Each checkpoint is ``ckpt-<fingerprint[:16]>-<step>.pt`` (``torch.save`` of a dict of tensors
and plain values, loaded with ``weights_only=True``: no pickled code) and a sidecar
``<same>.pt.json`` holding its sha256, step and the run fingerprint. The ``.pt`` is written
first and the sidecar second, both atomically, so a checkpoint without a sidecar or whose bytes
do not match it was interrupted or damaged, and the previous one is used instead.

A run whose checkpoints must outlive the machine (a fit on a cluster's node, with the
workspace's artifacts on an object store) also keeps them at a *mirror*: the caller names it
once with :func:`mirror_checkpoints`, which writes ``mirror.json`` into the directory, so every
process training into the directory (DDP's rank 0 too) finds it. Each checkpoint is then also
put as one object ``ckpt-<fingerprint[:16]>-<step>-<sha256[:32]>.pt``: an object appears whole
or not at all (no rename is needed), and its name carries the hash its bytes must have, so no
sidecar can be paired with another writer's bytes. A process that finds no intact checkpoint
of its own fetches the newest intact one from the mirror: a fit retried on another node
resumes where the lost node's last checkpoint left it. A checkpoint that cannot be put there
fails the run with one line (a run that believes it is protected must be).
"""

from __future__ import annotations

import fcntl
import io
import json
import os
import pickle
import re
from pathlib import Path
from typing import Any

import torch

from spindle.core import (
    DataError,
    Location,
    TrainingError,
    atomic_write_bytes,
    atomic_write_json,
    kill_point,
    sha256_bytes,
)

KEEP_LAST = 2
_FORMAT = "spindle.checkpoint/2"  # 2: stacked embedding table, RowAdam state
MIRROR_FILE = "mirror.json"
_MIRRORED = re.compile(r"^(?P<step>\d{10})-(?P<sha>[0-9a-f]{32})\.pt$")


def mirror_checkpoints(directory: Path, where: Location | None) -> None:
    """Keep the checkpoints trained into ``directory`` at ``where`` too (None: only here).

    Writes ``directory/mirror.json`` (mode 0600: it holds the store's options) that every
    :class:`CheckpointStore` of the directory reads.
    """
    directory = Path(directory)
    marker = directory / MIRROR_FILE
    if where is None:
        marker.unlink(missing_ok=True)
        return
    directory.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"url": where.url, "options": [list(p) for p in where.options]})
    tmp = marker.with_name(f".{MIRROR_FILE}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as file:
        file.write(text)
    tmp.replace(marker)


def _mirror_of(directory: Path) -> Location | None:
    marker = directory / MIRROR_FILE
    if not marker.is_file():
        return None
    try:
        found = json.loads(marker.read_text())
        return Location.of(found["url"], dict(found["options"]))
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise TrainingError(
            f"{marker} is unreadable ({error}); delete it to keep this run's checkpoints only "
            "in the directory, or rerun the step that wrote it"
        ) from None


class CheckpointStore:
    """The checkpoints of one run (one fingerprint) in ``directory``.

    Args:
        directory: created if missing; locked for the store's lifetime so that two processes
            never train into the same directory at once.
        fingerprint: the run's identity (config hash + data hash); checkpoints of another
            fingerprint in the same directory are ignored, never loaded or deleted.
    """

    def __init__(self, directory: Path, fingerprint: str) -> None:
        self.directory = Path(directory)
        self.fingerprint = fingerprint
        self._prefix = f"ckpt-{fingerprint[:16]}-"
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = open(self.directory / ".lock", "a")  # noqa: SIM115 - held until close()
        try:
            fcntl.flock(self._lock.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            self._lock.close()
            raise TrainingError(
                f"another process is training into checkpoint dir {self.directory}; wait for it "
                "to finish or give this run its own checkpoint dir"
            ) from None
        # A temp file left by a killed writer is never a valid checkpoint.
        for stray in self.directory.glob(f".{self._prefix}*.tmp"):
            stray.unlink(missing_ok=True)
        try:
            self.mirror = _mirror_of(self.directory)
        except TrainingError:
            self.close()
            raise

    def close(self) -> None:
        """Release the directory lock."""
        self._lock.close()

    def save(self, step: int, state: dict[str, Any]) -> Path:
        """Write ``state`` as the checkpoint of ``step`` and delete all but the last two."""
        buffer = io.BytesIO()
        torch.save({**state, "format": _FORMAT, "fingerprint": self.fingerprint}, buffer)
        data = buffer.getvalue()
        path = self.directory / f"{self._prefix}{step:010d}.pt"
        atomic_write_bytes(path, data)
        digest = sha256_bytes(data)
        sidecar = {"sha256": digest, "step": step, "fingerprint": self.fingerprint}
        atomic_write_json(_sidecar(path), sidecar)
        if self.mirror is not None:
            self._put_mirrored(step, data, digest)
            kill_point("checkpoint:kept")  # a node lost after a checkpoint reached the store
        self._prune()
        return path

    def load_latest(self) -> tuple[dict[str, Any] | None, int, list[str]]:
        """Return ``(state, step, notes)`` of the newest intact checkpoint (``state`` is None
        and ``step`` 0 when there is none); ``notes`` name every checkpoint skipped and why.
        """
        notes: list[str] = []
        others = [
            p for p in self.directory.glob("ckpt-*.pt") if not p.name.startswith(self._prefix)
        ]
        if others:
            notes.append(f"ignored {len(others)} checkpoint(s) of another run in {self.directory}")
        for step, path in reversed(self._own()):
            data, problem = _read_verified(path, self.fingerprint)
            if data is not None:
                state = _loaded(data, self.fingerprint)
                if not isinstance(state, str):
                    return state, step, notes
                problem = state
            notes.append(f"skipped checkpoint {path.name}: {problem}")
        if self.mirror is not None:
            return self._load_mirrored(notes)
        return None, 0, notes

    def steps(self) -> list[int]:
        """The steps of this run's checkpoints on disk (intact or not), oldest first."""
        return [step for step, _ in self._own()]

    def mirrored_steps(self) -> list[int]:
        """The steps of this run's checkpoints at the mirror, oldest first (none: no mirror)."""
        return sorted({step for step, _, _ in self._mirrored()})

    def _put_mirrored(self, step: int, data: bytes, digest: str) -> None:
        assert self.mirror is not None
        name = f"{self._prefix}{step:010d}-{digest[:32]}.pt"
        try:
            (self.mirror / name).write_bytes(data)  # one put: whole or absent
            found = self._mirrored()
            steps = sorted({s for s, _, _ in found})
            for old_step, _, where in found:
                if old_step < steps[-KEEP_LAST:][0]:
                    where.delete()
        except DataError as error:
            raise TrainingError(
                f"the checkpoint of step {step} could not be kept at {self.mirror} ({error}); "
                "check that the object store is reachable and writable, then rerun: training "
                "resumes from the last checkpoint kept"
            ) from None

    def _mirrored(self) -> list[tuple[int, str, Location]]:
        """``(step, sha256 prefix, location)`` of this run's objects at the mirror."""
        assert self.mirror is not None
        found = []
        for where in self.mirror.files():
            match = _MIRRORED.match(where.name.removeprefix(self._prefix))
            if where.name.startswith(self._prefix) and match:
                found.append((int(match["step"]), match["sha"], where))
        return sorted(found, key=lambda item: (item[0], str(item[2])))

    def _load_mirrored(self, notes: list[str]) -> tuple[dict[str, Any] | None, int, list[str]]:
        """The newest intact checkpoint at the mirror (when none here was intact)."""
        try:
            found = self._mirrored()
        except DataError as error:
            notes.append(f"could not list the checkpoints at {self.mirror}: {error}")
            return None, 0, notes
        for step, digest, where in reversed(found):
            try:
                data = where.read_bytes()
            except (OSError, DataError) as error:
                notes.append(f"skipped checkpoint {where}: unreadable ({error})")
                continue
            if sha256_bytes(data)[:32] != digest:
                notes.append(f"skipped checkpoint {where}: its bytes do not match its name")
                continue
            state = _loaded(data, self.fingerprint)
            if isinstance(state, str):
                notes.append(f"skipped checkpoint {where}: {state}")
                continue
            notes.append(f"fetched the checkpoint of step {step} from {self.mirror}")
            return state, step, notes
        return None, 0, notes

    def _own(self) -> list[tuple[int, Path]]:
        found = []
        for path in self.directory.glob(f"{self._prefix}*.pt"):
            suffix = path.stem.removeprefix(self._prefix)
            if suffix.isdigit():
                found.append((int(suffix), path))
        return sorted(found)

    def _prune(self) -> None:
        own = self._own()
        intact = [(s, p) for s, p in own if _sidecar(p).exists()]
        if len(intact) <= KEEP_LAST:
            return
        oldest_kept = intact[-KEEP_LAST][0]
        for step, path in own:
            if step < oldest_kept:
                _sidecar(path).unlink(missing_ok=True)
                path.unlink(missing_ok=True)


def _loaded(data: bytes, fingerprint: str) -> dict[str, Any] | str:
    """The checkpoint's state, or why it cannot be resumed."""
    try:
        state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except (RuntimeError, ValueError, pickle.UnpicklingError) as error:
        return f"unloadable ({error})"
    if not isinstance(state, dict):
        return "its contents are not a checkpoint"
    if state.get("format") == _FORMAT and state.get("fingerprint") == fingerprint:
        return state
    return "its contents name another format or run"


def _sidecar(path: Path) -> Path:
    return path.with_name(path.name + ".json")


def _read_verified(path: Path, fingerprint: str) -> tuple[bytes | None, str]:
    """The bytes of ``path`` if they match its sidecar and run, else None and the problem."""
    sidecar = _sidecar(path)
    if not sidecar.exists():
        return None, "no sidecar (the writer was interrupted)"
    try:
        expected = json.loads(sidecar.read_text())
        data = path.read_bytes()
    except (OSError, ValueError) as error:
        return None, f"unreadable ({error})"
    if expected.get("fingerprint") != fingerprint:
        return None, "its sidecar names another run"
    digest = sha256_bytes(data)
    if digest != expected.get("sha256"):
        return (
            None,
            f"sha256 {digest[:12]} does not match its sidecar ({str(expected.get('sha256'))[:12]})",
        )
    return data, ""
