"""Ranking one request: sticky routing, the model, and the fallback chain down to popularity.

The chain is: the version routed to the user → the model's ``previous`` version → a non-ML
popularity heuristic. A version is skipped when it is not loaded (missing, failed checksum,
failed to load), raises, returns bad scores, or exceeds the latency budget; the response says
why in ``fallback``. A model failure never becomes an HTTP error.
"""

from __future__ import annotations

import logging
from concurrent.futures import Executor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from spindle.features import OnlineStore, assemble_request_rows
from spindle.serve._runtime import ModelRuntime
from spindle.serve._state import ModelState, choose_version

log = logging.getLogger(__name__)

RETRIEVE_N = 50
_MAX_REASON = 400


@dataclass(frozen=True)
class RankResult:
    """The ranked items of one request and which version (or heuristic) produced them."""

    model: str
    version: int | None
    items: list[tuple[str, float]]
    fallback: str | None = None
    fallback_kinds: tuple[str, ...] = field(default=())  # metric labels, one per skipped step

    def to_json(self) -> dict[str, object]:
        return {
            "model": self.model,
            "version": None if self.version is None else str(self.version),
            "fallback": self.fallback,
            "items": [{"product_id": p, "score": s} for p, s in self.items],
        }


@dataclass(frozen=True)
class _Skip:
    kind: str
    why: str


def _top(ids: list[str], scores: np.ndarray, k: int) -> list[tuple[str, float]]:
    pairs = sorted(zip(ids, scores.tolist(), strict=True), key=lambda p: (-p[1], p[0]))
    return [(pid, float(score)) for pid, score in pairs[:k]]


def popularity_scores(store: OnlineStore, products: pa.Table) -> np.ndarray:
    """The heuristic: the products' ``popularity`` column, else their rank in ``store.popular``."""
    if "popularity" in products.column_names:
        values = products.column("popularity").to_pylist()
        return np.array([float(v) if v is not None else 0.0 for v in values], np.float64)
    total = store.known_products()
    rank = {pid: r for r, pid in enumerate(store.popular(total))}
    ids = products.column("product_id").to_pylist()
    return np.array([1.0 - rank.get(pid, total) / max(total, 1) for pid in ids], np.float64)


class Ranker:
    """Ranks requests against an :class:`OnlineStore` with the fallback chain.

    Args:
        store: online features for products and users.
        executor: runs model scoring, so a slow model can be abandoned at the budget.
        latency_budget_ms: time each model attempt may take (feature assembly included).
    """

    def __init__(self, store: OnlineStore, executor: Executor, latency_budget_ms: float) -> None:
        self.store = store
        self.executor = executor
        self.latency_budget_s = latency_budget_ms / 1000.0

    def candidates(self, query: str, candidates: list[str] | None) -> list[str]:
        """The request's candidates without duplicates, or retrieval's when none are given."""
        if candidates is None:
            return self.store.retrieve(query, RETRIEVE_N)
        return list(dict.fromkeys(candidates))

    def rank(
        self,
        model: str,
        state: ModelState | None,
        user_id: str,
        query: str,
        candidates: list[str] | None,
        k: int,
    ) -> RankResult:
        """Rank for one user and query; unknown candidate ids are dropped."""
        products = self.store.products(self.candidates(query, candidates))
        ids = [str(p) for p in products.column("product_id").to_pylist()]
        user = self.store.user(user_id)
        skips: list[_Skip] = []
        routed = choose_version(user_id, state.routing.weights) if state else None
        chain: list[int] = []
        if state is None or routed is None:
            skips.append(_Skip("no_model", "no model loaded"))
        else:
            previous = state.routing.previous
            chain = list(dict.fromkeys(v for v in (routed, previous) if v is not None))
        for step, version in enumerate(chain):
            loaded = state.versions.get(version) if state else None
            runtime = loaded.runtime if loaded else None
            if runtime is None:
                status = loaded.status if loaded else "missing"
                kind = "checksum" if status == "failed checksum" else "not_loaded"
                label = status if status.startswith("failed") else f"is {status}"
                skips.append(_Skip(kind, f"version {version} {label}"))
                continue
            skip = self._try(runtime, products, user, query, ids, k)
            if isinstance(skip, _Skip):
                skips.append(skip)
                continue
            reason = None
            if step > 0:
                reason = "; ".join(s.why for s in skips) + f"; served by previous version {version}"
            return RankResult(model, version, skip, reason, tuple(s.kind for s in skips))
        scores = popularity_scores(self.store, products)
        reason = "; ".join(s.why for s in skips) + ": popularity"
        return RankResult(model, None, _top(ids, scores, k), reason, tuple(s.kind for s in skips))

    def _try(
        self,
        runtime: ModelRuntime,
        products: pa.Table,
        user: dict[str, object] | None,
        query: str,
        ids: list[str],
        k: int,
    ) -> list[tuple[str, float]] | _Skip:
        def work() -> np.ndarray:
            rows = assemble_request_rows(
                products,
                user,
                runtime.user_columns,
                {"query": query.lower()},
                runtime.transform.request,
            )
            return runtime.score(rows)

        name = f"version {runtime.version}"
        future = self.executor.submit(work)
        try:
            scores = future.result(timeout=self.latency_budget_s)
        except FutureTimeout:
            future.cancel()
            budget_ms = self.latency_budget_s * 1000
            return _Skip("timeout", f"{name} exceeded the latency budget of {budget_ms:g} ms")
        except Exception as exc:  # onnxruntime raises untyped errors; a model error is no 5xx
            log.warning("%s@%s failed: %r", runtime.model, runtime.version, exc)
            message = " ".join(str(exc).split())  # one line, bounded: it goes in every response
            if len(message) > _MAX_REASON:
                message = message[: _MAX_REASON - 1] + "…"
            return _Skip("error", f"{name} raised {type(exc).__name__}: {message}")
        return _top(ids, scores, k)
