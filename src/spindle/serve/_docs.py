"""``/docs``: the server's OpenAPI rendered as one self-contained HTML page (works offline).

FastAPI's default Swagger UI and ReDoc pages load their scripts and styles from a CDN, which an
air-gapped serving host cannot reach. This page is rendered on the server from the same OpenAPI
document (``/openapi.json``) and references nothing outside the server.
"""

from __future__ import annotations

import html
import json
from typing import Any

from fastapi import FastAPI
from fastapi.responses import HTMLResponse

_METHODS = ("get", "post", "put", "patch", "delete")
_STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; color: #222; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.1rem; margin-top: 2rem; }
.op { border: 1px solid #ddd; border-radius: 6px; padding: .6rem 1rem; margin: .6rem 0; }
.method { display: inline-block; min-width: 4rem; font-weight: bold; text-transform: uppercase; }
.get { color: #1a7f37; } .post { color: #0969da; } code, pre { background: #f6f8fa; }
pre { padding: .5rem; overflow-x: auto; font-size: .85rem; }
"""


def _schema_ref(schema: dict[str, Any] | None) -> str:
    if not schema:
        return ""
    ref = schema.get("$ref")
    if isinstance(ref, str):
        return ref.rsplit("/", 1)[-1]
    return str(schema.get("type", ""))


def _operation(path: str, method: str, op: dict[str, Any]) -> str:
    parts = [
        f'<div class="op"><span class="method {method}">{method}</span> '
        f"<code>{html.escape(path)}</code>"
    ]
    summary = op.get("summary") or ""
    if summary:
        parts.append(f" &mdash; {html.escape(summary)}")
    description = op.get("description") or ""
    if description and description != summary:
        parts.append(f"<p>{html.escape(description)}</p>")
    params = op.get("parameters") or []
    if params:
        items = ", ".join(
            f"<code>{html.escape(str(p.get('name')))}</code> ({html.escape(str(p.get('in')))})"
            for p in params
        )
        parts.append(f"<p>parameters: {items}</p>")
    body = op.get("requestBody", {}).get("content", {}).get("application/json", {})
    if body:
        parts.append(f"<p>body: <code>{html.escape(_schema_ref(body.get('schema')))}</code></p>")
    parts.append("</div>")
    return "".join(parts)


def render_docs(spec: dict[str, Any]) -> str:
    """The HTML page for an OpenAPI document: every operation, then every schema as JSON."""
    info = spec.get("info", {})
    title = html.escape(f"{info.get('title', 'API')} {info.get('version', '')}".strip())
    ops = [
        _operation(path, method, item[method])
        for path, item in sorted(spec.get("paths", {}).items())
        for method in _METHODS
        if method in item
    ]
    schemas = spec.get("components", {}).get("schemas", {})
    schema_html = "".join(
        f"<h3>{html.escape(name)}</h3><pre>{html.escape(json.dumps(schema, indent=2))}</pre>"
        for name, schema in sorted(schemas.items())
    )
    return (
        f"<!doctype html><html><head><meta charset='utf-8'><title>{title}</title>"
        f"<style>{_STYLE}</style></head><body><h1>{title}</h1>"
        "<p>The OpenAPI document is at <a href='openapi.json'>openapi.json</a>. "
        "KServe V2 clients (e.g. tritonclient) can use the <code>/v2</code> endpoints.</p>"
        f"<h2>Endpoints</h2>{''.join(ops)}<h2>Schemas</h2>{schema_html}</body></html>"
    )


def add_docs_route(app: FastAPI) -> None:
    """Serve :func:`render_docs` of ``app``'s OpenAPI at ``/docs`` (not in the schema itself)."""

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(render_docs(app.openapi()))
