"""The logs are learnable: observable features get close to the oracle's ranking quality.

Slow (trains a logistic regression on ~400k impressions): ``pytest -m slow tests/sim``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from spindle.sim import COUNTRIES, PRODUCT_TYPES, simulate
from tests.sim.simdata import read

START = dt.date(2026, 1, 1)
TRAIN_DAYS, TEST_DAYS = 14, 7


def _events(root: Path) -> pa.Table:
    """Impressions joined with their query, product snapshot, FX rate and purchase label."""
    imps = read(root, "impressions")
    searches = read(root, "searches").select(["search_id", "query", "country"])
    products = read(root, "products").drop_columns(["created_date", "is_partner"])
    fx = read(root, "fx_rates")
    bought = read(root, "purchases").select(["search_id", "product_id"])
    bought = bought.append_column("bought", pa.array(np.ones(bought.num_rows, bool)))
    table = imps.join(searches, "search_id").join(products, ["product_id", "date"])
    table = table.join(fx, ["currency", "date"]).join(bought, ["search_id", "product_id"])
    table = table.sort_by([("search_id", "ascending"), ("position", "ascending")])
    label = pc.fill_null(table["bought"], False)
    return table.set_column(table.column_names.index("bought"), "bought", label)


def _one_hot(codes: np.ndarray, width: int) -> np.ndarray:
    out = np.zeros((len(codes), width))
    out[np.arange(len(codes)), codes] = 1.0
    return out


def _features(t: pa.Table, user_log_price: dict[str, float]) -> np.ndarray:
    queries = [set(q.split()) for q in t["query"].to_pylist()]
    names = [set(n.split()) for n in t["name"].to_pylist()]
    overlap = np.array([len(q & n) / len(q) for q, n in zip(queries, names, strict=True)])
    price_usd = (t["list_price"].to_numpy() * t["usd_per_unit"].to_numpy()).astype(float)
    log_price = np.log(price_usd)
    ptype = np.array([PRODUCT_TYPES.index(x) for x in t["product_type"].to_pylist()])
    country = np.array([list(COUNTRIES).index(x) for x in t["country"].to_pylist()])
    past = np.array([user_log_price.get(u, np.nan) for u in t["user_id"].to_pylist()])
    has_past = ~np.isnan(past)
    type_log = _one_hot(ptype, 6) * log_price[:, None]  # price relative to the type's usual
    return np.column_stack(
        [
            overlap,
            log_price,
            t["discount_pct"].to_numpy(),
            np.where(has_past, past, 0.0) * log_price,
            has_past * log_price,
            type_log,
            _one_hot(ptype, 6),
            _one_hot(country * 6 + ptype, 42),
        ]
    )


def _ndcg_at_10(search: np.ndarray, score: np.ndarray, label: np.ndarray) -> float:
    values = []
    for rows in np.split(np.arange(len(search)), np.flatnonzero(np.diff(search)) + 1):
        y = label[rows]
        if not y.any():
            continue
        ranked = y[np.argsort(-score[rows], kind="stable")][:10]
        ideal = np.sort(y)[::-1][:10]
        discount = 1.0 / np.log2(np.arange(2, len(ranked) + 2))
        values.append((ranked * discount).sum() / (ideal * discount[: len(ideal)]).sum())
    return float(np.mean(values))


@pytest.mark.slow
def test_a_simple_model_reaches_ninety_percent_of_the_oracle(tmp_path: Path) -> None:
    sklearn_linear = pytest.importorskip("sklearn.linear_model")
    sparse = pytest.importorskip("scipy.sparse")
    simulate(tmp_path, start=START, days=TRAIN_DAYS + TEST_DAYS, seed=3, scale=0.5)
    table = _events(tmp_path)
    split = pa.scalar(START + dt.timedelta(days=TRAIN_DAYS), pa.date32())
    train, test = (
        table.filter(pc.less(table["date"], split)),
        table.filter(pc.greater_equal(table["date"], split)),
    )
    sold = train.filter(train["bought"])
    sold_price = np.log(sold["list_price"].to_numpy() * sold["usd_per_unit"].to_numpy())
    users, user_code = np.unique(
        sold["user_id"].to_numpy(zero_copy_only=False), return_inverse=True
    )
    mean_price = np.bincount(user_code, sold_price) / np.bincount(user_code)
    user_log_price = dict(zip(users.tolist(), mean_price.tolist(), strict=True))
    products = sorted(set(table["product_id"].to_pylist()))
    index = {p: i for i, p in enumerate(products)}

    def design(t: pa.Table) -> Any:
        rows = np.arange(t.num_rows)
        cols = np.array([index[p] for p in t["product_id"].to_pylist()])
        product = sparse.csr_matrix(
            (np.ones(t.num_rows), (rows, cols)), (t.num_rows, len(products))
        )
        return sparse.hstack([sparse.csr_matrix(_features(t, user_log_price)), product]).tocsr()

    model = sklearn_linear.LogisticRegression(C=1.0, max_iter=3000)
    model.fit(design(train), train["bought"].to_numpy(zero_copy_only=False))
    score = model.decision_function(design(test))
    search = np.unique(test["search_id"].to_numpy(zero_copy_only=False), return_inverse=True)[1]
    label = test["bought"].to_numpy(zero_copy_only=False).astype(float)
    oracle = _ndcg_at_10(search, test["true_relevance"].to_numpy(), label)
    learned = _ndcg_at_10(search, score, label)
    assert learned >= 0.9 * oracle, (learned, oracle)
