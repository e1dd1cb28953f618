"""Read-only views for users: lineage of a model version, status of models."""

from __future__ import annotations

from typing import Any

from spindle.core import NotFound
from spindle.orchestrate._context import Context, production_version

_CHAIN = (
    "raw_partition",
    "ingest",
    "table_version",
    "training_set",
    "model_version",
    "evaluation",
    "deployment",
)


def lineage_report(ctx: Context, model: str, version: int) -> dict[str, Any]:
    """The chain raw partitions → tables → training set → training run → model version → evaluation → deployment."""
    root_id = f"model:{model}@{version}"
    try:
        graph = ctx.store.lineage(root_id)
    except NotFound as exc:
        known = (
            [v.version for v in ctx.store.versions(model)] if model in ctx.store.models() else []
        )
        raise NotFound(
            f"{model}@{version} is not a recorded model version (versions: {known or 'none'})"
        ) from exc
    nodes = [graph.root, *graph.upstream, *graph.downstream]
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for node in nodes:
        by_kind.setdefault(node.kind, []).append(
            {
                "id": node.id,
                "uri": node.uri,
                "depth": node.depth,
                "run_id": node.run_id,
                "properties": node.properties,
            }
        )
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
    chain: list[dict[str, Any]] = []
    for kind in _CHAIN:
        artifacts = sorted(by_kind.get(kind, []), key=lambda n: str(n["id"]))
        chain.append({"kind": kind, "artifacts": artifacts})
    return {
        "model": model,
        "version": version,
        "chain": chain,
        **runs,
        "edges": [
            {"parent": e.parent_id, "child": e.child_id, "relation": e.relation}
            for e in graph.edges
        ],
    }


def status_report(ctx: Context, model: str | None = None) -> list[dict[str, Any]]:
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


def serving_check(ctx: Context, url: str | None = None, timeout_s: float = 2.0) -> dict[str, Any]:
    """Compare what the registry calls production with what a running server reports loading.

    Asks ``GET {url}/v1/versions`` (default: the workspace's serving host and port). Returns
    ``{"url", "reachable", "models": {model: {"registry", "serving", "sha256", "match", "message"}}}``.
    """
    import httpx

    cfg = ctx.workspace.config.serving
    base = url or f"http://{cfg.host}:{cfg.port}"
    out: dict[str, Any] = {"url": base, "reachable": False, "models": {}}
    try:
        loaded = httpx.get(f"{base}/v1/versions", timeout=timeout_s).json()
    except (httpx.HTTPError, ValueError) as exc:
        out["error"] = f"{type(exc).__name__}: {exc}"
        return out
    out["reachable"] = True
    by_model: dict[str, list[dict[str, Any]]] = {}
    for row in loaded if isinstance(loaded, list) else []:
        by_model.setdefault(str(row.get("model")), []).append(row)
    for model in ctx.workspace.model_names():
        registry = production_version(ctx, model)
        rows = [r for r in by_model.get(model, []) if r.get("status") == "loaded"]
        main = max(
            rows,
            key=lambda r: (float(r.get("weight") or 0), int(r.get("version") or 0)),
            default=None,
        )
        serving = None if main is None else int(main["version"])
        match = registry == serving
        message = (
            "ok"
            if match
            else f"registry says production is {registry}, serving answers with {serving}"
        )
        out["models"][model] = {
            "registry": registry,
            "serving": serving,
            "sha256": None if main is None else main.get("sha256"),
            "match": match,
            "message": message,
        }
    return out
