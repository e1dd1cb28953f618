"""``serving.candidates.match``: keyword retrieval by an inverted index answers exactly what the
SQL it replaces answers, on a real online store, and follows the store's writes."""

from __future__ import annotations

import random
from pathlib import Path

import duckdb
import pyarrow as pa
import pytest

from spindle.core import CandidatesConfig, MatchConfig
from spindle.features import OnlineStore
from spindle.serve import Retrieval, Retriever
from spindle.serve._word_index import WordIndex

WORDS = ["merino", "wool", "silk", "red", "blue", "sock", "yarn", "chunky", "Lace", "kit"]
SQL = """SELECT product_id FROM candidates
ORDER BY len(list_intersect(string_split(coalesce(name_words, ''), ' '),
                            string_split(lower($query), ' '))) DESC,
         coalesce(popularity, 0) DESC, product_id
LIMIT $limit"""


def _catalogue(n: int, seed: int) -> pa.Table:
    """Products with names of 0-5 words (repeats, double spaces, upper case and nulls among
    them) and popularities with ties and nulls."""
    rng = random.Random(seed)
    names: list[str | None] = []
    for _ in range(n):
        words = rng.choices(WORDS, k=rng.randint(0, 5))
        glue = "  " if rng.random() < 0.05 else " "
        names.append(None if rng.random() < 0.03 else glue.join(words))
    popularity = [None if rng.random() < 0.1 else rng.randint(0, 8) for _ in range(n)]
    ids = [f"p{i:05d}" for i in range(n)]
    rng.shuffle(ids)
    return pa.table({"product_id": ids, "name_words": names, "popularity": popularity})


def _queries(seed: int) -> list[str]:
    rng = random.Random(seed)
    found = ["", "nothing matches", "RED Silk", "wool  wool", "lace"]
    found += [" ".join(rng.choices([*WORDS, "other"], k=rng.randint(1, 4))) for _ in range(60)]
    return found


@pytest.mark.parametrize("limit", [1, 7, 50, 500])
def test_the_index_answers_what_the_sql_answers(limit: int) -> None:
    rows = _catalogue(400, seed=limit)
    index = WordIndex.build(rows, ("product_id",), "name_words", "popularity")
    con = duckdb.connect()
    con.register("candidates", rows)
    for query in _queries(limit):
        expected = [r[0] for r in con.execute(SQL, {"query": query, "limit": limit}).fetchall()]
        assert index.top(query, limit) == expected, query


def test_without_an_order_ties_go_by_key_and_composite_keys_are_tuples() -> None:
    rows = pa.table(
        {"shop": ["b", "a", "a"], "sku": [1, 2, 1], "text": ["red wool", "red", "wool red"]}
    )
    index = WordIndex.build(rows, ("shop", "sku"), "text", None)
    assert index.top("red wool", 3) == [("a", 1), ("b", 1), ("a", 2)]
    assert index.top("silk", 2) == [("a", 1), ("a", 2)]  # nothing shared: the tie order


def test_a_declared_match_is_retrieved_from_the_online_store_and_follows_it(
    tmp_path: Path,
) -> None:
    store = OnlineStore(tmp_path / "online.db")
    rows = _catalogue(300, seed=3)
    store.materialize("product", rows, "2026-01-10")
    retriever = Retriever(store)
    match = MatchConfig(column="name_words", words="$query", order_by="popularity", limit=20)
    declared = Retrieval("product", match=match)
    con = duckdb.connect()
    con.register("candidates", store.backend.read("product"))
    expected = [r[0] for r in con.execute(SQL, {"query": "red silk", "limit": 20}).fetchall()]
    found = retriever.retrieve("m", declared, ("product_id",), {"query": "red silk"})
    assert found == expected
    assert retriever.retrieve("m", declared, ("product_id",), {"query": None}) == (
        [r[0] for r in con.execute(SQL, {"query": "", "limit": 20}).fetchall()]
    )
    store.materialize("product", rows.slice(0, 2), "2026-01-11")  # the index is rebuilt
    assert sorted(retriever.retrieve("m", declared, ("product_id",), {"query": "red"})) == sorted(
        rows.column("product_id").to_pylist()[:2]
    )
    store.close()


def test_a_match_naming_a_column_the_view_lacks_is_a_one_line_error(tmp_path: Path) -> None:
    from spindle.serve import RetrievalError

    store = OnlineStore(tmp_path / "online.db")
    store.materialize("product", _catalogue(10, seed=1), "2026-01-10")
    declared = Retrieval("product", match=MatchConfig(column="title", words="$query"))
    with pytest.raises(RetrievalError, match="reads column 'title', which view 'product'"):
        Retriever(store).retrieve("m", declared, ("product_id",), {"query": "red"})
    store.close()


def test_candidates_declare_sql_or_match() -> None:
    with pytest.raises(ValueError, match=r"declare either sql .* or match .*not both"):
        CandidatesConfig.model_validate(
            {"view": "p", "sql": "SELECT 1", "match": {"column": "c", "words": "$q"}}
        )
    with pytest.raises(ValueError, match="not neither"):
        CandidatesConfig.model_validate({"view": "p"})
    with pytest.raises(ValueError, match="words"):
        MatchConfig.model_validate({"column": "c", "words": "query"})  # a $name
