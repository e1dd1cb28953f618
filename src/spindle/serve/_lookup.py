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
    found = store.aligned_many(
        [(lookup.view, [entity_key(inst, lookup.keys) for inst in instances]) for lookup in lookups]
    )
    for lookup, view in zip(lookups, found, strict=True):
        if view is None:  # the store does not hold the view yet
            missing[lookup.view] = len(instances)
            continue
        values, unknown = view
        held.add(lookup.view)
        if unknown:
            missing[lookup.view] = unknown
        columns.update((name, a) for name, a in values.items() if name not in lookup.keys)
    return columns, missing, held
