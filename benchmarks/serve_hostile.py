"""The server under large and hostile requests (issue 14, items 1 and 2): peak RSS under the
largest request the limits allow, p99 of ``/v2/health/live`` while such requests are served,
and the count of 5xx answers (and reset connections) over generated hostile bodies.

Starts ``spindle serve`` on a workspace in its own process (as ``serve_predict.py`` does); this
process sends the requests and reads the server's memory from ``/proc/<pid>/status`` (VmRSS
now, VmHWM the peak since it started). Phases, in order:

1. idle: RSS after start-up and a few ordinary predicts.
2. maximal: for ``--seconds``, one client sends the largest requests the default limits allow,
   back to back, alternating a predict of 10,000 instances (each padded with a string field to
   a body of nearly 16 MiB) and a V2 infer of 10,000 rows (long decimal literals, nearly
   16 MiB); meanwhile another client asks ``/v2/health/live`` every 20 ms. Peak RSS (VmHWM),
   RSS 3 s after the phase, the health latencies (p50/p99/max) and the large requests' answers.
3. hostile: ``--hostile`` generated requests (seeded): valid predict, rank and V2 bodies built
   from the model's schema with one to three values replaced by hostile ones (NaN, Infinity,
   1e39, 2**70, lone surrogates, 5,000-character strings, wrong types, nesting), cut short,
   junk bytes, nested past any parser's limit, bad binary-extension headers, junk path
   segments on every route. Counts answers by status; a 5xx or a reset connection is a failure.
4. oversized (``--oversized-mb``, 0 to skip): one V2 infer of that many MB (the issue's 1M rows,
   110 MB), with the health probe running: its answer, time, and the server's RSS after.

    PYTHONPATH=src .venv/bin/python benchmarks/serve_hostile.py --workspace /tmp/sp8n \\
        [--model delay] [--seconds 20] [--hostile 10000] [--oversized-mb 110] [--json OUT]

Run it with ``PYTHONPATH`` pointing at another checkout's ``src`` to measure that one (the
server subprocess inherits it). Without ``--workspace`` it builds one with ``spindle demo
--example flights --days 8``.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

MAX_BODY_BYTES = 16 * 1024 * 1024  # the default limits (spindle.serve.ServingLimits)
MAX_INSTANCES = 10_000
MAX_STRING_CHARS = 4096


def _memory(pid: int) -> dict[str, float]:
    """The process's resident memory now (VmRSS) and its peak so far (VmHWM), MB."""
    out = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            out[name] = round(int(value.split()[0]) / 1024, 1)
    return out


def _start_server(ws: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    """``spindle serve`` on ``ws`` in its own process, ready (serve_predict.py's start)."""
    from serve_predict import start_server  # the script beside this one

    server, port = start_server(ws, log, ready_within_s=120)
    return server, f"http://127.0.0.1:{port}"


# -- bodies ----------------------------------------------------------------------------------

_VALUES = {"string": ["UA", "JFK", "LGA", "EWR", "LAX", "N14228", "2013-01-08"], "integer": [930]}


def _instance(schema: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    fields = {**schema["keys"], **schema["request_columns"]}
    out: dict[str, Any] = {}
    for name, kind in fields.items():
        if name == "sched_dep_date" or "date" in name:
            out[name] = "2013-01-08"
        else:
            out[name] = rng.choice(_VALUES.get(kind, [1.5]))
    return out


def _tensors(inputs: list[dict[str, Any]], rows: int, literal: str = "0.5") -> str:
    """A V2 infer body of ``rows`` rows as JSON text: index 0 in integer inputs, ``literal``
    in float ones (written as given, so a long literal makes a large body)."""
    parts = []
    for spec in inputs:
        width = int(np.prod([d for d in spec["shape"][1:]])) if len(spec["shape"]) > 1 else 1
        shape = [rows, *spec["shape"][1:]]
        value = literal if spec["datatype"].startswith("FP") else "0"
        data = ",".join([value] * (rows * width))
        parts.append(
            f'{{"name": "{spec["name"]}", "shape": {json.dumps(shape)}, '
            f'"datatype": "{spec["datatype"]}", "data": [{data}]}}'
        )
    return '{"inputs": [' + ", ".join(parts) + "]}"


def maximal_predict(schema: dict[str, Any]) -> bytes:
    """10,000 instances, each padded with a string field, to just under 16 MiB."""
    base = _instance(schema, random.Random(0))
    plain = len(json.dumps({"instances": [base] * MAX_INSTANCES}))
    pad = min(MAX_STRING_CHARS, (MAX_BODY_BYTES - plain - 65536) // MAX_INSTANCES - 12)
    instance = {**base, "note": "n" * pad}
    body = json.dumps({"instances": [instance] * MAX_INSTANCES}).encode()
    assert len(body) <= MAX_BODY_BYTES, len(body)
    return body


def maximal_infer(inputs: list[dict[str, Any]]) -> bytes:
    """10,000 rows with float literals as long as fit, to just under 16 MiB."""
    plain = len(_tensors(inputs, MAX_INSTANCES))
    floats = (
        sum(int(np.prod(s["shape"][1:])) for s in inputs if s["datatype"].startswith("FP"))
        * MAX_INSTANCES
    )
    extra = max(0, (MAX_BODY_BYTES - plain - 65536) // max(floats, 1))
    literal = "0.5" + "0" * extra
    body = _tensors(inputs, MAX_INSTANCES, literal).encode()
    assert len(body) <= MAX_BODY_BYTES, len(body)
    return body


HOSTILE: list[Any] = [
    float("nan"),
    float("inf"),
    float("-inf"),
    1e39,
    3.4e38,
    2**70,
    -(2**63) - 1,
    2**53 + 1,
    10**9,
    -1,
    0,
    1.5,
    -0.0,
    True,
    False,
    None,
    "",
    "   ",
    "\t\n",
    "\ud800",
    "a\udfffb",
    "x" * 5000,
    "é\u0000",
    "1",
    [],
    {},
    [[[]]],
    [1, "a"],
    {"a": [1, "b"]},
    [None],
    [float("nan")],
]


def _leaves(value: Any, at: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [at, *(p for k, v in value.items() for p in _leaves(v, (*at, k)))]
    if isinstance(value, list):
        return [at, *(p for i, v in enumerate(value) for p in _leaves(v, (*at, i)))]
    return [at]


def _replaced(value: Any, at: tuple[Any, ...], new: Any) -> Any:
    if not at:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[at[0]] = _replaced(value[at[0]], at[1:], new)
    return copy


def _junk(rng: random.Random, depth: int = 0) -> Any:
    roll = rng.random()
    if depth > 2 or roll < 0.6:
        return rng.choice(HOSTILE)
    if roll < 0.8:
        return [_junk(rng, depth + 1) for _ in range(rng.randint(0, 4))]
    return {rng.choice(["x", "k", "", "\ud800"]): _junk(rng, depth + 1) for _ in range(3)}


def _valid(
    route: str, schema: dict[str, Any], inputs: list[dict[str, Any]], rng: random.Random
) -> Any:
    if route == "predict":
        return {"instances": [_instance(schema, rng) for _ in range(rng.randint(1, 4))]}
    if route == "model_rank":
        return {"context": _instance(schema, rng), "candidates": ["UA", "DL"], "k": 2}
    if route == "rank":
        return {**_instance(schema, rng), "candidates": ["UA"], "k": 3}
    return json.loads(_tensors(inputs, rng.randint(1, 3)))


def hostile_request(
    model: str, schema: dict[str, Any], inputs: list[dict[str, Any]], rng: random.Random
) -> tuple[str, str, bytes, dict[str, str]]:
    """One generated request: method, path, body, headers."""
    segments = [model, "1", "0", "-1", "x" * 300, "%FF", "..", "Bad.Name", "%ED%A0%80", "%00"]
    if rng.random() < 0.08:
        template = rng.choice(
            [
                "/v1/models/{m}/schema",
                "/v2/models/{m}",
                "/v2/models/{m}/versions/{v}/ready",
                "/v2/{m}",
                "/v1/{m}",
                "/v1/versions",
            ]
        )
        return "GET", template.format(m=rng.choice(segments), v=rng.choice(segments)), b"", {}
    route = rng.choice(["predict", "model_rank", "rank", "infer", "version_infer"])
    paths = {
        "predict": "/v1/models/{m}/predict",
        "model_rank": "/v1/models/{m}/rank",
        "rank": "/v1/rank",
        "infer": "/v2/models/{m}/infer",
        "version_infer": "/v2/models/{m}/versions/{v}/infer",
    }
    known = rng.random() < 0.9
    path = paths[route].format(
        m=model if known else rng.choice(segments), v="7" if known else rng.choice(segments)
    )
    body_value = _valid(route.removeprefix("version_"), schema, inputs, rng)
    for _ in range(rng.randint(1, 3)):
        body_value = _replaced(body_value, rng.choice(_leaves(body_value)), _junk(rng))
    body = json.dumps(body_value, ensure_ascii=True, allow_nan=True).encode()
    headers = {"content-type": rng.choice(["application/json", "text/plain"])}
    roll = rng.random()
    if roll < 0.08:
        body = body[: rng.randint(0, len(body))]
    elif roll < 0.12:
        body = rng.randbytes(rng.randint(0, 64))
    elif roll < 0.14:
        body = b"[" * 20_000 + b"]" * 20_000
    if "infer" in route and rng.random() < 0.15:
        headers["inference-header-content-length"] = rng.choice(
            [str(len(body)), "0", "-1", "abc", "99999999", str(len(body) // 2)]
        )
        body += rng.randbytes(rng.randint(0, 64))
    return "POST", path, body, headers


# -- phases ----------------------------------------------------------------------------------


class _Probe:
    """``GET /v2/health/live`` every ``interval_s`` on its own connection, timing each."""

    def __init__(self, url: str, interval_s: float = 0.02) -> None:
        self.url, self.interval_s = url, interval_s
        self.latencies_s: list[float] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        import httpx

        with httpx.Client(base_url=self.url, timeout=60) as client:
            while not self._stop.is_set():
                t0 = time.perf_counter()
                try:
                    ok = client.get("/v2/health/live").status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.latencies_s.append(time.perf_counter() - t0)
                self.failures += not ok
                self._stop.wait(self.interval_s)

    def __enter__(self) -> _Probe:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def summary(self) -> dict[str, Any]:
        lat = np.asarray(self.latencies_s or [0.0]) * 1000
        return {
            "probes": len(self.latencies_s),
            "failures": self.failures,
            "p50_ms": round(float(np.percentile(lat, 50)), 1),
            "p99_ms": round(float(np.percentile(lat, 99)), 1),
            "max_ms": round(float(lat.max()), 1),
        }


def maximal_phase(
    url: str, pid: int, model: str, bodies: list[bytes], seconds: float
) -> dict[str, Any]:
    import httpx

    sent: Counter[str] = Counter()
    latencies: list[float] = []
    paths = [f"/v1/models/{model}/predict", f"/v2/models/{model}/infer"]
    with httpx.Client(base_url=url, timeout=300) as client, _Probe(url) as probe:
        deadline = time.monotonic() + seconds
        i = 0
        while time.monotonic() < deadline:
            t0 = time.perf_counter()
            answer = client.post(
                paths[i % 2], content=bodies[i % 2], headers={"content-type": "application/json"}
            )
            latencies.append(time.perf_counter() - t0)
            sent[f"{paths[i % 2].rsplit('/', 1)[1]} {answer.status_code}"] += 1
            i += 1
    peak = _memory(pid)
    time.sleep(3)
    return {
        "requests": dict(sent),
        "request_s": {
            "p50": round(float(np.percentile(latencies, 50)), 2),
            "max": round(float(np.max(latencies)), 2),
        },
        "body_mb": [round(len(b) / 1e6, 1) for b in bodies],
        "health": probe.summary(),
        "peak_rss_mb": peak["VmHWM"],
        "rss_after_3s_mb": _memory(pid)["VmRSS"],
    }


def hostile_phase(
    url: str, model: str, schema: dict[str, Any], inputs: list[dict[str, Any]], n: int, seed: int
) -> dict[str, Any]:
    import httpx

    rng = random.Random(seed)
    statuses: Counter[int] = Counter()
    failures: list[dict[str, Any]] = []
    resets = 0
    largest_error = 0
    with httpx.Client(base_url=url, timeout=60) as client:
        for _ in range(n):
            method, path, body, headers = hostile_request(model, schema, inputs, rng)
            try:
                answer = client.request(method, path, content=body or None, headers=headers)
            except httpx.TransportError as exc:
                resets += 1
                if len(failures) < 5:
                    failures.append(
                        {"path": path, "body": body[:200].decode("latin-1"), "error": repr(exc)}
                    )
                continue
            statuses[answer.status_code] += 1
            if answer.status_code >= 400:
                largest_error = max(largest_error, len(answer.content))
            if answer.status_code >= 500 and len(failures) < 5:
                failures.append(
                    {
                        "path": path,
                        "body": body[:200].decode("latin-1"),
                        "status": answer.status_code,
                        "answer": answer.text[:200],
                    }
                )
    return {
        "requests": n,
        "seed": seed,
        "status_codes": {str(k): v for k, v in sorted(statuses.items())},
        "5xx": sum(v for k, v in statuses.items() if k >= 500),
        "reset_connections": resets,
        "largest_error_bytes": largest_error,
        "first_failures": failures,
    }


def oversized_phase(
    url: str, pid: int, model: str, inputs: list[dict[str, Any]], mb: float
) -> dict[str, Any]:
    import httpx

    per_row = sum(  # bytes: "0.5," a float, "0," an integer
        int(np.prod(s["shape"][1:])) * (4 if s["datatype"].startswith("FP") else 2) for s in inputs
    )
    rows = int(mb * 1e6 / per_row)
    body = _tensors(inputs, rows).encode()
    with httpx.Client(base_url=url, timeout=600) as client, _Probe(url) as probe:
        t0 = time.perf_counter()
        try:
            answer = client.post(f"/v2/models/{model}/infer", content=body)
            status, text = answer.status_code, answer.text[:200]
        except httpx.HTTPError as exc:
            status, text = 0, repr(exc)
        took = time.perf_counter() - t0
        time.sleep(0.5)
    peak = _memory(pid)
    time.sleep(3)
    return {
        "rows": rows,
        "body_mb": round(len(body) / 1e6, 1),
        "status": status,
        "answer": text,
        "seconds": round(took, 2),
        "health": probe.summary(),
        "peak_rss_mb": peak["VmHWM"],
        "rss_after_3s_mb": _memory(pid)["VmRSS"],
    }


def run(ws: Path, args: argparse.Namespace, log: Path) -> dict[str, Any]:
    import httpx

    server, url = _start_server(ws, log)
    pid = server.pid
    try:
        schema = httpx.get(f"{url}/v1/models/{args.model}/schema", timeout=30).json()
        inputs = httpx.get(f"{url}/v2/models/{args.model}", timeout=30).json()["inputs"]
        rng = random.Random(0)
        with httpx.Client(base_url=url, timeout=30) as client:  # warm-up: ordinary predicts
            for _ in range(50):
                client.post(
                    f"/v1/models/{args.model}/predict",
                    json={"instances": [_instance(schema, rng) for _ in range(4)]},
                )
        time.sleep(1)
        result: dict[str, Any] = {"idle": _memory(pid)}
        bodies = [maximal_predict(schema), maximal_infer(inputs)]
        result["maximal"] = maximal_phase(url, pid, args.model, bodies, args.seconds)
        result["hostile"] = hostile_phase(url, args.model, schema, inputs, args.hostile, args.seed)
        if args.oversized_mb > 0:
            result["oversized"] = oversized_phase(url, pid, args.model, inputs, args.oversized_mb)
        result["server_alive"] = server.poll() is None
    finally:
        server.terminate()
        server.wait(timeout=60)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workspace", help="a workspace with a pushed model (default: build one)")
    parser.add_argument("--model", default="delay")
    parser.add_argument("--days", type=int, default=8, help="days of the built flights demo")
    parser.add_argument("--seconds", type=float, default=20.0, help="maximal requests: duration")
    parser.add_argument("--hostile", type=int, default=10_000, help="generated hostile requests")
    parser.add_argument("--seed", type=int, default=14)
    parser.add_argument("--oversized-mb", type=float, default=110.0, help="0: skip that phase")
    parser.add_argument("--json", help="write the result here too")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="serve-hostile-") as tmp:
        if args.workspace:
            ws = Path(args.workspace).resolve()
        else:
            ws = Path(tmp) / "ws"
            code = "import sys; from spindle.cli import main; sys.argv = sys.argv[1:]; main()"
            demo = ["spindle", "demo", "--example", "flights", "--days", str(args.days)]
            subprocess.run([sys.executable, "-c", code, *demo, "--dir", str(ws)], check=True)
        load = os.getloadavg()[0]
        result = run(ws, args, Path(tmp) / "server.log")
        result["loadavg_1m"] = [round(load, 2), round(os.getloadavg()[0], 2)]
    text = json.dumps(result, indent=2)
    print(text)
    if args.json:
        Path(args.json).write_text(text + "\n")


if __name__ == "__main__":
    main()
