"""Tasks on a second Ray node that cannot see the workspace's folder.

A Ray head (no CPUs) and a second node are started as separate ``ray start`` processes with
their own temp dirs; the second node is started in a mount namespace of its own where the
test's folder (holding the workspace) is an empty tmpfs, so its workers cannot read a file of
the workspace. The Delta tables are on an S3-compatible server on loopback (moto). A backfill
of a Python feature's new version then runs every day as a task on the second node: it reaches
the tables only through the object store, and the feature's code and the workspace's
declarations only as shipped to the cluster. With the raw files and the training sets on the
store too, a whole daily run (`spindle run --executor ray`) has its ingest, features, both
training sets and the fit run there (the fit in the node's temp folder, its files sent back),
as the run records say, and the version goes to production.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pyarrow.compute as pc
import pytest
import yaml
from tests.conftest import START, make_workspace
from tests.objectstore import MotoServer, running_moto
from tests.orchestrate.test_objectstore_day import _on_store
from tests.raycluster import hiding_works, start_cluster

import spindle
from spindle.core import Location, open_dataset
from spindle.features import feature_table_path

pytest.importorskip("ray")
pytestmark = pytest.mark.e2e

DAYS = [START.isoformat(), "2026-01-02", "2026-01-03"]
NEW_VERSION = """  - name: name_word_count
    version: 2
    description: Number of words in the product name, again (a new version to backfill).
    dtype: int64
    python: product_features.py:name_word_count
    encoding: {kind: numeric}
"""


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    yield from running_moto()


@pytest.fixture
def second_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A head of 0 CPUs and a node of 2 CPUs that does not see ``tmp_path``; its address."""
    if not hiding_works():
        pytest.skip("`unshare -m` is not permitted here: the second node could see the workspace")
    import ray

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    cluster = start_cluster(0, [2], hide=tmp_path)
    try:
        yield cluster.address
    finally:
        ray.shutdown()
        cluster.stop()  # this cluster's processes only: never another test run's Ray


# slow (make test-all): the whole day below runs its tasks on the node in every CI run; a
# backfill's days as Ray tasks are checked on a local Ray in test_ray_tasks.py
@pytest.mark.slow
def test_a_backfill_runs_on_a_node_without_the_workspace(
    tmp_path: Path, moto: MotoServer, second_node: str
) -> None:
    import ray

    bucket = moto.bucket()
    root = make_workspace(tmp_path / "yarnit", days=3)
    _on_store(root, f"{bucket.url}/tables", bucket.options)
    with spindle.Context.open(root) as ctx:  # the history, in this process
        for day in DAYS:
            spindle.ingest(ctx, day)
    features = root / "features" / "product.yaml"
    features.write_text(features.read_text() + NEW_VERSION)
    with spindle.Context.open(root) as ctx:
        ctx.use_executor("ray", second_node)  # an address: the workspace is shipped
        run = spindle.backfill(ctx, "product.name_word_count@2", DAYS[0], DAYS[-1])
        assert run.result.written == DAYS
        placements = getattr(ctx.tasks, "placements", [])
        (worker,) = [n["NodeID"] for n in ray.nodes() if n["Resources"].get("CPU")]
        assert len(placements) == len(DAYS) and {node for _, node in placements} == {worker}
        # the node's workers cannot see the workspace's folder at all
        sees = ray.remote(num_cpus=1)(os.path.exists)
        assert ray.get(sees.remote(str(root / "spindle.yaml"))) is False
        assert (root / "spindle.yaml").exists()
        table = open_dataset(feature_table_path(ctx.workspace.tables_dir, "product")).to_table()
    for day in DAYS:
        rows = table.filter(pc.equal(table["date"], day))
        assert rows.num_rows > 0
        new, old = rows["product__name_word_count__v2"], rows["product__name_word_count__v1"]
        assert new.equals(old), day  # the same function, computed on the other node
    assert not (root / ".spindle" / "tables").exists()


def _everything_on_store(root: Path, url: str, options: dict[str, str]) -> None:
    """Raw files, tables and training sets in the bucket: the raw folder uploaded and removed,
    the sources' locations rewritten to its URLs (raw_dir, tables_url, artifacts_url)."""
    raw = Location.of(f"{url}/raw", options)
    for file in sorted(p for p in (root / "raw").rglob("*") if p.is_file()):
        (raw / file.relative_to(root / "raw").as_posix()).put_file(file)
    shutil.rmtree(root / "raw")
    for declaration in (root / "sources").glob("*.yaml"):
        text = declaration.read_text()
        declaration.write_text(text.replace("location: raw/", f"location: {url}/raw/"))
    config_file = root / "spindle.yaml"
    config = yaml.safe_load(config_file.read_text())
    config |= {"raw_dir": f"{url}/raw", "tables_url": f"{url}/tables"}
    config |= {"artifacts_url": f"{url}/artifacts", "storage_options": options}
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))


def test_a_whole_day_runs_on_a_node_without_the_workspace(
    tmp_path: Path, moto: MotoServer, second_node: str
) -> None:
    """`spindle run --executor ray --ray-address ...`, as a user types it: the day's ingest,
    features, both training sets and the fit run on the second node, as the steps' run
    records say (each task's node, named by Ray's runtime context in the task)."""
    import ray

    from spindle.orchestrate._tasks import init_ray

    bucket = moto.bucket()
    root = make_workspace(tmp_path / "yarnit", days=4)
    _everything_on_store(root, bucket.url, bucket.options)
    with spindle.Context.open(root) as ctx:  # the history, in this process
        for day in DAYS:
            spindle.ingest(ctx, day)
            spindle.validate(ctx, day)
    day = "2026-01-04"
    exe = Path(sys.executable).parent / "spindle"
    command = [str(exe), "run", "search_ranker", "--date", day, "--set", "training.epochs=1"]
    command += ["--executor", "ray", "--ray-address", second_node, "--json", "-w", str(root)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["error"] is None and report["version"] == 1, report
    init_ray(second_node)
    (worker,) = [n["NodeID"] for n in ray.nodes() if n["Resources"].get("CPU")]
    sees = ray.remote(num_cpus=1)(os.path.exists)
    assert ray.get(sees.remote(str(root / "spindle.yaml"))) is False
    with spindle.Context.open_reader(root) as ctx:
        assert ctx.store.get_alias("search_ranker", "production") == 1
        runs = ctx.store.runs(limit=None)  # the history ran here: no run has ran_on
    placed = {
        t["task"]: t["node"]
        for r in runs
        if r.status == "succeeded"
        for t in r.params.get("ran_on", [])
    }
    assert sorted(placed) == sorted(
        [
            f"ingest {day}",
            f"features {day}",
            f"training set search_ranker train {DAYS[0]}..{DAYS[-1]}",
            f"train search_ranker {day}",
            f"training set search_ranker holdout {day}..{day}",
        ]
    ), placed
    assert set(placed.values()) == {worker}, placed
    keys = bucket.keys()
    assert any(k.startswith("artifacts/trainsets/search_ranker/") for k in keys), keys[:20]
    assert any(k.startswith("artifacts/models/search_ranker/1/") for k in keys), keys[:20]
    assert not (root / "raw").exists() and not (root / ".spindle" / "tables").exists()
    assert not (root / ".spindle" / "artifacts" / "trainsets").exists()
