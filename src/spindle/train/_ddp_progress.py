"""Progress of DDP ranks: rank 0 appends ``{"done", "total"}`` lines to a file beside the
checkpoints, and the launching process tails it for its ``progress`` callback (the same file
works for spawned ranks and for torchrun's, on any machine that shares the directory)."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from pathlib import Path

from spindle.core import throttled


def progress_file(checkpoint_dir: Path, fingerprint: str) -> Path:
    """Where rank 0 of the run ``fingerprint`` appends its progress lines."""
    return Path(checkpoint_dir) / f"progress-{fingerprint[:16]}.jsonl"


def progress_writer(path: Path, min_interval_s: float = 0.5) -> Callable[[int, int], None]:
    """Rank 0's step hook: append ``{"done", "total"}`` at most every ``min_interval_s``
    and for the last step (one small append; the training step never waits on a reader)."""

    def write(done: int, total: int) -> None:
        with open(path, "a", encoding="utf-8") as out:
            out.write(json.dumps({"done": done, "total": total}) + "\n")

    return throttled(write, min_interval_s)


class ProgressTail:
    """While the ranks train, read rank 0's new progress lines every ``interval_s`` and pass
    them to ``progress`` (from a daemon thread; once more, in the caller's thread, at exit)."""

    def __init__(
        self, path: Path, progress: Callable[[int, int], None] | None, interval_s: float = 0.5
    ) -> None:
        self._path = path
        self._progress = progress
        self._interval_s = interval_s
        self._offset = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="ddp-progress", daemon=True)
        self._error: BaseException | None = None

    def __enter__(self) -> ProgressTail:
        self._path.unlink(missing_ok=True)  # an earlier, interrupted run's lines
        if self._progress is not None:
            self._thread.start()
        return self

    def __exit__(self, exc_type: object, *exc: object) -> None:
        if self._progress is not None:
            self._stop.set()
            self._thread.join()
            if exc_type is None:
                self._poll()
        self._path.unlink(missing_ok=True)
        if self._error is not None and exc_type is None:
            raise self._error

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            try:
                self._poll()
            except Exception as exc:  # re-raised in the caller's thread at exit
                self._error = exc
                return

    def _poll(self) -> None:
        if self._progress is None or not self._path.exists():
            return
        with open(self._path, "rb") as source:
            source.seek(self._offset)
            data = source.read()
        complete = data[: data.rfind(b"\n") + 1]  # a line being written is read next time
        self._offset += len(complete)
        lines = complete.decode("utf-8").splitlines()
        if lines:
            last = json.loads(lines[-1])
            self._progress(int(last["done"]), int(last["total"]))
