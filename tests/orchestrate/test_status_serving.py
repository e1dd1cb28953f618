"""``spindle status`` compares registry and serving only with a server of this workspace's
model repository: another repository's server, or one that reports no id, is said so."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

import spindle
from spindle.orchestrate import Context, init_workspace
from spindle.serve import ServerThread, create_app, repository_id


def _workspace(root: Path) -> Path:
    init_workspace(root, "yarnit")
    return root


def test_status_checks_whose_repository_the_server_serves(tmp_path: Path) -> None:
    ours = _workspace(tmp_path / "ours")
    theirs = _workspace(tmp_path / "theirs")
    with Context.open(ours) as ctx:
        other_repo = spindle.Workspace.load(theirs).model_repo
        store = ctx.workspace.online_store_path
        with ServerThread(create_app(other_repo, store, poll_interval_s=60)) as server:
            other = spindle.serving_check(ctx, server.url)
        assert other["reachable"] and other["repository"] == "other"
        assert "serves another repository" in other["note"]
        assert repository_id(other_repo) in other["note"]
        assert other["models"] == {}  # nothing compared, so no false "match"

        with ServerThread(
            create_app(ctx.workspace.model_repo, store, poll_interval_s=60)
        ) as server:
            same = spindle.serving_check(ctx, server.url)
        assert same["repository"] == "same" and same["note"] is None
        assert set(same["models"]) == set(ctx.workspace.model_names())
        assert all(m["match"] for m in same["models"].values())  # nothing trained, nothing served

        legacy = FastAPI()  # a server that predates repository ids answers with a bare list
        legacy.get("/v1/versions")(lambda: [{"model": "search_ranker", "version": 1}])
        with ServerThread(legacy) as server:
            unknown = spindle.serving_check(ctx, server.url)
        assert unknown["reachable"] and unknown["repository"] == "unknown"
        assert unknown["note"].startswith("cannot tell") and unknown["models"] == {}

        down = spindle.serving_check(ctx, "http://127.0.0.1:9", timeout_s=0.5)
        assert not down["reachable"] and down["models"] == {}
