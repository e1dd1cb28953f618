"""Ranking with any model: candidates (item keys) in, each scored as an instance, items out.

A rank request is a context (the request's fields and the keys of the entities it is about,
e.g. a user) and candidates: keys of the model's item view, given by the caller or retrieved
by the model's declared ``serving.candidates`` (:mod:`._retrieval`). Each known candidate
becomes one instance (the context plus its keys) scored through :class:`Predictor`, with its
routing and fallback chain down to the declared baseline; the items come back best first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from spindle.core import ServingError
from spindle.serve._declared import ServedConfig, served_config
from spindle.serve._predict import Prediction, Predictor
from spindle.serve._retrieval import Retriever
from spindle.serve._schema import ServingDeclarations, ViewLookup, store_types, view_keys
from spindle.serve._state import ModelState


@dataclass(frozen=True)
class Ranked:
    """The ranked items of one request and what answered (a version or the baseline)."""

    model: str
    item_keys: tuple[str, ...]
    items: list[tuple[Any, float]]
    prediction: Prediction | None  # None: no candidate was known, nothing was scored

    @property
    def version(self) -> int | None:
        return self.prediction.version if self.prediction else None

    def to_json(self) -> dict[str, object]:
        """The answer of ``POST /v1/models/{model}/rank``."""
        items = []
        for key, score in self.items:
            values = key if len(self.item_keys) > 1 else (key,)
            items.append({**dict(zip(self.item_keys, values, strict=True)), "score": score})
        prediction = self.prediction
        return {
            "model": self.model,
            "version": None if self.version is None else str(self.version),
            "items": items,
            "fallback": prediction.fallback if prediction else None,
        }


def _sort_key(pair: tuple[Any, float]) -> tuple[float, str]:
    return (-pair[1], str(pair[0]))


class ItemRanker:
    """Answers rank requests for every model of the server's repository.

    Args:
        predictor: scores instances (routing, fallback, baseline).
        retriever: runs the models' declared candidate retrieval.
    """

    def __init__(self, predictor: Predictor, retriever: Retriever) -> None:
        self.predictor = predictor
        self.retriever = retriever

    @property
    def declarations(self) -> ServingDeclarations | None:
        return self.predictor.declarations

    def item_view(
        self, state: ModelState, config: ServedConfig, context: Mapping[str, Any]
    ) -> ViewLookup:
        """The view whose entities are ranked: the declared candidates' view, else the one
        view the model reads whose keys the context does not hold.

        Raises:
            ServingError: no such view can be told (declare ``serving.candidates``).
            NoVersion: nothing declares the view and no version is loaded to tell it.
        """
        if config.candidates is not None:
            view = config.candidates.view
            return ViewLookup(view, view_keys(view, self.declarations, self.predictor.store))
        lookups = self.predictor.main_schema(state).lookups
        open_ = [lu for lu in lookups if not all(k in context for k in lu.keys)]
        if len(open_) != 1:
            views = ", ".join(lu.view for lu in open_) or "none"
            raise ServingError(
                f"model {state.model} declares no serving.candidates and the context leaves "
                f"{len(open_)} of its views open ({views}): send the other views' keys in "
                "the context, or declare serving.candidates.view"
            )
        return open_[0]

    def rank(
        self,
        state: ModelState,
        context: Mapping[str, Any],
        candidates: Sequence[Any] | None,
        k: int,
    ) -> Ranked:
        """Rank ``candidates`` (retrieved when None) for ``context``; unknown ones are dropped.

        Raises:
            ServingError: a client error: a bad candidate, a missing context field, or no
                candidates and no declared retrieval.
            NoVersion: no version and no baseline could answer.
        """
        config = served_config(state.model, state, self.declarations)
        item = self.item_view(state, config, context)
        if candidates is None:
            if config.candidates is None:
                raise ServingError(
                    f"candidates: missing; model {state.model} declares no candidate retrieval "
                    "(serving.candidates), so a request must name its candidates"
                )
            keys = self.retriever.retrieve(state.model, config.candidates, item.keys, context)
        else:
            types = store_types(self.predictor.store, item.view)
            kinds = tuple(types.get(k, "string") for k in item.keys)
            keys = [_candidate_key(c, i, item.keys, kinds) for i, c in enumerate(candidates)]
        known = self._known(item, list(dict.fromkeys(keys)))
        if not known:
            return Ranked(state.model, item.keys, [], None)
        instances = []
        for key in known:
            values = key if len(item.keys) > 1 else (key,)
            instances.append({**context, **dict(zip(item.keys, values, strict=True))})
        prediction = self.predictor.predict(state, instances)
        scores = [float(p.get("score", p.get("value", 0.0))) for p in prediction.predictions]
        ranked = sorted(zip(known, scores, strict=True), key=_sort_key)
        return Ranked(state.model, item.keys, ranked[:k], prediction)

    def _known(self, item: ViewLookup, keys: list[Any]) -> list[Any]:
        """The keys the store holds for the item view, in the order given."""
        found = self.predictor.store.rows(item.view, keys)
        if found.num_rows == 0:
            return []
        held = found.to_pydict()
        if len(item.keys) == 1:
            present = set(held[item.keys[0]])
        else:
            present = set(zip(*(held[k] for k in item.keys), strict=True))
        return [key for key in keys if key in present]


def _candidate_key(
    candidate: Any, index: int, keys: tuple[str, ...], kinds: tuple[str, ...]
) -> Any:
    """A candidate as the store keys it: a value for one key, a tuple of values for several.

    Raises:
        ServingError: the candidate is not a key of the item view (or not of its type).
    """
    where = f"candidates[{index}]"
    if len(keys) == 1 and not isinstance(candidate, dict):
        candidate = {keys[0]: candidate}
    if not isinstance(candidate, dict) or not all(k in candidate for k in keys):
        shape = f"a {kinds[0]} key {keys[0]!r}" if len(keys) == 1 else f"an object of {list(keys)}"
        raise ServingError(f"{where}: expected {shape}, found {candidate!r:.60}")
    for key, kind in zip(keys, kinds, strict=True):
        value = candidate[key]
        if not _is_key(value, kind):
            raise ServingError(f"{where}: {key} expected {kind}, found {value!r:.60}")
    return candidate[keys[0]] if len(keys) == 1 else tuple(candidate[k] for k in keys)


def _is_key(value: object, kind: str) -> bool:
    if isinstance(value, bool):
        return False
    if kind == "integer":
        return isinstance(value, int)
    if kind == "string":
        return isinstance(value, str)
    return isinstance(value, str | int | float)
