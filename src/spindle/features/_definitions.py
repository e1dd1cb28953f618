"""Feature definitions: named, versioned, owned, described; loaded from the workspace's YAML.

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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from spindle.core import (
    SQL_RULES,
    ConfigError,
    FeatureError,
    ModelConfig,
    expression_problem,
    load_yaml_model,
    select_problem,
    sha256_json,
)
from spindle.features._python import PythonComputation, parse_python
from spindle.features._views import (
    KNOWN_AT,
    FeatureYaml,
    GroupYaml,
    view_fingerprint,
    view_from_yaml,
)
from spindle.features._views import EncodingSpec as EncodingSpec
from spindle.features._views import FeatureView as FeatureView

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


@dataclass(frozen=True)
class FeatureRegistry:
    """Every feature definition of a workspace, by reference, with its views and request groups."""

    definitions: dict[str, FeatureDefinition]
    feature_views: dict[str, FeatureView] = field(default_factory=dict)
    request_columns: dict[str, dict[str, str]] = field(default_factory=dict)
    source_policies: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = field(
        default_factory=dict
    )
    """Each restricted source (tagged ``pii``/``sensitive``) by name: its restricted tags
    and allowed teams, as :func:`source_policy` gives them."""

    @classmethod
    def load(
        cls,
        features_dir: str | Path,
        sources: Mapping[str, SourceDeclaration] | None = None,
    ) -> FeatureRegistry:
        """Load every ``*.yaml`` in ``features_dir``; Python computations are checked, not run.

        Args:
            features_dir: the workspace's ``features/`` folder.
            sources: the workspace's declared sources; loaded from ``features_dir``'s parent
                (``sources/*.yaml``) when not given.

        Raises:
            ConfigError: every problem of every file at once, each with file and key: invalid
                YAML (with line; an unknown key lists the allowed keys), a view source that is
                not declared, a (group, name, version) defined twice, a computation missing or
                given twice, a ``python:`` file or function that does not exist or does not
                take one argument.
        """
        folder = Path(features_dir)
        declared = sources if sources is not None else _workspace_sources(folder)
        event_times = {
            name: (d.event_time.column if d.event_time is not None else None)
            for name, d in declared.items()
        }
        # how an event-time view with `at` orders a source's rows known at the same instant
        row_orders = {
            name: tuple(d.primary_key) or tuple(d.columns) for name, d in declared.items()
        }
        columns = {name: set(d.columns) for name, d in declared.items()}
        policies = {name: source_policy(d) for name, d in declared.items()}
        registry = cls({}, source_policies={n: p for n, p in policies.items() if p is not None})
        problems: list[str] = []
        for path in sorted(folder.glob("*.yaml")):
            try:
                group, _ = load_yaml_model(path, GroupYaml)
            except ConfigError as exc:
                problems.extend(f"{path}: {p}" for p in exc.problems)
                continue
            problems.extend(
                f"{path}: {p}"
                for p in registry._add_group(group, path, event_times, folder, row_orders, columns)
            )
        if problems:
            raise ConfigError(str(folder), problems)
        return registry

    def _add_group(
        self,
        group: GroupYaml,
        path: Path,
        event_times: dict[str, str | None],
        folder: Path,
        row_orders: dict[str, tuple[str, ...]],
        columns: dict[str, set[str]],
    ) -> list[str]:
        """Add one parsed file's view or request group and definitions; return its problems."""
        errors: list[str] = []
        unknown = [name for name in group.sources if name not in event_times]
        if unknown:
            errors.append(
                f"{_line_of(path, 'sources')}key 'sources': {', '.join(map(repr, unknown))} "
                f"{'is not a declared source' if len(unknown) == 1 else 'are not declared sources'}"
                f" (declared: {', '.join(sorted(event_times)) or 'none'}); declare each in "
                "sources/<name>.yaml or remove it from `sources`"
            )
        errors.extend(_event_view_problems(group, path, event_times, columns))
        errors.extend(_declared_sql_problems(group, path))
        if group.group in self.feature_views or group.group in self.request_columns:
            errors.append(
                f"{_line_of(path, 'group')}key 'group': group {group.group!r} is declared by "
                "another file too; rename one of them"
            )
        view = view_from_yaml(group, path, event_times, row_orders)
        if view is not None:
            self.feature_views[view.name] = view
        elif group.request is not None:
            self.request_columns[group.group] = dict(group.request.columns)
        for item in group.features:
            definition, problem = _definition(group, view, item, folder, self.source_policies)
            if problem is not None:
                errors.append(problem)
            elif definition.ref in self.definitions:
                errors.append(f"{definition.ref} is defined twice")
            else:
                self.definitions[definition.ref] = definition
        return errors

    def views(self) -> dict[str, FeatureView]:
        """Every declared feature view by name."""
        return dict(self.feature_views)

    def request_groups(self) -> dict[str, dict[str, str]]:
        """Every request group by name, with the request columns (name -> dtype) it declares."""
        return {name: dict(columns) for name, columns in self.request_columns.items()}

    def view(self, name: str) -> FeatureView:
        """The feature view ``name``.

        Raises:
            FeatureError: no such view (lists the declared ones).
        """
        found = self.feature_views.get(name)
        if found is None:
            raise FeatureError(
                f"no feature view {name!r}; declared views: "
                f"{', '.join(sorted(self.feature_views)) or 'none'} (see features/*.yaml)"
            )
        return found

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
                or a feature tagged ``pii``/``sensitive`` (any case, its own tag or a source's
                its view reads) is pinned, or read by a baseline, or a source so tagged is in
                ``examples.sources``, by a team its policy does not allow (names the feature or
                source, its tags, the allowed teams and the fix; see :meth:`check_access`).
        """
        resolved = []
        for ref in config.features:
            definition = self.definitions.get(ref)
            if definition is None:
                known = self._known_versions(ref)
                hint = f"known versions: {', '.join(known)}" if known else "no such feature"
                raise FeatureError(f"model {config.name} pins {ref}, which is not defined ({hint})")
            resolved.append(definition)
        baselines = [b.feature for b in config.baselines if b.feature is not None]
        self.check_access(
            f"model {config.name}",
            config.team,
            [*config.features, *baselines],
            config.examples.sources,
        )
        candidates = config.serving.candidates
        if candidates is not None:
            self.check_access(
                f"model {config.name}",
                config.team,
                self.features_of_view(candidates.view),
                via=f"serving.candidates (its retrieval reads view {candidates.view})",
            )
        return resolved

    def features_of_view(self, view: str) -> list[str]:
        """Every feature of ``view`` (its online rows hold them all: a candidate retrieval
        over the view reads them, so the access policies judge them as read)."""
        return sorted(d.ref for d in self.definitions.values() if d.group == view)

    def refused(self, team: str, refs: Iterable[str]) -> list[str]:
        """The restricted features among ``refs`` that ``team`` may not use, one line each.

        A feature tagged ``pii`` or ``sensitive`` (in any case), by itself or through a
        restricted source its view reads, may be used only by the teams in its
        ``allowed_teams`` (intersected with the sources'); a reference that is not defined is
        not judged here.

        Example:
            >>> registry.refused("search", ["user.spend_usd_28d@1"])  # doctest: +SKIP
            ['user.spend_usd_28d@1 (tags sensitive; allowed teams: growth)']
        """
        return [_refused_line(d) for d in self._refused_definitions(team, refs)]

    def refused_sources(self, team: str, sources: Iterable[str]) -> list[str]:
        """The restricted sources among ``sources`` (a model's ``examples.sources``) that
        ``team`` may not read, one line each (``source users (tags pii; allowed teams:
        growth)``); a source that is not declared is not judged here."""
        lines = []
        for name in dict.fromkeys(sources):
            policy = self.source_policies.get(name)
            if policy is not None and team not in policy[1]:
                tags, teams = policy
                lines.append(
                    f"source {name} (tags {', '.join(tags)}; allowed teams: "
                    f"{', '.join(teams) or 'none'})"
                )
        return lines

    def refusal(
        self, who: str, team: str, refs: Iterable[str], sources: Iterable[str] = ()
    ) -> str | None:
        """``<who> (team T) may not use restricted feature(s): ...`` naming what ``team`` may
        not use among the features ``refs`` and the ``sources`` its examples read; None when
        it may use them all."""
        features, data = self.refused(team, refs), self.refused_sources(team, sources)
        if not features and not data:
            return None
        kinds = " and ".join(k for k, v in (("feature(s)", features), ("source(s)", data)) if v)
        return f"{who} (team {team or 'none'}) may not use restricted {kinds}: " + "; ".join(
            [*features, *data]
        )

    def check_access(
        self,
        who: str,
        team: str,
        refs: Iterable[str],
        sources: Iterable[str] = (),
        *,
        via: str = "features",
    ) -> None:
        """Refuse ``who`` (``model X``, ``X@3``) of ``team`` the restricted features among
        ``refs``, and the restricted sources among ``sources`` (its ``examples.sources``), its
        team may not use; ``via`` names where the model reads ``refs`` (its ``features``, or
        the ``serving.candidates`` that reads a whole view), for the fix.

        Raises:
            FeatureError: one line naming each refused feature and source, its tags and
                allowed teams, and the fixes (naming each YAML file that would allow the team).
        """
        sources = list(sources)
        found = self.refusal(who, team, refs, sources)
        if found is None:
            return
        refused = self._refused_definitions(team, refs)
        inherited = [s for d in refused for s in d.restricted_sources]
        examples = [
            s
            for s in sources
            if s in self.source_policies and team not in self.source_policies[s][1]
        ]
        files = ["the feature's YAML"] if refused else []
        files += [f"sources/{s}.yaml" for s in dict.fromkeys([*inherited, *examples])]
        where = " and ".join(k for k, v in ((via, refused), ("examples.sources", examples)) if v)
        raise FeatureError(
            f"{found}. Remove them from the model's {where}, or ask their owners to add team "
            f"{team!r} to `allowed_teams` in {', '.join(files)}."
        )

    def _refused_definitions(self, team: str, refs: Iterable[str]) -> list[FeatureDefinition]:
        found = (self.definitions.get(ref) for ref in dict.fromkeys(refs))
        return [d for d in found if d is not None and d.restricted and team not in d.allowed_teams]

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


def _refused_line(d: FeatureDefinition) -> str:
    """``ref (tags ...; allowed teams: ...[; from source ...])`` of a refused feature."""
    via = f"; from source {', '.join(d.restricted_sources)}" if d.restricted_sources else ""
    teams = ", ".join(d.allowed_teams) or "none"
    return f"{d.ref} (tags {', '.join(d.tags)}; allowed teams: {teams}{via})"


def _line_of(path: Path, key: str) -> str:
    """``line N, `` of a top-level ``key:`` in ``path`` (empty when not found)."""
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if line.startswith(f"{key}:"):
            return f"line {number}, "
    return ""


def _event_view_problems(
    group: GroupYaml,
    path: Path,
    event_times: dict[str, str | None],
    columns: dict[str, set[str]],
) -> list[str]:
    """An event-time view (``view.from``) must read a declared source with an event time; with
    ``at``, the source may not declare a column named ``known_at`` (the view adds it)."""
    source = None if group.view is None else group.view.from_
    if source is None:
        return []
    where = f"{_line_of(path, 'view')}key 'view.from'"
    if source not in event_times:
        return [
            f"{where}: {source!r} is not a declared source (declared: "
            f"{', '.join(sorted(event_times)) or 'none'})"
        ]
    if event_times[source] is None:
        return [
            f"{where}: source {source!r} declares no event_time, so its rows have no time to "
            "be joined at; declare `event_time` in its YAML, or write `view.sql` instead"
        ]
    assert group.view is not None
    if group.view.at is not None and KNOWN_AT in columns.get(source, set()):
        return [
            f"{_line_of(path, 'view')}key 'view.at': source {source!r} declares a column "
            f"{KNOWN_AT!r}, the name the view gives the time each row became known; rename "
            "the source's column"
        ]
    return []


def _declared_sql_problems(group: GroupYaml, path: Path) -> list[str]:
    """The view's SQL that is more than one SELECT over its ``sources``, and a ``view.at`` or
    feature ``sql`` that is more than one expression (see ``spindle.core._declared_sql``):
    found by parsing, before anything runs."""
    view, problems = group.view, []
    if view is None:
        return []
    at = _line_of(path, "view")
    if view.sql is not None:
        found = select_problem(view.sql, group.sources)
        if found is not None:
            problems.append(f"{at}key 'view.sql': the view's SQL {found}; {SQL_RULES['view']}")
    if view.at is not None:
        found = expression_problem(view.at, [*group.sources, view.from_ or ""])
        if found is not None:
            problems.append(f"{at}key 'view.at': {found}; {SQL_RULES['view_at']}")
    for i, item in enumerate(group.features):
        found = None if item.sql is None else expression_problem(item.sql, ["base"])
        if found is not None:
            problems.append(
                f"{_line_of(path, 'features')}key 'features.{i}.sql' "
                f"({group.group}.{item.name}@{item.version}): {found}; {SQL_RULES['feature']}"
            )
    return problems


def _workspace_sources(features_dir: Path) -> dict[str, SourceDeclaration]:
    """The sources declared beside ``features_dir`` (``<workspace>/sources/*.yaml``)."""
    from spindle.core import load_sources

    return load_sources(features_dir.parent)


def _policy(
    group: GroupYaml,
    view: FeatureView | None,
    item: FeatureYaml,
    source_policies: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]],
) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """One feature's tags, allowed teams and the restricted sources its view reads.

    Its own tags and ``allowed_teams`` (else its group's); a view's feature also carries the
    restricted tags of every restricted source the view reads, and its allowed teams are
    those the sources allow, kept only where the feature allows them too (when it declares
    teams, or is restricted itself: then it allows only those it names).
    """
    declared = item.allowed_teams if item.allowed_teams is not None else group.allowed_teams
    tags = normalised_tags(item.tags)
    read = tuple(s for s in (view.sources if view is not None else ()) if s in source_policies)
    if not read:
        return tags, tuple(declared), ()
    own = item.allowed_teams is not None or bool(declared) or bool(RESTRICTED_TAGS & set(tags))
    teams = list(declared) if own else None
    for name in read:
        source_tags, allowed = source_policies[name]
        tags = normalised_tags([*tags, *source_tags])
        teams = list(allowed) if teams is None else [t for t in teams if t in allowed]
    return tags, tuple(teams or ()), read


def _definition(
    group: GroupYaml,
    view: FeatureView | None,
    item: FeatureYaml,
    features_dir: Path,
    source_policies: Mapping[str, tuple[tuple[str, ...], tuple[str, ...]]],
) -> tuple[FeatureDefinition, str | None]:
    """Build one definition; return it with the problem that makes it invalid, if any."""
    ref = f"{group.group}.{item.name}@{item.version}"
    python, problem = (None, None)
    if view is None and item.sql is not None:
        problem = f"{ref}: a request feature is a Python function; replace `sql` by `python`"
    elif bool(item.sql) == bool(item.python):
        problem = f"{ref}: needs exactly one computation, `sql` or `python: file.py:function`"
    if problem is None and item.python is not None:
        python, problem = parse_python(item.python, features_dir)
        problem = None if problem is None else f"{ref}: {problem}"
    tags, allowed_teams, restricted_sources = _policy(group, view, item, source_policies)
    definition = FeatureDefinition(
        group=group.group,
        name=item.name,
        version=item.version,
        owner=item.owner or group.owner,
        description=item.description,
        dtype=item.dtype,
        tags=tags,
        sql=item.sql,
        encoding=item.encoding,
        sources=tuple(group.sources),
        allowed_teams=allowed_teams,
        python=python,
        entity=view.entity if view is not None else "",
        entity_keys=view.keys if view is not None else (),
        ttl_s=view.ttl_s if view is not None else None,
        keep=view.keep if view is not None else (),
        view_sql=view.sql if view is not None else None,
        view_run=view.run if view is not None else (),
        request=view is None,
        restricted_sources=restricted_sources,
    )
    return definition, problem
