"""Predicting with any model: instances in, online features looked up by entity, scores out.

``POST /v1/models/{model}/predict`` takes instances (entity keys and request columns), looks
up each view the model reads in the online store by the instance's keys (an unknown entity
gets null features, which the transform encodes as training does: index 0 or the mean),
computes the request features with the code the version recorded, and scores with the
version's ONNX model. The version is chosen by the model's routing (sticky by the routing key:
the declared ``serving.routing_key`` or the first entity key); a scoring failure, a timeout or
an unloaded version falls back to ``previous``, and the answer says why. With no version left
the model's declared baseline answers (:mod:`._baseline`), and the answer names it; a model
that declares none is refused (503) with the reasons.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import Executor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa

from spindle.core import ServingError
from spindle.features import OnlineStore, apply_request_features
from spindle.serve._baseline import baseline_answer, declared_lookups
from spindle.serve._declared import served_config
from spindle.serve._lookup import looked_up_rows
from spindle.serve._runtime import ModelRuntime
from spindle.serve._schema import RequestSchema, ServingDeclarations, request_schema
from spindle.serve._state import LoadedVersion, ModelState, choose_version

log = logging.getLogger(__name__)

_MAX_REASON = 400
LIVE_SCORINGS = 1
"""Scorings of the event loop's requests running at once (see ``Predictor._wait_async``)."""


class NoVersion(ServingError):
    """No version of the model could answer (none routed, none loaded, or every one failed)."""


@dataclass(frozen=True)
class Prediction:
    """The answer to one predict request."""

    model: str
    version: int | None  # None: the declared baseline answered (``baseline``)
    predictions: list[dict[str, Any]]
    fallback: str | None = None
    fallback_kinds: tuple[str, ...] = ()
    missing: Mapping[str, int] = field(default_factory=dict)  # view -> instances not found
    baseline: str | None = None

    @property
    def served_by(self) -> str:
        """The version that answered, or ``baseline:<name>`` (a metric label)."""
        return f"baseline:{self.baseline}" if self.version is None else str(self.version)

    def to_json(self) -> dict[str, object]:
        return {
            "model": self.model,
            "version": None if self.version is None else str(self.version),
            "predictions": self.predictions,
            "fallback": self.fallback,
        }


@dataclass(frozen=True)
class _Skip:
    kind: str
    why: str


_Answer = tuple[list[dict[str, Any]], dict[str, int]]  # predictions, unknown entities per view


@dataclass(frozen=True)
class _Work:
    """A version's scoring of a request, for the scoring threads."""

    runtime: ModelRuntime
    run: Callable[[], _Answer]


@dataclass(frozen=True)
class _Exhausted:
    """No version answered: the baseline must, with these reasons."""

    schema: RequestSchema | None
    skips: list[_Skip]


def outputs(task: str, scores: np.ndarray) -> list[dict[str, Any]]:
    """One prediction per row: a binary model's logit and probability, a regression's value,
    a multiclass model's class probabilities (the softmax of its ``[rows, K]`` logits) and the
    most probable class, a ranking model's score."""
    if task == "multiclass":
        logits = np.asarray(scores, dtype=np.float64).reshape(len(scores), -1)
        shifted = np.exp(logits - logits.max(axis=1, keepdims=True))
        probabilities = shifted / shifted.sum(axis=1, keepdims=True)
        return [
            {"probabilities": row.tolist(), "class": int(row.argmax())} for row in probabilities
        ]
    values = scores.tolist()
    if task == "binary":
        return [{"score": s, "probability": _sigmoid(s)} for s in values]
    if task == "regression":
        return [{"value": s} for s in values]
    return [{"score": s} for s in values]


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


class Predictor:
    """Answers predict requests for every model of the server's repository.

    Args:
        store: the online store the views' features are read from.
        executor: runs scoring, so a slow version can be abandoned at the budget.
        latency_budget_ms: time one version may take for a request (lookups included).
        declarations: the workspace's views and request groups (None: keys from the store).
    """

    def __init__(
        self,
        store: OnlineStore,
        executor: Executor,
        latency_budget_ms: float,
        declarations: ServingDeclarations | None = None,
    ) -> None:
        self.store = store
        self.executor = executor
        self.latency_budget_s = latency_budget_ms / 1000.0
        self.declarations = declarations
        self._schemas: dict[tuple[str, int, str], RequestSchema] = {}
        self._live: tuple[asyncio.AbstractEventLoop, asyncio.Semaphore] | None = None

    def schema(self, runtime: ModelRuntime) -> RequestSchema:
        """The request schema of a loaded version (built once per model file).

        Raises:
            ServingError: a view's keys are unknown (see :func:`request_schema`).
        """
        cache_key = (runtime.model, runtime.version, runtime.sha256)
        found = self._schemas.get(cache_key)
        if found is None:
            found = request_schema(
                runtime.model,
                runtime.version,
                runtime.transform,
                runtime.manifest,
                self.declarations,
                self.store,
            )
            if found.complete:  # else a view is not in the store yet: read its types again
                self._schemas[cache_key] = found
        return found

    def main_schema(self, state: ModelState) -> RequestSchema:
        """The schema of the version with the most traffic (else any loaded one).

        Raises:
            NoVersion: no version of the model is loaded.
        """
        order = [state.routing.main, state.routing.previous, *sorted(state.versions, reverse=True)]
        for version in order:
            loaded = state.versions.get(version) if version is not None else None
            if loaded is not None and loaded.runtime is not None:
                return self.schema(loaded.runtime)
        raise NoVersion(f"model {state.model}: {_unloaded_reasons(state)}")

    def predict(self, state: ModelState, instances: Sequence[Mapping[str, Any]]) -> Prediction:
        """Score ``instances`` with the routed version, falling back to ``previous``, then to
        the model's declared baseline.

        Raises:
            ServingError: an instance lacks a field or has a wrong type (a client error).
            NoVersion: no version could answer and no baseline either; the message says why.
        """
        plan = self._plan(state, instances)
        try:
            work = next(plan)
            while True:
                work = plan.send(self._wait(work))
        except StopIteration as stop:
            outcome: Prediction | _Exhausted = stop.value
        if isinstance(outcome, Prediction):
            return outcome
        return self.baseline(state, instances, outcome.schema, outcome.skips)

    async def predict_async(
        self, state: ModelState, instances: Sequence[Mapping[str, Any]]
    ) -> Prediction:
        """:meth:`predict` for an event loop: the same chain and answers, but the loop is never
        blocked while a version scores (nor while the baseline reads the store), and no thread
        is held waiting for the scoring thread.

        Raises:
            ServingError: an instance lacks a field or has a wrong type (a client error).
            NoVersion: no version could answer and no baseline either; the message says why.
        """
        plan = self._plan(state, instances)
        try:
            work = next(plan)
            while True:
                work = plan.send(await self._wait_async(work))
        except StopIteration as stop:
            outcome: Prediction | _Exhausted = stop.value
        if isinstance(outcome, Prediction):
            return outcome
        loop = asyncio.get_running_loop()
        baseline = partial(self.baseline, state, instances, outcome.schema, outcome.skips)
        return await loop.run_in_executor(self.executor, baseline)

    def _plan(
        self, state: ModelState, instances: Sequence[Mapping[str, Any]]
    ) -> Generator[_Work, _Answer | _Skip, Prediction | _Exhausted]:
        """The fallback chain as a generator: it yields each version's submitted scoring, is
        sent its outcome, and returns the prediction (or that the baseline must answer); the
        sync and async callers differ only in how they wait."""
        try:
            schema = self.main_schema(state)
        except NoVersion:  # nothing loaded: each routed version says why, then the baseline
            chain = _chain(state, "")
            skips = [_unloaded(state.versions.get(v), v) for v in chain]
            return _Exhausted(None, skips or [_Skip("no_model", "no version routed")])
        schema.check(instances)
        point = "" if schema.routing_key is None else str(instances[0].get(schema.routing_key))
        chain = _chain(state, point)
        skips = [] if chain else [_Skip("no_model", "no version routed")]
        for step, version in enumerate(chain):
            attempt = self._attempt(state.versions.get(version), version, instances)
            answer = (yield attempt) if isinstance(attempt, _Work) else attempt
            if isinstance(answer, _Skip):
                skips.append(answer)
                continue
            predictions, missing = answer
            reason = None
            if step > 0:
                reason = "; ".join(s.why for s in skips) + f"; served by previous version {version}"
            kinds = tuple(s.kind for s in skips)
            return Prediction(state.model, version, predictions, reason, kinds, missing)
        return _Exhausted(schema, skips)

    def baseline(
        self,
        state: ModelState,
        instances: Sequence[Mapping[str, Any]],
        schema: RequestSchema | None,
        skips: Sequence[_Skip],
    ) -> Prediction:
        """The last step of the fallback chain: the model's declared baseline on the served
        rows (see :mod:`spindle.serve._baseline`).

        Raises:
            NoVersion: the model declares no baseline, or it failed; with every reason.
        """
        why = "; ".join(s.why for s in skips)
        config = served_config(state.model, state, self.declarations)
        if schema is not None:
            lookups = list(schema.lookups)
        else:
            lookups = declared_lookups(config, self.declarations, self.store, instances[0])
        try:
            name, predictions, missing = baseline_answer(self.store, config, lookups, instances)
        except ServingError as exc:
            raise NoVersion(f"model {state.model}: {why}; {exc}") from None
        kinds = tuple(s.kind for s in skips)
        reason = f"{why}: baseline {name}"
        return Prediction(state.model, None, predictions, reason, kinds, missing, name)

    def _attempt(
        self, loaded: LoadedVersion | None, version: int, instances: Sequence[Mapping[str, Any]]
    ) -> _Work | _Skip:
        runtime = loaded.runtime if loaded else None
        if runtime is None:
            return _unloaded(loaded, version)
        try:
            schema = self.schema(runtime)
            schema.check(instances)
        except ServingError as exc:
            return _Skip("schema", f"version {version}: {exc}")

        def work() -> _Answer:
            rows, missing = self.rows(runtime, schema, instances)
            return outputs(schema.task, runtime.score(rows)), missing

        return _Work(runtime, work)

    def _wait(self, work: _Work) -> _Answer | _Skip:
        """The version's answer within the latency budget, or why there is none."""
        future = self.executor.submit(work.run)
        try:
            return future.result(timeout=self.latency_budget_s)
        except FutureTimeout:
            future.cancel()
            return self._timed_out(work)
        except Exception as exc:  # onnxruntime and request features raise untyped errors
            return _failed(work, exc)

    async def _wait_async(self, work: _Work) -> _Answer | _Skip:
        """:meth:`_wait` on an event loop (the scoring thread wakes the loop when done).

        At most :data:`LIVE_SCORINGS` scorings of the loop's requests run at once; the others
        wait their turn on the loop. Scoring is Python under the GIL, so more threads at once
        only take the GIL from each other (at c=8, eight of them answered about half the
        requests per second one did). A scoring abandoned at the budget stops counting, and
        its thread is left to finish, so a stuck version cannot block the fallback chain.
        """
        async with self._live_scorings():
            future = self.executor.submit(work.run)
            try:
                return await asyncio.wait_for(asyncio.wrap_future(future), self.latency_budget_s)
            except TimeoutError:  # wait_for cancels the scoring future with the wrapper
                future.cancel()
                return self._timed_out(work)
            except Exception as exc:  # onnxruntime and request features raise untyped errors
                return _failed(work, exc)

    def _live_scorings(self) -> asyncio.Semaphore:
        """The running loop's limit of scorings at once (a server restarted in the same
        process runs a new loop, which gets its own)."""
        loop = asyncio.get_running_loop()
        if self._live is None or self._live[0] is not loop:
            self._live = (loop, asyncio.Semaphore(LIVE_SCORINGS))
        return self._live[1]

    def _timed_out(self, work: _Work) -> _Skip:
        budget_ms = self.latency_budget_s * 1000
        why = f"version {work.runtime.version} exceeded the latency budget of {budget_ms:g} ms"
        return _Skip("timeout", why)

    def rows(
        self, runtime: ModelRuntime, schema: RequestSchema, instances: Sequence[Mapping[str, Any]]
    ) -> tuple[pa.Table, dict[str, int]]:
        """The raw rows the version scores: the instances' fields, each view's online row by
        the instance's keys (null where unknown), then the request features.

        Returns:
            The rows and, per view, how many instances it did not know.
        """
        features = runtime.stored_columns  # left out of the instances: they come from views
        columns, missing, held = looked_up_rows(self.store, schema.lookups, instances, features)
        for column in features:  # a view the store does not hold yet: null, as unknown
            if column.rsplit("__", 2)[0] not in held:
                columns.setdefault(column, pa.nulls(len(instances)))
        # a feature its view lacks stays missing: the transform raises and the chain falls back
        table = pa.table(columns)
        return apply_request_features(table, runtime.transform.request), missing


def _failed(work: _Work, exc: Exception) -> _Skip:
    runtime = work.runtime
    log.warning("%s@%s failed: %r", runtime.model, runtime.version, exc)
    message = " ".join(str(exc).split())
    if len(message) > _MAX_REASON:
        message = message[: _MAX_REASON - 1] + "…"
    return _Skip("error", f"version {runtime.version} raised {type(exc).__name__}: {message}")


def _chain(state: ModelState, point: str) -> list[int]:
    """The versions to try: the one routed to ``point``, then ``previous``."""
    routed = choose_version(point, state.routing.weights)
    return list(dict.fromkeys(v for v in (routed, state.routing.previous) if v is not None))


def _unloaded(loaded: LoadedVersion | None, version: int) -> _Skip:
    status = loaded.status if loaded else "missing"
    kind = "checksum" if status == "failed checksum" else "not_loaded"
    label = status if status.startswith("failed") else f"is {status}"
    return _Skip(kind, f"version {version} {label}")


def _unloaded_reasons(state: ModelState) -> str:
    if not state.versions:
        return "no version routed"
    return "; ".join(
        f"version {v} {lv.status}" + (f" ({' '.join(lv.detail.split())})" if lv.detail else "")
        for v, lv in sorted(state.versions.items())
    )
