"""What a model declares for serving, as its version recorded it: its task, features,
baselines, the baseline that answers when no version can, and its candidate retrieval.

A version's manifest records the model's config (``config``); the server reads it from the
version with the most traffic, else any loaded one, else the workspace's declarations
(:attr:`ServingDeclarations.models`), else any version's manifest on disk.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from spindle.core import BaselineConfig, MatchConfig, ServingError
from spindle.serve._runtime import read_manifest
from spindle.serve._schema import ServingDeclarations
from spindle.serve._state import ModelState

PARAMETER = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(frozen=True)
class Retrieval:
    """``serving.candidates``: DuckDB ``sql`` over the online rows of ``view`` (the table
    ``candidates``), the request's context fields as ``$name`` parameters; or ``match``,
    keyword retrieval by an inverted index of the view's words."""

    view: str
    sql: str | None = None
    match: MatchConfig | None = None

    @property
    def key(self) -> str:
        """The declaration's key, for messages (``serving.candidates.sql`` or ``.match``)."""
        return "serving.candidates." + ("sql" if self.match is None else "match")

    def parameters(self) -> list[str]:
        """The context fields it reads (``$name``), in order."""
        if self.match is not None:
            return [self.match.words[1:]]
        return list(dict.fromkeys(PARAMETER.findall(self.sql or "")))


@dataclass(frozen=True)
class ServedConfig:
    """The serving-relevant part of one model's recorded config."""

    model: str
    task: str = "unknown"
    features: tuple[str, ...] = ()
    baselines: tuple[BaselineConfig, ...] = ()
    baseline: str | None = None
    candidates: Retrieval | None = None

    @classmethod
    def of(cls, model: str, config: Mapping[str, Any], features: Any = None) -> ServedConfig:
        """Read a recorded config (``ModelConfig`` as a dict); a part that does not parse is
        left out (an old manifest serves what it can)."""
        serving = _section(config, "serving")
        declared = _section(serving, "candidates")
        retrieval = _retrieval(declared)
        baselines = []
        for item in config.get("baselines") or []:
            try:
                baselines.append(BaselineConfig.model_validate(item))
            except ValidationError:
                continue
        refs = config.get("features") or features or []
        chosen = serving.get("baseline")
        return cls(
            model,
            str(config.get("task", "unknown")),
            tuple(r for r in refs if isinstance(r, str)),
            tuple(baselines),
            chosen if isinstance(chosen, str) else None,
            retrieval,
        )

    def fallback_baseline(self) -> BaselineConfig | None:
        """``serving.baseline`` when declared, else the first baseline that is not ground
        truth (the truth of a simulator is no answer a server can give)."""
        for baseline in self.baselines:
            if self.baseline is None and not baseline.ground_truth:
                return baseline
            if baseline.name == self.baseline:
                return baseline
        return None


def _retrieval(declared: Mapping[str, Any]) -> Retrieval | None:
    """The recorded ``serving.candidates`` (None when absent or when it does not parse)."""
    view, sql, match = declared.get("view"), declared.get("sql"), declared.get("match")
    if not isinstance(view, str):
        return None
    if isinstance(sql, str):
        return Retrieval(view, sql)
    if isinstance(match, Mapping):
        try:
            return Retrieval(view, match=MatchConfig.model_validate(match))
        except ValidationError:
            return None
    return None


def _section(data: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    found = data.get(key)
    return found if isinstance(found, dict) else {}


def _of_manifest(model: str, manifest: Mapping[str, Any]) -> ServedConfig | None:
    config = manifest.get("config")
    if not isinstance(config, dict):
        return None
    return ServedConfig.of(model, config, manifest.get("features"))


def served_config(
    model: str, state: ModelState | None, declarations: ServingDeclarations | None
) -> ServedConfig:
    """The model's serving declarations: recorded by its main version, else by another loaded
    one, else declared by the workspace, else recorded by a version that did not load.

    Args:
        model: the model's name.
        state: its routing and versions (None when nothing is routed).
        declarations: the workspace's declarations given to the server.

    Returns:
        The declarations found (empty ones when none are).
    """
    versions = state.versions if state is not None else {}
    main = state.routing.main if state is not None else None
    order = [main, *sorted(versions, reverse=True)]
    for version in order:
        loaded = versions.get(version) if version is not None else None
        if loaded is not None and loaded.runtime is not None:
            found = _of_manifest(model, loaded.runtime.manifest)
            if found is not None:
                return found
    workspace = declarations.models.get(model) if declarations else None
    if workspace is not None:
        return ServedConfig.of(model, workspace)
    for version in sorted(versions, reverse=True):  # recorded by a version that did not load
        try:
            found = _of_manifest(model, read_manifest(versions[version].path))
        except ServingError:
            continue
        if found is not None:
            return found
    return ServedConfig(model)
