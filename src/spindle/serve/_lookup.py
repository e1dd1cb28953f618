"""Looking up instances' entities in the online store: one view's stored columns per instance."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pyarrow as pa

from spindle.features import OnlineStore
from spindle.serve._schema import ViewLookup


def entity_key(instance: Mapping[str, Any], keys: tuple[str, ...]) -> Any:
    """The instance's key of a view: a value for one entity key, a tuple for several."""
    return instance[keys[0]] if len(keys) == 1 else tuple(instance[k] for k in keys)


def _has_null(key: Any) -> bool:
    return isinstance(key, tuple) and any(v is None for v in key)


def _wanted(asked: list[Any]) -> list[Any]:
    """The distinct keys worth asking the store for (none with a null part)."""
    return [k for k in dict.fromkeys(asked) if k is not None and not _has_null(k)]


def _aligned(
    lookup: ViewLookup, asked: list[Any], found: pa.Table
) -> tuple[dict[str, pa.Array], pa.Schema | None, int]:
    """The store's rows of one view (``found``; none wanted: its columns, typed, no rows)
    aligned with the instances' keys ``asked``.

    Returns:
        The view's columns other than its keys, aligned with ``asked`` (null where the entity
        is unknown) and typed as stored; the stored schema (None when the store does not hold
        the view yet); how many instances it did not know.
    """
    if found.num_columns == 0:  # the store does not hold the view yet
        return {}, None, len(asked)
    # only the keys go through Python; the values stay Arrow (a null index takes a null row)
    key_values = [found.column(k).to_pylist() for k in lookup.keys]
    keys_of_rows = key_values[0] if len(lookup.keys) == 1 else zip(*key_values, strict=True)
    row_of = {key: i for i, key in enumerate(keys_of_rows)}
    positions = [row_of.get(key) for key in asked]
    names = [name for name in found.column_names if name not in lookup.keys]
    if positions == list(range(found.num_rows)):  # every entity known, once, in order: as is
        return {n: found.column(n).combine_chunks() for n in names}, found.schema, 0
    take = pa.array(positions, pa.int64())
    columns = {name: found.column(name).take(take).combine_chunks() for name in names}
    return columns, found.schema, positions.count(None)


def looked_up_rows(
    store: OnlineStore,
    lookups: Sequence[ViewLookup],
    instances: Sequence[Mapping[str, Any]],
    skip: frozenset[str] = frozenset(),
) -> tuple[dict[str, pa.Array | list[Any]], dict[str, int], set[str]]:
    """The instances' fields (but ``skip``) and each view's online columns, typed as stored;
    every view is read from one snapshot of the store.

    Returns:
        The columns by name, per view how many instances it did not know, and the views the
        store holds.
    """
    names = dict.fromkeys(n for inst in instances for n in inst if n not in skip)
    columns: dict[str, pa.Array | list[Any]] = {
        name: [inst.get(name) for inst in instances] for name in names
    }
    missing: dict[str, int] = {}
    held: set[str] = set()
    asked = [[entity_key(inst, lookup.keys) for inst in instances] for lookup in lookups]
    found = store.rows_many(
        [(lookup.view, _wanted(keys)) for lookup, keys in zip(lookups, asked, strict=True)]
    )
    for lookup, keys, rows in zip(lookups, asked, found, strict=True):
        values, stored, unknown = _aligned(lookup, keys, rows)
        if unknown:
            missing[lookup.view] = unknown
        if stored is not None:
            held.add(lookup.view)
        columns.update(values)
    return columns, missing, held
