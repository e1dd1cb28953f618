"""One owner per file format: only spindle.core._model_package spells the package's file names."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "spindle"
OWNER = SRC / "core" / "_model_package.py"
NAMES = ("model.onnx", "manifest.json", "transform.json")


def _docstrings(tree: ast.AST) -> set[int]:
    """ids of the string constants that are docstrings (module, class, function)."""
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def spelled(source: str) -> list[tuple[int, str]]:
    """(line, name) of every package file name in a string of code (docstrings and comments
    do not count: they describe the format, they do not read or write it)."""
    tree = ast.parse(source)
    docs = _docstrings(tree)
    return [
        (node.lineno, name)
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docs
        for name in NAMES
        if name in node.value
    ]


def test_the_check_finds_a_spelled_name_and_skips_docstrings_and_comments() -> None:
    code = (
        '"""Reads model.onnx."""\n'
        "# opens manifest.json\n"
        "def f(d):\n"
        '    """The transform.json of d."""\n'
        '    return d / f"{d}/manifest.json"\n'
    )
    assert spelled(code) == [(5, "manifest.json")]


def test_no_module_but_the_owner_spells_a_package_file_name() -> None:
    offenders = {
        str(path.relative_to(SRC)): found
        for path in sorted(SRC.rglob("*.py"))
        if path != OWNER and (found := spelled(path.read_text("utf-8")))
    }
    assert not offenders, (
        f"{offenders}: use spindle.core's model_file, transform_file, read_package, "
        "write_package (core/_model_package.py owns the model-version package)"
    )
