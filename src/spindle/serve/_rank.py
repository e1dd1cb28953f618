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
from spindle.serve._declared import Retrieval, ServedConfig, served_config
from spindle.serve._predict import Prediction, Predictor
from spindle.serve._retrieval import RetrievalError, Retriever
from spindle.serve._schema import (
    ServingDeclarations,
    ViewLookup,
    check_context,
    json_name,
    json_type,
    store_types,
    view_keys,
)
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
            keys = self._retrieve(state, config.candidates, item.keys, context)
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

    def _retrieve(
        self,
        state: ModelState,
        retrieval: Retrieval,
        keys: tuple[str, ...],
        context: Mapping[str, Any],
    ) -> list[Any]:
        """The declared retrieval's candidates; a context field it reads (``$name``) of the
        wrong type is a client error, not a retrieval that fails.

        Raises:
            ServingError: a field of a type the model's request schema does not give it, or
                one the SQL does not run with although it runs with that field null.
            RetrievalError: the SQL does not run (with null fields either), or its view is
                not in the store.
        """
        names = [n for n in retrieval.parameters() if n in context]
        check_context(context, names, self._field_types(state), state.model)
        try:
            return self.retriever.retrieve(state.model, retrieval, keys, context)
        except RetrievalError:
            sent = [n for n in names if context[n] is not None]
            if not sent or not self._runs(
                state, retrieval, keys, {**context, **dict.fromkeys(sent)}
            ):
                raise
        # it runs with those fields null: the client's values are what is wrong
        found = ", ".join(f"context.{n} ({json_name(context[n])})" for n in sent)
        raise ServingError(
            f"{found}: model {state.model}'s candidate retrieval ({retrieval.key}) "
            f"does not run with {'this value' if len(sent) == 1 else 'these values'}; "
            "send the types it reads"
        )

    def _runs(
        self,
        state: ModelState,
        retrieval: Retrieval,
        keys: tuple[str, ...],
        context: Mapping[str, Any],
    ) -> bool:
        try:
            self.retriever.retrieve(state.model, retrieval, keys, context)
        except RetrievalError:
            return False
        return True

    def _field_types(self, state: ModelState) -> Mapping[str, str]:
        """The JSON types of the model's request fields: its main version's request schema,
        else the declared request columns."""
        try:
            return self.predictor.main_schema(state).fields
        except ServingError:  # no version loaded
            groups = self.declarations.request_groups if self.declarations else {}
            return {c: json_type(t) for cols in groups.values() for c, t in cols.items()}

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
