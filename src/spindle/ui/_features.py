"""The features page: the catalog (owner, versions, tags, access policy, what computes each) and
which model versions pin each feature version."""

from __future__ import annotations

from typing import Any

import spindle
from spindle.core import read_package
from spindle.registry import latest_by_version, versions_page
from spindle.ui._declared import declared

PINS_READ = 50  # the newest versions of each model whose manifests are read for their pins


def _pins(ctx: spindle.ReadContext) -> tuple[dict[str, list[str]], int]:
    """``{feature ref: ["model@version", ...]}`` from the manifests of each model's newest
    ``PINS_READ`` versions; and how many manifests were read."""
    pinned: dict[str, list[str]] = {}
    read = 0
    for model in ctx.store.models():
        numbers = [v.version for v in versions_page(ctx.store, model, limit=PINS_READ).versions]
        for version, record in sorted(
            latest_by_version(ctx.store, "model_version", model, numbers).items()
        ):
            try:
                features = read_package(record.uri).features
            except spindle.SpindleError:
                continue  # its directory is gone: nothing to say about its pins
            read += 1
            for ref in features:
                pinned.setdefault(ref, []).append(f"{model}@{version}")
    return pinned, read


def features_view(ctx: spindle.ReadContext, query: dict[str, str]) -> dict[str, Any]:
    """The catalog of the workspace's features (``tag`` filters it), with each version's pins."""
    found = declared(ctx.workspace)
    everything = spindle.feature_catalog(found.features, found.configs, found.provenance)
    tag = query.get("tag") or None
    catalog = (
        spindle.feature_catalog(found.features, found.configs, found.provenance, None, tag=tag)
        if tag
        else everything
    )
    pinned, read = _pins(ctx)
    tags = sorted({t for r in everything for t in r["tags"]})
    return {
        "features": [r | {"pinned_by": pinned.get(r["ref"], [])} for r in catalog],
        "tag": tag,
        "tags": tags,
        "manifests_read": read,
        "pins_read": PINS_READ,
    }
