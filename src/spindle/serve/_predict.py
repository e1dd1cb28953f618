"""Predicting with any model: instances in, online features looked up by entity, scores out.

``POST /v1/models/{model}/predict`` takes instances (entity keys and request columns), looks
up each view the model reads in the online store by the instance's keys (an unknown entity
gets null features, which the transform encodes as training does: index 0 or the mean),
computes the request features with the code the version recorded, and scores with the
version's ONNX model. The version is chosen by the model's routing (sticky by the routing key:
the declared ``serving.routing_key`` or the first entity key); a scoring failure, a timeout or
an unloaded version falls back to ``previous``, and the answer says why. With no version left
the request is refused (503) — the hook for a declared baseline is :meth:`Predictor.baseline`.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from concurrent.futures import Executor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pyarrow as pa

from spindle.core import ServingError
from spindle.features import OnlineStore, apply_request_features
from spindle.serve._runtime import ModelRuntime
from spindle.serve._schema import RequestSchema, ServingDeclarations, ViewLookup, request_schema
from spindle.serve._state import LoadedVersion, ModelState, choose_version

log = logging.getLogger(__name__)

_MAX_REASON = 400


class NoVersion(ServingError):
    """No version of the model could answer (none routed, none loaded, or every one failed)."""


@dataclass(frozen=True)
class Prediction:
    """The answer to one predict request."""

    model: str
    version: int
    predictions: list[dict[str, float]]
    fallback: str | None = None
    fallback_kinds: tuple[str, ...] = ()
    missing: Mapping[str, int] = field(default_factory=dict)  # view -> instances not found

    def to_json(self) -> dict[str, object]:
        return {
            "model": self.model,
            "version": str(self.version),
            "predictions": self.predictions,
            "fallback": self.fallback,
        }


@dataclass(frozen=True)
class _Skip:
    kind: str
    why: str


def outputs(task: str, scores: np.ndarray) -> list[dict[str, float]]:
    """One prediction per score: a binary model's logit and probability, a regression's value,
    a ranking model's score."""
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


def _key(instance: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    return instance[keys[0]] if len(keys) == 1 else tuple(instance[k] for k in keys)


def _has_null(key: Any) -> bool:
    return isinstance(key, tuple) and any(v is None for v in key)


def _lookup(
    store: OnlineStore, lookup: ViewLookup, instances: Sequence[Mapping[str, Any]]
) -> tuple[dict[str, list[Any]], pa.Schema | None, int]:
    """The view's stored columns for each instance (None where the entity is unknown)."""
    asked = [_key(inst, lookup.keys) for inst in instances]
    wanted = [k for k in dict.fromkeys(asked) if k is not None and not _has_null(k)]
    found = store.rows(lookup.view, wanted)  # none wanted: the view's columns, typed, no rows
    if found.num_columns == 0:  # the store does not hold the view yet
        return {}, None, len(instances)
    held = found.to_pydict()
    if len(lookup.keys) == 1:
        keys_of_rows: list[Any] = held[lookup.keys[0]]
    else:
        keys_of_rows = list(zip(*(held[k] for k in lookup.keys), strict=True))
    row_of = {key: i for i, key in enumerate(keys_of_rows)}
    positions = [row_of.get(key) for key in asked]
    columns = {
        name: [None if p is None else values[p] for p in positions]
        for name, values in held.items()
        if name not in lookup.keys
    }
    return columns, found.schema, sum(p is None for p in positions)


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
        raise NoVersion(f"model {state.model}: {_unloaded(state)}")

    def predict(self, state: ModelState, instances: Sequence[Mapping[str, Any]]) -> Prediction:
        """Score ``instances`` with the routed version, falling back to ``previous``.

        Raises:
            ServingError: an instance lacks a field or has a wrong type (a client error).
            NoVersion: no version could answer; the message says why for each.
        """
        schema = self.main_schema(state)
        schema.check(instances)
        point = "" if schema.routing_key is None else str(instances[0].get(schema.routing_key))
        routed = choose_version(point, state.routing.weights)
        chain = list(dict.fromkeys(v for v in (routed, state.routing.previous) if v is not None))
        skips: list[_Skip] = [] if chain else [_Skip("no_model", "no version routed")]
        for step, version in enumerate(chain):
            answer = self._attempt(state.versions.get(version), version, instances)
            if isinstance(answer, _Skip):
                skips.append(answer)
                continue
            predictions, missing = answer
            reason = None
            if step > 0:
                reason = "; ".join(s.why for s in skips) + f"; served by previous version {version}"
            kinds = tuple(s.kind for s in skips)
            return Prediction(state.model, version, predictions, reason, kinds, missing)
        baseline = self.baseline(state, instances)
        if baseline is not None:
            return baseline
        raise NoVersion(f"model {state.model}: " + "; ".join(s.why for s in skips))

    def baseline(
        self, state: ModelState, instances: Sequence[Mapping[str, Any]]
    ) -> Prediction | None:
        """The last step of the fallback chain: a declared baseline's answer (none yet: None).

        A model's declared baseline (``baselines:`` in ``models/<model>.yaml``) will answer
        here when every version failed; until then the request is refused with the reasons.
        """
        return None

    def _attempt(
        self, loaded: LoadedVersion | None, version: int, instances: Sequence[Mapping[str, Any]]
    ) -> tuple[list[dict[str, float]], dict[str, int]] | _Skip:
        runtime = loaded.runtime if loaded else None
        if runtime is None:
            status = loaded.status if loaded else "missing"
            kind = "checksum" if status == "failed checksum" else "not_loaded"
            label = status if status.startswith("failed") else f"is {status}"
            return _Skip(kind, f"version {version} {label}")
        try:
            schema = self.schema(runtime)
            schema.check(instances)
        except ServingError as exc:
            return _Skip("schema", f"version {version}: {exc}")
        return self._run(runtime, schema, instances)

    def _run(
        self, runtime: ModelRuntime, schema: RequestSchema, instances: Sequence[Mapping[str, Any]]
    ) -> tuple[list[dict[str, float]], dict[str, int]] | _Skip:
        def work() -> tuple[list[dict[str, float]], dict[str, int]]:
            rows, missing = self.rows(runtime, schema, instances)
            return outputs(schema.task, runtime.score(rows)), missing

        name = f"version {runtime.version}"
        future = self.executor.submit(work)
        try:
            return future.result(timeout=self.latency_budget_s)
        except FutureTimeout:
            future.cancel()
            budget_ms = self.latency_budget_s * 1000
            return _Skip("timeout", f"{name} exceeded the latency budget of {budget_ms:g} ms")
        except Exception as exc:  # onnxruntime and request features raise untyped errors
            log.warning("%s@%s failed: %r", runtime.model, runtime.version, exc)
            message = " ".join(str(exc).split())
            if len(message) > _MAX_REASON:
                message = message[: _MAX_REASON - 1] + "…"
            return _Skip("error", f"{name} raised {type(exc).__name__}: {message}")

    def rows(
        self, runtime: ModelRuntime, schema: RequestSchema, instances: Sequence[Mapping[str, Any]]
    ) -> tuple[pa.Table, dict[str, int]]:
        """The raw rows the version scores: the instances' fields, each view's online row by
        the instance's keys (null where unknown), then the request features.

        Returns:
            The rows and, per view, how many instances it did not know.
        """
        # a feature comes from its view, never from the caller: such fields are left out
        computed = {feature.column for feature in runtime.transform.request}
        features = set(runtime.transform.columns()) - computed
        names = dict.fromkeys(n for inst in instances for n in inst if n not in features)
        columns: dict[str, pa.Array | list[Any]] = {
            name: [inst.get(name) for inst in instances] for name in names
        }
        missing: dict[str, int] = {}
        for lookup in schema.lookups:
            found, stored, unknown = _lookup(self.store, lookup, instances)
            if unknown:
                missing[lookup.view] = unknown
            for name, values in found.items():
                kind = stored.field(name).type if stored is not None else None
                columns[name] = pa.array(values, type=kind)
        for column in runtime.transform.columns():  # a view the store does not hold yet
            columns.setdefault(column, pa.nulls(len(instances)))
        table = pa.table(columns)
        return apply_request_features(table, runtime.transform.request), missing


def _unloaded(state: ModelState) -> str:
    if not state.versions:
        return "no version routed"
    return "; ".join(
        f"version {v} {lv.status}" + (f" ({' '.join(lv.detail.split())})" if lv.detail else "")
        for v, lv in sorted(state.versions.items())
    )
