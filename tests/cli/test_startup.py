"""The CLI answers fast: light commands import no heavy library; --version; every option has help.

Start-up cost is measured in benchmarks/cli_startup.py (CPU-seconds); these tests pin the cause
of a slow start (which modules a command imports) without timing anything.
"""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path
from typing import Any

import pytest
import typer.main
from typer.testing import CliRunner

import spindle
from spindle.cli import app
from spindle.core import ModelVersion, Workspace
from spindle.registry import MetadataStore, SQLiteReader

# Each costs 0.1-2 CPU-s to import; none is needed to parse a command line, print help, or read
# the metadata store.
HEAVY = ("torch", "onnx", "onnxruntime", "deltalake", "duckdb", "scipy", "sklearn")

_PROBE = """
import json, sys
argv = json.loads(sys.argv[1])
if argv is None:
    import spindle.cli
else:
    from spindle.cli import app
    try:
        app(argv)
    except SystemExit as exc:
        print("EXIT", exc.code, file=sys.stderr)
print(json.dumps(sorted(m for m in json.loads(sys.argv[2]) if m in sys.modules)))
"""


def _imported(
    argv: list[str] | None, heavy: tuple[str, ...] = HEAVY, exit_code: int = 0
) -> list[str]:
    """The heavy modules a fresh interpreter holds after ``import spindle.cli`` (argv None) or
    after running ``spindle *argv``."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argv), json.dumps(heavy)],
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"EXIT {exit_code}" in proc.stderr or argv is None, proc.stderr
    loaded: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return loaded


def test_importing_the_cli_imports_no_heavy_library() -> None:
    assert _imported(None) == []


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new workspace whose metadata store exists and holds one ready model version."""
    ws = tmp_path_factory.mktemp("startup") / "shop"
    result = CliRunner().invoke(app, ["init", str(ws)])
    assert result.exit_code == 0, result.output
    with MetadataStore(Workspace.load(ws).metadata_url) as store:
        store.reserve_version("search_ranker", date="2026-01-07")
        artifact = ModelVersion("search_ranker", 1, "file:///m/1", "h1", "2026-01-07")
        store.complete_version("search_ranker", 1, artifact)
    return ws


def test_models_list_and_help_import_no_heavy_library(workspace: Path) -> None:
    assert _imported(["models", "list", "-w", str(workspace)]) == []
    assert _imported(["--help"]) == []


def test_models_list_and_show_read_the_store_without_sqlalchemy(workspace: Path) -> None:
    # SQLAlchemy's ORM alone costs about 0.4 CPU-s: the light commands read a SQLite store
    # through the stdlib sqlite3 module (spindle.registry.open_reader)
    light = ("sqlalchemy", *HEAVY)
    assert _imported(["models", "list", "-w", str(workspace)], light) == []
    assert _imported(["models", "show", "search_ranker", "-w", str(workspace)], light) == []
    # and they read it: the version recorded above is listed
    result = CliRunner().invoke(app, ["models", "list", "--json", "-w", str(workspace)])
    assert result.exit_code == 0, result.output
    assert [(m["model"], m["latest"]) for m in json.loads(result.stdout)] == [("search_ranker", 1)]


def test_the_reports_read_the_same_through_the_reader_and_the_store(workspace: Path) -> None:
    with spindle.Context.open_reader(workspace) as light, spindle.Context.open(workspace) as full:
        assert isinstance(light.store, SQLiteReader)
        assert spindle.models_report(light) == spindle.models_report(full)
        shown = spindle.model_report(light, "search_ranker")
        assert shown == spindle.model_report(full, "search_ranker")
        assert [v["version"] for v in shown["versions"]] == [1]
        now = dt.datetime(2026, 1, 9)
        assert spindle.status_report(light) == spindle.status_report(full)
        assert spindle.freshness_report(light, now) == spindle.freshness_report(full, now)
        chain = spindle.lineage_report(light, "search_ranker", 1)
        assert chain == spindle.lineage_report(full, "search_ranker", 1)


def test_status_and_lineage_import_no_heavy_library(workspace: Path) -> None:
    assert _imported(["status", "-w", str(workspace)]) == []
    # both read the registry through the reader too
    assert _imported(["status", "-w", str(workspace)], ("sqlalchemy",)) == []
    lineage = ["lineage", "search_ranker@1", "-w", str(workspace)]
    assert _imported(lineage, ("sqlalchemy", *HEAVY)) == []
    # an unknown version is a clear error (exit 1), reached without the heavy libraries too
    assert _imported(["lineage", "search_ranker@9", "-w", str(workspace)], exit_code=1) == []


def test_version_prints_the_installed_version() -> None:
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"spindle {version('spindle')}"


def _parameters(command: Any, path: str) -> list[tuple[str, Any]]:
    found = [(path, p) for p in command.params]
    for name, sub in getattr(command, "commands", {}).items():
        found += _parameters(sub, f"{path} {name}")
    return found


def test_every_option_and_argument_has_help() -> None:
    params = _parameters(typer.main.get_command(app), "spindle")
    assert len(params) > 50  # the walk reached the subcommands
    missing = [
        f"{path} {p.name}" for path, p in params if not (getattr(p, "help", None) or "").strip()
    ]
    assert missing == [], f"parameters without help text: {missing}"
