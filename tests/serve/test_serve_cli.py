"""``spindle serve`` (issue 14, items 1 and 8): the token from ``--token-file`` or
``serving.token_file``, a warning when it listens beyond loopback without one, and
``serving.limits`` from spindle.yaml; run as the real command in a subprocess."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from spindle.core import ConfigError, Workspace
from spindle.serve import ServingLimits

CLI = "import sys; from spindle.cli import main; sys.argv = ['spindle', *sys.argv[1:]]; main()"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from spindle.orchestrate import init_workspace

    root = tmp_path_factory.mktemp("serve-cli") / "ws"
    init_workspace(root, "yarnit")
    return root


@contextmanager
def _serving(*args: str) -> Iterator[tuple[str, dict[str, str]]]:
    """``spindle serve ARGS --port 0``: its URL (from the line it prints) and, once stopped,
    its ``stderr``."""
    server = subprocess.Popen(
        [sys.executable, "-c", CLI, "serve", "--port", "0", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=os.environ | {"COLUMNS": "400"},
    )
    result: dict[str, str] = {}
    try:
        assert server.stdout is not None
        line = server.stdout.readline()
        found = re.search(r"on (http://\S+)", line)
        assert found, line
        url = found.group(1).replace("0.0.0.0", "127.0.0.1")
        for _ in range(300):  # uvicorn starts right after the line; wait for it to answer
            try:
                httpx.get(f"{url}/v2/health/live", timeout=5)
                break
            except httpx.TransportError:
                pass
        yield url, result
    finally:
        server.terminate()
        result["stderr"] = server.communicate(timeout=60)[1]


def test_token_file_protects_every_endpoint_but_health(workspace: Path, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("s3cret-token\n")
    with _serving("--token-file", str(token), "-w", str(workspace)) as (url, _):
        assert httpx.get(f"{url}/v1/versions").status_code == 401
        wrong = httpx.get(f"{url}/v1/versions", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        auth = {"Authorization": "Bearer s3cret-token"}
        assert httpx.get(f"{url}/v1/versions", headers=auth).status_code == 200
        assert httpx.get(f"{url}/metrics").status_code == 401
        assert httpx.get(f"{url}/v2/health/live").status_code == 200


def test_spindle_yaml_sets_the_token_file_and_the_limits(workspace: Path, tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    shutil.copytree(workspace, ws)
    (ws / "serve.token").write_text("from-yaml\n")
    config = ws / "spindle.yaml"
    config.write_text(
        config.read_text()
        + "\nserving:\n  token_file: serve.token\n  limits: {max_body_bytes: 1000, max_k: 5}\n"
    )
    auth = {"Authorization": "Bearer from-yaml"}
    with _serving("-w", str(ws)) as (url, _):
        assert httpx.get(f"{url}/v1/versions").status_code == 401
        big = httpx.post(f"{url}/v1/rank", content=b" " * 1001, headers=auth)
        assert big.status_code == 413 and "1000 bytes" in big.json()["detail"], big.text
        k = httpx.post(f"{url}/v1/rank", json={"user_id": "u1", "k": 6}, headers=auth)
        assert k.status_code == 422 and "serving.limits.max_k" in k.text, k.text


def test_beyond_loopback_without_a_token_warns(workspace: Path) -> None:
    with _serving("--host", "0.0.0.0", "-w", str(workspace)) as (_, result):
        pass
    warnings = [line for line in result["stderr"].splitlines() if line.startswith("warning:")]
    assert len(warnings) == 1, result["stderr"]
    assert "0.0.0.0 without a token" in warnings[0] and "--token-file" in warnings[0]


def test_loopback_or_a_token_does_not_warn(workspace: Path, tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text("t0ken")
    for args in (("--host", "127.0.0.1"), ("--host", "0.0.0.0", "--token-file", str(token))):
        with _serving(*args, "-w", str(workspace)) as (_, result):
            pass
        assert "warning:" not in result["stderr"], (args, result["stderr"])


@pytest.mark.parametrize(
    ("content", "expected"),
    [(None, "cannot read the token"), ("", "found nothing"), ("two words", "whitespace")],
)
def test_a_bad_token_file_is_one_line_and_no_server(
    content: str | None, expected: str, workspace: Path, tmp_path: Path
) -> None:
    token = tmp_path / "token"
    if content is not None:
        token.write_text(content)
    done = subprocess.run(
        [sys.executable, "-c", CLI, "serve", "--token-file", str(token), "-w", str(workspace)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 1, done.stdout + done.stderr
    errors = [line for line in done.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and f"--token-file {token}" in errors[0], done.stderr
    assert expected in errors[0] and "serving" not in done.stdout


def test_the_limits_config_defaults_are_the_servers(tmp_path: Path) -> None:
    (tmp_path / "spindle.yaml").write_text("name: ws\n")
    declared = Workspace.load(tmp_path).config.serving.limits
    assert ServingLimits(**declared.model_dump()) == ServingLimits()
    (tmp_path / "spindle.yaml").write_text(
        "name: ws\nserving:\n  limits: {max_k: 0, max_body_bytes: 1.5, max_rows: 3}\n"
    )
    with pytest.raises(ConfigError) as error:
        Workspace.load(tmp_path)
    message = str(error.value)
    for key in ("serving.limits.max_k", "serving.limits.max_body_bytes", "serving.limits.max_rows"):
        assert key in message, message
