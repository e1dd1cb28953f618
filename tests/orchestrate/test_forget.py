"""Forget: a deletion request's rows leave no trace on disk, through crashes and reruns.

Real Delta tables, real SQLite, real landed files of the demo workspace; the crash tests SIGKILL
a real subprocess at named points inside the forget, then resume it.
"""

from __future__ import annotations

import datetime as dt
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from tests.orchestrate.forget_helpers import build_demo, pick_user_ids, traces

import spindle

RID = "r-forget-1"
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = build_demo(tmp_path_factory.mktemp("forget") / "demo")
    chosen = pick_user_ids(root)
    with spindle.Context.open(root) as ctx:  # a record quoting an id, as a burst anomaly does
        ctx.runner.record_refusal(
            "validate", spindle.DataError(f"user_id {chosen[0]} has 60 searches rows within 10m")
        )
    return root, chosen


@pytest.fixture(scope="module")
def demo(built: tuple[Path, list[str]]) -> Path:
    return built[0]


@pytest.fixture(scope="module")
def ids(built: tuple[Path, list[str]]) -> list[str]:
    return built[1]


@pytest.fixture(scope="module")
def reference(demo: Path, ids: list[str], tmp_path_factory: pytest.TempPathFactory) -> Any:
    """An uninterrupted forget on a copy: what every interrupted one must end with."""
    root = _copy(demo, tmp_path_factory.mktemp("ref"))
    with spindle.Context.open(root) as ctx:
        report = spindle.forget_rows(ctx, RID, "users", "user_id", ids)
    return root, report


def _copy(demo: Path, where: Path) -> Path:
    target = where / "ws"
    shutil.copytree(demo, target)
    return target


def test_forget_leaves_no_trace_and_the_loop_goes_on(reference: Any, ids: list[str]) -> None:
    root, report = reference
    assert report.status == "done"
    assert report.rows_removed["raw:users"] == len(ids)
    assert report.rows_removed["quarantine"] >= 1
    assert report.rows_removed["online:user"] >= 1
    assert any(k.startswith("raw_file:raw/users/") for k in report.rows_removed)
    assert any(k.startswith("trainset:") for k in report.rows_removed)
    assert "search_ranker@1" in report.model_versions
    assert "user" in report.recompute
    assert report.records_redacted["runs"] == 1
    assert report.not_scrubbed == []
    assert traces(root, ids) == []
    assert not (root / ".spindle" / "forget").exists()  # the journal (with the ids) is gone
    # the audit record: counts and files, never the ids
    with spindle.Context.open(root) as ctx:
        runs = ctx.store.runs(step="forget", limit=None)
        assert [r.status for r in runs] == ["succeeded"]
        assert runs[0].params["rows_removed"] == report.rows_removed
        assert not any(i in str(runs[0].params) for i in ids)
        # tables still load, and the next day's training set builds
        day = dt.date(2026, 1, 5)
        spindle.simulate(
            ctx.workspace.raw_dir, start=day, days=1, seed=7, scale=0.25, epoch=dt.date(2026, 1, 1)
        )
        assert spindle.run_day(ctx, "search_ranker", day.isoformat()).error is None


def test_rerun_is_a_no_op_returning_the_record(reference: Any, ids: list[str]) -> None:
    root, report = reference
    with spindle.Context.open(root) as ctx:
        again = spindle.forget_rows(ctx, RID, "users", "user_id", ids)
        resumed = spindle.resume_forget(ctx, RID)
        assert len(ctx.store.runs(step="forget", limit=None)) == 1
    assert again.rows_removed == report.rows_removed == resumed.rows_removed
    assert again.run_id == report.run_id


def _forget_in_child(root: Path, ids: list[str], kill_at: str) -> int:
    code = (
        "import sys, spindle\n"
        "with spindle.Context.open(sys.argv[1]) as ctx:\n"
        f"    spindle.forget_rows(ctx, {RID!r}, 'users', 'user_id', sys.argv[2:])\n"
    )
    env = dict(os.environ, SPINDLE_KILL_AT=kill_at)
    done = subprocess.run(
        [sys.executable, "-c", code, str(root), *ids], env=env, capture_output=True, timeout=300
    )
    return done.returncode


@pytest.mark.parametrize(
    "point",
    ["forget:counted", "forget:acted", "forget:purged", "forget:redacted", "forget:recorded"],
)
def test_sigkill_then_resume(
    point: str, demo: Path, ids: list[str], reference: Any, tmp_path: Path
) -> None:
    root = _copy(demo, tmp_path)
    assert _forget_in_child(root, ids, point) == -9  # killed there, no cleanup
    journal = root / ".spindle" / "forget" / RID / "journal.json"
    assert journal.is_file()
    with spindle.Context.open(root) as ctx:
        (status,) = spindle.forget_status(ctx, RID)
        assert status.status in ("in progress", "waiting")
        report = spindle.resume_forget(ctx, RID)
        runs = ctx.store.runs(step="forget", status="succeeded", limit=None)
    assert report.status == "done"
    assert report.rows_removed == reference[1].rows_removed  # every row counted once
    assert len(runs) == 1
    assert traces(root, ids) == []
    assert not journal.parent.exists()
    from deltalake import DeltaTable

    for name in ("users", "searches", "impressions", "purchases"):
        DeltaTable(str(root / ".spindle" / "tables" / "raw" / name)).to_pyarrow_table()


def _snapshot(root: Path) -> dict[str, int]:
    folders = [root / ".spindle" / "tables", root / "raw", root / ".spindle" / "artifacts"]
    return {str(p): p.stat().st_size for f in folders for p in f.rglob("*") if p.is_file()}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("nope", "user_id", ["u1"]), "unknown source 'nope'"),
        (("users", "nope", ["u1"]), "declares no column 'nope'"),
        (("users", "user_id", []), "no ids to forget"),
    ],
)
def test_bad_input_changes_nothing(
    demo: Path, tmp_path: Path, args: tuple[str, str, list[str]], message: str
) -> None:
    root = _copy(demo, tmp_path)
    before = _snapshot(root)
    with spindle.Context.open(root) as ctx, pytest.raises(spindle.SpindleError) as caught:
        spindle.forget_rows(ctx, "r-bad", *args)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    assert _snapshot(root) == before
    assert not (root / ".spindle" / "forget").exists()
    with spindle.Context.open(root) as ctx:
        with pytest.raises(spindle.SpindleError, match="no forget 'r-none'"):
            spindle.resume_forget(ctx, "r-none")
        with pytest.raises(spindle.SpindleError, match="not usable"):
            spindle.forget_rows(ctx, "../x", "users", "user_id", ["u1"])


def test_retention_waits_then_resume_purges(demo: Path, ids: list[str], tmp_path: Path) -> None:
    root = _copy(demo, tmp_path)
    with spindle.Context.open(root) as ctx:
        waiting = spindle.forget_rows(ctx, RID, "users", "user_id", ids, retention_hours=1)
        assert waiting.status == "waiting" and waiting.vacuum_after
        assert spindle.resume_forget(ctx, RID).status == "waiting"  # not yet
        # older versions still hold the rows until the retention passes
        assert any("@" in t for t in traces(root, ids))
        journal = root / ".spindle" / "forget" / RID / "journal.json"
        import json

        data = json.loads(journal.read_text())
        data["deleted_at"] = "2000-01-01T00:00:00+00:00"  # as if the hour had passed
        journal.write_text(json.dumps(data))
        done = spindle.resume_forget(ctx, RID)
    assert done.status == "done"
    assert done.rows_removed == waiting.rows_removed
    assert traces(root, ids) == []


def test_a_file_it_cannot_rewrite_is_named(demo: Path, ids: list[str], tmp_path: Path) -> None:
    root = _copy(demo, tmp_path)
    vocab = root / ".spindle" / "artifacts" / "models" / "search_ranker" / "1" / "vocab.txt"
    vocab.write_text("\n".join(["u-other", ids[0]]) + "\n")  # a model's vocabulary
    # another process at work in the workspace meanwhile (here: a second open context)
    with spindle.Context.open(root), spindle.Context.open(root) as ctx:
        report = spindle.forget_rows(ctx, RID, "users", "user_id", ids)
    assert report.status == "done"
    assert sorted(line.split(":")[0] for line in report.not_scrubbed) == [
        ".spindle/artifacts/models/search_ranker/1/vocab.txt",
        "another spindle process had the workspace open during the forget",
    ]
    assert not any(i in " ".join(report.not_scrubbed) for i in ids)


def test_a_failure_stops_with_one_line_and_resume_finishes(
    demo: Path, ids: list[str], tmp_path: Path
) -> None:
    root = _copy(demo, tmp_path)
    log = root / ".spindle" / "tables" / "raw" / "searches" / "_delta_log"
    commit = max(log.glob("*.json"))
    good = commit.read_bytes()
    commit.write_bytes(b"{not json\n")  # a damaged table: the forget cannot read it
    with spindle.Context.open(root) as ctx:
        with pytest.raises(spindle.SpindleError) as caught:
            spindle.forget_rows(ctx, RID, "users", "user_id", ids)
        message = str(caught.value)
        assert f"spindle forget resume {RID}" in message and "\n" not in message
        assert not any(i in message for i in ids)
        assert ctx.store.runs(step="forget", limit=None) == []  # nothing recorded as done
        commit.write_bytes(good)
        report = spindle.resume_forget(ctx, RID)
    assert report.status == "done" and report.rows_removed["raw:searches"] >= 1
    assert traces(root, ids) == []
