"""The dashboard's FastAPI app: routes, templates, the bundled plotly.js, and ``serve_ui``."""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from fastapi.responses import FileResponse, HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from starlette.concurrency import run_in_threadpool

import spindle
from spindle.ui import _actions as actions
from spindle.ui._compare import compare_view
from spindle.ui._data import data_view, quarantine_view
from spindle.ui._features import features_view
from spindle.ui._model import model_view
from spindle.ui._overview import overview
from spindle.ui._reading import reading
from spindle.ui._retractions import retraction_view, retractions_view
from spindle.ui._runs import runs_view
from spindle.ui._version import version_view

_HERE = Path(__file__).parent


def plotly_js() -> Path:
    """plotly.min.js of the installed ``plotly`` package (found without importing it).

    Raises:
        SpindleError: plotly is not installed.
    """
    spec = importlib.util.find_spec("plotly")
    if spec is None or not spec.submodule_search_locations:
        raise spindle.SpindleError(
            "the dashboard needs the plotly package for its charts: pip install plotly"
        )
    path = Path(next(iter(spec.submodule_search_locations))) / "package_data" / "plotly.min.js"
    if not path.is_file():
        raise spindle.SpindleError(f"{path} is missing: reinstall plotly")
    return path


def _number(value: Any, digits: int = 3) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return str(value)
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        if value != value:  # NaN
            return "nan"
        if abs(value) >= 1000:
            return f"{value:,.0f}"
        return f"{value:.{digits}f}"
    return str(value)


def _templates() -> Jinja2Templates:
    templates = Jinja2Templates(directory=str(_HERE / "templates"))
    templates.env.filters["num"] = _number
    templates.env.filters["short"] = lambda s, n=19: "" if s is None else str(s)[:n]
    return templates


def create_ui_app(workspace: str | Path = ".", *, token: str | None = None) -> FastAPI:
    """The dashboard of the workspace at ``workspace`` (or any folder below it).

    Args:
        token: when given, the pages that change state (rollback, route) are enabled for
            requests that carry it; without one the dashboard is read-only.

    Raises:
        WorkspaceError: no workspace there.
        SpindleError: plotly is not installed.

    Example:
        >>> app = create_ui_app("demo-workspace")  # doctest: +SKIP
    """
    ws = spindle.Workspace.load(workspace)
    templates = _templates()
    script = plotly_js()
    app = FastAPI(title="spindle dashboard", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.workspace = ws
    app.state.token = token
    app.mount("/static", StaticFiles(directory=str(_HERE / "static")), name="static")

    def page(
        name: str, build: Callable[[spindle.ReadContext], dict[str, Any]], request: Request
    ) -> Response:
        with reading(ws) as ctx:
            context = build(ctx)
        context |= {
            "workspace": ws.root,
            "models_nav": ws.model_names(),
            "nav": name,
            "actions": bool(token),
        }
        return templates.TemplateResponse(request, f"{name}.html", context)

    @app.exception_handler(spindle.SpindleError)
    def spindle_error(request: Request, exc: spindle.SpindleError) -> Response:
        status = 400
        if isinstance(exc, spindle.NotFound):
            status = 404
        elif isinstance(exc, actions.Refused):
            status = 403
        context = {
            "status": status,
            "message": str(exc),
            "workspace": ws.root,
            "models_nav": ws.model_names(),
            "nav": "error",
        }
        return templates.TemplateResponse(request, "error.html", context, status_code=status)

    @app.get("/plotly.min.js", include_in_schema=False)
    def plotly() -> FileResponse:
        return FileResponse(
            script, media_type="text/javascript", headers={"Cache-Control": "max-age=86400"}
        )

    @app.get("/", response_class=HTMLResponse)
    def overview_page(request: Request) -> Response:
        return page("overview", overview, request)

    @app.get("/runs", response_class=HTMLResponse)
    def runs(request: Request) -> Response:
        query = dict(request.query_params)
        return page("runs", lambda ctx: runs_view(ctx, query), request)

    @app.get("/data", response_class=HTMLResponse)
    def data(request: Request) -> Response:
        query = dict(request.query_params)
        return page("data", lambda ctx: data_view(ctx, query), request)

    @app.get("/data/quarantine", response_class=HTMLResponse)
    def quarantine(request: Request) -> Response:
        query = dict(request.query_params)
        return page("quarantine", lambda ctx: quarantine_view(ctx, query), request)

    @app.get("/features", response_class=HTMLResponse)
    def features(request: Request) -> Response:
        query = dict(request.query_params)
        return page("features", lambda ctx: features_view(ctx, query), request)

    @app.get("/retractions", response_class=HTMLResponse)
    def retractions(request: Request) -> Response:
        query = dict(request.query_params)
        return page("retractions", lambda ctx: retractions_view(ctx, query), request)

    @app.get("/retractions/{retraction_id}", response_class=HTMLResponse)
    def retraction(request: Request, retraction_id: str) -> Response:
        return page("retraction", lambda ctx: retraction_view(ctx, retraction_id), request)

    @app.get("/models/{model}", response_class=HTMLResponse)
    def model(request: Request, model: str) -> Response:
        query = dict(request.query_params)
        return page("model", lambda ctx: model_view(ctx, model, query), request)

    @app.get("/models/{model}/compare", response_class=HTMLResponse)
    def compare(request: Request, model: str) -> Response:
        query = dict(request.query_params)
        return page("compare", lambda ctx: compare_view(ctx, model, query), request)

    @app.get("/models/{model}/{version}", response_class=HTMLResponse)
    def version(request: Request, model: str, version: int) -> Response:
        return page("version", lambda ctx: version_view(ctx, model, version), request)

    async def act(request: Request, model: str, action: Callable[..., dict[str, Any]]) -> Response:
        form = {k: v[-1] for k, v in parse_qs((await request.body()).decode("utf-8")).items()}
        actions.check_token(token, form.get("token"))
        # the action writes (deployment, routing, aliases): run it off the event loop
        await run_in_threadpool(action, ws, model, form)
        return RedirectResponse(f"/models/{model}", status_code=303)

    @app.post("/models/{model}/rollback")
    async def rollback(request: Request, model: str) -> Response:
        return await act(request, model, actions.rollback)

    @app.post("/models/{model}/route")
    async def route(request: Request, model: str) -> Response:
        return await act(request, model, actions.route)

    return app


def serve_ui(
    workspace: str | Path = ".",
    *,
    host: str = "127.0.0.1",
    port: int = 8790,
    token: str | None = None,
    on_listening: Callable[[str], None] | None = None,
) -> None:
    """Serve the dashboard in the foreground until interrupted (Ctrl-C or SIGTERM).

    Raises:
        ServingError: the port is in use or cannot be bound.
    """
    spindle.serve_forever(
        create_ui_app(workspace, token=token), host, port, on_listening=on_listening
    )
