"""The feature registry: a workspace's feature definitions loaded from its YAML, looked up
by reference, and the access checks that refuse a team restricted features and sources.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from spindle.core import ConfigError, FeatureError, ModelConfig, load_yaml_model, sha256_json
from spindle.features._definitions import FeatureDefinition, source_policy
from spindle.features._feature_files import (
    _declared_sql_problems,
    _definition,
    _event_view_problems,
    _line_of,
    _workspace_sources,
)
from spindle.features._views import FeatureView, GroupYaml, view_from_yaml

if TYPE_CHECKING:
    from spindle.core import SourceDeclaration


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
