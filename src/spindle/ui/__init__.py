"""The web dashboard (``spindle ui``): runs, versions, comparisons, lineage and data health.

Server-rendered pages (FastAPI + Jinja2) with Plotly charts whose JavaScript is served from the
installed ``plotly`` package, never a CDN: the dashboard works offline and air-gapped. It reads
the workspace through the public API only; the actions that change state (rollback, route)
exist only when a token is configured, and are recorded like the CLI's.
"""

from __future__ import annotations

from spindle.ui._app import create_ui_app, serve_ui

__all__ = ["create_ui_app", "serve_ui"]
