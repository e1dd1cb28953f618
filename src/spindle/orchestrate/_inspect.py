"""Read-only views for users: lineage of a model version, status of models."""

from __future__ import annotations

from typing import Any

from spindle.core import NotFound
from spindle.orchestrate._context import Context, ReadContext, production_version
from spindle.registry import ArtifactRecord, LineageGraph, LineageNode
from spindle.serve import model_repository, repository_id

_CHAIN = (
    "raw_partition",
    "table_version",
    "training_set",
    "base_version",
    "model_version",
    "holdout",
    "evaluation",
    "deployment",
)


def _entry(node: LineageNode | ArtifactRecord, depth: int | None = None) -> dict[str, Any]:
    return {
        "id": node.id,
        "uri": node.uri,
        "depth": getattr(node, "depth", depth),
        "run_id": node.run_id,
        "properties": dict(node.properties),
    }


def _window_partitions(ctx: Context | ReadContext, trainset_id: str, dates: list[str]) -> list[str]:
    """Raw partitions recorded as the window of a training set (``window:`` edges); for a set
    built before those edges were recorded, the newest partitions of its days."""
    graph = ctx.store.lineage(trainset_id, direction="upstream", max_depth=1)
    ids = sorted(
        e.parent_id
        for e in graph.edges
        if e.child_id == trainset_id and e.relation.startswith("window:")
    )
    if ids:
        return ids
    chosen: dict[tuple[str, str], str] = {}
    for day in dates:
        for record in ctx.store.find_artifacts("raw_partition", date=day):
            chosen[(str(record.properties.get("source")), day)] = record.id
    return [chosen[key] for key in sorted(chosen)]


def _training_set_of(ctx: Context | ReadContext, graph: LineageGraph) -> ArtifactRecord | None:
    parents = [
        e.parent_id
        for e in graph.edges
        if e.child_id == graph.root.id and e.relation == "produced_by:train"
    ]
    for parent in parents:
        record = ctx.store.get_artifact(parent)
        if record.kind == "training_set":
            return record
    return None


def _set_summary(ctx: Context | ReadContext, record: ArtifactRecord) -> dict[str, Any]:
    dates = [str(d) for d in record.properties.get("dates", [])]
    return {
        "id": record.id,
        "dates": dates,
        "rows": record.properties.get("rows"),
        "table_versions": dict(record.properties.get("table_versions", {})),
        "raw_partitions": _window_partitions(ctx, record.id, dates),
    }


def lineage_report(ctx: Context | ReadContext, model: str, version: int) -> dict[str, Any]:
    """What ``model@version`` was made from and what became of it.

    The chain: the raw partitions of its training window (source and day) → the Delta table
    versions the training set pinned → the training set → the base version it warm-started
    from → the version → the holdout (day and table versions) of each evaluation → the
    evaluations → its deployments (the registry's recorded routing changes that route it).
    ``training_window``, ``holdouts`` and ``deployments`` give the same facts as fields.

    Raises:
        NotFound: ``model@version`` is not a recorded model version.
    """
    root_id = f"model:{model}@{version}"
    try:
        graph = ctx.store.lineage(root_id, max_depth=1)
    except NotFound as exc:
        known = (
            [v.version for v in ctx.store.versions(model)] if model in ctx.store.models() else []
        )
        raise NotFound(
            f"{model}@{version} is not a recorded model version (versions: {known or 'none'})"
        ) from exc
    record = ctx.store.get_version(model, version)
    chain: dict[str, list[dict[str, Any]]] = {kind: [] for kind in _CHAIN}
    chain["model_version"].append(_entry(graph.root))
    trainset = _training_set_of(ctx, graph)
    window: dict[str, Any] | None = None
    if trainset is not None:
        window = _set_summary(ctx, trainset)
        chain["training_set"].append(_entry(trainset, 1))
        chain["raw_partition"] = [
            _entry(ctx.store.get_artifact(i), 3) for i in window["raw_partitions"]
        ]
        chain["table_version"] = [
            {"id": f"table:{name}@{v}", "properties": {"table": name, "version": v}, "depth": 2}
            for name, v in sorted(window["table_versions"].items())
        ]
    if record.base_version is not None:
        base = ctx.store.get_artifact(f"model:{model}@{record.base_version}")
        chain["base_version"].append(_entry(base, 1))
    holdouts = []
    for node in graph.downstream:
        if node.kind == "evaluation":
            chain["evaluation"].append(_entry(node))
            holdout = _holdout_of(ctx, node)
            if holdout is not None:
                chain["holdout"].append(_entry(holdout, 2))
                holdouts.append(
                    {"evaluation": node.id, "date": node.properties.get("holdout_date")}
                    | _set_summary(ctx, holdout)
                )
        elif node.kind == "deployment":
            chain["deployment"].append(_entry(node))
    deployments = [
        {
            "seq": d.seq,
            "status": d.status,
            "weights": {str(v): w for v, w in sorted(d.weights.items())},
            "production": d.main,
            "actor": d.actor,
            "reason": d.reason,
            "detail": d.detail,
            "at": d.created_at.isoformat(),
        }
        for d in ctx.store.deployments(model)
        if version in d.weights
    ]
    runs: dict[str, dict[str, Any]] = {}
    if graph.root.run_id:
        run = ctx.store.get_run(graph.root.run_id)
        runs["training_run"] = {
            "id": run.id,
            "step": run.step,
            "status": run.status,
            "config_hash": run.config_hash,
            "started_at": str(run.started_at),
            "resources": run.resources,
            "params": run.params,
        }
    return {
        "model": model,
        "version": version,
        "date": record.date,
        "base_version": record.base_version,
        "training_window": window,
        "holdouts": holdouts,
        "deployments": deployments,
        "chain": [{"kind": kind, "artifacts": chain[kind]} for kind in _CHAIN],
        **runs,
        "edges": [
            {"parent": e.parent_id, "child": e.child_id, "relation": e.relation}
            for e in graph.edges
        ],
    }


def _holdout_of(ctx: Context | ReadContext, evaluation: LineageNode) -> ArtifactRecord | None:
    """The holdout training set an evaluation scored (an input of its run)."""
    if evaluation.run_id is None:
        return None
    for input_id in ctx.store.get_run(evaluation.run_id).inputs:
        candidate = ctx.store.get_artifact(input_id)
        if candidate.kind == "training_set":
            return candidate
    return None


def status_report(ctx: Context | ReadContext, model: str | None = None) -> list[dict[str, Any]]:
    """Per model: production version and its date, aliases, and the last runs with their resources."""
    names = [model] if model else ctx.workspace.model_names()
    rows = []
    for name in names:
        versions = ctx.store.versions(name) if name in ctx.store.models() else []
        aliases = ctx.store.aliases(name) if versions else {}
        production = aliases.get("production")
        prod_record = next((v for v in versions if v.version == production), None)
        last_train = ctx.store.runs(model=name, step="train", limit=1)
        rows.append(
            {
                "model": name,
                "production": production,
                "production_date": prod_record.date if prod_record else None,
                "aliases": aliases,
                "versions": len(versions),
                "last_train": None
                if not last_train
                else {
                    "status": last_train[0].status,
                    "date": last_train[0].date,
                    "resources": last_train[0].resources,
                },
            }
        )
    return rows


def serving_check(
    ctx: Context | ReadContext, url: str | None = None, timeout_s: float = 2.0
) -> dict[str, Any]:
    """Compare what the registry calls production with what a running server reports loading.

    Asks ``GET {url}/v1/versions`` (default: the workspace's serving host and port) and first
    checks that the server serves *this* workspace's model repository: it must report the
    repository's id (``<repo>/repository_id``). Whatever else answers on the port (another
    workspace's server, an older server without ids) is not compared, and ``note`` says why.

    Returns:
        ``{"url", "reachable", "repository": "same"|"other"|"unknown"|None, "note",
        "models": {model: {"registry", "serving", "sha256", "match", "message"}}}``;
        ``models`` is empty unless the repository is the same.
    """
    import httpx

    cfg = ctx.workspace.config.serving
    base = url or f"http://{cfg.host}:{cfg.port}"
    out: dict[str, Any] = {
        "url": base,
        "reachable": False,
        "repository": None,
        "note": None,
        "models": {},
    }
    try:
        answer = httpx.get(f"{base}/v1/versions", timeout=timeout_s)
        body = answer.json()
    except (httpx.HTTPError, ValueError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    out["reachable"] = True
    repo = model_repository(ctx.workspace.model_repo_location)
    ours = repository_id(repo)
    theirs = body.get("repository_id") if isinstance(body, dict) else None
    if answer.status_code != 200 or not isinstance(theirs, str) or not theirs:
        out["repository"] = "unknown"
        out["note"] = (
            f"cannot tell whether the server at {base} serves this workspace's repository {repo}: "
            f"it reports no repository id (HTTP {answer.status_code}); registry and serving not "
            "compared"
        )
        return out
    if theirs != ours:
        out["repository"] = "other"
        out["note"] = (
            f"a server at {base} serves another repository (id {theirs}), not this workspace's "
            f"{repo} (id {ours or 'none yet'}); registry and serving not compared. Point "
            "--serving-url at this workspace's server"
        )
        return out
    out["repository"] = "same"
    rows = body.get("versions", [])
    by_model: dict[str, list[dict[str, Any]]] = {}
    for row in rows if isinstance(rows, list) else []:
        by_model.setdefault(str(row.get("model")), []).append(row)
    for model in ctx.workspace.model_names():
        out["models"][model] = _compare_model(ctx, model, by_model.get(model, []))
    return out


def _compare_model(
    ctx: Context | ReadContext, model: str, rows: list[dict[str, Any]]
) -> dict[str, Any]:
    registry = production_version(ctx, model)
    loaded = [r for r in rows if r.get("status") == "loaded"]
    main = max(
        loaded,
        key=lambda r: (float(r.get("weight") or 0), int(r.get("version") or 0)),
        default=None,
    )
    serving = None if main is None else int(main["version"])
    match = registry == serving
    message = (
        "ok" if match else f"registry says production is {registry}, serving answers with {serving}"
    )
    return {
        "registry": registry,
        "serving": serving,
        "sha256": None if main is None else main.get("sha256"),
        "match": match,
        "message": message,
    }
