"""The model repository on an S3-compatible store (moto's server on loopback): versions appear
by their manifest, routing.json changes by compare-and-swap, a tampered object is refused."""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.objectstore import MotoServer, options_for, running_moto

from spindle.core import DataError, Location, ServingError, read_package
from spindle.serve import ChecksumMismatch, ModelRuntime
from spindle.serve._repository import Routing
from spindle.serve._repository_s3 import RoutingConflict, S3Repository
from spindle.serve._store_mirror import StoreMirror

MODEL = "search_ranker"


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    yield from running_moto()


@pytest.fixture
def store(moto: MotoServer) -> S3Repository:
    bucket = moto.bucket()
    return S3Repository(Location.of(f"{bucket.url}/repo", bucket.options))


def _twin(store: S3Repository) -> S3Repository:
    """Another writer of the same repository (another machine: its own client and ETags)."""
    return S3Repository(store.location)


def _hash(version_dir: Path) -> str:
    return read_package(version_dir).content_hash


def test_push_uploads_the_version_manifest_last_and_routes_it(
    make_version, store, tmp_path: Path
) -> None:
    one = make_version(1)
    result = store.push(one, registered=_hash(one))
    assert result.created and result.version == 1
    keys = sorted(store.bucket.listing(MODEL))
    assert keys == [
        f"{MODEL}/1/config.pbtxt",
        f"{MODEL}/1/manifest.json",
        f"{MODEL}/1/model.onnx",
        f"{MODEL}/1/transform.json",
        f"{MODEL}/routing.json",
    ]
    assert store.list_versions(MODEL) == [1] and store.models() == [MODEL]
    assert _twin(store).read_routing(MODEL).weights == {1: 1.0}
    assert store.repository_id() is not None
    again = store.push(one)
    assert not again.created and again.routing.weights == {1: 1.0}  # a no-op
    with pytest.raises(ServingError, match="immutable"):
        store.push(make_version(1, factor=2.0))  # same number, other bytes: compared, refused
    assert ModelRuntime.load(store.download(MODEL, 1, tmp_path / "v")).version == 1


def test_two_writers_race_on_routing_and_one_loses(make_version, store) -> None:
    store.push(make_version(1))
    store.push(make_version(2, factor=2.0), weight=0.5)
    a, b = _twin(store), _twin(store)
    seen_a, seen_b = a.read_routing(MODEL), b.read_routing(MODEL)
    assert seen_a == seen_b
    a.write_routing(Routing(MODEL, {1: 1.0}, 2))
    with pytest.raises(RoutingConflict, match=r"changed since it was read.*run the command again"):
        b.write_routing(Routing(MODEL, {2: 1.0}, 1))
    assert store.read_routing(MODEL).weights == {1: 1.0}  # the winner's, not overwritten
    # a first routing is created with If-None-Match: only one creator wins
    c, d = _twin(store), _twin(store)
    c.read_routing("other_model"), d.read_routing("other_model")
    c.write_routing(Routing("other_model", {1: 1.0}))
    with pytest.raises(RoutingConflict):
        d.write_routing(Routing("other_model", {2: 1.0}))


def test_pushes_racing_from_two_machines_lose_no_routing_write(make_version, store) -> None:
    store.push(make_version(1))
    two, three = make_version(2, factor=2.0), make_version(3, factor=3.0)
    for version_dir in (two, three):
        store.install_version(version_dir)
    errors: list[BaseException] = []

    def push(version_dir: Path) -> None:
        try:
            _twin(store).push(version_dir, weight=0.25)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=push, args=(v,)) for v in (two, three) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    weights = store.read_routing(MODEL).weights
    # both pushes are in the routing: neither write was lost (each 0.25 share once planned)
    assert set(weights) == {1, 2, 3} and weights[2] > 0 and weights[3] > 0
    assert abs(sum(weights.values()) - 1.0) < 1e-9


def test_route_and_rollback(make_version, store) -> None:
    one, two = make_version(1), make_version(2, factor=2.0)
    store.push(one)
    store.push(two)
    assert store.read_routing(MODEL).previous == 1
    with pytest.raises(ServingError, match=r"versions \[7\] are not in the repository s3://"):
        store.set_routing(MODEL, {7: 1.0})
    assert store.set_routing(MODEL, {1: 0.5, 2: 0.5}).weights == {1: 0.5, 2: 0.5}
    assert store.set_routing(MODEL, {2: 1.0}).previous == 1
    assert store.rollback(MODEL, registered=lambda m, v: _hash(one)) == 1
    routing = _twin(store).read_routing(MODEL)
    assert routing.weights == {1: 1.0} and routing.previous is None
    with pytest.raises(ServingError, match="nothing to roll back to"):
        store.rollback(MODEL)


def test_a_dead_writers_objects_are_no_version_and_are_removed(make_version, store) -> None:
    store.push(make_version(1))
    store.bucket.put(f"{MODEL}/2/model.onnx", b"half an upload")  # died before the manifest
    assert store.list_versions(MODEL) == [1]
    assert store.leftovers() == []  # within the grace period: may be a live writer's
    assert store.leftovers(grace_s=0) == [f"{MODEL}/2"]
    assert store.remove_leftovers(MODEL, grace_s=0) == [f"{MODEL}/2"]
    assert sorted(store.bucket.listing(f"{MODEL}/2")) == []
    # other bytes written just now: maybe a live push of that version; nothing is overwritten
    store.bucket.put(f"{MODEL}/2/model.onnx", b"half an upload")
    with pytest.raises(ServingError, match=r"another push of this version wrote other bytes"):
        store.push(make_version(2, factor=2.0))
    found = store.bucket.get(f"{MODEL}/2/model.onnx")
    assert found is not None and found.data == b"half an upload"
    assert store.list_versions(MODEL) == [1]
    store.remove_leftovers(MODEL, grace_s=0)  # what doctor --fix does after the grace period
    assert store.push(make_version(2, factor=2.0)).created
    assert store.list_versions(MODEL) == [1, 2]


def test_a_tampered_object_is_refused_by_download_and_sync(make_version, store, tmp_path) -> None:
    one, two = make_version(1), make_version(2, factor=2.0)
    store.push(one)
    store.push(two)
    cache = tmp_path / "cache"
    assert StoreMirror(store, cache).sync() == []
    assert sorted(p.name for p in (cache / MODEL).iterdir()) == ["1", "2", "routing.json"]
    # version 1's object replaced by version 2's bytes (and a manifest re-hashed to match)
    donor = store.bucket.get(f"{MODEL}/2/model.onnx")
    assert donor is not None
    store.bucket.put(f"{MODEL}/1/model.onnx", donor.data)
    with pytest.raises(ChecksumMismatch):
        store.download(MODEL, 1, tmp_path / "v1")
    assert not (tmp_path / "v1").exists()  # nothing half-written
    registered = {1: _hash(one), 2: _hash(two)}
    store.bucket.put(f"{MODEL}/1/manifest.json", _rewritten_manifest(store, donor.data))
    with pytest.raises(ChecksumMismatch, match="registry recorded"):
        store.download(MODEL, 1, tmp_path / "v1", registered=registered[1])
    (cache / MODEL / "1" / "model.onnx").write_bytes(b"damaged in the cache")
    problems = StoreMirror(store, cache, lambda m, v: registered[v]).sync()
    assert len(problems) == 1 and problems[0].startswith(f"{MODEL}: ")
    assert ModelRuntime.load(cache / MODEL / "2").version == 2  # what verifies is kept


def _rewritten_manifest(store: S3Repository, model_bytes: bytes) -> bytes:
    import json

    from spindle.core import sha256_bytes

    found = store.bucket.get(f"{MODEL}/1/manifest.json")
    assert found is not None
    manifest = json.loads(found.data)
    manifest["files"]["model.onnx"] = sha256_bytes(model_bytes)
    return json.dumps(manifest).encode()


def test_store_errors_are_one_line_naming_the_url(moto: MotoServer, make_version) -> None:
    missing = S3Repository(Location.of("s3://no-such-bucket/repo", options_for(moto.endpoint)))
    with pytest.raises(DataError, match=r"s3://no-such-bucket/repo.*does not exist") as info:
        missing.bucket.check()
    assert "\n" not in str(info.value)
    with pytest.raises(DataError, match=r"s3://no-such-bucket/repo"):
        missing.push(make_version(1))
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    down = S3Repository(Location.of("s3://b/repo", options_for(f"http://127.0.0.1:{port}")))
    with pytest.raises(
        DataError,
        match=r"s3://b/repo/search_ranker/routing.json failed \(Could not connect.*\); check AWS_ENDPOINT_URL",
    ):
        down.read_routing(MODEL)


def test_refused_credentials_are_one_line() -> None:
    with contextlib.closing(running_moto(enforce_auth=True)) as servers:
        server = next(servers)
        options = options_for(server.endpoint) | {"AWS_ACCESS_KEY_ID": "not-a-key"}
        repo = S3Repository(Location.of("s3://spindle-locked/repo", options))
        with pytest.raises(DataError, match=r"s3://spindle-locked/repo.*credentials") as info:
            repo.read_routing(MODEL)
        assert "\n" not in str(info.value)


def test_the_config_takes_an_s3_model_repo_and_refuses_other_schemes(tmp_path: Path) -> None:
    from spindle.core import ConfigError, Workspace

    (tmp_path / "spindle.yaml").write_text(
        "name: w\nmodel_repo: s3://bucket/models\nstorage_options:\n  AWS_REGION: eu-west-1\n"
    )
    ws = Workspace.load(tmp_path)
    location = ws.model_repo_location
    assert location.url == "s3://bucket/models" and dict(location.options) == {
        "AWS_REGION": "eu-west-1"
    }
    with pytest.raises(DataError, match=r"model_repo is s3://bucket/models, on an object store"):
        _ = ws.model_repo  # a command that needs a local folder says so in one line
    for bad in ("gs://bucket/models", "s3:/bucket/models", "s3://"):
        (tmp_path / "spindle.yaml").write_text(f"name: w\nmodel_repo: {bad}\n")
        with pytest.raises(ConfigError, match="model_repo"):
            Workspace.load(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spindle.yaml"]


def test_a_push_killed_before_its_manifest_leaves_no_version(make_version, store) -> None:
    """SIGKILL between the uploads and the manifest (a power cut): readers see no version, the
    objects are a leftover, and the next push of that version completes it."""
    import os
    import subprocess
    import sys

    one = make_version(1)
    script = (
        "import sys; from spindle.core import Location; "
        "from spindle.serve import S3Repository; "
        "S3Repository(Location.of(sys.argv[1], dict(a.split('=', 1) for a in sys.argv[3:])))"
        ".push(sys.argv[2])"
    )
    options = [f"{k}={v}" for k, v in store.location.options]
    done = subprocess.run(
        [sys.executable, "-c", script, store.url, str(one), *options],
        env={**os.environ, "SPINDLE_KILL_AT": "repository:uploaded"},
        capture_output=True,
        timeout=300,
    )
    assert done.returncode == -9, done.stderr[-2000:]
    assert sorted(store.bucket.listing(MODEL)) == [
        f"{MODEL}/1/config.pbtxt",
        f"{MODEL}/1/model.onnx",
        f"{MODEL}/1/transform.json",
    ]
    assert store.list_versions(MODEL) == [] and store.read_routing(MODEL).weights == {}
    assert store.leftovers(grace_s=0) == [f"{MODEL}/1"]
    assert store.push(one).created
    assert store.list_versions(MODEL) == [1] and store.leftovers(grace_s=0) == []
