"""The runner: resolves a step's identity, skips it when done, calls it, records run and lineage.

Steps are plain functions that know nothing of the metadata store. The runner computes an
idempotency key from (step, model, date, input identities, config hash); when a succeeded run
with that key exists, the recorded outputs are rebuilt and returned without running the step
again. Otherwise it records a ``running`` run, calls the step, and records outputs, lineage
edges (input → output), timings and resources in one transaction — or the failure and its error.

Given the workspace's :class:`~spindle.core.StorageCheck`, the runner refuses a step before it
writes anything when a directory it writes is read-only or its disk is below ``min_free_mb``,
and records a step that failed on a full or read-only disk as a ``StorageError`` (one line naming
the path and what to free) instead of the library's own exception.
"""

from __future__ import annotations

import contextvars
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from spindle.core import (
    SpindleError,
    StorageCheck,
    StorageError,
    TransientError,
    artifact_from_fields,
    kill_point,
    sha256_json,
)
from spindle.orchestrate._resources import ResourceMeter
from spindle.orchestrate._tasks import placed_tasks, task_resources
from spindle.registry import MetadataStore

T = TypeVar("T")

# Messages of third-party errors that mean "try again" (SQLite and Delta lock contention).
_TRANSIENT_TEXT = ("database is locked", "Resource temporarily unavailable")
_TRANSIENT_TYPES = (
    TransientError,
    TimeoutError,
    ConnectionError,
    BlockingIOError,
    InterruptedError,
)


def is_transient(exc: BaseException) -> bool:
    """Whether a failure is worth retrying: a lock, a busy resource, a dropped connection."""
    if isinstance(exc, _TRANSIENT_TYPES):
        return True
    return any(text in str(exc) for text in _TRANSIENT_TEXT)


@dataclass(frozen=True)
class StepOutcome(Generic[T]):
    """What a step returned, whether it was skipped, and the run that produced it."""

    value: T
    skipped: bool
    run_id: str
    resources: dict[str, float]


def _outputs_of(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        return [v for v in value if hasattr(v, "kind") and hasattr(v, "content_hash")]
    return [value] if hasattr(value, "kind") and hasattr(value, "content_hash") else []


_WORK_METRICS = (
    "examples",
    "examples_per_s",
    "m_examples_per_cpu_s",
    "rows_ingested",
    "rows_quarantined",
)


def _work_metrics(result: Any) -> dict[str, float]:
    """Throughput figures an output carries (a model version's examples/s, a day's rows)."""
    found: dict[str, float] = {}
    for item in result if isinstance(result, (list, tuple)) else [result]:
        metrics = getattr(item, "metrics", None)
        source = (
            metrics
            if isinstance(metrics, dict)
            else {k: getattr(item, k, None) for k in _WORK_METRICS}
        )
        for key in _WORK_METRICS:
            value = source.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                found[key] = float(value)
    return found


_CURRENT_KEY: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "spindle_step_key", default=None
)


def current_step_key() -> str | None:
    """The idempotency key of the step running now (None outside a step).

    A step that creates something durable before the runner records its success (a numbered
    model version) tags it with this key, so a re-run after a crash finds it instead of
    creating a duplicate.
    """
    return _CURRENT_KEY.get()


class Runner:
    """Runs steps and records them in a metadata store."""

    def __init__(
        self,
        store: MetadataStore,
        *,
        max_attempts: int = 3,
        backoff_s: float = 0.5,
        storage: StorageCheck | None = None,
    ) -> None:
        self.store = store
        self.storage = storage
        self.max_attempts = max_attempts
        self.backoff_s = backoff_s
        self.history: list[tuple[str, StepOutcome[Any]]] = []
        self._recorded: list[BaseException] = []  # failures already recorded as failed runs

    def _remember(self, exc: BaseException) -> None:
        # the last few only: a long-lived runner (the scheduler) must not hold every traceback
        self._recorded = [*self._recorded[-7:], exc]

    def recorded(self, exc: BaseException) -> bool:
        """Whether ``exc`` was recorded as a failed run (raised inside a step the runner ran)."""
        return any(exc is seen for seen in self._recorded)

    def record_refusal(
        self,
        step: str,
        exc: BaseException,
        *,
        model: str | None = None,
        date: str | None = None,
        params: dict[str, Any] | None = None,
    ) -> str:
        """Record a step refused before it ran (e.g. ValidationFailed, GateBlocked) as a failed run.

        Its key is unique: a refusal never makes a later, identical run look done. Returns the
        run id.
        """
        message = f"{type(exc).__name__}: {exc}"
        key = sha256_json(
            {"step": step, "model": model, "date": date, "refused": message, "at": time.time_ns()}
        )
        record = self.store.start_run(step, key, model=model, date=date, params=params or {})
        self.store.finish_run(record.id, "failed", error=message)
        self._remember(exc)
        return record.id

    def run(
        self,
        step: str,
        fn: Callable[[], T],
        *,
        identity: dict[str, Any],
        model: str | None = None,
        date: str | None = None,
        config_hash: str | None = None,
        inputs: Sequence[str] = (),
        params: dict[str, Any] | None = None,
        rebuild: Callable[[list[Any]], T] | None = None,
    ) -> StepOutcome[T]:
        """Run ``fn`` as step ``step`` unless an identical run already succeeded.

        Args:
            step: the step's name (``ingest``, ``train``, ...).
            fn: the work; returns an artifact, a tuple of artifacts, or None.
            identity: everything that determines the result (input hashes, dates, options).
            inputs: artifact ids read (lineage parents).
            rebuild: turns the recorded output artifacts back into ``fn``'s return value; when
                None, a single recorded artifact is returned as is.
        """
        key = sha256_json(
            {
                "step": step,
                "model": model,
                "date": date,
                "config": config_hash,
                "identity": identity,
            }
        )
        if self.storage is not None:  # before the store is touched: see core/_storage.py
            self.storage.writable()
        done = self.store.find_succeeded_run(key)
        if done is not None:
            artifacts = [self._load(a) for a in done.outputs]
            value: Any = (
                rebuild(artifacts)
                if rebuild
                else (artifacts[0] if len(artifacts) == 1 else tuple(artifacts))
            )
            outcome = StepOutcome(value, True, done.id, dict(done.resources))
            self.history.append((step, outcome))
            return outcome
        if self.storage is not None:
            self.storage.enough_space()
        for attempt in range(1, self.max_attempts + 1):
            try:
                return self._attempt(step, fn, key, model, date, config_hash, inputs, params)
            except BaseException as exc:
                if attempt == self.max_attempts or not is_transient(exc):
                    raise
                time.sleep(self.backoff_s * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    def _attempt(
        self,
        step: str,
        fn: Callable[[], T],
        key: str,
        model: str | None,
        date: str | None,
        config_hash: str | None,
        inputs: Sequence[str],
        params: dict[str, Any] | None,
    ) -> StepOutcome[T]:
        record = self.store.start_run(
            step,
            key,
            model=model,
            date=date,
            config_hash=config_hash,
            params=params or {},
            inputs=list(inputs),
        )
        kill_point(f"before:{step}")
        meter = ResourceMeter().start()
        token = _CURRENT_KEY.set(key)
        try:
            with placed_tasks() as placed:
                result = fn()
        except BaseException as exc:
            failure = self._translated(exc)
            message = f"{type(failure).__name__}: {failure}"
            if failure is not exc:  # the run's record keeps what the library said, too
                message += f" (from {type(exc).__name__}: {exc})"
            if is_transient(failure):
                message = "transient (retried): " + message
            elif not isinstance(failure, SpindleError):
                message += "\n" + "".join(traceback.format_exception(exc)[-3:])
            self._record_failure(record.id, failure, meter.result(), message)
            self._remember(failure)
            if failure is exc:
                raise
            raise failure from exc
        finally:
            _CURRENT_KEY.reset(token)
        resources = meter.result() | _work_metrics(result) | task_resources(placed)
        kill_point(f"after-work:{step}")
        self.store.finish_run(
            record.id,
            "succeeded",
            outputs=_outputs_of(result),
            resources=resources,
            ran_on=[p.to_dict() for p in placed],
        )
        kill_point(f"after:{step}")
        outcome = StepOutcome(result, False, record.id, resources)
        self.history.append((step, outcome))
        return outcome

    def _translated(self, exc: BaseException) -> BaseException:
        """``exc``, or the StorageError it amounts to (a full, read-only or unwritable disk)."""
        if self.storage is None or not isinstance(exc, Exception):
            return exc
        return self.storage.translate(exc) or exc

    def _record_failure(
        self, run_id: str, failure: BaseException, resources: dict[str, float], message: str
    ) -> None:
        if isinstance(failure, StorageError) and failure.read_only:
            # writing the store on a file system that refuses writes may SIGBUS the process;
            # the run stays "running" until `spindle doctor --fix` marks it failed
            return
        try:
            self.store.finish_run(run_id, "failed", resources=resources, error=message)
        except SpindleError as inner:  # a full disk may refuse this write too: keep the cause
            failure.add_note(f"run {run_id} stays 'running' ({inner}); `spindle doctor --fix`")

    def _load(self, artifact_id: str) -> Any:
        record = self.store.get_artifact(artifact_id)
        return artifact_from_fields(
            record.kind, record.uri, record.content_hash, dict(record.properties)
        )
