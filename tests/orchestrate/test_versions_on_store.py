"""Model versions on an S3-compatible store (moto on loopback): with ``artifacts_url`` there,
a trained version's files are also objects under ``<artifacts_url>/models/<model>/<v>/``; a
machine that lost its local version folders warm-starts from the store's copy, verified; a
damaged object gives one line and nothing half-written; ``spindle doctor --fix`` fetches a
lost folder back and puts a version the store lacks there; a fit on a node without the
workspace's folder fetches its base from the store.

Only the artifacts are on the store here (tables and raw files stay in the workspace's
folder), so each test starts from a copy of one trained workspace (version 1 of day 2)
with the version's objects copied to a prefix of its own.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from tests.conftest import START, make_workspace
from tests.objectstore import Bucket, MotoServer, running_moto
from tests.orchestrate.test_kill_matrix import ARGS, _spindle

import spindle
from spindle.core import Location, manifest_file, read_package
from spindle.orchestrate._version_store import is_published

pytestmark = pytest.mark.e2e

MODEL = "search_ranker"
DAY2, DAY3 = "2026-01-02", "2026-01-03"
OVERRIDES = ARGS[1::2]  # the CLI's `--set` values


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    yield from running_moto()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, moto: MotoServer) -> tuple[Path, Bucket]:
    """Day 1 ingested, version 1 trained and pushed for day 2, artifacts under ``base``."""
    bucket = moto.bucket()
    root = make_workspace(tmp_path_factory.mktemp("versions") / "ws", days=3, scale=0.2)
    _artifacts_on(root, f"{bucket.url}/base", bucket.options)
    with spindle.Context.open(root) as ctx:
        spindle.ingest(ctx, START.isoformat())
        spindle.validate(ctx, START.isoformat())
        report = spindle.run_day(ctx, MODEL, DAY2, overrides=OVERRIDES)
        assert report.error is None, report.error
        assert ctx.store.get_alias(MODEL, "production") == 1
    return root, bucket


def _artifacts_on(root: Path, url: str, options: dict[str, str]) -> None:
    config_file = root / "spindle.yaml"
    config = yaml.safe_load(config_file.read_text())
    config |= {"artifacts_url": url, "storage_options": options}
    config_file.write_text(yaml.safe_dump(config, sort_keys=False))


def _copy(trained: tuple[Path, Bucket], tmp_path: Path, prefix: str) -> tuple[Path, Location]:
    """A copy of the trained workspace whose artifacts are under ``prefix`` (the version's
    objects copied there); returns it and the store's folder of version 1."""
    base, bucket = trained
    root = tmp_path / "ws"
    shutil.copytree(base, root)
    _artifacts_on(root, f"{bucket.url}/{prefix}", bucket.options)
    source = Location.of(f"{bucket.url}/base/models", bucket.options)
    target = Location.of(f"{bucket.url}/{prefix}/models", bucket.options)
    for file in source.files():
        (target / str(file.relative_to(source))).write_bytes(file.read_bytes())
    return root, target / MODEL / "1"


def _folder(root: Path, version: int) -> Path:
    return root / ".spindle" / "artifacts" / "models" / MODEL / str(version)


def test_a_trained_version_is_on_the_store(trained: tuple[Path, Bucket]) -> None:
    root, bucket = trained
    folder = _folder(root, 1)
    files = sorted(p.name for p in folder.iterdir())
    keys = bucket.keys(f"base/models/{MODEL}/1")
    assert keys == [f"base/models/{MODEL}/1/{name}" for name in files]
    assert manifest_file(folder).name in files
    for name in files:
        stored = Location.of(f"{bucket.url}/base/models/{MODEL}/1/{name}", bucket.options)
        assert stored.read_bytes() == (folder / name).read_bytes(), name


def test_a_machine_that_lost_its_versions_warm_starts_from_the_store(
    trained: tuple[Path, Bucket], tmp_path: Path
) -> None:
    root, _ = _copy(trained, tmp_path, "lost")
    shutil.rmtree(root / ".spindle" / "artifacts" / "models")  # a lost disk

    ran = _spindle(root, "run", MODEL, "--date", DAY3, *ARGS, "--json")
    assert ran.returncode == 0, ran.stdout[-2000:] + ran.stderr[-2000:]
    version = json.loads(ran.stdout)["version"]
    assert version == 2
    assert read_package(_folder(root, 2)).base_version == 1
    assert read_package(_folder(root, 1)).version == 1  # fetched back, verified
    doctor = _spindle(root, "doctor", "--json")
    assert doctor.returncode == 0 and json.loads(doctor.stdout) == [], doctor.stdout


def test_a_damaged_object_on_the_store_gives_one_line(
    trained: tuple[Path, Bucket], tmp_path: Path
) -> None:
    root, stored = _copy(trained, tmp_path, "damaged")
    models = root / ".spindle" / "artifacts" / "models"
    shutil.rmtree(models)
    weights = next(f for f in stored.files() if f.name not in ("manifest.json", "model.onnx"))
    weights.write_bytes(b"other bytes")

    ran = _spindle(root, "train", MODEL, "--date", DAY3, *ARGS)
    assert ran.returncode != 0
    lines = [line for line in ran.stderr.splitlines() if line.strip()]
    assert "Traceback" not in ran.stderr, ran.stderr[-3000:]
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1 and f"{weights}: sha256" in errors[0], ran.stderr[-2000:]
    assert [p.name for p in models.rglob("*")] in ([], [MODEL])  # no folder, no temp


def test_doctor_fetches_a_lost_folder_back_and_publishes_a_missing_version(
    trained: tuple[Path, Bucket], tmp_path: Path
) -> None:
    root, stored = _copy(trained, tmp_path, "doctor")
    folder = _folder(root, 1)
    kept = {p.name: p.read_bytes() for p in folder.iterdir()}
    shutil.rmtree(folder)
    with spindle.Context.open(root) as ctx:
        everything = spindle.doctor(ctx)  # said once: not also as a missing file
        found = [p for p in everything if p.subject == f"{MODEL}@1"]
        assert [(p.kind, p.fixed) for p in found] == [("version_folder", False)], everything
        assert str(stored) in found[0].message and "\n" not in found[0].message
        assert not folder.exists()  # without --fix nothing is written
        fixed = spindle.doctor(ctx, fix=True)
        assert [(p.kind, p.fixed) for p in fixed] == [("version_folder", True)], fixed
        assert {p.name: p.read_bytes() for p in folder.iterdir()} == kept

        stored.delete()  # the store was configured after the version was trained
        found = spindle.doctor(ctx)
        assert [(p.kind, p.subject, p.fixed) for p in found] == [
            ("version_not_stored", f"{MODEL}@1", False)
        ]
        fixed = spindle.doctor(ctx, fix=True)
        assert [(p.kind, p.fixed) for p in fixed] == [("version_not_stored", True)], fixed
        assert sorted(f.name for f in stored.files()) == sorted(kept)
        assert spindle.doctor(ctx) == []


def test_a_fit_on_a_node_without_the_workspace_fetches_its_base(
    trained: tuple[Path, Bucket], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from spindle.orchestrate import build_training_set, load_config
    from spindle.orchestrate._fit_task import fit_on_node
    from spindle.orchestrate._version_store import stored_version
    from spindle.train import VersionPlan

    root, _ = _copy(trained, tmp_path, "node")
    node_tmp = tmp_path / "node-tmp"
    node_tmp.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(node_tmp))  # the node's temp folder
    with spindle.Context.open(root) as ctx:
        loaded = load_config(ctx, MODEL, OVERRIDES)
        trainset = build_training_set(ctx, loaded, [START.isoformat()])
        base = stored_version(ctx, MODEL, 1)
        assert base is not None
        plan = VersionPlan(
            loaded.config,
            loaded.config_hash,
            loaded.effective,
            loaded.definitions,
            trainset,
            DAY2,
            1,
            tmp_path / "elsewhere" / "1",  # the driver's folder: not on this node
            "warm start from version 1",
            (),
        )
        nowhere = tmp_path / "no-workspace"
        options = Location.of(trainset.uri, ctx.workspace.config.storage_options).options
        fitted, archive = fit_on_node(
            plan, nowhere / "s" / "k", nowhere / "c" / "k", nowhere, options, None, base
        )
    assert archive is not None
    fetched = [p.parent for p in node_tmp.glob("spindle/fit/base/*/1/manifest.json")]
    assert len(fetched) == 1 and read_package(fetched[0]).version == 1
    assert fitted.result is not None


def test_a_version_released_after_it_was_put_on_the_store_is_removed_there(
    trained: tuple[Path, Bucket], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry refuses to complete a version whose objects already reached the store:
    the step releases the number (failed) and removes its copy there, which nothing may ever
    fetch; the ready version 1 is untouched."""
    from spindle.core import RegistryError

    root, stored = _copy(trained, tmp_path, "released")
    with spindle.Context.open(root) as ctx:

        def refuse(*args: object, **kwargs: object) -> None:
            assert is_published(stored.parent / "2")  # the upload came first
            raise RegistryError("the registry refused the write (injected)")

        monkeypatch.setattr(ctx.store, "complete_version", refuse)
        with pytest.raises(RegistryError, match="injected"):
            spindle.train_version(ctx, MODEL, DAY3, overrides=OVERRIDES)
        assert ctx.store.get_version(MODEL, 2).status == "failed"
    assert not (stored.parent / "2").exists()
    assert is_published(stored)
