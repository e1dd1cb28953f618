"""Feature definitions: named, versioned, owned, described; loaded from the workspace's YAML.

A feature belongs to a *group* (``product``, ``user`` or ``query``); the group fixes its entity
key and the base view its SQL expression is evaluated over (see ``_compute.py``). ``query``
features are computed at request time by :func:`spindle.features.add_request_features`, the
same function training uses, so they have no SQL.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from spindle.core import ConfigError, FeatureError, ModelConfig, load_yaml_model

GROUP_ENTITIES = {"product": "product_id", "user": "user_id", "query": "search_id"}
RESTRICTED_TAGS = frozenset({"pii", "sensitive"})
"""Tags that make a feature usable only by the teams its policy allows."""
EncodingKind = Literal["numeric", "categorical", "hashed", "text"]


class EncodingSpec(BaseModel):
    """How the transform turns a raw value into a model input."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: EncodingKind
    log: bool = False
    buckets: int = Field(default=4096, ge=2)
    max_words: int = Field(default=8, ge=1)


class _FeatureYaml(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: int = Field(ge=1)
    description: str
    dtype: Literal["float64", "int64", "bool", "string"]
    owner: str | None = None
    tags: list[str] = Field(default_factory=list)
    sql: str | None = None
    encoding: EncodingSpec
    allowed_teams: list[str] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not re.match(r"^[a-z][a-z0-9_]*$", value):
            raise ValueError("feature names are lowercase letters, digits and _")
        return value


class _GroupYaml(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    group: Literal["product", "user", "query"]
    owner: str
    sources: list[str] = Field(default_factory=list)
    allowed_teams: list[str] = Field(default_factory=list)
    features: list[_FeatureYaml]


@dataclass(frozen=True)
class FeatureDefinition:
    """One version of one feature."""

    group: str
    name: str
    version: int
    owner: str
    description: str
    dtype: str
    tags: tuple[str, ...]
    sql: str | None
    encoding: EncodingSpec
    sources: tuple[str, ...] = ()
    allowed_teams: tuple[str, ...] = ()

    @property
    def restricted(self) -> bool:
        """True when a tag (``pii``, ``sensitive``) limits the feature to its policy's teams."""
        return bool(RESTRICTED_TAGS.intersection(self.tags))

    @property
    def ref(self) -> str:
        """The pinned reference models use, e.g. ``product.price_usd@1``."""
        return f"{self.group}.{self.name}@{self.version}"

    @property
    def column(self) -> str:
        """The column holding this feature in feature tables and training sets."""
        return f"{self.group}__{self.name}__v{self.version}"

    @property
    def entity(self) -> str:
        return GROUP_ENTITIES[self.group]


@dataclass(frozen=True)
class FeatureRegistry:
    """Every feature definition of a workspace, by reference."""

    definitions: dict[str, FeatureDefinition]

    @classmethod
    def load(cls, features_dir: str | Path) -> FeatureRegistry:
        """Load every ``*.yaml`` in ``features_dir``.

        Raises:
            ConfigError: a file is invalid, or a (group, name, version) is defined twice.
        """
        definitions: dict[str, FeatureDefinition] = {}
        for path in sorted(Path(features_dir).glob("*.yaml")):
            group, _ = load_yaml_model(path, _GroupYaml)
            for item in group.features:
                definition = FeatureDefinition(
                    group=group.group,
                    name=item.name,
                    version=item.version,
                    owner=item.owner or group.owner,
                    description=item.description,
                    dtype=item.dtype,
                    tags=tuple(item.tags),
                    sql=item.sql,
                    encoding=item.encoding,
                    sources=tuple(group.sources),
                    allowed_teams=tuple(
                        item.allowed_teams
                        if item.allowed_teams is not None
                        else group.allowed_teams
                    ),
                )
                if definition.ref in definitions:
                    raise ConfigError(str(path), [f"{definition.ref} is defined twice"])
                if group.group != "query" and not item.sql:
                    raise ConfigError(str(path), [f"{definition.ref}: needs `sql`"])
                definitions[definition.ref] = definition
        return cls(definitions)

    def group(self, group: str) -> list[FeatureDefinition]:
        """Every definition (every version) of a group, sorted by column name."""
        return sorted(
            (d for d in self.definitions.values() if d.group == group), key=lambda d: d.column
        )

    def resolve(self, config: ModelConfig) -> list[FeatureDefinition]:
        """The definitions a model pins, in the model's order.

        Raises:
            FeatureError: a pinned feature or version does not exist (lists the known versions),
                or a feature tagged ``pii``/``sensitive`` is pinned by a team its policy does
                not allow (names the feature, its tags, the allowed teams and the fix).
        """
        resolved = []
        for ref in config.features:
            definition = self.definitions.get(ref)
            if definition is None:
                qualified = ref.partition("@")[0]
                known = sorted(r for r in self.definitions if r.partition("@")[0] == qualified)
                hint = f"known versions: {', '.join(known)}" if known else "no such feature"
                raise FeatureError(f"model {config.name} pins {ref}, which is not defined ({hint})")
            resolved.append(definition)
        refused = [d for d in resolved if d.restricted and config.team not in d.allowed_teams]
        if refused:
            lines = [
                f"{d.ref} (tags {', '.join(d.tags)}; allowed teams: "
                f"{', '.join(d.allowed_teams) or 'none'})"
                for d in refused
            ]
            raise FeatureError(
                f"model {config.name} (team {config.team}) may not use restricted feature(s): "
                f"{'; '.join(lines)}. Remove them from the model's features, or ask the feature "
                f"owner to add team {config.team!r} to `allowed_teams` in the feature's YAML."
            )
        return resolved

    def versions(self, group: str, name: str) -> list[FeatureDefinition]:
        """Every version of one feature, oldest first."""
        return sorted(
            (d for d in self.definitions.values() if d.group == group and d.name == name),
            key=lambda d: d.version,
        )

    def get(self, ref: str) -> FeatureDefinition:
        """The definition of ``group.name@version``.

        Raises:
            FeatureError: no such feature or version (lists the known versions).
        """
        definition = self.definitions.get(ref)
        if definition is None:
            qualified = ref.partition("@")[0]
            known = sorted(r for r in self.definitions if r.partition("@")[0] == qualified)
            hint = f"known versions: {', '.join(known)}" if known else "see `spindle features list`"
            raise FeatureError(f"feature {ref} is not defined ({hint})")
        return definition
