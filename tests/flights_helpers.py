"""Helpers shared by the tests that run the flights example through the CLI and serve it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa

from spindle.features import OnlineStore

# The delay model's entity keys, and the request columns a caller sends (features/schedule.yaml)
KEYS = ["carrier", "origin", "dest", "tailnum"]
REQUEST = ["sched_dep_time", "sched_dep_date"]


def cli(cwd: Path, *args: str, timeout: int = 500) -> str:
    """Run ``spindle ARGS`` in ``cwd`` (this interpreter's venv first on PATH); its stdout.

    Fails the test with the command's last output when it exits non-zero.
    """
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["spindle", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, done.stderr[-3000:] + done.stdout[-2000:]
    return done.stdout


def online_rows(store_path: Path, instances: pa.Table, views: dict[str, list[str]]) -> pa.Table:
    """The instances joined with every row the online store holds for each view (``views``:
    view name -> its entity keys, from the model's ``/schema``), in the instances' order."""
    store = OnlineStore(store_path)
    try:
        rows = instances.append_column("i", pa.array(range(instances.num_rows)))
        for view, keys in views.items():
            held = store.backend.read(view)
            assert held is not None
            drop = [c for c in held.column_names if c in ("__spindle_key", "feature_ts")]
            rows = rows.join(held.drop_columns(drop), list(keys), join_type="left outer")
        return rows.sort_by("i")
    finally:
        store.close()


def ingested_flights(root: Path, days: list[str]) -> Path:
    """A flights workspace under ``root`` (``spindle init --example flights``) with ``days``
    ingested (features computed, online store filled)."""
    from typer.testing import CliRunner

    from spindle.cli import app

    ws = root / "ws"
    runner = CliRunner()
    assert runner.invoke(app, ["init", str(ws), "--example", "flights"]).exit_code == 0
    result = runner.invoke(app, ["ingest", "--since", days[0], "--until", days[-1], "-w", str(ws)])
    assert result.exit_code == 0, result.output
    return ws


def one_view(folder: Path, view: str, features: str, *, sources: str = "") -> Path:
    """A features folder holding one view file ``v.yaml`` (group ``v``, entity airport keyed by
    ``faa``; ``view`` and ``features`` are the YAML of those keys, indented) for a workspace's
    sources to load."""
    folder.mkdir(parents=True)
    (folder / "v.yaml").write_text(
        "group: v\nowner: me\nentity: {name: airport, keys: [faa]}\n"
        + (f"sources: [{sources}]\n" if sources else "")
        + f"view:\n{view}features:\n{features}"
    )
    return folder


def delay_rows(ws_path: Path, day: str) -> pa.Table:
    """The flights ``delay`` model's training-set rows of ``day``, as spindle builds them."""
    from spindle.core import Workspace, load_sources
    from spindle.features import FeatureRegistry, build_rows

    ws = Workspace.load(ws_path)
    sources = load_sources(ws.root)
    registry = FeatureRegistry.load(ws.features_dir, sources)
    config, _ = ws.model_config("delay")
    return build_rows(
        ws.tables_dir, config, registry.resolve(config), (day,), sources=sources
    ).table
