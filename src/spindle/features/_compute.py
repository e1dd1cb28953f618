"""Compute one day of feature rows with DuckDB over the ingested Delta tables.

Rows for day D carry ``feature_ts = D 00:00`` and use only what was known then: the catalogue
snapshot and FX rate of D (both published at 00:00) and purchases strictly before D, less
purchases already flagged as fraud. Each feature is the SQL expression of its definition,
evaluated over a base view per group, so a new version is a new expression and a new column.
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
from spindle.features._definitions import FeatureDefinition, FeatureRegistry

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
SELECT product_id, name_words, product_type, purchases_7d AS popularity, {exprs},
       TIMESTAMP '{d}' AS feature_ts
FROM base ORDER BY product_id
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
SELECT user_id, {exprs}, TIMESTAMP '{d}' AS feature_ts FROM base ORDER BY user_id
"""

_TEMPLATES = {"product": _PRODUCT_BASE, "user": _USER_BASE}


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


def feature_sql(group: str, definitions: list[FeatureDefinition], date: str) -> str:
    """The DuckDB query computing every definition of ``group`` for ``date``."""
    exprs = ", ".join(
        f'CAST(({d.sql}) AS {_duck_type(d.dtype)}) AS "{d.column}"' for d in definitions
    )
    return _TEMPLATES[group].format(d=date, exprs=exprs, purchases=_PURCHASES_BEFORE.format(d=date))


def _duck_type(dtype: str) -> str:
    return {"float64": "DOUBLE", "int64": "BIGINT", "bool": "BOOLEAN", "string": "VARCHAR"}[dtype]


def compute_group(
    tables_dir: Path,
    registry: FeatureRegistry,
    group: str,
    date: str,
    definitions: list[FeatureDefinition] | None = None,
) -> pa.Table:
    """Compute the feature rows of one group for one day (every version of every feature by default).

    Raises:
        FeatureError: a feature's SQL is invalid (names the feature and the DuckDB message).
    """
    chosen = definitions if definitions is not None else registry.group(group)
    con = connect_raw(tables_dir)
    try:
        return con.sql(feature_sql(group, chosen, date)).to_arrow_table()
    except duckdb.Error as exc:
        refs = ", ".join(d.ref for d in chosen)
        raise FeatureError(f"computing {group} features ({refs}) for {date} failed: {exc}") from exc
    finally:
        con.close()


def compute_features(
    tables_dir: Path, registry: FeatureRegistry, date: str
) -> dict[str, tuple[TableVersion, pa.Table]]:
    """Compute and store (partition overwrite) the product and user feature rows of ``date``."""
    out: dict[str, tuple[TableVersion, pa.Table]] = {}
    for group in ("product", "user"):
        rows = compute_group(tables_dir, registry, group, date)
        version = write_partition(
            feature_table_path(tables_dir, group), rows, date, f"features/{group}"
        )
        out[group] = (version, rows)
    return out
