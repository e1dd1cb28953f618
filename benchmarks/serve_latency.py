"""Latency and throughput of ``POST /v1/rank`` with 50 candidates, measured on loopback.

Starts ``spindle serve`` on a workspace in its own process, then this process is the load
generator (asyncio + httpx, ``--concurrency`` connections in flight). Requests are real
(user, query) pairs of the workspace's last simulated day, each with 50 candidates drawn from
the 500 most popular products. Prints p50/p90/p99 latency, requests/s, the status codes, and
how many answers came from a fallback; the machine's load average is printed with them.

    .venv/bin/python benchmarks/serve_latency.py --workspace WS [--requests 3000] \
        [--concurrency 8] [--candidates 50 | --retrieve] [--json]

``--retrieve`` sends no candidates: the server retrieves them by the model's
``serving.candidates`` (the yarnit ranker: 50 products by an inverted index of their words),
so a request costs retrieval plus the feature lookups of what it retrieved, end to end.

WS needs a pushed model (e.g. the workspace of ``benchmarks/gate_false_blocks.py --dir WS``
or of ``spindle demo --dir WS``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pyarrow.dataset as pads


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _bodies(ws: Path, n: int, n_candidates: int, seed: int) -> list[dict[str, Any]]:
    from spindle.features import OnlineStore

    days = sorted((ws / "raw" / "searches").glob("date=*"))
    searches = pads.dataset(days[-1]).to_table(columns=["user_id", "query"]).to_pylist()
    store = OnlineStore(ws / ".spindle" / "online.db")
    try:
        held = store.backend.read("product")
        ranked = sorted(held.to_pylist(), key=lambda r: (-(r["popularity"] or 0), r["product_id"]))
        pool = [r["product_id"] for r in ranked[:500]]
    finally:
        store.close()
    rng = random.Random(seed)
    return [
        {
            "user_id": s["user_id"],
            "query": s["query"],
            "k": 10,
        }
        | ({"candidates": rng.sample(pool, min(n_candidates, len(pool)))} if n_candidates else {})
        for s in (rng.choice(searches) for _ in range(n))
    ]


async def _load(url: str, bodies: list[dict[str, Any]], concurrency: int) -> dict[str, Any]:
    queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
    for body in bodies:
        queue.put_nowait(body)
    latencies: list[float] = []
    codes: Counter[int] = Counter()
    fallbacks: Counter[str] = Counter()
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, timeout=30, limits=limits) as client:

        async def worker() -> None:
            while not queue.empty():
                body = queue.get_nowait()
                t0 = time.perf_counter()
                response = await client.post("/v1/rank", json=body)
                latencies.append((time.perf_counter() - t0) * 1000)
                codes[response.status_code] += 1
                if response.status_code == 200 and response.json()["fallback"]:
                    fallbacks[response.json()["fallback"].split(":")[0][:60]] += 1

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        wall = time.perf_counter() - t0
    lat = np.asarray(latencies)
    return {
        "requests": len(bodies),
        "concurrency": concurrency,
        "wall_s": round(wall, 2),
        "requests_per_s": round(len(bodies) / wall, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p90_ms": round(float(np.percentile(lat, 90)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "status_codes": dict(codes),
        "fallbacks": dict(fallbacks),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", required=True)
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--candidates", type=int, default=50)
    parser.add_argument("--retrieve", action="store_true", help="send no candidates")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    ws = Path(args.workspace).resolve()
    port = _free_port()
    argv = ["spindle", "serve", "--workspace", str(ws), "--port", str(port)]
    code = f"import sys; from spindle.cli import main; sys.argv = {argv!r}; main()"
    server = subprocess.Popen(  # the server is a separate process from the load generator
        [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(url + "/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline or server.poll() is not None:
                raise SystemExit("the server did not become ready")
            time.sleep(0.2)
        n_candidates = 0 if args.retrieve else args.candidates
        bodies = _bodies(ws, args.requests, n_candidates, seed=1)
        asyncio.run(_load(url, bodies[:200], args.concurrency))  # warm-up
        load_before = os.getloadavg()
        result = asyncio.run(_load(url, bodies, args.concurrency))
        result |= {
            "candidates": "retrieved" if args.retrieve else args.candidates,
            "loadavg_1m_before": round(load_before[0], 2),
            "loadavg_1m_after": round(os.getloadavg()[0], 2),
            "cpus": os.cpu_count(),
        }
    finally:
        server.terminate()
        server.wait(timeout=30)
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key, value in result.items():
            print(f"{key:>20}: {value}")


if __name__ == "__main__":
    main()
