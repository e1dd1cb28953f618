"""Latency of ``POST /v1/models/{model}/predict`` with online feature lookup, on loopback, and
whether the served scores equal the offline ones.

Starts ``spindle serve`` on a workspace in its own process; this process is the load generator
(asyncio over raw keep-alive HTTP/1.1 connections, so the client costs little of the CPU the
server needs). Each request is one real instance: the entity keys and request columns (``GET
/v1/models/{model}/schema``) of an example of the last day the online store holds. Three
phases per server: closed loop at concurrency 1 and 8 (p50/p90/p99, requests/s) and open loop
at a fixed rate (``--rate``, default 200 req/s, each latency counted from the request's
scheduled time, so a server that falls behind shows it), with the 1-minute load average before
and after. ``--repeat N`` starts N fresh servers and reports each figure's median [min, max].

Served == offline: for ``--sample`` instances the served score is compared with the offline
score: the training-set path (``spindle.features.build_rows``, the model's own examples SQL and
pinned views) computes the instances' features as of the end of that day, and the served
version's ``model.onnx`` scores them (``ModelRuntime.score``); the largest difference must be
<= 1e-6.

    .venv/bin/python benchmarks/serve_predict.py [--workspace WS] [--model delay] \
        [--requests 3000] [--rate 200] [--seconds 15] [--repeat 3] [--json]

Without ``--workspace`` it builds one with ``spindle demo --example flights --days 8``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

TOLERANCE = 1e-6
_CONNECTIONS = 256  # open loop: connections the generator may open while requests queue


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _spindle(*args: str, cwd: Path | None = None) -> None:
    code = f"import sys; from spindle.cli import main; sys.argv = {['spindle', *args]!r}; main()"
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise SystemExit(f"spindle {' '.join(args)} failed: {done.stderr.strip()[-2000:]}")


# -- offline: the training-set path as of the end of the day the online store holds ----------


def offline_examples(ws: Path, model: str) -> tuple[str, pa.Table]:
    """The model's examples of the last day the online store holds, with their features as the
    training-set path computes them as of the end of that day (every example's event time is
    moved to 23:59:59 of the day, labels count as mature), request features included.

    Returns:
        The day and the rows (example columns, pinned features, request features).
    """
    from spindle.core import Workspace, load_sources
    from spindle.features import FeatureRegistry, OnlineStore, build_rows

    workspace = Workspace.load(ws)
    config, _ = workspace.model_config(model)
    definitions = FeatureRegistry.load(workspace.features_dir).resolve(config)
    views = sorted({d.group for d in definitions if d.sql is not None})
    store = OnlineStore(workspace.online_store_url)
    try:
        marks = [store.watermark(v) for v in views]
    finally:
        store.close()
    if not marks or any(m is None for m in marks):
        raise SystemExit(f"the online store holds no day of every view of {model} ({views})")
    day = min(str(m) for m in marks)
    ts = '"' + config.examples.event_time.replace('"', '""') + '"'
    sql = f"SELECT * REPLACE (TIMESTAMP '{day} 23:59:59' AS {ts}) FROM ({config.examples.sql})"
    examples = config.examples.model_copy(update={"sql": sql, "label_delay": "0d"})
    as_of = config.model_copy(update={"examples": examples})
    rows = build_rows(
        workspace.tables_dir, as_of, definitions, (day,), sources=load_sources(workspace.root)
    )
    return day, rows.table


def offline_scores(version_dir: Path, rows: pa.Table) -> np.ndarray:
    """The version's ``model.onnx`` on training-set rows (what evaluation scores offline)."""
    from spindle.serve import ModelRuntime

    return ModelRuntime.load(version_dir).score(rows)


def _instances(rows: pa.Table, schema: dict[str, Any]) -> list[dict[str, Any]]:
    """Each example as a request instance: its entity keys and request columns."""
    fields = [*schema["keys"], *schema["request_columns"]]
    table = rows.select([f for f in fields if f in rows.column_names])
    return [json.loads(json.dumps(r, default=str)) for r in table.to_pylist()]


def _served_score(prediction: dict[str, Any]) -> list[float]:
    for key in ("score", "value"):
        if key in prediction:
            return [float(prediction[key])]
    return [float(p) for p in prediction["probabilities"]]


def served_equals_offline(
    url: str, model: str, instances: list[dict[str, Any]], offline: np.ndarray, version: str
) -> dict[str, Any]:
    """Send each instance on its own and compare the answer with its offline score."""
    import httpx

    served: list[list[float]] = []
    versions: Counter[str] = Counter()
    with httpx.Client(base_url=url, timeout=30) as client:
        for instance in instances:
            answer = client.post(f"/v1/models/{model}/predict", json={"instance": instance})
            answer.raise_for_status()
            body = answer.json()
            versions[str(body["version"])] += 1
            served.append(_served_score(body["predictions"][0]))
    expected = np.asarray(offline, dtype=np.float64).reshape(len(instances), -1)
    diff = float(np.max(np.abs(np.asarray(served, dtype=np.float64) - expected)))
    return {
        "instances": len(instances),
        "version": version,
        "versions_answering": dict(versions),
        "max_abs_diff": diff,
        "distinct_scores": len({round(float(s[0]), 9) for s in served}),
        "equal": diff <= TOLERANCE and set(versions) == {version},
    }


# -- the load generator: raw HTTP/1.1 keep-alive -------------------------------------------


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, port: int) -> _Connection:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.transport.get_extra_info("socket").setsockopt(
            socket.IPPROTO_TCP, socket.TCP_NODELAY, 1
        )
        return cls(reader, writer)

    async def post(self, request: bytes) -> tuple[int, bytes]:
        """Send one request and read its answer.

        Raises:
            ConnectionError: the server had closed the connection (idle keep-alive timeout).
        """
        self.writer.write(request)
        line = await self.reader.readline()
        if not line:
            raise ConnectionResetError("the server closed the connection")
        status = int(line.split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


def _requests(path: str, instances: list[dict[str, Any]]) -> list[bytes]:
    out = []
    for instance in instances:
        body = json.dumps({"instance": instance}).encode()
        head = (
            f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode()
        out.append(head + body)
    return out


def _summary(latencies_s: list[float], answers: list[tuple[int, bytes]]) -> dict[str, Any]:
    lat = np.asarray(latencies_s) * 1000
    codes = Counter(status for status, _ in answers)
    fallbacks = sum(
        1 for status, body in answers if status == 200 and json.loads(body).get("fallback")
    )
    return {
        "requests": len(answers),
        "p50_ms": round(float(np.percentile(lat, 50)), 3),
        "p90_ms": round(float(np.percentile(lat, 90)), 3),
        "p99_ms": round(float(np.percentile(lat, 99)), 3),
        "max_ms": round(float(lat.max()), 3),
        "status_codes": {str(k): v for k, v in sorted(codes.items())},
        "fallbacks": fallbacks,
    }


async def closed_loop(port: int, requests: list[bytes], concurrency: int) -> dict[str, Any]:
    """``concurrency`` connections, each sending its next request when the last is answered."""
    latencies: list[float] = []
    answers: list[tuple[int, bytes]] = []
    pending = iter(requests)

    async def worker() -> None:
        conn = await _Connection.open(port)
        try:
            for request in pending:
                t0 = time.perf_counter()
                answers.append(await conn.post(request))
                latencies.append(time.perf_counter() - t0)
        finally:
            conn.close()

    t0 = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    wall = time.perf_counter() - t0
    return {
        "concurrency": concurrency,
        **_summary(latencies, answers),
        "requests_per_s": round(len(answers) / wall, 1),
    }


async def open_loop(port: int, requests: list[bytes], rate: float) -> dict[str, Any]:
    """Requests sent at ``rate`` per second whatever the answers; each latency is counted from
    the request's scheduled time (time spent waiting for a free connection included)."""
    idle: list[_Connection] = []
    opened: list[_Connection] = []
    latencies: list[float] = []
    answers: list[tuple[int, bytes]] = []

    async def one(request: bytes, due: float) -> None:
        conn = idle.pop() if idle else None
        answer = None
        if conn is not None:
            try:
                answer = await conn.post(request)
            except (ConnectionError, asyncio.IncompleteReadError):  # closed while idle
                conn.close()
        if conn is None or answer is None:
            conn = await _Connection.open(port)
            opened.append(conn)
            answer = await conn.post(request)
        answers.append(answer)
        latencies.append(time.perf_counter() - due)
        idle.append(conn)

    tasks = []
    t0 = time.perf_counter() + 0.01
    for i, request in enumerate(requests):
        due = t0 + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.create_task(one(request, due)))
    await asyncio.gather(*tasks)
    wall = time.perf_counter() - t0
    for conn in opened:
        conn.close()
    return {
        "rate_asked": rate,
        **_summary(latencies, answers),
        "achieved_per_s": round(len(answers) / wall, 1),
        "connections": len(opened),
    }


# -- one fresh server ----------------------------------------------------------------------


def _cpu_s(pid: int) -> float:
    """CPU seconds (user + system, every thread) the process ``pid`` has used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def start_server(
    ws: Path, log: Path, ready_within_s: float = 90
) -> tuple[subprocess.Popen[bytes], int]:
    """``spindle serve`` on ``ws`` in its own process (output to ``log``), once it answers
    ``/v2/health/ready``; exits naming the log if it does not within ``ready_within_s``."""
    import httpx

    port = _free_port()
    argv = ["spindle", "serve", "--workspace", str(ws), "--port", str(port)]
    code = f"import sys; from spindle.cli import main; sys.argv = {argv!r}; main()"
    with log.open("ab") as out:  # the server is a separate process from the load generator
        server = subprocess.Popen([sys.executable, "-c", code], stdout=out, stderr=out)
    deadline = time.monotonic() + ready_within_s
    while True:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status_code == 200:
                return server, port
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or server.poll() is not None:
            server.kill()
            raise SystemExit(f"the server did not become ready (its log: {log})")
        time.sleep(0.2)


def one_run(ws: Path, model: str, args: argparse.Namespace, log: Path) -> dict[str, Any]:
    """Start a server, check served == offline, then run the three load phases."""
    import httpx

    server, port = start_server(ws, log)
    url = f"http://127.0.0.1:{port}"
    try:
        schema = httpx.get(f"{url}/v1/models/{model}/schema", timeout=30).json()
        versions = httpx.get(f"{url}/v1/versions", timeout=30).json()["versions"]
        served = max((v for v in versions if v["model"] == model), key=lambda v: float(v["weight"]))
        day, rows = offline_examples(ws, model)
        instances = _instances(rows, schema)
        n = min(args.sample, len(instances))
        # /v1/versions names a version's directory within the repository, not on disk
        from spindle.core import Workspace

        version_dir = Workspace.load(ws).model_repo / served["path"]
        offline = offline_scores(version_dir, rows.slice(0, n))
        check = served_equals_offline(url, model, instances[:n], offline, str(served["version"]))
        check["day"] = day
        path = f"/v1/models/{model}/predict"
        pool = _requests(path, instances)
        cycle = [pool[i % len(pool)] for i in range(max(args.requests, int(args.rate * 15)))]
        asyncio.run(closed_loop(port, cycle[:300], 1))  # warm-up
        result: dict[str, Any] = {"served_equals_offline": check, "phases": {}}
        phases: dict[str, Callable[[], Coroutine[Any, Any, dict[str, Any]]]] = {
            "c1": lambda: closed_loop(port, cycle[: args.requests], 1),
            "c8": lambda: closed_loop(port, cycle[: args.requests], 8),
            "open": lambda: open_loop(port, cycle[: int(args.rate * args.seconds)], args.rate),
        }
        for name, phase in phases.items():
            before, cpu = os.getloadavg()[0], _cpu_s(server.pid)
            outcome = asyncio.run(phase())
            # the server's own CPU per request: what the load of the machine does not change
            used_ms = (_cpu_s(server.pid) - cpu) * 1000
            outcome["server_cpu_ms_per_request"] = round(used_ms / outcome["requests"], 3)
            outcome["loadavg_1m"] = [round(before, 2), round(os.getloadavg()[0], 2)]
            result["phases"][name] = outcome
    finally:
        server.terminate()
        server.wait(timeout=30)
    return result


def _spread(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)
    median = ordered[(len(ordered) - 1) // 2] if len(ordered) % 2 else statistics.median(ordered)
    return {"median": round(median, 3), "min": round(ordered[0], 3), "max": round(ordered[-1], 3)}


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Each phase's figures over the runs: median [min, max]."""
    out: dict[str, Any] = {}
    for phase in runs[0]["phases"]:
        figures = {}
        keys = ("p50_ms", "p90_ms", "p99_ms", "requests_per_s", "achieved_per_s")
        for key in (*keys, "server_cpu_ms_per_request"):
            values = [r["phases"][phase][key] for r in runs if key in r["phases"][phase]]
            if values:
                figures[key] = _spread(values)
        out[phase] = figures
    return out


def _table(summary: dict[str, Any], runs: list[dict[str, Any]]) -> str:
    header = ["p50 ms", "p90 ms", "p99 ms", "req/s", "server CPU ms/req"]
    lines = [f"{'phase':<8}" + "".join(f" {h:>27}" for h in header)]
    for phase, figures in summary.items():
        rate = figures.get("requests_per_s") or figures.get("achieved_per_s") or {}

        def cell(f: dict[str, float]) -> str:
            return f"{f['median']:.2f} [{f['min']:.2f}, {f['max']:.2f}]"

        shown = [figures["p50_ms"], figures["p90_ms"], figures["p99_ms"], rate]
        shown.append(figures["server_cpu_ms_per_request"])
        lines.append(f"{phase:<8}" + "".join(f" {cell(f):>27}" for f in shown))
    for i, run in enumerate(runs):
        check = run["served_equals_offline"]
        loads = {k: v["loadavg_1m"] for k, v in run["phases"].items()}
        lines.append(
            f"run {i + 1}: served == offline on {check['instances']} instances of {check['day']}: "
            f"{check['equal']} (max |diff| {check['max_abs_diff']:.2e}); load avg {loads}"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", help="a workspace with a pushed model (default: build one)")
    parser.add_argument("--model", default="delay")
    parser.add_argument("--days", type=int, default=8, help="days of the built flights demo")
    parser.add_argument("--requests", type=int, default=3000, help="per closed-loop phase")
    parser.add_argument("--rate", type=float, default=200.0, help="open loop: requests/s")
    parser.add_argument("--seconds", type=float, default=15.0, help="open loop: duration")
    parser.add_argument("--sample", type=int, default=300, help="served == offline instances")
    parser.add_argument("--repeat", type=int, default=1, help="fresh servers")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serve-predict-") as tmp:
        if args.workspace:
            ws = Path(args.workspace).resolve()
        else:
            ws = Path(tmp) / "ws"
            _spindle("demo", "--example", "flights", "--days", str(args.days), "--dir", str(ws))
        runs = [one_run(ws, args.model, args, Path(tmp) / "server.log") for _ in range(args.repeat)]
    result = {
        "model": args.model,
        "summary": summarise(runs),
        "served_equals_offline": all(r["served_equals_offline"]["equal"] for r in runs),
        "runs": runs,
        "cpus": os.cpu_count(),
        "loadavg": [round(x, 2) for x in os.getloadavg()],
    }
    print(json.dumps(result, indent=2) if args.json else _table(result["summary"], runs))
    if not result["served_equals_offline"]:
        raise SystemExit("served scores differ from the offline ones")


if __name__ == "__main__":
    main()
