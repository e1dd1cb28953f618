"""No table, column or entity of an example is named in spindle's own code.

Users declare their data in their workspace; the packaged examples (``spindle/examples``) and the
simulator (``spindle/sim``) are the only places that may know the simulated shop's or the
flights' tables and columns. This test reads every other module with :mod:`ast` and looks at the
names it binds and uses and at its string literals (SQL lives in strings); docstrings and
comments are prose and may mention an example.
"""

from __future__ import annotations

import ast
import functools
import re
from pathlib import Path

import pytest

from spindle.core import load_sources

SRC = Path(__file__).resolve().parents[1] / "src" / "spindle"
EXAMPLES = SRC / "examples"
#: Words an example uses that are also ordinary vocabulary of a training system.
GENERIC = frozenset(
    {
        "date", "name", "type", "year", "month", "day", "hour", "minute", "origin", "model",
        "engine", "engines", "speed", "tz", "reason", "position", "clicked", "distance",
        "description", "flight", "ts", "features", "dst", "lat", "lon", "alt", "seats",
        # a database query, SQLite's temp schema, a copy's destination
        "query", "temp", "dest",
    }
)  # fmt: skip
#: Modules that still speak the simulated shop's language, waiting on issue 13 (serving and
#: models made generic). The list only shrinks.
PENDING: frozenset[str] = frozenset()


@functools.cache
def _example_names() -> frozenset[str]:
    names: set[str] = set()
    for example in sorted(p for p in EXAMPLES.iterdir() if (p / "sources").is_dir()):
        for decl in load_sources(example).values():
            names.add(decl.name)
            names.update(decl.columns)
            names.update(decl.primary_key)
    return frozenset(names - GENERIC)


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def _words(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), str(path))
    skip = _docstrings(tree)
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip:
            found.update(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", node.value))
        elif isinstance(node, ast.Name):
            found.add(node.id)
        elif isinstance(node, ast.Attribute):
            found.add(node.attr)
        elif isinstance(node, ast.arg):
            found.add(node.arg)
        elif isinstance(node, ast.FunctionDef | ast.ClassDef | ast.AsyncFunctionDef):
            found.add(node.name)
    return found


def _modules() -> list[Path]:
    return sorted(
        p
        for p in SRC.rglob("*.py")
        if p.relative_to(SRC).parts[0] not in ("sim", "examples")
        and p.relative_to(SRC).as_posix() not in PENDING
    )


def test_the_examples_declare_names_to_look_for() -> None:
    names = _example_names()
    # the shop's and the flights' distinctive names are all found in their declarations
    assert {"fx_rates", "product_id", "search_id", "tailnum", "carrier", "dep_delay"} <= names


@pytest.mark.parametrize("path", _modules(), ids=lambda p: p.relative_to(SRC).as_posix())
def test_module_names_no_example_table_or_column(path: Path) -> None:
    hits = sorted(_words(path) & _example_names())
    assert not hits, (
        f"{path.relative_to(SRC)} names example tables/columns {hits}: declare them in the "
        "example's workspace (sources/features/models YAML) and read the declaration instead"
    )


def test_pending_modules_exist() -> None:
    # a module leaving the pending list must be removed from it, not forgotten
    assert all((SRC / p).is_file() for p in PENDING)
