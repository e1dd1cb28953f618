"""Checkpoints kept on an S3-compatible store (moto on loopback): a run killed on one machine
resumes on another (another local folder) from the store, bit-identical; the store keeps the
last two; a damaged object is skipped; an unwritable store fails the run with one line."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.objectstore import Bucket, MotoServer, options_for, running_moto
from train_runs import Dataset, Stop, kill_then_resume, run_recipe, train_child

from spindle.core import Location, TrainingError
from spindle.train import CheckpointStore, TrainResult, mirror_checkpoints, state_dict_sha256


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    yield from running_moto()


@pytest.fixture()
def bucket(moto: MotoServer) -> Bucket:
    return moto.bucket()


def _mirror(bucket: Bucket) -> Location:
    return Location.of(f"{bucket.url}/checkpoints/m/run1", bucket.options)


def _kept_steps(bucket: Bucket) -> list[int]:
    keys = bucket.keys("checkpoints/m/run1")
    return sorted(int(key.rsplit("-", 2)[-2]) for key in keys)


def test_a_run_killed_on_one_machine_resumes_on_another_from_the_store(
    reference: TrainResult, bucket: Bucket, tmp_path: Path
) -> None:
    # two machines: each has its own checkpoint folder; only the store is shared
    first, second = tmp_path / "node-a" / "ckpt", tmp_path / "node-b" / "ckpt"
    for folder in (first, second):
        mirror_checkpoints(folder, _mirror(bucket))

    def start(slow: bool) -> subprocess.Popen[str]:  # the killed run was on node a
        return train_child(first if slow else second, tmp_path / "v1", slow)

    result = kill_then_resume(start, first, tmp_path / "v1")
    assert result["resumed"] is not None and result["resumed"] >= 10
    assert result["sha"] == reference.weights_sha256
    fetched = f"fetched the checkpoint of step {result['resumed']} from {_mirror(bucket)}"
    assert fetched in result["notes"]
    assert len(_kept_steps(bucket)) == 2  # the finished run's last two: the caller removes them


def test_the_store_keeps_the_last_two_and_a_damaged_one_is_skipped(
    data: Dataset, reference: TrainResult, bucket: Bucket, tmp_path: Path
) -> None:
    mirror_checkpoints(tmp_path / "a", _mirror(bucket))
    with pytest.raises(Stop):
        run_recipe(data, tmp_path / "a", stop_at=35)
    assert _kept_steps(bucket) == [20, 30]
    newest = next(k for k in bucket.keys("checkpoints") if "-0000000030-" in k)
    damaged = Location.of(f"{bucket.url}/{newest}", bucket.options)
    damaged.write_bytes(damaged.read_bytes()[:1000])  # same name, other bytes

    mirror_checkpoints(tmp_path / "b", _mirror(bucket))  # another machine: nothing local
    resumed = run_recipe(data, tmp_path / "b")
    assert resumed.resumed_from_step == 20
    assert any(
        n.startswith("skipped checkpoint") and "do not match its name" in n for n in resumed.notes
    )
    assert state_dict_sha256(resumed.model.state_dict()) == reference.weights_sha256
    store = CheckpointStore(tmp_path / "b", "f" * 64)
    assert store.mirrored_steps() == [40, 48] == store.steps()
    store.close()


def test_a_local_checkpoint_is_preferred_and_another_runs_objects_are_left_alone(
    data: Dataset, bucket: Bucket, tmp_path: Path
) -> None:
    mirror_checkpoints(tmp_path / "a", _mirror(bucket))
    with pytest.raises(Stop):
        run_recipe(data, tmp_path / "a", fingerprint="a" * 64, stop_at=12)
    with pytest.raises(Stop):
        run_recipe(data, tmp_path / "a", stop_at=25)
    again = run_recipe(data, tmp_path / "a")
    assert again.resumed_from_step == 20
    assert not any(n.startswith("fetched") for n in again.notes)  # the folder's own was intact
    assert any(k.split("/")[-1].startswith("ckpt-aaaaaaaa") for k in bucket.keys("checkpoints"))


def test_a_store_that_cannot_be_written_fails_the_run_with_one_line(
    data: Dataset, tmp_path: Path
) -> None:
    where = Location.of("s3://nowhere/ckpt", options_for(f"http://127.0.0.1:{_closed_port()}"))
    mirror_checkpoints(tmp_path, where)
    with pytest.raises(TrainingError) as caught:
        run_recipe(data, tmp_path, stop_at=35)
    message = str(caught.value)
    assert "\n" not in message
    assert "the checkpoint of step 10 could not be kept at s3://nowhere/ckpt" in message
    assert "check that the object store is reachable" in message


def test_the_mirror_file_is_private_and_an_unreadable_one_is_one_line(tmp_path: Path) -> None:
    mirror_checkpoints(tmp_path, Location.of("s3://b/ckpt", {"AWS_SECRET_ACCESS_KEY": "x"}))
    assert (tmp_path / "mirror.json").stat().st_mode & 0o777 == 0o600
    store = CheckpointStore(tmp_path, "f" * 64)
    assert store.mirror == Location.of("s3://b/ckpt", {"AWS_SECRET_ACCESS_KEY": "x"})
    store.close()
    (tmp_path / "mirror.json").write_text("{not json")
    with pytest.raises(TrainingError, match=r"mirror\.json is unreadable .*delete it"):
        CheckpointStore(tmp_path, "f" * 64)
    mirror_checkpoints(tmp_path, None)  # back to local only
    assert not (tmp_path / "mirror.json").exists()
    CheckpointStore(tmp_path, "f" * 64).close()  # the lock was released by the failed one


def _closed_port() -> int:
    """A loopback port that nothing listens on (connections are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
