"""Feature files read into definitions: one parsed ``features/<group>.yaml`` checked for its
problems before anything runs, and each of its features built into a definition with its access
policy.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from spindle.core import SQL_RULES, expression_problem, select_problem
from spindle.features._definitions import RESTRICTED_TAGS, FeatureDefinition, normalised_tags
from spindle.features._python import parse_python
from spindle.features._views import KNOWN_AT, FeatureView, FeatureYaml, GroupYaml

if TYPE_CHECKING:
    from spindle.core import SourceDeclaration


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
