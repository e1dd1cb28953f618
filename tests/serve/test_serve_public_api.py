"""The public surface of spindle.serve and its layering (no training code on the serving path)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import spindle.serve

SERVE_DIR = Path(spindle.serve.__file__).parent
FORBIDDEN = (
    "torch",
    "pickle",
    "dill",
    "joblib",
    "spindle.train",
    "spindle.evaluate",
    "spindle.orchestrate",
    # spindle.registry is allowed (a layer below serve): a version is checked against the hash
    # the registry recorded at push, read through its light sqlite3 reader (serve/_integrity.py)
    "spindle.monitor",
    "spindle.ui",
    "spindle.cli",
)


def test_all_is_sorted_and_complete() -> None:
    names = spindle.serve.__all__  # its order: tests/test_public_api.py (ruff RUF022's)
    assert len(set(names)) == len(names)
    assert all(hasattr(spindle.serve, name) for name in names)
    public = {n for n in vars(spindle.serve) if not n.startswith("_") and n != "annotations"}
    assert public == set(names)


def test_serving_modules_import_no_training_code_and_no_pickle() -> None:
    for path in sorted(SERVE_DIR.glob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                modules = [node.module or ""]
            else:
                continue
            for module in modules:
                assert not module.startswith(FORBIDDEN), f"{path.name} imports {module}"


def test_importing_the_server_loads_no_torch() -> None:
    code = (
        "import sys, spindle.serve\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'torch'"
        " or m.startswith(('spindle.train', 'spindle.evaluate', 'spindle.orchestrate')))\n"
        "print(bad)\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_canary_process_loads_no_torch() -> None:
    code = (
        "import sys, spindle.serve._canary\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] == 'torch')\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
