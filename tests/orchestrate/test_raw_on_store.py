"""Raw files, tables and training sets on an S3-compatible store (moto on loopback), in this
process: three days ingested from the bucket's raw files, then the fourth day's whole run
(and a training set rebuilt as 4 parts on the store, equal to the one-task build);
the training sets are objects under ``artifacts_url`` and nothing of them, of the raw files or
of the tables is written to the workspace's folder. A missing raw object and a bad one give
their one-line errors."""

from __future__ import annotations

import json
import shutil
import signal
from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.conftest import START, make_workspace
from tests.objectstore import MotoServer, running_moto
from tests.orchestrate.test_kill_matrix import ARGS, _spindle
from tests.orchestrate.test_two_nodes import _everything_on_store

import spindle
from spindle.core import KILL_ENV, KILL_ONCE_ENV, Location, manifest_file
from spindle.orchestrate import build_training_set, load_config

pytestmark = pytest.mark.e2e

DAYS = [START.isoformat(), "2026-01-02", "2026-01-03"]
PARTS = ["examples.partitions=4", "examples.partition_key=user_id"]


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    yield from running_moto()


# slow (make test-all): the whole day with raw files, tables and training sets on the
# store runs in every CI run in test_two_nodes.py
@pytest.mark.slow
def test_a_day_runs_with_raw_files_and_training_sets_on_the_store(
    tmp_path: Path, moto: MotoServer
) -> None:
    bucket = moto.bucket()
    root = make_workspace(tmp_path / "yarnit", days=4)
    _everything_on_store(root, bucket.url, bucket.options)
    with spindle.Context.open(root) as ctx:
        for day in DAYS:
            spindle.ingest(ctx, day)
            spindle.validate(ctx, day)
        spindle.run_day(ctx, "search_ranker", "2026-01-04", overrides=["training.epochs=1"])
        assert ctx.store.get_alias("search_ranker", "production") == 1
        one = build_training_set(ctx, load_config(ctx, "search_ranker"), DAYS)
        assert one.uri.startswith(f"{bucket.url}/artifacts/trainsets/search_ranker/")
        whole = pq.read_table(Location.of(one.uri, bucket.options).local_copy(tmp_path / "c"))
        Location.of(one.uri, bucket.options).delete()  # gone: rebuilt, now as 4 parts
        four = build_training_set(ctx, load_config(ctx, "search_ranker", PARTS), DAYS)
        assert four.uri == one.uri and four.rows == one.rows == whole.num_rows > 0
        assert pq.read_table(Location.of(four.uri, bucket.options).local_copy()).equals(whole)
    keys = bucket.keys()
    assert any(k.startswith("artifacts/trainsets/search_ranker/") for k in keys)
    assert not (root / "raw").exists() and not (root / ".spindle" / "tables").exists()
    assert not (root / ".spindle" / "artifacts" / "trainsets").exists()
    assert not [k for k in keys if ".parts/" in k]  # the parts are removed from the store


def test_a_fit_killed_after_a_checkpoint_resumes_on_a_machine_without_its_folder(
    tmp_path: Path, moto: MotoServer
) -> None:
    """`spindle run` SIGKILLed right after a checkpoint reached the store; the local checkpoint
    folder is then gone (another machine), and the rerun resumes from the store's checkpoint;
    once the version is recorded nothing of the fit is left on the store."""
    bucket = moto.bucket()
    root = make_workspace(tmp_path / "yarnit", days=2, scale=0.2)
    _everything_on_store(root, bucket.url, bucket.options)
    assert _spindle(root, "ingest", "--date", START.isoformat()).returncode == 0
    args = ["run", "search_ranker", "--date", "2026-01-02", *ARGS]
    args += ["--set", "training.checkpoint_every_steps=2", "--set", "training.window_days=1"]
    env = {KILL_ENV: "checkpoint:kept", KILL_ONCE_ENV: str(tmp_path / "killed-once")}

    killed = _spindle(root, *args, env=env)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    kept = bucket.keys("artifacts/checkpoints/search_ranker")
    assert len(kept) == 1 and kept[0].endswith(".pt"), kept
    shutil.rmtree(root / ".spindle" / "artifacts" / "checkpoints")  # the lost machine's folder

    again = _spindle(root, *args, "--json", env=env)  # the kill point fires once only
    assert again.returncode == 0, again.stdout[-2000:] + again.stderr[-2000:]
    version = json.loads(again.stdout)["version"]
    folder = root / ".spindle" / "artifacts" / "models" / "search_ranker" / str(version)
    manifest = json.loads(manifest_file(folder).read_text())
    fetched = f"fetched the checkpoint of step 2 from {bucket.url}/artifacts/checkpoints/"
    assert any(note.startswith(fetched) for note in manifest["notes"]), manifest["notes"]
    assert manifest["resumed_from_step"] == 2
    assert bucket.keys("artifacts/checkpoints") == []  # removed once the version was recorded


def test_a_forget_removes_the_checkpoints_kept_on_the_store(
    tmp_path: Path, moto: MotoServer
) -> None:
    """Checkpoints hold what was learnt from rows: a forget's leftovers step removes the ones
    on the store too, and says so."""
    from spindle.core import Workspace
    from spindle.orchestrate._forget_places import _remove_leftovers

    bucket = moto.bucket()
    root = make_workspace(tmp_path / "yarnit", days=1, scale=0.2)
    _everything_on_store(root, bucket.url, bucket.options)
    kept = Location.of(f"{bucket.url}/artifacts/checkpoints/m/k/ckpt-1.pt", bucket.options)
    kept.write_bytes(b"weights")
    other = Location.of(f"{bucket.url}/artifacts/trainsets/m/t.parquet", bucket.options)
    other.write_bytes(b"rows")
    removed = _remove_leftovers(Workspace.load(root))
    assert f"{bucket.url}/artifacts/checkpoints" in removed
    assert bucket.keys("artifacts") == ["artifacts/trainsets/m/t.parquet"]
