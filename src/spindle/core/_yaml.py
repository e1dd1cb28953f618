"""Load YAML into pydantic models, reporting every problem at once with file, key and line."""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar, get_args, get_origin

import yaml
from pydantic import BaseModel, ValidationError

from spindle.core._errors import ConfigError

M = TypeVar("M", bound=BaseModel)

# libyaml's C loader and dumper when PyYAML was built with it (same results, ~10x faster):
# every command loads the workspace's configs, so parsing is part of its start-up.
_Loader: type[yaml.SafeLoader] = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_Dumper: type[yaml.SafeDumper] = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def _line_index(text: str) -> dict[tuple[str | int, ...], int]:
    """Map each key path in a YAML document to its 1-based line number."""
    try:
        root = yaml.compose(text)
    except yaml.YAMLError:
        return {}
    return _node_lines(root)


def _node_lines(root: yaml.Node | None) -> dict[tuple[str | int, ...], int]:
    """Map each key path below a composed YAML node to its 1-based line number."""
    lines: dict[tuple[str | int, ...], int] = {}

    def walk(node: yaml.Node | None, path: tuple[str | int, ...]) -> None:
        if node is None:
            return
        lines[path] = node.start_mark.line + 1
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = (*path, str(key_node.value))
                walk(value_node, key)
                lines[key] = key_node.start_mark.line + 1
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                walk(item, (*path, i))

    walk(root, ())
    return lines


def parse_overrides(overrides: list[str] | None) -> list[tuple[list[str], Any]]:
    """Parse ``KEY=VALUE`` strings (dotted keys, YAML values) into (path, value) pairs."""
    parsed: list[tuple[list[str], Any]] = []
    problems: list[str] = []
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            problems.append(f"{item!r}: expected KEY=VALUE (e.g. training.epochs=3)")
            continue
        try:
            value = yaml.safe_load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            problems.append(f"{key}: value {raw!r} is not valid YAML ({exc})")
            continue
        parsed.append((key.strip().split("."), value))
    if problems:
        raise ConfigError("--set", problems)
    return parsed


def apply_overrides(data: dict[str, Any], overrides: list[str] | None) -> dict[str, Any]:
    """Return a copy of ``data`` with dotted ``KEY=VALUE`` overrides applied."""
    result: dict[str, Any] = yaml.load(yaml.dump(data, Dumper=_Dumper), Loader=_Loader) or {}
    for path, value in parse_overrides(overrides):
        node = result
        for part in path[:-1]:
            child = node.get(part)
            if not isinstance(child, dict):
                child = {}
                node[part] = child
            node = child
        node[path[-1]] = value
    return result


def _override_of(loc: tuple[str | int, ...], overrides: list[str] | None) -> str | None:
    """The last ``--set KEY=VALUE`` whose key is ``loc`` or a parent of it (None if none is)."""
    found = None
    for item in overrides or []:
        key, _, _ = item.partition("=")
        path = tuple(key.strip().split("."))
        if tuple(str(p) for p in loc[: len(path)]) == path:
            found = item
    return found


def format_validation_error(
    exc: ValidationError,
    lines: dict[tuple[str | int, ...], int],
    overrides: list[str] | None = None,
    model: type[BaseModel] | None = None,
) -> list[str]:
    """Turn a pydantic error into lines naming key, line, expectation and the value found.

    A value that came from a ``--set`` override names that override, not a line of the file.
    """
    problems = []
    for err in exc.errors():
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden" and model is not None:
            err = {**err, "msg": f"unknown key; allowed keys: {_allowed_keys(model, loc[:-1])}"}
        key = ".".join(str(p) for p in loc) or "<root>"
        line = None
        probe = loc
        while probe and line is None:
            line = lines.get(probe)
            probe = probe[:-1]
        where = f"line {line}, " if line else ""
        override = _override_of(loc, overrides)
        if override is not None:
            problems.append(f"--set {override}: {err['msg']} (found {_found(err)})")
            continue
        problems.append(f"{where}key '{key}': {err['msg']} (found {_found(err)})")
    return problems


def _found(err: Any) -> str:
    text = "nothing" if err["type"] == "missing" else repr(err.get("input"))
    return text[:77] + "..." if len(text) > 80 else text


def load_yaml_model(
    path: str | Path,
    model: type[M],
    overrides: list[str] | None = None,
    context: dict[str, Any] | None = None,
) -> tuple[M, dict[str, Any]]:
    """Load ``path`` as YAML, apply overrides, validate with ``model`` (and pydantic's
    validation ``context``).

    Returns:
        The validated model and the effective (post-override) raw dict.

    Raises:
        ConfigError: listing every problem in the file at once, each with its key and line.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(str(file), [f"cannot read the file: {exc.strerror}"]) from exc
    try:
        data = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as exc:
        raise ConfigError(str(file), [f"not valid YAML: {exc}"]) from exc
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(
            str(file), [f"expected a mapping at the top, found {type(data).__name__}"]
        )
    effective = apply_overrides(data, overrides)
    try:
        return model.model_validate(effective, context=context), effective
    except ValidationError as exc:
        problems = format_validation_error(exc, _line_index(text), overrides, model)
        from_file = [p for p in problems if not p.startswith("--set ")]
        raise ConfigError(str(file) if from_file else "--set", problems) from exc


def _allowed_keys(model: type[BaseModel], path: tuple[str | int, ...]) -> str:
    """The keys the model nested at ``path`` accepts (for an "unknown key" message)."""
    annotation: Any = model
    for part in path:
        annotation = _inner_model(_unwrap(annotation), part)
    annotation = _unwrap(annotation)
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return ", ".join(f.alias or n for n, f in annotation.model_fields.items())
    return "?"


def _unwrap(annotation: Any) -> Any:
    """``X | None`` -> ``X``."""
    args = [a for a in get_args(annotation) if a is not type(None)]
    if get_origin(annotation) not in (list, tuple, set, frozenset, dict) and len(args) == 1:
        return args[0]
    return annotation


def _inner_model(annotation: Any, part: str | int) -> Any:
    """The type one step below ``annotation`` (a model's field, a list item, a dict value)."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        field = annotation.model_fields.get(str(part))
        return field.annotation if field is not None else None
    args = get_args(annotation)
    origin = get_origin(annotation)
    if origin in (list, tuple, set, frozenset) and args:
        return args[0]
    if origin is dict and len(args) == 2:
        return args[1]
    return None


def load_yaml_models(path: str | Path, model: type[M]) -> tuple[list[tuple[M, int]], list[str]]:
    """Validate every document of a (``---`` separated) YAML file with ``model``.

    Returns:
        The valid documents with the line each starts on, and every problem of the file (each
        with line and key; an unknown key lists the allowed keys). Never raises for bad content.
    """
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
        nodes = list(yaml.compose_all(text, Loader=_Loader))
        documents = list(yaml.load_all(text, Loader=_Loader))
    except OSError as exc:
        return [], [f"cannot read the file: {exc.strerror}"]
    except yaml.YAMLError as exc:
        return [], [f"not valid YAML: {' '.join(str(exc).split())}"]
    valid: list[tuple[M, int]] = []
    problems: list[str] = []
    for node, data in zip(nodes, documents, strict=True):
        if node is None or data is None:
            continue
        line = node.start_mark.line + 1
        if not isinstance(data, dict):
            problems.append(f"line {line}: expected a mapping, found {type(data).__name__}")
            continue
        try:
            valid.append((model.model_validate(data), line))
        except ValidationError as exc:
            found = format_validation_error(exc, _node_lines(node), None, model)
            # a missing key has no line of its own: name the line its document starts on
            problems.extend(p if p.startswith("line ") else f"line {line}, {p}" for p in found)
    return valid, problems
