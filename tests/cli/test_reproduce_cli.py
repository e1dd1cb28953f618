"""``spindle reproduce`` through the real CLI: the disaster recovery drill and bad input.

The drill deletes the production version's files, its warm-start base's files and the model
repository's copy of both, then ``spindle reproduce MODEL@V --register --restore`` rebuilds the
chain base-first, bit-identical, back as the same version numbers: ``spindle doctor`` is clean
and a real server answers predictions with version V. Bad input is one line and exit code 1,
with nothing registered or written in place.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.orchestrate.test_reproduce import MODEL, trained_workspace
from typer.testing import CliRunner

from spindle.cli import app
from spindle.core import read_package, verify_package
from spindle.orchestrate import Context, model_dir, serve_and_probe
from spindle.serve import registered_hash

runner = CliRunner()


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    yield trained_workspace(tmp_path_factory.mktemp("reproduce_cli") / "yarnit")


@pytest.fixture
def ws(trained: Path, tmp_path: Path) -> Path:
    target = tmp_path / "yarnit"
    shutil.copytree(trained, target, symlinks=True)
    return target


def _spindle(ws: Path, *args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, [*args, "--workspace", str(ws)])
    return result.exit_code, result.stdout, result.stderr


def _state(ws: Path) -> tuple[list[tuple[int, str]], list[str]]:
    """The registry's versions and the files of the model's version directories."""
    with Context.open(ws) as ctx:
        versions = [(v.version, v.status) for v in ctx.store.versions(MODEL)]
        models = ctx.workspace.artifacts_dir / "models" / MODEL
    return versions, sorted(str(p.relative_to(models)) for p in models.rglob("*"))


def test_the_disaster_recovery_drill_restores_the_production_version(ws: Path) -> None:
    with Context.open(ws) as ctx:
        assert ctx.store.get_alias(MODEL, "production") == 2
        repo = ctx.workspace.model_repo
        for version in (1, 2):  # production and its warm-start base: files and repo copies
            shutil.rmtree(model_dir(ctx, MODEL, version))
            shutil.rmtree(repo / MODEL / str(version))
    code, _, _ = _spindle(ws, "doctor")
    assert code == 1  # the disaster is seen

    code, out, err = _spindle(ws, "reproduce", f"{MODEL}@2", "--register", "--restore", "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["record"] == "registry" and report["rebuilt_bases"] == [1]
    assert report["chain"] == [f"{MODEL}@1", f"{MODEL}@2"]
    assert report["weights_identical"] and report["content_hash"]["same"]
    assert report["restore"]["done"] and report["registered_version"] is None
    assert any("warm-start base rebuilt" in c for c in report["causes"])

    with Context.open(ws) as ctx:
        assert [v.version for v in ctx.store.versions(MODEL)] == [1, 2, 3]  # none new
        for version in (1, 2):
            registered = registered_hash(ctx.store, MODEL, version)
            directory = model_dir(ctx, MODEL, version)
            package = read_package(directory)
            assert package.content_hash == registered
            assert verify_package(directory, package, registered=registered) == []
            copy = ctx.workspace.model_repo / MODEL / str(version)
            assert verify_package(copy, read_package(copy), only_present=True) == []
    code, out, err = _spindle(ws, "doctor")
    assert code == 0, out + err

    with Context.open(ws) as ctx:
        probe = serve_and_probe(ctx, MODEL, "2026-01-04", 3)
    assert str(probe["version"]) == "2" and probe["errors"] == 0 and probe["fallbacks"] == 0


def test_the_table_report_reads(trained: Path) -> None:
    code, out, err = _spindle(trained, "reproduce", f"{MODEL}@2")
    assert code == 0, err
    assert f"{MODEL}@2: rebuilt from its record (files): bit-identical" in out
    assert f"chain: {MODEL}@1 <- {MODEL}@2" in out
    assert "ndcg@10 (gate)" in out and "causes:" in out


@pytest.mark.parametrize(
    ("target", "message"),
    [
        ("nope@1", "no model 'nope'"),
        (f"{MODEL}@99", "99"),
        (MODEL, "expected MODEL@VERSION"),
        (f"{MODEL}@x", "expected MODEL@VERSION"),
    ],
)
def test_bad_targets_are_one_line_errors(trained: Path, target: str, message: str) -> None:
    before = _state(trained)
    code, out, err = _spindle(trained, "reproduce", target, "--register")
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and message in err, err
    assert _state(trained) == before


def test_reserved_and_failed_versions_are_refused(ws: Path) -> None:
    with Context.open(ws) as ctx:
        reserved = ctx.store.reserve_version(MODEL, date="2026-01-05")
        failed = ctx.store.reserve_version(MODEL, date="2026-01-05")
        ctx.store.fail_version(MODEL, failed, "killed in a test")
    before = _state(ws)
    for version, status in ((reserved, "reserved"), (failed, "failed")):
        code, out, err = _spindle(ws, "reproduce", f"{MODEL}@{version}", "--register")
        assert code == 1 and out == "" and err.count("\n") == 1
        assert f"{MODEL}@{version} is {status} in the registry" in err
    assert _state(ws) == before


def test_a_missing_base_without_restore_names_it_and_the_fix(ws: Path) -> None:
    with Context.open(ws) as ctx:
        shutil.rmtree(model_dir(ctx, MODEL, 1))
    before = _state(ws)
    code, out, err = _spindle(ws, "reproduce", f"{MODEL}@2", "--register")
    assert code == 1 and out == "" and err.count("\n") == 1
    assert f"warm-starts from {MODEL}@1" in err and "--restore" in err
    assert _state(ws) == before
