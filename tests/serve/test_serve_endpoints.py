"""Server surface: unknown models are 404, versions are strings everywhere, /docs works offline,
the repository id is reported, and a port in use is one clear line naming --port."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from spindle.serve import push, repository_id

MODEL = "search_ranker"
CLI = "import sys; from spindle.cli import main; sys.argv = ['spindle', *sys.argv[1:]]; main()"


def test_rank_for_an_unknown_model_is_a_404(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    _, client = serve()
    body = {"user_id": "u1", "query": "merino wool", "model": "no_such_model"}
    answer = client.post("/v1/rank", json=body)
    assert answer.status_code == 404
    assert "unknown model 'no_such_model'" in answer.json()["detail"]
    assert MODEL in answer.json()["detail"]  # names the models it has
    assert client.post("/v2/models/no_such_model/infer", json={"inputs": []}).status_code == 404
    known = client.post("/v1/rank", json=body | {"model": MODEL})
    assert known.status_code == 200


def test_version_is_a_string_in_every_response(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    push(make_version(2, factor=2.0), repo, weight=0.5)
    _, client = serve()
    ranked = client.post("/v1/rank", json={"user_id": "u1", "query": "red yarn"}).json()
    listed = client.get("/v1/versions").json()["versions"]
    meta = client.get(f"/v2/models/{MODEL}").json()
    assert isinstance(ranked["version"], str) and ranked["version"] in {"1", "2"}
    assert [r["version"] for r in listed] == ["1", "2"]
    assert meta["versions"] == ["1", "2"]


def test_versions_reports_the_repository_id(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    _, client = serve()
    body = client.get("/v1/versions").json()
    assert body["repository_id"] == repository_id(repo) and len(body["repository_id"]) == 32
    assert repository_id(repo, create=True) == body["repository_id"]  # made once, then kept


def test_docs_are_offline(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    _, client = serve()
    answer = client.get("/docs")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/html")
    page = answer.text
    assert "/v1/rank" in page and "/v2/models/{model}/infer" in page and "RankRequest" in page
    urls = re.findall(r"(?:https?:)?//[^\s\"'<>)]+", page)
    assert [u for u in urls if not u.split("//", 1)[1].startswith("127.0.0.1")] == []
    assert not re.search(r"<script[^>]*\bsrc=", page)  # no script loaded from anywhere
    assert client.get("/redoc").status_code == 404  # FastAPI's ReDoc page uses a CDN
    assert client.get("/openapi.json").json()["info"]["title"] == "spindle serve"


def test_a_port_in_use_is_one_line_naming_the_port_option(tmp_path: Path) -> None:
    from spindle.orchestrate import init_workspace

    workspace = tmp_path / "ws"
    init_workspace(workspace, "yarnit")
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        port = busy.getsockname()[1]
        args = ["serve", "--host", "127.0.0.1", "--port", str(port), "-w", str(workspace)]
        done = subprocess.run(
            [sys.executable, "-c", CLI, *args],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, done.stderr
    assert f"127.0.0.1:{port}" in errors[0] and "in use" in errors[0] and "--port" in errors[0]
    assert "Traceback" not in done.stderr
    assert "serving" not in done.stdout  # no "serving on ..." for a port it never had


def test_serve_says_where_it_listens_and_serves_the_workspace_repository(tmp_path: Path) -> None:
    from spindle.orchestrate import init_workspace

    workspace = tmp_path / "ws"
    init_workspace(workspace, "yarnit")
    with socket.socket() as probe:  # a free port (released just before the server takes it)
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    args = ["serve", "--host", "127.0.0.1", "--port", str(port), "-w", str(workspace)]
    server = subprocess.Popen(
        [sys.executable, "-c", CLI, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"COLUMNS": "400"},
    )
    try:
        assert server.stdout is not None
        first = server.stdout.readline()
        assert f"on http://127.0.0.1:{port}" in first, first
        for _ in range(300):  # uvicorn starts right after the line; wait for it to answer
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/v1/versions", timeout=5).json()
                break
            except httpx.TransportError:
                time.sleep(0.1)
        else:
            raise AssertionError("the server never answered")
        repo = workspace / ".spindle" / "model_repo"
        assert body == {"repository_id": repository_id(repo), "versions": []}
    finally:
        server.terminate()
        server.communicate(timeout=60)
