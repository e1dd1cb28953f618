"""The online store: the latest feature row per entity of every feature view, for serving.

:class:`OnlineStore` is what serving and the pipeline use. It writes through an
:class:`OnlineStoreBackend` (SQLite by default, chosen by URL) — incrementally, one partition
(day) at a time after the view's watermark — keyed by the view's entity keys (a composite key
is held as one text key column). Readers use :meth:`OnlineStore.rows` and
:meth:`OnlineStore.get`; serving looks entities up by key and runs a model's declared
candidate retrieval over a view's rows (``spindle.serve``), so nothing here knows what a
workspace's views hold.
"""

from __future__ import annotations

import datetime as dt
import importlib.util
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as pads

from spindle.core import FeatureError, Location, open_dataset, table_exists
from spindle.features._compute import entity_keys_of, feature_table_path, ttl_of
from spindle.features._online_backend import MaterializeResult, OnlineStoreBackend, typed_columns
from spindle.features._online_sqlite import SQLiteOnlineStore

COMPOSITE_KEY = "__spindle_key"
"""The stored key column of a view with several entity keys: their values as a JSON list."""


def open_online_backend(location: str | Path) -> OnlineStoreBackend:
    """The backend a URL names: ``sqlite:///PATH`` (or a plain path) opens SQLite,
    ``postgresql://user@host/db`` (or ``postgresql+psycopg://``) PostgreSQL.

    Raises:
        FeatureError: a ``redis://`` URL (no Redis backend ships with spindle yet) or an
            unknown scheme.

    Example:
        >>> backend = open_online_backend("sqlite:///.spindle/online.db")  # doctest: +SKIP
    """
    text = str(location)
    scheme, sep, rest = text.partition("://")
    if not sep:
        return SQLiteOnlineStore(Path(text))
    if scheme == "sqlite":
        # SQLAlchemy's spelling: sqlite:///relative/path, sqlite:////absolute/path
        return SQLiteOnlineStore(Path(rest.removeprefix("/")))
    if scheme == "postgresql" or scheme.startswith("postgresql+"):
        from spindle.features._online_postgres import PostgresOnlineStore

        return PostgresOnlineStore(text)
    if scheme in ("redis", "rediss"):
        client = (
            "redis-py is installed"
            if importlib.util.find_spec("redis") is not None
            else "redis-py is not installed either"
        )
        raise FeatureError(
            f"online store {text}: spindle has no Redis backend yet ({client}). Either set "
            "online_store_url in spindle.yaml to sqlite:///PATH (the default), or implement "
            "spindle.features.OnlineStoreBackend over redis-py (the contract suite in "
            "tests/features/test_online_backends.py says what it must do) and pass it as "
            "OnlineStore(backend)"
        )
    raise FeatureError(
        f"online store {text}: unknown scheme {scheme!r}; use sqlite:///PATH (or a plain path)"
    )


class OnlineStore:
    """The latest feature row of every entity of every materialised view, for serving.

    Args:
        location: a backend URL or SQLite path (see :func:`open_online_backend`), or a backend.

    Example:
        >>> store = OnlineStore("sqlite:///.spindle/online.db")  # doctest: +SKIP
        >>> store.materialize("account", rows, "2026-01-03", keys=["account_id"])  # doctest: +SKIP
        >>> store.get("account", "a1")["account__minutes_28d__v1"]  # doctest: +SKIP
        42.0
    """

    def __init__(self, location: str | Path | OnlineStoreBackend) -> None:
        self.backend = (
            location if isinstance(location, OnlineStoreBackend) else open_online_backend(location)
        )

    @property
    def url(self) -> str:
        return self.backend.url

    def close(self) -> None:
        self.backend.close()

    # -- writing ---------------------------------------------------------------------------
    def forget(
        self, view: str, column: str, values: Sequence[str], *, count_only: bool = False
    ) -> int:
        """Delete every row of ``view`` whose ``column`` (a key or not) holds one of ``values``,
        leaving no copy in the backend's storage (a deletion request).

        Args:
            count_only: count the rows, delete nothing.

        Returns:
            How many rows were (or, with ``count_only``, would be) deleted (0 when the view is
            not held or has no such column).

        Example:
            >>> store.forget("user", "user_id", ["u42"])  # doctest: +SKIP
            1
        """
        key = self.backend.key(view)
        if key is None:
            return 0
        rows = self.backend.read(view)
        if rows is None or column not in rows.column_names:
            return 0
        wanted = pa.array([str(v) for v in values], pa.string())
        held = rows.column(column).cast(pa.string())
        keys = rows.column(key).filter(pc.is_in(held, value_set=wanted)).to_pylist()
        if count_only or not keys:
            return len(keys)
        return self.backend.delete_keys(view, [str(k) for k in keys])

    def materialize(
        self,
        view: str,
        table: pa.Table,
        partition: str,
        *,
        keys: Sequence[str] | None = None,
        snapshot: bool = True,
        restate: bool = False,
    ) -> MaterializeResult:
        """Apply the ``partition`` (day) rows of ``view`` incrementally, in one transaction.

        Args:
            view: the feature view's name.
            table: one row per entity: the view's feature-table rows of the day.
            partition: the day, ``YYYY-MM-DD``.
            keys: the view's entity keys (default: the table's first column, where feature
                tables keep their key).
            snapshot: the rows are the view's complete state that day (the feature tables
                are), so a key they lack is deleted; False for a change log.
            restate: re-apply the partition at the watermark (its day was recomputed).

        Returns:
            Rows inserted, updated, deleted and unchanged, or ``skipped`` when ``partition`` is
            before the watermark (or at it without ``restate``).

        Raises:
            FeatureError: a missing key column, a null or duplicate key (nothing written).
        """
        chosen = list(keys) if keys is not None else table.column_names[:1]
        missing = [k for k in chosen if k not in table.column_names]
        if missing or not chosen:
            raise FeatureError(
                f"online store: rows of view {view!r} lack key column(s) {missing or chosen} "
                f"(columns: {', '.join(table.column_names)})"
            )
        key = chosen[0]
        if len(chosen) > 1:
            key = COMPOSITE_KEY
            columns = [table[k].to_pylist() for k in chosen]
            values = [_key_text(row) for row in zip(*columns, strict=True)]
            table = table.append_column(COMPOSITE_KEY, pa.array(values, pa.string()))
        return self.backend.materialize(
            view, key, _plain_strings(table), partition, snapshot=snapshot, restate=restate
        )

    # -- reading ---------------------------------------------------------------------------
    def rows(self, view: str, keys: Sequence[Any]) -> pa.Table:
        """The latest rows of ``keys`` in ``view`` that exist, in the order asked.

        A key is a value for a view with one entity key, a tuple of values (in the view's
        key order) for a composite key. Unknown keys are left out; an empty table before the
        view's first materialisation.
        """
        return self.rows_many([(view, keys)])[0]

    def rows_many(self, asks: Sequence[tuple[str, Sequence[Any]]]) -> list[pa.Table]:
        """:meth:`rows` of several views, read from one snapshot of the store (a request's
        lookups see the same state)."""
        held = self.backend.read_many([(view, _stored_keys(keys)) for view, keys in asks])
        return [
            pa.table({})
            if rows is None
            else rows.drop_columns([COMPOSITE_KEY])
            if COMPOSITE_KEY in rows.column_names
            else rows
            for rows in held
        ]

    def aligned_many(
        self, asks: Sequence[tuple[str, Sequence[Any]]]
    ) -> list[tuple[dict[str, pa.Array], int] | None]:
        """Several views' rows aligned with the keys asked, from one snapshot of the store:
        what a request's lookups need (Feast's ``get_online_features``).

        ``asks`` pairs a view with one key per instance (a value, a tuple for a composite
        key, or None); keys may repeat. Each view's stored columns come back aligned with
        them, typed as materialised, null where the key is None or unknown; the columns of
        every view are built together (one Arrow array per type).

        Returns:
            Per view: its columns by name and how many keys it did not know; None for a view
            the store does not hold yet.
        """
        wanted = [[k for k in dict.fromkeys(keys) if _askable(k)] for _, keys in asks]
        stored_keys = [_stored_keys(keys) for keys in wanted]
        held = self.backend.read_rows_many(
            [(view, keys) for (view, _), keys in zip(asks, stored_keys, strict=True)]
        )
        pending: list[tuple[str, list[Any]]] = []
        named: list[tuple[int, str]] = []  # (ask, column name) of each pending column
        unknown: list[int] = []
        for n, ((_, keys), stored) in enumerate(zip(asks, held, strict=True)):
            if stored is None:
                unknown.append(len(keys))
                continue
            at = list(stored.names).index(stored.key)
            by_stored = {row[at]: row for row in stored.rows}
            by_key = {
                k: by_stored[t]
                for k, t in zip(wanted[n], stored_keys[n], strict=True)
                if t in by_stored
            }
            rows = [by_key.get(k) if _askable(k) else None for k in keys]
            unknown.append(rows.count(None))
            for i, (name, type_name) in enumerate(zip(stored.names, stored.types, strict=True)):
                if name != COMPOSITE_KEY:
                    named.append((n, name))
                    pending.append((type_name, [None if r is None else r[i] for r in rows]))
        out: list[tuple[dict[str, pa.Array], int] | None] = [
            None if rows is None else ({}, unknown[n]) for n, rows in enumerate(held)
        ]
        for (n, name), array in zip(named, typed_columns(pending), strict=True):
            found = out[n]
            if found is not None:
                found[0][name] = array
        return out

    def get(self, view: str, key: Any) -> dict[str, Any] | None:
        """The latest row of one entity of ``view`` as a dict, or None when it is unknown."""
        rows = self.rows(view, [key])
        if rows.num_rows == 0:
            return None
        row: dict[str, Any] = rows.to_pylist()[0]
        return row

    def key_columns(self, view: str) -> tuple[str, ...] | None:
        """The entity key of ``view`` as materialised: its one key column, or None when the
        view is not held yet or has a composite key (whose parts the declarations name)."""
        key = self.backend.key(view)
        return None if key is None or key == COMPOSITE_KEY else (key,)

    def watermark(self, view: str) -> str | None:
        """The last partition (day) materialised for ``view`` (None before the first)."""
        return self.backend.watermark(view)

    def as_of(self, view: str) -> str | None:
        """The day whose values are loaded for ``view`` (the watermark)."""
        return self.backend.watermark(view)

    def version(self) -> str | None:
        """Changes whenever anything is written (None before the first write): a reader
        caching rows (serving's retrieval snapshots) reloads when it differs."""
        return self.backend.version()


def _askable(key: Any) -> bool:
    """Whether a key can be known: not None, and no part of a composite key None."""
    return key is not None and not (isinstance(key, tuple) and any(v is None for v in key))


def _stored_keys(keys: Sequence[Any]) -> list[Any]:
    """Keys as the backend stores them: a composite key's values as :func:`_key_text`."""
    composite = any(isinstance(k, tuple | list) for k in keys)
    return [_key_text(k) if composite else k for k in keys]


def _key_text(values: Any) -> str:
    """A composite key as stored: its values as a JSON list (dates and the like as text)."""
    return json.dumps(list(values), default=str)


def _plain_strings(table: pa.Table) -> pa.Table:
    """Large and view strings as plain strings: rows computed in memory and rows read back from
    Delta then have the same schema, so alternating between them is not a column change."""
    fields = [
        pa.field(f.name, pa.string())
        if pa.types.is_large_string(f.type) or pa.types.is_string_view(f.type)
        else f
        for f in table.schema
    ]
    target = pa.schema(fields)
    return table if target.equals(table.schema) else table.cast(target)


def _partitions(tables_dir: Location | Path, view: str, after: str, before: str) -> list[str]:
    """The partitions of the view's feature table strictly between two days, sorted."""
    path = feature_table_path(tables_dir, view)
    if not _day_between(after, before) or not table_exists(path):
        return []  # a daily run's watermark is the day before: nothing to read the table for
    days = open_dataset(path).to_table(
        columns=["date"], filter=(pads.field("date") > after) & (pads.field("date") < before)
    )
    return sorted(pc.unique(days.column("date")).to_pylist())


def _day_between(after: str, before: str) -> bool:
    """Whether a calendar day lies strictly between two days (True when one is not a plain day).

    Example:
        >>> _day_between("2026-01-01", "2026-01-02"), _day_between("2026-01-01", "2026-01-03")
        (False, True)
    """
    try:
        first, last = dt.date.fromisoformat(after), dt.date.fromisoformat(before)
    except ValueError:
        return True
    return (last - first).days > 1


def _feature_views(tables_dir: Location | Path) -> list[str]:
    """The views that have a feature table under ``tables_dir``."""
    folder = tables_dir / "features"
    found = sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []
    return [name for name in found if table_exists(folder / name)]


def catch_up_online(
    store: OnlineStore,
    tables_dir: Location | Path,
    through: str,
    latest: Mapping[str, pa.Table] | None = None,
    views: Mapping[str, Sequence[str]] | None = None,
) -> list[MaterializeResult]:
    """Bring each feature view of ``store`` up to day ``through``, one partition at a time.

    Partitions of the feature tables after the view's watermark and before ``through`` are
    materialised first (the days an outage left out), then ``through`` itself — restated if it
    is the watermark, since the caller recomputed it. A store with no watermark starts at
    ``through``: the partitions are complete snapshots, so older days add nothing.

    Args:
        store: the online store.
        tables_dir: root of the Delta tables (``features/<view>``).
        through: the day just computed.
        latest: that day's rows per view when already in memory (read from the table if not).
        views: the views to materialise with their entity keys (``registry.views()``'s names
            and keys); by default every feature table under ``tables_dir``, keyed by the keys
            ``latest``'s rows record (see ``compute_group``), else by its first column.

    Returns:
        One result per partition and view, in the order applied.
    """
    chosen: Mapping[str, Sequence[str] | None] = (
        views
        if views is not None
        else {
            view: entity_keys_of(latest[view]) if latest and view in latest else None
            for view in _feature_views(tables_dir)
        }
    )
    results = []
    for view in sorted(chosen):
        keys = chosen[view]
        ttl_s = ttl_of(latest[view]) if latest and view in latest else None
        watermark = store.watermark(view)
        if watermark is not None:
            for day in _partitions(tables_dir, view, watermark, through):
                rows = served_rows(_read_partition(tables_dir, view, day), keys, day, ttl_s)
                results.append(store.materialize(view, rows, day, keys=keys))
        rows = (latest or {}).get(view)
        if rows is None:
            rows = _read_partition(tables_dir, view, through)
            if rows.num_rows == 0:
                continue
        rows = served_rows(rows, keys, through, ttl_s)
        results.append(store.materialize(view, rows, through, keys=keys, restate=True))
    return results


def refresh_online_day(
    store: OnlineStore,
    tables_dir: Location | Path,
    view: str,
    keys: Sequence[str] | None,
    days: Sequence[str],
    ttl_s: int | None = None,
) -> MaterializeResult | None:
    """Re-apply the store's current day of ``view`` when ``days`` (rewritten in the feature
    table, e.g. by a backfill of a new feature version) include it, so what the table gained
    (a new version's column) is served too; None when the store's day is not among them.

    Restating the same rows changes nothing, so this is safe to repeat.
    """
    watermark = store.watermark(view)
    if watermark is None or watermark not in set(days):
        return None
    rows = served_rows(_read_partition(tables_dir, view, watermark), keys, watermark, ttl_s)
    if rows.num_rows == 0:
        return None
    return store.materialize(view, rows, watermark, keys=keys, restate=True)


def served_rows(
    rows: pa.Table, keys: Sequence[str] | None, day: str, ttl_s: int | None
) -> pa.Table:
    """The rows of a view's partition ``day`` the online store serves: per entity, the row a
    training example at the end of the day takes. Rows known only after the day
    (``feature_ts`` from the next 00:00 on: a departure after midnight in an event-time view
    with ``at``) and rows older than the TTL at the day's end are left out, then the latest
    row per key is kept. So a served entity's features are the training-set path's as of the
    store's day (``tests/serve/test_served_equals_offline.py``)."""
    if rows.num_rows and "feature_ts" in rows.column_names:
        times = rows.column("feature_ts")
        end = dt.datetime.fromisoformat(day) + dt.timedelta(days=1)
        if getattr(times.type, "tz", None) is not None:
            end = end.replace(tzinfo=dt.UTC)
        keep = pc.less(times, pa.scalar(end, times.type))
        if ttl_s is not None:
            oldest = pa.scalar(end - dt.timedelta(seconds=ttl_s), times.type)
            keep = pc.and_(keep, pc.greater_equal(times, oldest))
        if not pc.all(keep).as_py():
            rows = rows.filter(keep)
    return _latest_per_key(rows, keys)


def _latest_per_key(rows: pa.Table, keys: Sequence[str] | None) -> pa.Table:
    """One row per entity: the last of each key's rows (an event-time view's partition holds
    every observation of the day, ordered by key and time; the online store serves the latest)."""
    if not keys or rows.num_rows < 2:
        return rows
    index = pa.table({k: rows.column(k) for k in keys}).append_column(
        "__row", pa.array(range(rows.num_rows), pa.int64())
    )
    last = index.group_by(list(keys), use_threads=False).aggregate([("__row", "max")])
    if last.num_rows == rows.num_rows:
        return rows
    return rows.take(pa.array(sorted(last.column("__row_max").to_pylist()), pa.int64()))


def _read_partition(tables_dir: Location | Path, view: str, day: str) -> pa.Table:
    path = feature_table_path(tables_dir, view)
    if not table_exists(path):
        return pa.table({})
    rows = open_dataset(path).to_table(filter=pads.field("date") == day)
    return rows.drop_columns(["date"]) if "date" in rows.column_names else rows
