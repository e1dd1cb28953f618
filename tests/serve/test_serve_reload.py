"""Hot reload: pushes and rollbacks take effect while clients keep getting answers."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx

from spindle.serve import push, rollback

MODEL = "search_ranker"


class _Traffic:
    """Client threads sending /v1/rank in a loop, recording every outcome."""

    def __init__(self, url: str, threads: int = 2) -> None:
        self.url = url
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.outcomes: list[tuple[float, int, str | None]] = []
        self.failures: list[str] = []
        self.threads = [threading.Thread(target=self._run, args=(i,)) for i in range(threads)]

    def _run(self, worker: int) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as client:
            i = 0
            while not self.stop.is_set():
                body = {"user_id": f"w{worker}-{i % 50}", "query": "merino wool", "k": 5}
                try:
                    response = client.post("/v1/rank", json=body)
                    version = response.json()["version"] if response.status_code == 200 else None
                    with self.lock:
                        self.outcomes.append((time.monotonic(), response.status_code, version))
                except httpx.HTTPError as exc:
                    with self.lock:
                        self.failures.append(repr(exc))
                i += 1

    def __enter__(self) -> _Traffic:
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def wait_for(self, version: str | None, since: float, timeout_s: float = 10.0) -> float:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self.lock:
                for when, _, served in self.outcomes:
                    if when > since and served == version:
                        return when - since
            time.sleep(0.02)
        raise AssertionError(f"version {version} was not served within {timeout_s} s")


def test_push_and_rollback_under_traffic_drop_nothing(make_version, repo: Path, serve) -> None:
    push(make_version(1), repo)
    server, client = serve(poll_interval_s=0.1)
    with _Traffic(server.url) as traffic:
        traffic.wait_for("1", 0.0)
        pushed_at = time.monotonic()
        push(make_version(2, factor=2.0), repo)
        assert traffic.wait_for("2", pushed_at) < 5.0
        rolled_at = time.monotonic()
        assert rollback(repo, MODEL) == 1
        assert traffic.wait_for("1", rolled_at) < 5.0
        deadline = time.monotonic() + 30  # enough requests to mean something, even when slow
        while len(traffic.outcomes) <= 20 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert traffic.failures == []
    statuses = {status for _, status, _ in traffic.outcomes}
    assert statuses == {200}
    assert all(version in ("1", "2") for _, _, version in traffic.outcomes)
    assert len(traffic.outcomes) > 20
    reloads = [
        line
        for line in client.get("/metrics").text.splitlines()
        if line.startswith("spindle_serve_reloads")
    ]
    assert reloads and float(reloads[0].split()[-1]) >= 2


def test_a_model_appearing_after_start_is_picked_up(
    make_version, repo: Path, serve, shop_declarations
) -> None:
    _, client = serve(poll_interval_s=0.1, declarations=shop_declarations)
    body = {"user_id": "u1", "query": "wool"}
    before = client.post("/v1/rank", json=body).json()
    assert before["version"] is None and before["fallback"].endswith(": baseline popularity")
    push(make_version(1), repo)
    deadline = time.monotonic() + 5
    while client.post("/v1/rank", json=body).json()["version"] != "1":
        assert time.monotonic() < deadline, "the pushed model was not loaded"
        time.sleep(0.05)


def test_the_poller_stops_with_the_server(make_version, repo: Path, online_store: Path) -> None:
    from spindle.serve import ServerThread, create_app

    push(make_version(1), repo)
    app = create_app(repo, online_store, default_model="search_ranker", poll_interval_s=0.05)
    for _ in range(2):  # the same app can be served again after a clean stop
        with ServerThread(app) as server:
            assert any(t.name == "spindle-reloader" for t in threading.enumerate())
            body = {"user_id": "u1", "query": "wool"}
            assert httpx.post(server.url + "/v1/rank", json=body).json()["version"] == "1"
        assert not any(t.name == "spindle-reloader" for t in threading.enumerate())
        assert not any(t.name == "spindle-uvicorn" for t in threading.enumerate())
