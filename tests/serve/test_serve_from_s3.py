"""``spindle serve`` on a model repository on an S3-compatible store (moto on loopback): the
routed versions are mirrored, verified, into a local cache; pushes and rollbacks on the store
are served after the next poll; with the store down the loaded versions keep serving."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from tests.objectstore import MotoServer, running_moto

from spindle.core import Location, read_package
from spindle.serve import ServerThread, create_app
from spindle.serve._repository_s3 import S3Repository

MODEL = "search_ranker"
BODY = {"user_id": "u1", "query": "merino wool", "k": 5}


@pytest.fixture
def moto() -> Iterator[MotoServer]:
    yield from running_moto()  # its own: this test stops it


def _served(client: httpx.Client, version: str, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    found = None
    while time.monotonic() < deadline:
        response = client.post("/v1/rank", json=BODY)
        found = response.json().get("version") if response.status_code == 200 else response.text
        if found == version:
            return
        time.sleep(0.1)
    raise AssertionError(f"version {version} not served within {timeout_s} s (last: {found})")


def test_serve_push_reload_rollback_and_store_down(
    moto: MotoServer, make_version, online_store: Path, tmp_path: Path
) -> None:
    bucket = moto.bucket()
    location = Location.of(f"{bucket.url}/model_repo", bucket.options)
    store = S3Repository(location)
    one, two = make_version(1), make_version(2, factor=2.0)
    hashes = {1: read_package(one).content_hash, 2: read_package(two).content_hash}
    store.push(one, registered=hashes[1])
    cache = tmp_path / "cache"
    app = create_app(
        location,
        online_store,
        cache_dir=cache,
        poll_interval_s=0.2,
        latency_budget_ms=5000.0,
        default_model=MODEL,
    )
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        _served(client, "1")
        versions = client.get("/v1/versions").json()
        assert versions["store"] == {"url": location.url, "problems": []}
        assert versions["repository_id"] == store.repository_id()
        S3Repository(location).push(two, registered=hashes[2])  # another machine pushes
        _served(client, "2")
        assert sorted(p.name for p in (cache / MODEL).iterdir()) == ["1", "2", "routing.json"]
        S3Repository(location).rollback(MODEL)
        _served(client, "1")
        moto.stop()  # the store goes down: what is loaded keeps serving, the error shows
        deadline = time.monotonic() + 30
        problems: list[str] = []
        while not problems and time.monotonic() < deadline:
            problems = client.get("/v1/versions").json()["store"]["problems"]
            time.sleep(0.2)
        assert len(problems) == 1 and location.url in problems[0] and "\n" not in problems[0]
        for _ in range(3):
            assert client.post("/v1/rank", json=BODY).json()["version"] == "1"


def test_a_server_starting_with_the_store_down_serves_its_cache(
    moto: MotoServer, make_version, online_store: Path, tmp_path: Path
) -> None:
    bucket = moto.bucket()
    location = Location.of(f"{bucket.url}/model_repo", bucket.options)
    S3Repository(location).push(make_version(1))
    cache = tmp_path / "cache"
    kwargs = {"cache_dir": cache, "poll_interval_s": 0.2, "default_model": MODEL}
    with contextlib.ExitStack() as stack:
        server = stack.enter_context(ServerThread(create_app(location, online_store, **kwargs)))
        client = stack.enter_context(httpx.Client(base_url=server.url, timeout=30))
        _served(client, "1")
    moto.stop()
    app = create_app(location, online_store, **kwargs)  # type: ignore[arg-type]
    with ServerThread(app) as server, httpx.Client(base_url=server.url, timeout=30) as client:
        _served(client, "1")
        assert client.get("/v1/versions").json()["store"]["problems"]
