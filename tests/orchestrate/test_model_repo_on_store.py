"""The model repository on an S3-compatible store (moto on loopback), end to end through the
CLI: a daily run pushes version 1 into the bucket, ``spindle serve`` (a real uvicorn) answers
/v1/rank with it, a second version pushed is served after the reload, ``spindle rollback``
brings back the first, and ``spindle doctor`` finds nothing wrong. The tables stay local."""

from __future__ import annotations

import datetime as dt
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from tests.conftest import START, make_workspace
from tests.objectstore import MotoServer, running_moto

import spindle

pytestmark = pytest.mark.e2e

MODEL = "search_ranker"
EXE = Path(sys.executable).parent / "spindle"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    yield from running_moto()


def _spindle(root: Path, *args: str, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(EXE), *args, "--workspace", str(root)],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert done.returncode == 0, (args, done.stdout[-2000:], done.stderr[-2000:])
    return done


def _served(client: httpx.Client, version: str, timeout_s: float = 60.0) -> None:
    body = {"user_id": "u1", "query": "merino wool", "k": 5}
    deadline, found = time.monotonic() + timeout_s, None
    while time.monotonic() < deadline:
        try:
            response = client.post("/v1/rank", json=body)
            found = response.json().get("version") if response.status_code == 200 else None
        except httpx.HTTPError as exc:
            found = repr(exc)
        if found == version:
            return
        time.sleep(0.3)
    raise AssertionError(f"version {version} not served within {timeout_s} s (last: {found})")


def test_push_serve_reload_rollback_with_the_repository_on_a_store(
    tmp_path: Path, moto: MotoServer
) -> None:
    bucket = moto.bucket()
    root = make_workspace(tmp_path / "yarnit", days=5)
    config_file = root / "spindle.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["model_repo"] = f"{bucket.url}/models"
    config["storage_options"] = bucket.options
    config.setdefault("serving", {})["port"] = port = _free_port()
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    with spindle.Context.open(root) as ctx:
        for i in range(3):
            day = (START + dt.timedelta(days=i)).isoformat()
            spindle.ingest(ctx, day)
            spindle.validate(ctx, day)
    flags = ["--set", "training.epochs=1", "--json"]
    done = _spindle(
        root, "run", MODEL, "--date", (START + dt.timedelta(days=3)).isoformat(), *flags
    )
    assert json.loads(done.stdout)["error"] is None
    keys = bucket.keys("models")
    assert f"models/{MODEL}/1/manifest.json" in keys and f"models/{MODEL}/routing.json" in keys
    assert not (root / ".spindle" / "model_repo").exists()
    log = (tmp_path / "serve.log").open("wb")
    server = subprocess.Popen(
        [str(EXE), "serve", "--workspace", str(root)],
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            _served(client, "1")
            assert client.get("/v1/versions").json()["store"]["problems"] == []
            _spindle(
                root,
                "train",
                MODEL,
                "--date",
                (START + dt.timedelta(days=4)).isoformat(),
                *flags[:2],
            )
            _spindle(root, "push", MODEL, "--version", "2", "--force", "--reason", "test")
            _served(client, "2")
            _spindle(root, "route", MODEL, "1=0.5", "2=0.5")
            routing = json.loads(bucket_object(bucket, f"models/{MODEL}/routing.json"))
            assert routing["weights"] == {"1": 0.5, "2": 0.5} and routing["previous"] == 1
            _race(root, bucket)
            _spindle(root, "rollback", MODEL)
            _served(client, "1")
    finally:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)
        log.close()
    said = (tmp_path / "serve.log").read_text()
    assert f"serving {bucket.url}/models on" in said and "Traceback" not in said, said[-2000:]
    routing = json.loads(bucket_object(bucket, f"models/{MODEL}/routing.json"))
    assert routing["weights"] == {"1": 1.0}
    with spindle.Context.open(root) as ctx:
        assert ctx.store.get_alias(MODEL, "production") == 1
        found = spindle.doctor(ctx)
    assert [
        p
        for p in found
        if p.kind in ("routing", "serving_mismatch", "repository_checksum", "model_repository")
    ] == []
    # a version's object replaced on the store: doctor finds it against the registry
    donor = bucket_object(bucket, f"models/{MODEL}/1/model.onnx")
    _put(bucket, f"models/{MODEL}/2/model.onnx", donor)
    with spindle.Context.open(root) as ctx:
        found = [p for p in spindle.doctor(ctx) if p.kind == "repository_checksum"]
    assert [p.subject for p in found] == [f"{MODEL}@2"] and "doctor --fix" in found[0].message
    # --fix puts the object back from the version's artifact; the version is whole again
    original = (
        root / ".spindle" / "artifacts" / "models" / MODEL / "2" / "model.onnx"
    ).read_bytes()
    with spindle.Context.open(root) as ctx:
        fixed = [p for p in spindle.doctor(ctx, fix=True) if p.kind == "repository_checksum"]
        assert [(p.subject, p.fixed) for p in fixed] == [(f"{MODEL}@2", True)]
        assert fixed[0].message.endswith("put back model.onnx")
        assert [p for p in spindle.doctor(ctx) if p.kind == "repository_checksum"] == []
    assert bucket_object(bucket, f"models/{MODEL}/2/model.onnx") == original
    # the store unreachable: one problem naming the URL, and a push fails in one line
    config["storage_options"] = bucket.options | {
        "AWS_ENDPOINT_URL": f"http://127.0.0.1:{_free_port()}"
    }
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))
    with spindle.Context.open(root) as ctx:
        found = [p for p in spindle.doctor(ctx) if p.kind == "model_repository"]
    assert [p.subject for p in found] == [f"{bucket.url}/models"]
    done = subprocess.run(
        [str(EXE), "rollback", MODEL, "--workspace", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    said = done.stdout + done.stderr
    assert done.returncode != 0 and f"{bucket.url}/models" in said and "Traceback" not in said


def bucket_object(bucket, key: str) -> bytes:  # type: ignore[no-untyped-def]
    from spindle.core import Location
    from spindle.serve import S3Repository

    found = S3Repository(Location.of(bucket.url, bucket.options)).bucket.get(key)
    assert found is not None
    return found.data


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _put(bucket, key: str, data: bytes) -> None:  # type: ignore[no-untyped-def]
    from spindle.core import Location
    from spindle.serve import S3Repository

    S3Repository(Location.of(bucket.url, bucket.options)).bucket.put(key, data)


def _race(root: Path, bucket) -> None:  # type: ignore[no-untyped-def]
    """Another machine changes routing.json between this command's read and its write: the
    write is refused (If-Match), nothing of ours lands, the deployment is abandoned."""
    from spindle.core import Location
    from spindle.orchestrate._deploy import deploy
    from spindle.serve import Routing, RoutingConflict, S3Repository

    def plan(current: Routing) -> Routing:
        other = S3Repository(Location.of(f"{bucket.url}/models", bucket.options))
        other.read_routing(MODEL)
        other.write_routing(Routing(MODEL, {2: 1.0}, 1))
        return Routing(MODEL, {1: 1.0}, 2)

    with spindle.Context.open(root) as ctx:
        with pytest.raises(RoutingConflict, match=r"changed since it was read.*run the command"):
            deploy(ctx, MODEL, plan, op="route", args={"race": 1}, actor="test", reason="race")
        assert ctx.store.deployments(MODEL, status="abandoned")
    routing = json.loads(bucket_object(bucket, f"models/{MODEL}/routing.json"))
    assert routing["weights"] == {"2": 1.0}  # the other machine's write, not lost
