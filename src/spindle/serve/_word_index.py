"""An inverted index of one view's words, for ``serving.candidates.match``.

A request costs the rows that share one of its words (their postings), never a scan of the
view: at 256,000 products a request reads a few thousand postings where the declared SQL over
the snapshot split every product's words. The order is the SQL's it replaces, exactly:

    ORDER BY len(list_intersect(string_split(coalesce(column, ''), ' '),
                                string_split(lower($words), ' '))) DESC,
             coalesce(order_by, 0) DESC, <keys> LIMIT limit

(words split on single spaces, each counted once; rows that share no word fill the rest).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class WordIndex:
    """The postings of every word of a view's column, and the rows in tie order.

    Attributes:
        keys: each row's key (a tuple for a composite key).
        rank: each row's position in the tie order (``order_by`` highest first, then keys).
        by_rank: the rows in that order.
        postings: word -> the rows whose text holds it (ascending).
    """

    keys: list[Any]
    rank: IntArray
    by_rank: IntArray
    postings: dict[str, IntArray]

    @classmethod
    def build(
        cls, rows: pa.Table, keys: tuple[str, ...], column: str, order_by: str | None
    ) -> WordIndex:
        """Index ``rows`` (the view's online rows) by the words of ``column``."""
        n = rows.num_rows
        order = (
            pc.fill_null(rows.column(order_by).cast(pa.float64()), 0.0)
            if order_by
            else pa.array(np.zeros(n))
        )
        ties = pa.table({"__order": order, **{k: rows.column(k) for k in keys}})
        sort_keys = [("__order", "descending"), *((k, "ascending") for k in keys)]
        by_rank = np.asarray(pc.sort_indices(ties, sort_keys=sort_keys), dtype=np.int64)
        rank = np.empty(n, dtype=np.int64)
        rank[by_rank] = np.arange(n, dtype=np.int64)
        found: dict[str, list[int]] = {}
        for i, text in enumerate(rows.column(column).to_pylist()):
            for word in set((text or "").split(" ")):
                found.setdefault(word, []).append(i)
        postings = {w: np.asarray(r, dtype=np.int64) for w, r in found.items()}
        if len(keys) == 1:
            listed: list[Any] = rows.column(keys[0]).to_pylist()
        else:
            listed = list(zip(*(rows.column(k).to_pylist() for k in keys), strict=True))
        return cls(listed, rank, by_rank, postings)

    def top(self, words: str, limit: int) -> list[Any]:
        """The keys of the ``limit`` best rows for ``words`` (lower-cased, split on spaces)."""
        n = len(self.keys)
        lists = [self.postings[w] for w in set(words.lower().split(" ")) if w in self.postings]
        chosen = np.empty(0, dtype=np.int64)
        matched = np.empty(0, dtype=np.int64)
        if lists:
            matched, shared = np.unique(np.concatenate(lists), return_counts=True)
            score = -shared.astype(np.int64) * (n + 1) + self.rank[matched]  # lower is better
            best = matched
            if best.size > limit:
                pick = np.argpartition(score, limit - 1)[:limit]
                best, score = best[pick], score[pick]
            chosen = best[np.argsort(score, kind="stable")]
        if chosen.size < limit:  # every matched row is in: the rows sharing no word follow
            head = self.by_rank[: limit + matched.size]
            rest = head[~np.isin(head, matched)][: limit - chosen.size]
            chosen = np.concatenate([chosen, rest])
        return [self.keys[i] for i in chosen.tolist()]
