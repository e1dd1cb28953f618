"""The feature catalogue: every definition with its owner, tags, policy, sources and users.

What ``spindle features list|show`` prints: one record per feature version, naming the models
that pin that version and the provenance (origin, licence, retention) of the raw sources it is
computed from.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from spindle.core import FeatureError, ModelConfig, SourceConfig
from spindle.features._definitions import FeatureDefinition, normalised_tags
from spindle.features._registry import FeatureRegistry


def _record(
    definition: FeatureDefinition,
    configs: Mapping[str, ModelConfig],
    sources: Mapping[str, SourceConfig],
) -> dict[str, Any]:
    return {
        "ref": definition.ref,
        "group": definition.group,
        "name": definition.name,
        "version": definition.version,
        "column": definition.column,
        "entity": definition.entity or None,
        "keys": list(definition.entity_keys),
        "ttl_s": definition.ttl_s,
        "keep": list(definition.keep),
        "view_sql": definition.view_sql,
        "owner": definition.owner,
        "description": definition.description,
        "dtype": definition.dtype,
        "tags": list(definition.tags),
        "allowed_teams": list(definition.allowed_teams) if definition.restricted else None,
        "computation": _computation(definition),
        "encoding": definition.encoding.model_dump(),
        "used_by": sorted(name for name, cfg in configs.items() if definition.ref in cfg.features),
        "sources": {
            name: (
                sources[name].model_dump()
                if name in sources
                else {"origin": "undeclared: add it under `sources:` in spindle.yaml"}
            )
            for name in definition.sources
        },
    }


def _computation(definition: FeatureDefinition) -> dict[str, Any]:
    if definition.python is not None:
        python = definition.python
        return {
            "kind": definition.computation,
            "python": python.spec,
            "file": str(python.file),
            "function": python.function,
            "source_sha256": python.source_sha256,
            "fingerprint": definition.fingerprint,
        }
    if definition.sql is not None:
        return {"kind": "sql", "sql": definition.sql, "fingerprint": definition.fingerprint}
    return {"kind": "request", "fingerprint": definition.fingerprint}


def feature_catalog(
    registry: FeatureRegistry,
    configs: Mapping[str, ModelConfig],
    sources: Mapping[str, SourceConfig],
    name: str | None = None,
    *,
    tag: str | None = None,
) -> list[dict[str, Any]]:
    """JSON-ready records of every feature version (or only those of ``name``), sorted by ref.

    Args:
        registry: the workspace's feature definitions.
        configs: the workspace's model configs by name (to list who pins each version).
        sources: the provenance of the workspace's declared sources, by name.
        name: ``group.name`` (every version), ``group.name@V`` (one), or a bare ``name`` when
            it is unique across groups; None for every feature.
        tag: only the versions carrying this tag, in any case (``PII`` finds ``pii``: tags
            are lower case once loaded).

    Raises:
        FeatureError: ``name`` matches no feature (lists how to find one).

    Example:
        >>> feature_catalog(registry, {}, {}, "account.minutes_28d")[0]["ref"]
        'account.minutes_28d@1'
    """
    chosen = sorted(registry.definitions.values(), key=lambda d: (d.group, d.name, d.version))
    if name is not None:
        chosen = _matching(registry, chosen, name)
    if tag is not None:
        wanted = set(normalised_tags([tag]))
        chosen = [d for d in chosen if wanted.intersection(d.tags)]
    return [_record(d, configs, sources) for d in chosen]


def _matching(
    registry: FeatureRegistry, chosen: list[FeatureDefinition], name: str
) -> list[FeatureDefinition]:
    if "@" in name:
        return [registry.get(name)]
    found = [d for d in chosen if name in (f"{d.group}.{d.name}", d.name)]
    groups = {d.group for d in found}
    if len(groups) > 1:
        options = ", ".join(sorted(f"{g}.{name}" for g in groups))
        raise FeatureError(f"feature name {name!r} is ambiguous: say one of {options}")
    if not found:
        raise FeatureError(
            f"no feature named {name!r}; run `spindle features list` to see every feature"
        )
    return found
