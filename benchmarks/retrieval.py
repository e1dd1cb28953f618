"""Candidate retrieval against catalogue size: the declared SQL over the view's snapshot vs
``serving.candidates.match`` (the inverted index), side by side on the same online store.

For each catalogue size, products named with 4 words of a 300-word vocabulary (as
``docs/serving.md`` measured the SQL), their popularity a random count, are materialised in a
real SQLite online store; both retrievals answer the same random 3-word queries through
``spindle.serve.Retriever`` (after one warm-up that builds the snapshot or the index), and the
answers are checked equal. Per-request wall time, p50 and p99 in ms.

    python benchmarks/retrieval.py [--sizes 2000 32000 256000] [--queries 300] [--json]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import pyarrow as pa

from spindle.core import MatchConfig
from spindle.features import OnlineStore
from spindle.serve import Retrieval, Retriever

SQL = """SELECT product_id FROM candidates
ORDER BY len(list_intersect(string_split(coalesce(name_words, ''), ' '),
                            string_split(lower($query), ' '))) DESC,
         coalesce(popularity, 0) DESC, product_id
LIMIT 50"""
MATCH = MatchConfig(column="name_words", words="$query", order_by="popularity", limit=50)


def _catalogue(n: int, vocabulary: list[str], rng: random.Random) -> pa.Table:
    return pa.table(
        {
            "product_id": [f"p{i:07d}" for i in range(n)],
            "name_words": [" ".join(rng.sample(vocabulary, 4)) for _ in range(n)],
            "popularity": [rng.randint(0, 500) for _ in range(n)],
        }
    )


def _times(
    retriever: Retriever, declared: Retrieval, queries: list[str]
) -> tuple[list[float], list[Any]]:
    answers, times = [], []
    retriever.retrieve("m", declared, ("product_id",), {"query": queries[0]})  # warm-up
    for query in queries:
        start = time.perf_counter()
        answers.append(retriever.retrieve("m", declared, ("product_id",), {"query": query}))
        times.append((time.perf_counter() - start) * 1000)
    return times, answers


def _summary(times: list[float]) -> dict[str, float]:
    ordered = sorted(times)
    return {
        "p50_ms": round(statistics.median(ordered), 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))], 3),
    }


def measure(size: int, queries: int, seed: int = 7) -> dict[str, Any]:
    rng = random.Random(seed)
    vocabulary = [f"w{i:03d}" for i in range(300)]
    asked = [" ".join(rng.sample(vocabulary, 3)) for _ in range(queries)]
    with tempfile.TemporaryDirectory() as tmp:
        store = OnlineStore(Path(tmp) / "online.db")
        try:
            store.materialize("product", _catalogue(size, vocabulary, rng), "2026-01-01")
            retriever = Retriever(store)
            start = time.perf_counter()
            retriever.snapshot("product")
            copy_s = time.perf_counter() - start
            start = time.perf_counter()
            retriever.index("product", ("product_id",), MATCH.column, MATCH.order_by)
            index_s = time.perf_counter() - start
            sql_times, sql_answers = _times(retriever, Retrieval("product", SQL), asked)
            match_times, match_answers = _times(retriever, Retrieval("product", match=MATCH), asked)
        finally:
            store.close()
    return {
        "products": size,
        "sql": _summary(sql_times) | {"snapshot_s": round(copy_s, 3)},
        "match": _summary(match_times) | {"index_s": round(index_s, 3)},
        "same_answers": sql_answers == match_answers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 32000, 256000])
    parser.add_argument("--queries", type=int, default=300)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    results = [measure(n, args.queries) for n in args.sizes]
    if args.json:
        print(json.dumps(results, indent=2))
        return
    print(
        f"{'products':>9} {'sql p50':>9} {'sql p99':>9} {'match p50':>10} {'match p99':>10}  same"
    )
    for r in results:
        print(
            f"{r['products']:>9} {r['sql']['p50_ms']:>9} {r['sql']['p99_ms']:>9} "
            f"{r['match']['p50_ms']:>10} {r['match']['p99_ms']:>10}  {r['same_answers']}"
        )


if __name__ == "__main__":
    main()
