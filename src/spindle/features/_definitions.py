"""Feature definitions: named, versioned, owned, described; loaded from the workspace's YAML.

A feature belongs to a *group* (``product``, ``user`` or ``query``); the group fixes its entity
key and the base view its computation reads (see ``_compute.py``). A ``product`` or ``user``
feature is computed by a DuckDB SQL expression (``sql``) or by a typed Python function over the
base rows in Arrow (``python: file.py:function``, see ``_python.py``). ``query`` features are
computed at request time by :func:`spindle.features.add_request_features`, the same function
training uses, so they have neither.

Each version's computation has a *fingerprint* (its SQL text, or the hash of its Python file,
plus its dtype); ``_fingerprints.py`` refuses to materialise a version whose fingerprint
changed since it was first computed.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from spindle.core import ConfigError, FeatureError, ModelConfig, load_yaml_model, sha256_json
from spindle.features._python import PythonComputation, parse_python

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
    python: str | None = None
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
    python: PythonComputation | None = None

    @property
    def computation(self) -> Literal["sql", "python", "request"]:
        """How the values are computed: a SQL expression, a Python function, or per request."""
        if self.python is not None:
            return "python"
        return "sql" if self.sql is not None else "request"

    @property
    def fingerprint(self) -> str:
        """The hash of what computes this version: SQL text or Python file bytes, and dtype.

        Equal fingerprints mean equal values for equal inputs; a version whose fingerprint
        changes after it was materialised is refused (see ``_fingerprints.py``).
        """
        if self.python is not None:
            what: dict[str, str] = {
                "python_sha256": self.python.source_sha256,
                "function": self.python.function,
            }
        elif self.sql is not None:
            what = {"sql": self.sql.strip()}
        else:
            what = {"request": "spindle.features.add_request_features"}
        return sha256_json({**what, "dtype": self.dtype})

    @property
    def computation_text(self) -> str:
        """The computation as a person reads it: SQL text, ``file.py:function``, or request."""
        if self.python is not None:
            return f"python {self.python.spec} (sha256 {self.python.source_sha256[:12]})"
        return f"sql {self.sql}" if self.sql is not None else "per request"

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
        """Load every ``*.yaml`` in ``features_dir``; Python computations are checked, not run.

        Raises:
            ConfigError: a file is invalid (every problem of the file at once): a (group, name,
                version) defined twice, a computation missing or given twice, a ``python:``
                file or function that does not exist or does not take one argument.
        """
        definitions: dict[str, FeatureDefinition] = {}
        for path in sorted(Path(features_dir).glob("*.yaml")):
            group, _ = load_yaml_model(path, _GroupYaml)
            errors: list[str] = []
            for item in group.features:
                definition, problem = _definition(group, item, Path(features_dir))
                if problem is not None:
                    errors.append(problem)
                elif definition.ref in definitions:
                    errors.append(f"{definition.ref} is defined twice")
                else:
                    definitions[definition.ref] = definition
            if errors:
                raise ConfigError(str(path), errors)
        return cls(definitions)

    def fingerprint(self) -> str:
        """One hash of every definition's reference and computation fingerprint.

        It changes whenever a version is added or removed, or a computation (SQL text, Python
        file) changes: the identity of the step that computes features.
        """
        return sha256_json(sorted([ref, d.fingerprint] for ref, d in self.definitions.items()))

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
                known = self._known_versions(ref)
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
            known = self._known_versions(ref)
            hint = f"known versions: {', '.join(known)}" if known else "see `spindle features list`"
            raise FeatureError(f"feature {ref} is not defined ({hint})")
        return definition

    def _known_versions(self, ref: str) -> list[str]:
        """The defined references of ``ref``'s feature (any version), for error messages."""
        qualified = ref.partition("@")[0]
        return sorted(r for r in self.definitions if r.partition("@")[0] == qualified)


def _definition(
    group: _GroupYaml, item: _FeatureYaml, features_dir: Path
) -> tuple[FeatureDefinition, str | None]:
    """Build one definition; return it with the problem that makes it invalid, if any."""
    ref = f"{group.group}.{item.name}@{item.version}"
    python, problem = (None, None)
    if group.group == "query":
        if item.sql or item.python:
            problem = f"{ref}: query features are computed per request; remove `sql`/`python`"
    elif bool(item.sql) == bool(item.python):
        problem = f"{ref}: needs exactly one computation, `sql` or `python: file.py:function`"
    elif item.python is not None:
        python, problem = parse_python(item.python, features_dir)
        problem = None if problem is None else f"{ref}: {problem}"
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
            item.allowed_teams if item.allowed_teams is not None else group.allowed_teams
        ),
        python=python,
    )
    return definition, problem
