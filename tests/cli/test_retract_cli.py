"""``spindle retract``: record (idempotent), list, impact, retrain plan, one-line errors."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pyarrow.compute as pc
import pytest
from typer.testing import CliRunner

import spindle
from spindle.cli import app
from spindle.core import open_dataset
from spindle.orchestrate import Context

runner = CliRunner()
MODEL = "search_ranker"


@pytest.fixture(scope="module")
def workspace(ingested_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Days 1-4 ingested; search_ranker v1 trained for day 3 (days 1-2) and pushed."""
    root = tmp_path_factory.mktemp("retract_cli") / "yarnit"
    shutil.copytree(ingested_workspace, root, symlinks=True)
    with Context.open(root) as ctx:
        spindle.train_version(ctx, MODEL, "2026-01-03", overrides=["training.epochs=1"])
        spindle.push(ctx, MODEL, 1, infra=False, force=True, reason="retract cli test")
    yield root


def _ids(root: Path, day: str, n: int) -> list[str]:
    table = open_dataset(root / ".spindle" / "tables" / "raw" / "searches").to_table(
        columns=["search_id", "ts"]
    )
    days = pc.strftime(table.column("ts"), format="%Y-%m-%d")
    return sorted(table.filter(pc.equal(days, day)).column("search_id").to_pylist())[:n]


def _invoke(root: Path, *args: str) -> tuple[int, str]:
    result = runner.invoke(app, [*args, "-w", str(root)])
    return result.exit_code, result.output


def test_retract_list_impact_and_plan(workspace: Path, tmp_path: Path) -> None:
    ids = tmp_path / "fraud.csv"
    ids.write_text(
        "search_id,note\n" + "".join(f"{i},chargeback\n" for i in _ids(workspace, "2026-01-01", 4))
    )
    args = ("retract", "--file", str(ids), "--reason", "fraud", "--source", "searches")
    code, out = _invoke(workspace, *args, "--json")
    assert code == 0, out
    first = json.loads(out)
    assert first["recorded"] and first["retraction"]["id"] == "retraction-1"
    assert first["retraction"]["ids"] == 4 and first["retraction"]["rows_matched"] == 4
    assert first["physical_removal"] is None  # fraud: the rows stay, left out of training
    code, out = _invoke(workspace, *args)
    assert code == 0 and "already recorded" in out, out

    code, out = _invoke(workspace, "retract", "list", "--json")
    assert code == 0, out
    (listed,) = json.loads(out)
    assert (listed["id"], listed["versions_exposed"], listed["deployments_exposed"]) == (
        "retraction-1",
        1,
        1,
    )
    assert listed["serving_exposed"] == [MODEL]
    code, out = _invoke(workspace, "retract", "list")
    assert code == 0 and "retraction-1" in out and "searches.search_id" in out

    code, out = _invoke(workspace, "retract", "impact", "retraction-1", "--json")
    assert code == 0, out
    impact = json.loads(out)
    assert [(v["model"], v["version"]) for v in impact["versions"]] == [(MODEL, 1)]
    assert [d["versions"] for d in impact["deployments"]] == [[1]]
    code, out = _invoke(workspace, "retract", "impact", "retraction-1")
    assert code == 0 and "its training data" in out

    code, out = _invoke(workspace, "retract", "retrain", "retraction-1", "--json")
    assert code == 0, out
    plan = json.loads(out)
    assert [(t["model"], t["production"], t["base"]) for t in plan["plan"]] == [(MODEL, 1, None)]
    assert plan["runs"] == []  # a plan only: nothing ran
    code, out = _invoke(workspace, "retract", "retrain", "retraction-1")
    assert code == 0 and "from scratch" in out and "--execute runs it" in out


def test_a_deletion_keeps_digests_and_removes_the_rows(workspace: Path, tmp_path: Path) -> None:
    ids = _ids(workspace, "2026-01-02", 2)
    path = tmp_path / "gdpr.txt"
    path.write_text("\n".join(ids) + "\n")
    code, out = _invoke(
        workspace,
        "retract",
        "--file",
        str(path),
        "--reason",
        "deletion",
        "--source",
        "searches",
        "--json",
    )
    assert code == 0, out
    answer = json.loads(out)
    assert answer["retraction"]["hashed"] and answer["recorded"]
    keys = Path(answer["retraction"]["keys_uri"]).read_bytes()
    assert not any(i.encode() in keys for i in ids)
    assert answer["physical_removal"]["status"] in {"done", "waiting"}
    raw = open_dataset(workspace / ".spindle" / "tables" / "raw" / "searches").to_table()
    assert not set(ids) & set(raw.column("search_id").to_pylist())


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--reason", "fraud", "--source", "searches"], "needs --file"),
        (
            ["--file", "IDS", "--reason", "fraud", "--source", "nope"],
            "source 'nope' is not declared",
        ),
        (
            ["--file", "IDS", "--reason", "fraud", "--source", "searches", "--column", "nope"],
            "column 'nope' is not declared",
        ),
        (["--file", "EMPTY", "--reason", "fraud", "--source", "searches"], "holds no id"),
        (
            [
                "--file",
                "IDS",
                "--reason",
                "fraud",
                "--source",
                "impressions",
                "--column",
                "position",
            ],
            "id 'x1' is not an integer",
        ),
    ],
)
def test_bad_input_is_one_line_exit_1_and_records_nothing(
    workspace: Path, tmp_path: Path, args: list[str], expected: str
) -> None:
    ids, empty = tmp_path / "ids.txt", tmp_path / "empty.txt"
    ids.write_text("x1\n")
    empty.write_text("")
    given = [str(ids) if a == "IDS" else str(empty) if a == "EMPTY" else a for a in args]
    before = _invoke(workspace, "retract", "list", "--json")[1]
    code, out = _invoke(workspace, "retract", *given)
    assert code == 1 and expected in out and "Traceback" not in out, out
    assert len(out.strip().splitlines()) == 1
    assert _invoke(workspace, "retract", "list", "--json")[1] == before


def test_unknown_retraction_is_one_line(workspace: Path) -> None:
    code, out = _invoke(workspace, "retract", "impact", "retraction-99")
    assert code == 1 and "no retraction 'retraction-99'" in out and "Traceback" not in out
