"""Checkpoint files: atomic writes with a sha256 sidecar, the last two kept, corrupt ones skipped.

A checkpoint directory belongs to one run (the caller keys it by the run's idempotency key).
Each checkpoint is ``ckpt-<fingerprint[:16]>-<step>.pt`` (``torch.save`` of a dict of tensors
and plain values, loaded with ``weights_only=True``: no pickled code) and a sidecar
``<same>.pt.json`` holding its sha256, step and the run fingerprint. The ``.pt`` is written
first and the sidecar second, both atomically, so a checkpoint without a sidecar or whose bytes
do not match it was interrupted or damaged, and the previous one is used instead.
"""

from __future__ import annotations

import fcntl
import io
import json
import pickle
from pathlib import Path
from typing import Any

import torch

from spindle.core import TrainingError, atomic_write_bytes, atomic_write_json, sha256_bytes

KEEP_LAST = 2
_FORMAT = "spindle.checkpoint/2"  # 2: stacked embedding table, RowAdam state


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
        sidecar = {"sha256": sha256_bytes(data), "step": step, "fingerprint": self.fingerprint}
        atomic_write_json(_sidecar(path), sidecar)
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
                try:
                    state = torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
                except (RuntimeError, ValueError, pickle.UnpicklingError) as error:
                    problem = f"unloadable ({error})"
                else:
                    if (
                        state.get("format") == _FORMAT
                        and state.get("fingerprint") == self.fingerprint
                    ):
                        return state, step, notes
                    problem = "its contents name another format or run"
            notes.append(f"skipped checkpoint {path.name}: {problem}")
        return None, 0, notes

    def steps(self) -> list[int]:
        """The steps of this run's checkpoints on disk (intact or not), oldest first."""
        return [step for step, _ in self._own()]

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
