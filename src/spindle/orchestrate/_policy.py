"""Access policies at the doors a trained version goes through: push, routing, the server.

Every load of a model config (train, evaluate, infra validation, speed-check, a daily run)
checks the policies of the features it pins and its baselines read, and of the sources its
examples read, on the effective config, in :func:`~spindle.orchestrate.load_config`
(``FeatureRegistry.resolve``). A version already trained is judged here by what its manifest
says it reads (its features, its recorded baselines and ``examples.sources``), against the
policies as they are now (an owner may have taken a team off a feature or a source since), and
by the team of its model file: identity is never overridden, and a version's recorded config
only stands in for a model file that is gone.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from spindle.core import (
    ConfigError,
    FeatureError,
    ModelPackage,
    ServingError,
    Workspace,
    WorkspaceError,
    read_package,
)
from spindle.features import FeatureRegistry
from spindle.orchestrate._context import Context
from spindle.serve import Routing, S3Repository, model_repository, read_routing, version_dir


def model_team(workspace: Workspace, model: str, package: ModelPackage | None = None) -> str:
    """The team whose access policies judge ``model``: its file's, else the version's record
    (empty when neither says: a restricted feature then serves no one)."""
    try:
        return workspace.model_config(model)[0].team
    except (ConfigError, WorkspaceError):
        recorded: Any = package.get("config") if package is not None else None
        team = recorded.get("team") if isinstance(recorded, dict) else None
        return team if isinstance(team, str) else ""


def _refusal(workspace: Workspace, registry: FeatureRegistry, directory: Path) -> str | None:
    """``model@V (team T) may not use ...`` when the version in ``directory`` reads (pins, or
    its recorded baselines read) a restricted feature, or was trained on examples of a
    restricted source, its team may not use; else None."""
    package = read_package(directory)
    recorded: Any = package.get("config")
    recorded = recorded if isinstance(recorded, dict) else {}
    examples = recorded.get("examples")
    sources = examples.get("sources") if isinstance(examples, dict) else None
    serving = recorded.get("serving")
    candidates = serving.get("candidates") if isinstance(serving, dict) else None
    view = candidates.get("view") if isinstance(candidates, dict) else None
    reads = [
        *package.features,
        *(
            b["feature"]
            for b in recorded.get("baselines") or []
            if isinstance(b, dict) and b.get("feature")
        ),
        *(registry.features_of_view(view) if isinstance(view, str) else []),
    ]
    team = model_team(workspace, package.model, package)
    who = f"{package.model}@{package.version}"
    return registry.refusal(who, team, reads, [str(s) for s in sources or []])


_ALLOW = (
    "or ask the owner to add the team to `allowed_teams` in the feature's YAML (or the "
    "source's, sources/<name>.yaml)"
)


def _fix(model: str) -> str:
    return (
        f"take it out of routing with `spindle route {model} V=1` (a version without them) or "
        f"`spindle rollback {model}`, {_ALLOW}"
    )


def check_push_access(ctx: Context, model: str, version: int) -> None:
    """Refuse to push ``model@version`` when it reads a restricted feature its team may not use.

    Raises:
        FeatureError: one line naming the version, its team, the features and the fixes (not
            overridable by ``--force``).
        ServingError: the version's manifest is unreadable.
    """
    from spindle.orchestrate._version_store import version_folder

    found = _refusal(ctx.workspace, ctx.features, version_folder(ctx, model, version))
    if found:
        raise FeatureError(f"{found}: not pushed. Train a version without them, {_ALLOW}")


def check_routing_access(ctx: Context, target: Routing) -> None:
    """Refuse a routing that sends traffic to a version which reads a restricted feature its
    team may not use (every routing change goes through ``deploy``, which calls this).

    Raises:
        FeatureError: every refused version on one line, with the fixes.
        ServingError: a routed version's manifest is unreadable.
    """
    repo = model_repository(ctx.workspace.model_repo_location)
    problems = []
    for version, weight in sorted(target.weights.items()):
        directory = _version_folder(repo, target.model, version)
        found = _refusal(ctx.workspace, ctx.features, directory) if weight > 0 else None
        if found:
            problems.append(found)
    if problems:
        raise FeatureError(
            f"{'; '.join(problems)}: not routed. Route the traffic to versions without them, "
            f"{_ALLOW}"
        )


def check_served_policies(
    workspace: Workspace, registry: FeatureRegistry, repo: Path | S3Repository
) -> None:
    """Refuse to serve ``repo`` while it routes a version (with traffic, or as the fallback
    ``previous``) that reads a restricted feature or source its model's team may not use, or
    while a model config of ``workspace`` pins one, has a baseline read one, or reads one in
    ``examples.sources``.

    Args:
        workspace: the workspace whose model files say each model's team.
        registry: its feature registry: the policies as they are now.
        repo: the model repository the server would load.

    Raises:
        FeatureError: every refused version and config on one line, with the fixes.
        ConfigError: a model config is invalid.

    Example:
        >>> check_served_policies(ws, FeatureRegistry.load(ws.features_dir), ws.model_repo)  # doctest: +SKIP
    """
    problems = []
    for name in workspace.model_names():
        config = workspace.model_config(name)[0]
        reads = [*config.features, *(b.feature for b in config.baselines if b.feature)]
        if config.serving.candidates is not None:  # its retrieval reads the whole view
            reads += registry.features_of_view(config.serving.candidates.view)
        found = registry.refusal(f"models/{name}.yaml", config.team, reads, config.examples.sources)
        if found:
            problems.append(
                f"{found}. Remove them from its features, examples.sources or serving.candidates view, {_ALLOW}"
            )
    for model, routing in _routings(repo):
        named = {v for v, w in routing.weights.items() if w > 0}
        named |= {routing.previous} if routing.previous is not None else set()
        for version in sorted(named):
            try:
                found = _refusal(workspace, registry, _version_folder(repo, model, version))
            except ServingError:  # the server does not load it either (and says why)
                continue
            if found:
                problems.append(f"{found}. Either {_fix(model)}")
    if problems:
        raise FeatureError(f"not serving {repo}: {'. '.join(problems)}")


def _routings(repo: Path | S3Repository) -> list[tuple[str, Routing]]:
    """Each model of ``repo`` with a readable routing (the server skips the others)."""
    if isinstance(repo, S3Repository):
        names = repo.models()
    else:
        names = sorted(p.name for p in repo.iterdir() if p.is_dir()) if repo.is_dir() else []
    found = []
    for name in names:
        try:
            found.append((name, read_routing(repo, name)))
        except ServingError:
            continue
    return found


def _version_folder(repo: Path | S3Repository, model: str, version: int) -> Path:
    """A local folder with the version's manifest (on an object store: a copy of it alone)."""
    if isinstance(repo, S3Repository):
        return repo.manifest_dir(model, version)
    return version_dir(repo, model, version)
