"""Compute one day of feature rows with DuckDB over the ingested Delta tables.

Rows for day D carry ``feature_ts = D 00:00`` and use only what was known then: the catalogue
snapshot and FX rate of D (both published at 00:00) and purchases strictly before D, less
purchases already flagged as fraud. Each group has a base view (one row per entity), computed
once per group and day into Arrow; every SQL feature is its expression over those rows (one
DuckDB query) and every Python feature is its function applied to them, so both kinds see
exactly the same values. A new version is a new expression or function and a new column.

The base rows are computed on one DuckDB thread: with two, a parallel hash aggregate adds the
28-day sums in a varying order and the last bit of a user aggregate changed between identical
runs (measured: 4 of 5 reruns differed), which would make a backfill rerun rewrite partitions
that had not really changed.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from spindle.core import (
    DataError,
    FeatureError,
    TableVersion,
    open_dataset,
    table_exists,
    write_partition,
)
from spindle.features._definitions import GROUP_ENTITIES, FeatureDefinition, FeatureRegistry
from spindle.features._fingerprints import check_fingerprints, record_fingerprints
from spindle.features._python import apply_python

_RAW = ("products", "fx_rates", "purchases", "users", "fraud_flags")

_PURCHASES_BEFORE = """
flags AS (SELECT DISTINCT transaction_id FROM fraud_flags WHERE flagged_ts < TIMESTAMP '{d}'),
pur AS (
  SELECT * FROM (
    SELECT transaction_id, product_id, user_id, ts, price, currency, coalesce(quantity, 1) AS quantity,
           row_number() OVER (PARTITION BY transaction_id ORDER BY ts) AS rn
    FROM purchases
    WHERE ts >= TIMESTAMP '{d}' - INTERVAL 28 DAY AND ts < TIMESTAMP '{d}'
  ) WHERE rn = 1 AND transaction_id NOT IN (SELECT transaction_id FROM flags)
)"""

_PRODUCT_BASE = """
WITH snap AS (SELECT max(date) AS d FROM products WHERE date <= '{d}'),
fxd AS (SELECT max(date) AS d FROM fx_rates WHERE date <= '{d}'),
fx AS (SELECT currency, usd_per_unit FROM fx_rates WHERE date = (SELECT d FROM fxd)),
{purchases},
pop AS (SELECT product_id, count(*) AS purchases_7d FROM pur WHERE ts >= TIMESTAMP '{d}' - INTERVAL 7 DAY GROUP BY product_id),
prod AS (
  SELECT * FROM (
    SELECT *, row_number() OVER (PARTITION BY product_id ORDER BY list_price) AS rn
    FROM products WHERE date = (SELECT d FROM snap)
  ) WHERE rn = 1
),
base AS (
  SELECT p.product_id, lower(p.name) AS name_words, p.product_type, p.list_price, p.currency,
         coalesce(p.is_partner, false) AS is_partner, p.created_date,
         coalesce(p.discount_pct, 0.0) AS discount_pct, fx.usd_per_unit,
         coalesce(pop.purchases_7d, 0) AS purchases_7d, DATE '{d}' AS feature_date
  FROM prod p JOIN fx USING (currency) LEFT JOIN pop USING (product_id)
)
"""

_USER_BASE = """
WITH snap AS (SELECT max(date) AS d FROM products WHERE date <= '{d}'),
fxd AS (SELECT max(date) AS d FROM fx_rates WHERE date <= '{d}'),
fx AS (SELECT currency, usd_per_unit FROM fx_rates WHERE date = (SELECT d FROM fxd)),
{purchases},
prod AS (SELECT DISTINCT ON (product_id) product_id, product_type, list_price * (1 - coalesce(discount_pct, 0)) * fx.usd_per_unit AS price_usd
         FROM products JOIN fx USING (currency) WHERE date = (SELECT d FROM snap)),
type_median AS (SELECT product_type, median(price_usd) AS med FROM prod GROUP BY product_type),
fx_all AS (SELECT date, currency, usd_per_unit FROM fx_rates),
pu AS (
  SELECT pur.user_id, pur.quantity, pur.price * f.usd_per_unit AS price_usd, prod.product_type
  FROM pur JOIN fx_all f ON f.currency = pur.currency AND f.date = strftime(pur.ts, '%Y-%m-%d')
  LEFT JOIN prod USING (product_id)
),
agg AS (
  SELECT pu.user_id, count(*) AS purchases_28d, sum(pu.price_usd * pu.quantity) AS spend_usd_28d,
         avg(CASE WHEN pu.price_usd > 0 AND tm.med > 0 THEN ln(pu.price_usd / tm.med) END) AS price_ratio_28d
  FROM pu LEFT JOIN type_median tm USING (product_type) GROUP BY pu.user_id
),
users_all AS (
  SELECT * FROM (
    SELECT user_id, country, signup_date, row_number() OVER (PARTITION BY user_id ORDER BY date DESC) AS rn
    FROM users WHERE date <= '{d}'
  ) WHERE rn = 1
),
base AS (
  SELECT u.user_id, u.country, coalesce(a.purchases_28d, 0) AS purchases_28d,
         coalesce(a.spend_usd_28d, 0.0) AS spend_usd_28d, a.price_ratio_28d, DATE '{d}' AS feature_date
  FROM users_all u LEFT JOIN agg a USING (user_id)
)
"""

_TEMPLATES = {"product": _PRODUCT_BASE, "user": _USER_BASE}
# Columns every feature row carries besides the features (product rows keep what the online
# store and request features need).
_HEADS = {
    "product": ("product_id", "name_words", "product_type", "purchases_7d AS popularity"),
    "user": ("user_id",),
}


def feature_table_path(tables_dir: Path, group: str) -> Path:
    return tables_dir / "features" / group


def connect_raw(
    tables_dir: Path, sources: tuple[str, ...] = _RAW, versions: dict[str, int] | None = None
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection with the raw Delta tables registered as views (optionally pinned)."""
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    con.execute("SET enable_progress_bar = false")
    for source in sources:
        path = tables_dir / "raw" / source
        if not table_exists(path):
            raise DataError(
                f"raw table {source} has no data under {path}; run `spindle ingest` for the days you need"
            )
        version = (versions or {}).get(f"raw/{source}")
        con.register(source, open_dataset(path, version))
    return con


def _base_cte(group: str, date: str) -> str:
    return _TEMPLATES[group].format(d=date, purchases=_PURCHASES_BEFORE.format(d=date))


def base_sql(group: str, date: str) -> str:
    """The DuckDB query for the base rows of ``group`` on ``date`` (what Python features read)."""
    return f"{_base_cte(group, date)}SELECT * FROM base ORDER BY {GROUP_ENTITIES[group]}"


def feature_sql(group: str, definitions: list[FeatureDefinition], date: str) -> str:
    """The query computing the SQL ``definitions`` over a relation ``base`` of base rows."""
    exprs = [
        f'CAST(({d.sql}) AS {_duck_type(d.dtype)}) AS "{d.column}"'
        for d in definitions
        if d.computation == "sql"
    ]
    select = ", ".join([*_HEADS[group], *exprs, f"TIMESTAMP '{date}' AS feature_ts"])
    return f"SELECT {select} FROM base ORDER BY {GROUP_ENTITIES[group]}"


def _duck_type(dtype: str) -> str:
    return {"float64": "DOUBLE", "int64": "BIGINT", "bool": "BOOLEAN", "string": "VARCHAR"}[dtype]


def compute_group(
    tables_dir: Path,
    registry: FeatureRegistry,
    group: str,
    date: str,
    definitions: list[FeatureDefinition] | None = None,
    versions: dict[str, int] | None = None,
) -> pa.Table:
    """Compute the feature rows of one group for one day (every version of every feature by default).

    Args:
        definitions: the versions to compute (all of the group's by default).
        versions: raw table versions to read (``{"raw/products": 3}``); latest when absent.

    Raises:
        FeatureError: a feature's SQL is invalid (names the feature and the DuckDB message), or
            a Python feature raised or returned the wrong length or type (names the feature,
            file and function).
    """
    chosen = definitions if definitions is not None else registry.group(group)
    python = [d for d in chosen if d.python is not None]
    con = connect_raw(tables_dir, versions=versions)
    try:
        con.execute("SET threads TO 1")  # deterministic sums: see the module docstring
        base = con.sql(base_sql(group, date)).to_arrow_table()
        con.register("base", base)
        rows = con.sql(feature_sql(group, chosen, date)).to_arrow_table()
    except duckdb.Error as exc:
        refs = ", ".join(d.ref for d in chosen if d.computation == "sql")
        raise FeatureError(f"computing {group} features ({refs}) for {date} failed: {exc}") from exc
    finally:
        con.close()
    if not python:
        return rows
    computed = {
        d.column: apply_python(d.python, d.ref, d.dtype, base, date)
        for d in python
        if d.python is not None
    }
    # Both are ordered by the (unique) entity key, so row i of each is the same entity.
    heads = rows.column_names[: len(_HEADS[group])]
    names = [*heads, *(d.column for d in chosen), "feature_ts"]
    return pa.Table.from_arrays(
        [computed[n] if n in computed else rows.column(n) for n in names], names=names
    )


def compute_features(
    tables_dir: Path, registry: FeatureRegistry, date: str
) -> dict[str, tuple[TableVersion, pa.Table]]:
    """Compute and store (partition overwrite) the product and user feature rows of ``date``.

    Every group is computed before anything is written, so a failing computation leaves the
    tables as they were; a version whose computation changed since it was first materialised
    is refused before any work.

    Raises:
        FeatureError: a computation failed, or a materialised version's fingerprint changed.
    """
    groups = ("product", "user")
    chosen = [d for g in groups for d in registry.group(g)]
    check_fingerprints(tables_dir, chosen)
    computed = {g: compute_group(tables_dir, registry, g, date) for g in groups}
    record_fingerprints(tables_dir, chosen)
    out: dict[str, tuple[TableVersion, pa.Table]] = {}
    for group, rows in computed.items():
        version = write_partition(
            feature_table_path(tables_dir, group), rows, date, f"features/{group}"
        )
        out[group] = (version, rows)
    return out
