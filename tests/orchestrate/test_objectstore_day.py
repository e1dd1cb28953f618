"""A whole day with the Delta tables on an S3-compatible object store (moto's server on
loopback): ingest and validate three days, then ``spindle run search_ranker`` through the CLI
in a subprocess. The tables are in the bucket; nothing of them is left in the local state
folder, and no folder named ``s3:`` appears anywhere."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.conftest import START, make_workspace
from tests.objectstore import Bucket, MotoServer, running_moto

import spindle
from spindle.core import open_dataset

pytestmark = pytest.mark.e2e

DAY = (START + dt.timedelta(days=3)).isoformat()


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    yield from running_moto()


def _on_store(root: Path, url: str, options: dict[str, str]) -> None:
    """Point the workspace's tables at ``url`` (spindle.yaml's tables_url, storage_options)."""
    config_file = root / "spindle.yaml"
    config = yaml.safe_load(config_file.read_text())
    config["tables_url"] = url
    config["storage_options"] = options
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))


def _s3_folders(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.startswith("s3:")]


# slow (make test-all): a day with every store on moto runs in every CI run in
# test_raw_on_store.py and, on a second Ray node, in test_two_nodes.py
@pytest.mark.slow
def test_a_day_runs_with_its_tables_on_an_object_store(tmp_path: Path, moto: MotoServer) -> None:
    bucket = moto.bucket()
    root = make_workspace(tmp_path / "yarnit", days=4)
    _on_store(root, f"{bucket.url}/yarnit/tables", bucket.options)
    with spindle.Context.open(root) as ctx:
        for i in range(3):
            day = (START + dt.timedelta(days=i)).isoformat()
            spindle.ingest(ctx, day)
            spindle.validate(ctx, day)
    exe = Path(sys.executable).parent / "spindle"
    flags = ["--set", "training.epochs=1", "--json", "--workspace", str(root)]
    done = subprocess.run(
        [str(exe), "run", "search_ranker", "--date", DAY, *flags],
        capture_output=True,
        text=True,
        timeout=900,
        cwd=tmp_path,
    )
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])
    assert json.loads(done.stdout)["error"] is None
    with spindle.Context.open_reader(root) as ctx:
        assert ctx.store.get_alias("search_ranker", "production") == 1
    with spindle.Context.open(root) as ctx:  # the store answers, and every table reads
        assert [p for p in spindle.doctor(ctx) if p.kind in ("tables", "table")] == []
    keys = bucket.keys("yarnit/tables")
    for table in ("raw/", "quarantine/_delta_log/", "features/", "stats/_delta_log/"):
        assert any(k.startswith(f"yarnit/tables/{table}") for k in keys), table
    assert any(f"date={DAY}/" in k and k.startswith("yarnit/tables/raw/") for k in keys)
    assert not (root / ".spindle" / "tables").exists()
    assert _s3_folders(tmp_path) == []


def test_doctor_says_where_tables_live_and_a_missing_bucket_is_one_line(
    tmp_path: Path, moto: MotoServer
) -> None:
    bucket: Bucket = moto.bucket()
    root = make_workspace(tmp_path / "yarnit", days=1)
    _on_store(root, "s3://no-such-bucket/tables", bucket.options)
    exe = Path(sys.executable).parent / "spindle"
    done = subprocess.run(
        [str(exe), "ingest", "--date", START.isoformat(), "--workspace", str(root)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 1
    said = done.stdout + done.stderr
    assert "s3://no-such-bucket/tables" in said and "the bucket" in said, said[-2000:]
    assert "Traceback" not in said
    with spindle.Context.open(root) as ctx:
        found = [p for p in spindle.doctor(ctx) if p.kind == "tables"]
    assert [p.subject for p in found] == ["s3://no-such-bucket/tables"]
    assert "the bucket" in found[0].message
    assert _s3_folders(tmp_path) == []


def test_an_ingested_day_is_undone_on_the_store(tmp_path: Path, moto: MotoServer) -> None:
    """``spindle ingest --undo`` finds the day's tables by listing the bucket and removes the
    day's rows with a new version of each; the day before is untouched."""
    bucket = moto.bucket()
    root = make_workspace(tmp_path / "yarnit", days=2)
    _on_store(root, f"{bucket.url}/t", bucket.options)
    second = (START + dt.timedelta(days=1)).isoformat()
    exe = Path(sys.executable).parent / "spindle"
    for flags in (["--since", START.isoformat(), "--until", second], ["--date", second, "--undo"]):
        done = subprocess.run(
            [str(exe), "ingest", *flags, "--json", "--workspace", str(root)],
            capture_output=True,
            text=True,
            timeout=600,
        )
        assert done.returncode == 0, (flags, done.stdout[-2000:], done.stderr[-2000:])
    tables = spindle.Workspace.load(root).tables_dir
    raw = [t for t in tables.delta_tables() if t.relative_to(tables).parts[0] == "raw"]
    left = {
        t.name: set(open_dataset(t).to_table(columns=["date"]).column("date").to_pylist())
        for t in raw
    }
    assert all(second not in days for days in left.values()), left
    assert sum(START.isoformat() in days for days in left.values()) >= 3, left
    assert not (root / ".spindle" / "tables").exists()
    assert _s3_folders(tmp_path) == []
