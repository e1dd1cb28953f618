"""The HTTP server: /v1/models/{model}/predict and /rank (and the example's /v1/rank) with A/B
routing and fallback, V2 protocol, versions and metrics.

No training code and no pickle on this path: models are ONNX run by onnxruntime, transforms are
JSON, features come from the online store.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from spindle.core import Location, ServingError
from spindle.features import OnlineStore
from spindle.serve._context import ServerContext, context_of, require_token
from spindle.serve._docs import add_docs_route
from spindle.serve._integrity import RegistryHashes
from spindle.serve._limits import (
    BoundedBody,
    ServingLimits,
    bounded_model,
    validation_errors,
)
from spindle.serve._memory import ReleaseMemory
from spindle.serve._metrics import ServingMetrics
from spindle.serve._predict import Predictor
from spindle.serve._predict_api import PredictRequest, document_models, predict_router
from spindle.serve._rank import ItemRanker
from spindle.serve._rank_api import ModelRankRequest, RankRequest, rank_router
from spindle.serve._repository import check_model_name, repository_id
from spindle.serve._repository_s3 import S3Repository
from spindle.serve._retrieval import Retriever
from spindle.serve._schema import ServingDeclarations
from spindle.serve._state import HotReloader, LoadedVersion
from spindle.serve._store_mirror import store_mirror
from spindle.serve._v2 import v2_error, v2_router

log = logging.getLogger(__name__)

_SCORING_THREADS = 8


class _MetricsMiddleware:
    """Pure ASGI middleware: latency of every request and errors (status >= 400) by route."""

    def __init__(self, app: ASGIApp, metrics: ServingMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        status = 500
        start = time.perf_counter()

        async def send_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_status)
        finally:
            route = scope.get("route")
            endpoint = getattr(route, "path", "unmatched")
            self.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)
            if status >= 400:
                self.metrics.errors.labels(endpoint, str(status)).inc()


def create_app(
    repo: str | Path | Location | S3Repository,
    online_store: str | Path,
    *,
    default_model: str | None = None,
    poll_interval_s: float = 2.0,
    latency_budget_ms: float = 100.0,
    token: str | None = None,
    declarations: ServingDeclarations | None = None,
    registry_url: str | None = None,
    limits: ServingLimits | None = None,
    cache_dir: Path | None = None,
) -> FastAPI:
    """Build the serving app for a model repository and an online store.

    Every version named by a model's routing.json is verified and loaded now; a background
    thread (started with the app's lifespan) reloads when the repository changes.

    Args:
        repo: the model repository (see :func:`spindle.serve.push`): a local folder, or an
            ``s3://`` location (or ``S3Repository``) whose routed versions are mirrored,
            verified, into ``cache_dir`` and served from there (see ``StoreMirror``).
        online_store: the :class:`spindle.features.OnlineStore`: a SQLite file, or a backend's
            URL (``sqlite:///PATH``, ``postgresql://user@host/db``).
        default_model: the model the example route ``/v1/rank`` serves when a request names
            none.
        poll_interval_s: how often to look for pushes, rollbacks and damaged files.
        latency_budget_ms: time one model version may take for a request before the next
            step of the fallback chain answers.
        token: when set, every endpoint but ``/v2/health/*`` needs ``Authorization: Bearer``.
        declarations: the workspace's views (entity keys), request groups and models, which
            say what ``/v1/models/{model}/predict`` and ``/rank`` need
            (``ServingDeclarations.of(registry, models)``); None to read each view's keys from
            the online store and each model's baselines and retrieval from its versions.
        limits: what one request may hold (body bytes, instances, candidates, string length,
            k); None for :class:`ServingLimits`' defaults.
        registry_url: the metadata store (``Workspace.metadata_url``): a version serves only
            when its files are the ones the registry recorded for it (the manifest in the
            repository alone is not trusted); None checks each version against its manifest.
        cache_dir: the local mirror of a repository on an object store; None:
            ``<state_dir>/tmp/model_cache/<digest>`` (see ``store_mirror``).

    Raises:
        ServingError: invalid arguments.

    Example:
        >>> app = create_app(Path("model_repo"), Path(".spindle/online.db"))  # doctest: +SKIP
        >>> serve_forever(app, "127.0.0.1", 8787)  # doctest: +SKIP
    """
    if default_model is not None:
        check_model_name(default_model)
    if poll_interval_s <= 0 or latency_budget_ms <= 0:
        raise ServingError("poll_interval_s and latency_budget_ms must be positive")
    location = str(online_store)
    file = location.removeprefix("sqlite:///") if location.startswith("sqlite:///") else location
    if "://" not in file and not Path(file).exists():  # a server's store: it says when opened
        log.warning(
            "online store %s does not exist yet; not ready until it holds rows", online_store
        )
    store = OnlineStore(online_store)
    registered = RegistryHashes(registry_url) if registry_url is not None else None
    mirror = store_mirror(repo, cache_dir, registered)
    if mirror is not None:
        mirror.refresh()  # the store down now: serve what the cache holds, retry each poll
        repo = mirror.cache
    assert not isinstance(repo, S3Repository)
    repo = Path(str(repo))
    reloader = HotReloader(
        repo, poll_interval_s, registered, None if mirror is None else mirror.refresh
    )
    metrics = ServingMetrics(lambda: reloader.state, lambda: reloader.reloads)
    executor = _scoring_pool()
    predictor = Predictor(store, executor, latency_budget_ms, declarations)
    ctx = ServerContext(
        repo=Path(repo),
        store=store,
        reloader=reloader,
        ranker=ItemRanker(predictor, Retriever(store)),
        predictor=predictor,
        metrics=metrics,
        executor=executor,
        default_model=default_model,
        token=token,
        repository_id=repository_id(repo, create=mirror is None),  # a mirror: the store's
        limits=limits or ServingLimits(),
        mirror=mirror,
    )

    closed: list[bool] = [False]

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if closed[0]:  # a second lifespan of the same app: reopen what the first one closed
            ctx.store = ctx.predictor.store = OnlineStore(online_store)
            ctx.ranker.retriever = Retriever(ctx.store)
            ctx.executor = ctx.predictor.executor = _scoring_pool()
        reloader.start()
        try:
            yield
        finally:
            await asyncio.to_thread(reloader.stop)
            ctx.executor.shutdown(wait=False, cancel_futures=True)
            ctx.store.close()
            closed[0] = True

    # FastAPI's own /docs and /redoc load their scripts from a CDN; ours is self-contained
    app = FastAPI(
        title="spindle serve", version="1", lifespan=lifespan, docs_url=None, redoc_url=None
    )
    app.state.spindle = ctx
    app.add_middleware(_MetricsMiddleware, metrics=metrics)
    app.add_middleware(ReleaseMemory)  # RSS back down after a large request
    _add_error_handlers(app)
    app.include_router(predict_router(ctx.limits))  # first: the routes tried first
    app.include_router(v2_router())
    _add_v1_routes(app)
    app.include_router(rank_router(ctx.limits))
    bodies: list[type[BoundedBody]] = [PredictRequest, ModelRankRequest, RankRequest]
    document_models(app, [bounded_model(body, ctx.limits) for body in bodies])
    add_docs_route(app)
    return app


_MAX_DETAIL_CHARS = 2000


class _ErrorResponse(JSONResponse):
    """An error's JSON, ASCII only: a lone surrogate or other text that UTF-8 cannot encode
    is escaped, never a failed answer (and a reset connection)."""

    def render(self, content: Any) -> bytes:
        return json.dumps(content, ensure_ascii=True, separators=(",", ":"), default=str).encode()


def _short(detail: Any) -> Any:
    """A detail as an error answers it: no string in it over 2,000 characters."""
    if isinstance(detail, str) and len(detail) > _MAX_DETAIL_CHARS:
        return detail[: _MAX_DETAIL_CHARS - 1] + "…"
    if isinstance(detail, list):
        return [_short(d) for d in detail]
    if isinstance(detail, dict):
        return {k: _short(v) for k, v in detail.items()}
    return detail


def _add_error_handlers(app: FastAPI) -> None:
    """Errors as every route answers them: under ``/v2`` in the V2 protocol's format
    (``{"error": message}``, unknown paths included), elsewhere FastAPI's (``{"detail": ...}``);
    a 422 never carries the input it is about."""

    def on_v2(request: Request) -> bool:
        path: str = request.scope.get("path", "")
        return path == "/v2" or path.startswith("/v2/")

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        headers = dict(exc.headers) if exc.headers else None
        if isinstance(exc.detail, str):  # e.g. a 503 naming why each version did not load
            exc.detail = in_repo(exc.detail, context_of(request).repo)
        if exc.status_code in (204, 304):  # no body allowed
            return Response(status_code=exc.status_code, headers=headers)
        if on_v2(request):
            return v2_error(exc.status_code, _v2_message(exc.detail), headers)
        return _ErrorResponse({"detail": _short(exc.detail)}, exc.status_code, headers)

    async def invalid_request(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        detail = validation_errors(exc.errors(), prefix=())
        if on_v2(request):
            return v2_error(400, _v2_message(detail))
        return _ErrorResponse({"detail": _short(detail)}, 422)

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid_request)


def _path_in_repo(loaded: LoadedVersion, repo: Path) -> str:
    try:
        return loaded.path.relative_to(repo).as_posix()
    except ValueError:
        return f"{loaded.model}/{loaded.version}"


def in_repo(text: str, repo: Path) -> str:
    """``text`` with the repository's absolute path left out of the paths it names (an
    answer does not show the server's filesystem)."""
    for prefix in dict.fromkeys((str(repo.resolve()), str(repo.absolute()), str(repo))):
        text = text.replace(prefix + "/", "").replace(prefix, ".")
    return text


def _v2_message(detail: Any) -> str:
    if isinstance(detail, list):  # pydantic's errors
        return "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}"
            for e in detail[:3]
            if isinstance(e, dict)
        )
    return str(detail)


def _scoring_pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(_SCORING_THREADS, thread_name_prefix="spindle-score")


def _add_v1_routes(app: FastAPI) -> None:
    protected = [Depends(require_token)]

    @app.get("/v1/versions", dependencies=protected)
    def versions(request: Request) -> dict[str, Any]:
        """The repository's id and every version named by a routing.json: weight, status.

        ``repository_id`` (from ``<repo>/repository_id``) lets a client such as
        ``spindle status`` check that this server serves its repository. Versions are strings,
        as in the V2 protocol and the predict and rank answers. Paths are within the
        repository (``<model>/<version>``): the server's filesystem is not shown.
        """
        ctx = context_of(request)
        rows = []
        for model, ms in sorted(ctx.reloader.state.models.items()):
            for version, lv in sorted(ms.versions.items()):
                rows.append(
                    {
                        "model": model,
                        "version": str(version),
                        "path": _path_in_repo(lv, ctx.repo),
                        "sha256": lv.runtime.sha256 if lv.runtime else None,
                        "weight": ms.routing.weights.get(version, 0.0),
                        "status": lv.status,
                        "previous": version == ms.routing.previous,
                        "detail": in_repo(lv.detail, ctx.repo) or None,
                    }
                )
        ctx.metrics.requests.labels("versions", "", "").inc()
        found: dict[str, Any] = {"repository_id": ctx.repository_id, "versions": rows}
        if ctx.mirror is not None:  # a repository on an object store, mirrored locally
            found["store"] = {"url": ctx.mirror.store.url, "problems": ctx.mirror.problems}
        return found

    @app.get("/metrics", dependencies=protected)
    def metrics(request: Request) -> Response:
        """Prometheus exposition of this server's registry."""
        ctx = context_of(request)
        return Response(ctx.metrics.exposition(), media_type="text/plain; version=0.0.4")
