"""Feature definitions: one version of one feature, with its tags and access policy.

A feature belongs to a *group*, one file ``features/<group>.yaml`` (see ``_views.py``). In a
**feature view** each feature is a DuckDB SQL expression (``sql``) or a typed Python function
(``python: file.py:function``, see ``_python.py``) over the view's rows, one row per entity and
day; the view names its entity, join keys, sources and TTL. In a **request group** each feature
is a Python function over request rows (the request's columns plus the joined views' features
and kept columns), computed by one implementation for training and serving (``_request.py``).

Each version's computation has a *fingerprint* (the view's SQL, keys and kept columns, the
expression text or the hash of the Python file, and the dtype: a changed view SQL changes every
feature of the view); ``_fingerprints.py`` refuses to materialise a version whose fingerprint
changed since it was first computed.

The workspace's definitions are loaded into a ``FeatureRegistry`` (``_registry.py``) from its
feature files (``_feature_files.py``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from spindle.core import sha256_json
from spindle.features._python import PythonComputation
from spindle.features._views import EncodingSpec as EncodingSpec
from spindle.features._views import FeatureView as FeatureView
from spindle.features._views import view_fingerprint

if TYPE_CHECKING:
    from spindle.core import SourceDeclaration

RESTRICTED_TAGS = frozenset({"pii", "sensitive"})
"""Tags that make a feature usable only by the teams its policy allows (tags are lower case:
``PII`` in a YAML file is ``pii``)."""


def source_policy(decl: SourceDeclaration) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """A source's access policy: its restricted tags (``pii``, ``sensitive``, in any case) and
    the teams allowed to use its rows, or None when it has no restricted tag (``allowed_teams``
    alone then restricts nothing, as for a feature). A restricted source without
    ``allowed_teams`` can be used by no team.

    Example:
        >>> source_policy(load_sources(".")["users"])  # doctest: +SKIP
        (('pii',), ('growth',))
    """
    tags = tuple(t for t in normalised_tags(decl.tags) if t in RESTRICTED_TAGS)
    return (tags, tuple(decl.allowed_teams or ())) if tags else None


def normalised_tags(tags: Iterable[str]) -> tuple[str, ...]:
    """Tags as compared everywhere: stripped, lower case (case-folded), each once, in order.

    Example:
        >>> normalised_tags(["PII", " Geo", "pii"])
        ('pii', 'geo')
    """
    return tuple(dict.fromkeys(t.strip().casefold() for t in tags if t.strip()))


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
    """The teams whose models may use it when it is restricted: its own (or its group's),
    intersected with those of every restricted source its view reads."""
    python: PythonComputation | None = None
    entity: str = ""
    """The view's entity name (empty for request features)."""
    entity_keys: tuple[str, ...] = ()
    """The view's join keys: columns of its rows and of each model's examples (empty: request)."""
    ttl_s: int | None = None
    """A feature row older than this at an example's event time is not used (None: no limit)."""
    keep: tuple[str, ...] = ()
    """View columns stored next to the features."""
    view_sql: str | None = None
    """The SQL of the feature's view (None for request features)."""
    view_run: tuple[tuple[str, int], ...] = ()
    """How the view's SQL runs, where declared (``FeatureView.run``: every, lookback)."""
    request: bool = False
    """True for a request feature: a Python function over request rows."""
    restricted_sources: tuple[str, ...] = ()
    """The sources tagged ``pii``/``sensitive`` its view reads: their tags are among its own,
    and their ``allowed_teams`` bound its own (:func:`source_policy`)."""

    def __post_init__(self) -> None:
        # normalised here, once, so that no policy check, filter or listing compares case
        object.__setattr__(self, "tags", normalised_tags(self.tags))

    @property
    def computation(self) -> Literal["sql", "python", "request"]:
        """How the values are computed: a SQL expression or Python function of a view, or per request."""
        if self.request:
            return "request"
        if self.python is not None:
            return "python"
        return "sql" if self.sql is not None else "request"

    @property
    def fingerprint(self) -> str:
        """The hash of what computes this version: view, SQL text or Python file bytes, and dtype.

        Equal fingerprints mean equal values for equal inputs; a version whose fingerprint
        changes after it was materialised is refused (see ``_fingerprints.py``).
        """
        what: dict[str, object] = {}
        if self.view_sql is not None:
            what["view"] = view_fingerprint(
                self.view_sql, self.entity_keys, self.keep, self.view_run
            )
        if self.python is not None:
            what["python_sha256"] = self.python.source_sha256
            what["function"] = self.python.function
        elif self.sql is not None:
            what["sql"] = self.sql.strip()
        if self.request or (self.python is None and self.sql is None):
            what["request"] = True
        return sha256_json({**what, "dtype": self.dtype})

    @property
    def computation_text(self) -> str:
        """The computation as a person reads it: SQL text, ``file.py:function``, or request."""
        prefix = "per request: " if self.request else ""
        if self.python is not None:
            text = f"{prefix}python {self.python.spec} (sha256 {self.python.source_sha256[:12]})"
        else:
            text = f"sql {self.sql}" if self.sql is not None else "per request"
        if self.view_sql is not None:
            view = view_fingerprint(self.view_sql, self.entity_keys, self.keep, self.view_run)
            text += f" over view {self.group} (view sha256 {view[:12]})"
        return text

    @property
    def restricted(self) -> bool:
        """True when a tag (``pii``, ``sensitive``) limits the feature to its policy's teams."""
        return bool(RESTRICTED_TAGS.intersection(self.tags))

    @property
    def ref(self) -> str:
        """The pinned reference models use, e.g. ``account.minutes_28d@1``."""
        return f"{self.group}.{self.name}@{self.version}"

    @property
    def column(self) -> str:
        """The column holding this feature in feature tables and training sets."""
        return f"{self.group}__{self.name}__v{self.version}"
