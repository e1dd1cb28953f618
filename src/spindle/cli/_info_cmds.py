"""``spindle status``, ``spindle lineage`` and ``spindle serve``."""

from __future__ import annotations

import ipaddress
from pathlib import Path

import typer

import spindle
from spindle.cli._app import JsonOption, WorkspaceOption, app, handles_errors
from spindle.cli._output import console, emit_json, err_console, fmt, table


@app.command()
@handles_errors
def status(
    model: str | None = typer.Argument(None, help="Only this model (default: every model)."),
    now: str | None = typer.Option(None, help="Evaluate freshness at this time (ISO)."),
    serving_url: str | None = typer.Option(
        None,
        help="Server to compare with the registry (default: spindle.yaml's serving host:port).",
    ),
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """Per model: serving version, freshness SLO with recovery time, alerts, efficiency of the last run."""
    import datetime as dt

    with spindle.Context.open_reader(workspace) as ctx:
        rows = spindle.status_report(ctx, model)
        fresh = {
            f["model"]: f
            for f in spindle.freshness_report(ctx, dt.datetime.fromisoformat(now) if now else None)
        }
        serving = spindle.serving_check(ctx, serving_url)
    merged = [
        r | {"freshness": fresh.get(r["model"]), "serving": serving["models"].get(r["model"])}
        for r in rows
    ]
    if as_json:
        emit_json(merged)
        return
    out = []
    for r in merged:
        f = r["freshness"] or {}
        eff = f.get("efficiency") or {}
        out.append(
            [
                r["model"],
                fmt(r["production"]),
                r["production_date"],
                fmt(f.get("age_h"), 1),
                fmt(f.get("recovery_h"), 1),
                fmt(f.get("tolerance_h"), 0),
                f.get("state"),
                fmt(eff.get("examples_per_s"), 0),
                fmt(eff.get("m_examples_per_cpu_s"), 3),
                fmt(eff.get("utilisation"), 2),
                fmt(eff.get("peak_rss_mb"), 0),
            ]
        )
    table(
        "models",
        [
            "model",
            "serving",
            "trained for",
            "age h",
            "recovery h",
            "tolerance h",
            "SLO",
            "ex/s",
            "Mex/CPU-s",
            "util",
            "peak MB",
        ],
        out,
    )
    for r in merged:
        for alert in (r["freshness"] or {}).get("alerts", []):
            console.print(f"[yellow]{r['model']}: {alert}[/]")
        if r["serving"] and not r["serving"]["match"]:
            console.print(f"[red]{r['model']}: serving mismatch: {r['serving']['message']}[/]")
    if not serving["reachable"]:
        console.print(
            f"serving at {serving['url']} not reachable: registry and serving not compared"
        )
    elif serving.get("note"):
        console.print(serving["note"], markup=False, highlight=False)


@app.command()
@handles_errors
def lineage(
    target: str = typer.Argument(
        ..., metavar="MODEL@VERSION", help="The model version, e.g. search_ranker@3."
    ),
    workspace: str = WorkspaceOption,
    as_json: bool = JsonOption,
) -> None:
    """The chain raw partitions → tables → training set → run → model version → evaluation → deployment."""
    model, sep, version = target.partition("@")
    if not sep or not version.isdigit():
        raise typer.BadParameter(f"expected MODEL@VERSION, e.g. search_ranker@3; got {target!r}")
    with spindle.Context.open_reader(workspace) as ctx:
        report = spindle.lineage_report(ctx, model, int(version))
    if as_json:
        emit_json(report)
        return
    for link in report["chain"]:
        items = link["artifacts"]
        shown = ", ".join(a["id"] for a in items[:6]) + (
            f", … (+{len(items) - 6})" if len(items) > 6 else ""
        )
        console.print(f"[bold]{link['kind']}[/] ({len(items)}): {shown or '-'}")
        if link["kind"] == "training_set" and "training_run" in report:
            run = report["training_run"]
            console.print(
                f"[bold]training run[/]: {run['id']} {run['status']} config {str(run['config_hash'])[:12]} "
                f"wall {fmt(run['resources'].get('wall_s'), 1)} s"
            )
    window = report.get("training_window")
    if window:
        days = window["dates"]
        span = f"{days[0]}..{days[-1]}" if days else "-"
        console.print(
            f"[bold]trained on[/] {span} ({len(days)} days, {len(window['raw_partitions'])} raw "
            f"partitions, {window['rows']} rows); base version {fmt(report['base_version'])}"
        )
    for holdout in report.get("holdouts", []):
        console.print(f"[bold]evaluated on[/] {holdout['date']} (holdout {holdout['id']})")
    for d in report.get("deployments", []):
        weights = " ".join(f"v{v}={w:g}" for v, w in d["weights"].items())
        console.print(
            f"deployment #{d['seq']} {d['status']} {d['at'][:19]}: {weights} "
            f"by {d['actor']} ({d['reason']})",
            markup=False,
        )


def read_token(path: Path, option: str) -> str:
    """The bearer token in ``path`` (its only line, surrounding whitespace left out).

    Raises:
        ConfigError: the file cannot be read or holds no token.
    """
    try:
        token = path.read_text(encoding="utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        fix = f"python -c 'import secrets; print(secrets.token_hex(32))' > {path}"
        raise spindle.ConfigError(
            f"{option} {path}",
            [f"cannot read the token ({reason}); write one there, e.g. `{fix}`"],
        ) from None
    if not token or any(c.isspace() for c in token):
        found = "nothing" if not token else "whitespace inside it"
        raise spindle.ConfigError(
            f"{option} {path}", [f"expected one token on one line, found {found}"]
        )
    return token


def _loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a name: it may resolve to any interface
        return False


@app.command()
@handles_errors
def serve(
    port: int | None = typer.Option(None, help="Port (default from spindle.yaml)."),
    host: str | None = typer.Option(None, help="Interface (default 127.0.0.1)."),
    repo: str | None = typer.Option(None, help="Model repository (default from spindle.yaml)."),
    token_file: Path | None = typer.Option(
        None,
        "--token-file",
        help="File holding the bearer token every endpoint but /v2/health/* then needs "
        "(default: serving.token_file in spindle.yaml; neither: no token).",
    ),
    workspace: str = WorkspaceOption,
) -> None:
    """Serve models: /v1/models/{model}/predict for any model, the example's /v1/rank, KServe V2
    endpoints, /metrics."""
    ws = spindle.Workspace.load(workspace)
    cfg = ws.config.serving
    from spindle.core import Location
    from spindle.features import FeatureRegistry
    from spindle.orchestrate import check_served_policies
    from spindle.serve import ServingDeclarations, ServingLimits, model_repository

    token = None
    if token_file is not None:
        token = read_token(token_file, "--token-file")
    elif cfg.token_file is not None:
        token = read_token(ws.root / cfg.token_file, "serving.token_file")
    interface = host or cfg.host
    if token is None and not _loopback(interface):
        err_console.print(
            f"[bold yellow]warning:[/] serving on {interface} without a token: anyone who can "
            "reach it can call every endpoint; pass --token-file FILE (or set "
            "serving.token_file in spindle.yaml)",
            highlight=False,
            soft_wrap=True,
        )

    registry = FeatureRegistry.load(ws.features_dir)
    # no version (nor model config) reading a feature its team may not use is ever loaded
    # a repository on an object store is mirrored into <state_dir>/tmp/model_cache
    location = ws.model_repo_location
    if repo:  # --repo: a local folder, or s3://... with spindle.yaml's storage_options
        location = Location.of(repo, ws.config.storage_options, location.scratch)
    served = model_repository(location)
    check_served_policies(ws, registry, served)
    app_ = spindle.create_app(
        served,
        ws.online_store_url,
        default_model=cfg.default_model,
        # each model's request schema (entity keys, request columns) for /v1/models/*/predict
        # and each model's config, so its declared baseline answers before its first push
        declarations=ServingDeclarations.of(
            registry,
            models={name: ws.model_config(name)[0] for name in ws.model_names()},
        ),
        # a version serves only with the files the registry recorded for it at training
        registry_url=ws.metadata_url,
        token=token,
        limits=ServingLimits(**cfg.limits.model_dump()),
    )
    spindle.serve_forever(
        app_,
        interface,
        cfg.port if port is None else port,  # 0: any free port
        on_listening=lambda url: console.print(f"serving {served} on {url}"),
        access_log=cfg.access_log,
    )
