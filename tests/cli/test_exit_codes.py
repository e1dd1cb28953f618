"""Exit codes and run records tell the truth; a day that failed validation never ships a model.

One simulated workspace whose day 6 lost every discounted purchase (``discount_drop@6``): days
1-6 are ingested and validated, ``search_ranker`` was trained and pushed for day 5. Everything
runs through the real CLI (Typer's runner, or a subprocess for the Airflow command).
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest
from tests.conftest import START, make_workspace
from typer.testing import CliRunner

from spindle import Context, PipelineCollector, export_airflow, run_day
from spindle.cli import app
from spindle.orchestrate import day_verdict

runner = CliRunner()
FAIL_DAY = "2026-01-06"
GOOD_DAY = "2026-01-05"


def _quick_models(root: Path) -> None:
    for path in (root / "models").glob("*.yaml"):
        config = yaml.safe_load(path.read_text())
        config["training"] |= {"epochs": 1, "window_days": 3, "warm_start_epochs": 1}
        config.setdefault("evaluation", {}).update(
            max_regression=1.0, max_calibration_error=None, max_score_psi=None
        )
        path.write_text(yaml.safe_dump(config))


@pytest.fixture(scope="module")
def fault_ws(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_workspace(
        tmp_path_factory.mktemp("fault") / "ws", days=7, scale=0.1, faults=("discount_drop@6",)
    )
    _quick_models(root)
    with Context.open(root) as ctx:
        for i in range(5):
            run_day(ctx, "*", (START + dt.timedelta(days=i)).isoformat(), train_model=False)
        report = run_day(ctx, "search_ranker", GOOD_DAY)
        assert report.error is None and report.gate == "pass", report
        run_day(ctx, "*", FAIL_DAY, train_model=False)
    return root


def _cli(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def production_version(ctx: Context, model: str) -> int | None:
    return ctx.store.get_alias(model, "production")


def _failures(ctx: Context) -> dict[str, float]:
    registry = CollectorRegistry()
    registry.register(PipelineCollector(ctx.store))
    text = generate_latest(registry).decode()
    found = re.findall(r'spindle_step_failures_total\{model="([^"]*)",step="([^"]*)"\} (\S+)', text)
    return {f"{m}/{s}": float(n) for m, s, n in found}


def test_validate_exit_codes(fault_ws: Path) -> None:
    ws = ["-w", str(fault_ws)]
    with Context.open(fault_ws) as ctx:
        days = [START + dt.timedelta(days=i) for i in range(6)]
        verdicts = {d: day_verdict(ctx, d.isoformat()) for d in days}
    assert verdicts[dt.date.fromisoformat(FAIL_DAY)] == "fail"
    code, out, _ = _cli("validate", "--date", FAIL_DAY, *ws)
    assert code == 2 and "FAIL" in out
    code, out, _ = _cli("validate", "--date", FAIL_DAY, "--json", *ws)
    assert code == 2 and '"verdict": "fail"' in out
    for day, verdict in verdicts.items():
        expected = {"pass": 0, "warn": 0, "fail": 2}[verdict]
        assert _cli("validate", "--date", day.isoformat(), *ws)[0] == expected, day
        strict = {"pass": 0, "warn": 1, "fail": 2}[verdict]
        assert _cli("validate", "--date", day.isoformat(), "--strict", *ws)[0] == strict, day
    assert "warn" in verdicts.values(), "the fixture should hold a WARN day to test --strict"


def test_run_on_a_failed_day_never_ships_records_and_counts(fault_ws: Path) -> None:
    with Context.open(fault_ws) as ctx:
        serving = production_version(ctx, "search_ranker")
        before = _failures(ctx).get("search_ranker/push", 0.0)
    assert serving is not None
    code, out, _ = _cli("run", "search_ranker", "--date", FAIL_DAY, "--json", "-w", str(fault_ws))
    assert code == 2, out
    report = json.loads(out)
    assert report["status"] == "refused" and report["failed_step"] == "push"
    assert report["gate"] == "block" and "failed data validation" in report["gate_reasons"][0]
    assert report["version"] not in (None, serving) and report["serving_version"] == serving
    with Context.open(fault_ws) as ctx:
        assert production_version(ctx, "search_ranker") == serving  # nothing shipped
        failed = ctx.store.runs(model="search_ranker", step="push", status="failed", limit=1)
        assert failed and failed[0].date == FAIL_DAY
        assert failed[0].error and failed[0].error.startswith("ValidationFailed:")
        assert "holdout cannot pass the gate" in failed[0].error
        assert _failures(ctx)["search_ranker/push"] == before + 1
    # the gate's verdict stands even when pushed by hand: no passing evaluation, no push; the
    # refusal is a failed push run too
    code, _, err = _cli(
        "push", "search_ranker", "--version", str(report["version"]), "-w", str(fault_ws)
    )
    assert code == 1 and "failed data validation" in err
    with Context.open(fault_ws) as ctx:
        assert _failures(ctx)["search_ranker/push"] == before + 2


def test_evaluate_on_a_failed_holdout_blocks(fault_ws: Path) -> None:
    with Context.open(fault_ws) as ctx:
        version = production_version(ctx, "search_ranker")
    code, out, _ = _cli(
        "evaluate", "search_ranker", "--version", str(version), "--date", FAIL_DAY, "--json",
        "-w", str(fault_ws),
    )  # fmt: skip
    assert code == 0, out  # a verdict, not an error
    details = json.loads(out)
    assert details["decision"] == "block"
    assert details["reasons"][0]["check"] == "holdout_validation"


def test_run_all_on_a_failed_day_exits_2(fault_ws: Path) -> None:
    code, out, _ = _cli("run-all", "--date", FAIL_DAY, "--json", "-w", str(fault_ws))
    assert code == 2, out
    assert out.count('"status": "refused"') >= 1


def test_catch_up_exits_nonzero_when_a_task_failed(fault_ws: Path) -> None:
    # day 7 is not ingested yet: the plan ingests it (it FAILs validation) and retrains on it
    code, out, _ = _cli(
        "catch-up", "--since", "2026-01-07", "--until", "2026-01-07", "--json",
        "-w", str(fault_ws),
    )  # fmt: skip
    assert code == 1, out
    assert '"status": "failed"' in out
    with Context.open(fault_ws) as ctx:  # each model's refusal is a failed run with its reason
        refused = [r for r in ctx.store.runs(status="failed", limit=None) if r.date == "2026-01-07"]
        assert {r.model for r in refused} >= {"search_ranker", "purchase_propensity"}
        assert all((r.error or "").startswith("ValidationFailed:") for r in refused)


def test_airflow_validate_task_fails_on_a_failed_day(fault_ws: Path, tmp_path: Path) -> None:
    """The generated DAG's validate command, run as Airflow's BashOperator would run it."""
    spindle_bin = str(Path(sys.executable).parent / "spindle")
    with Context.open(fault_ws) as ctx:
        dag = export_airflow(ctx, tmp_path, spindle_bin=spindle_bin).read_text()
    template = re.search(r'task_id="validate", bash_command=(f"[^"]*")', dag)
    assert template is not None, dag
    env = {"SPINDLE": shlex.quote(spindle_bin), "WORKSPACE": str(fault_ws)}
    for day, expected in ((FAIL_DAY, 2), (GOOD_DAY, 0)):
        command = eval(template.group(1), {}, env | {"DATA_DAY": day})  # the DAG's own f-string
        done = subprocess.run(["bash", "-c", command], capture_output=True, text=True)
        assert done.returncode == expected, (command, done.stdout[-500:], done.stderr[-500:])


@pytest.mark.parametrize(
    "args",
    [
        ["push", "search_ranker", "--version", "9"],
        ["evaluate", "search_ranker", "--version", "9", "--date", GOOD_DAY],
        ["route", "search_ranker", "9=1"],
        ["lineage", "search_ranker@9"],
    ],
)
def test_an_unknown_version_says_it_does_not_exist(fault_ws: Path, args: list[str]) -> None:
    code, _, err = _cli(*args, "-w", str(fault_ws))
    assert code == 1
    assert "9" in err and "--force" not in err and "push them first" not in err
    assert re.search(r"no version 9|not a recorded model version", err), err
    assert len(err.strip().splitlines()) == 1
