"""The workspace's declarations (feature definitions, sources, model configs), loaded once and
again only when a file under them changes: loading validates every declaration (~0.1-0.2 s on
the example), too slow to repeat on every request."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import spindle

_LOCK = threading.Lock()
_CACHE: dict[Path, tuple[tuple[Any, ...], Declared]] = {}


@dataclass(frozen=True)
class Declared:
    features: spindle.FeatureRegistry
    configs: dict[str, spindle.ModelConfig]
    provenance: dict[str, Any]


def _stamp(ws: spindle.Workspace) -> tuple[Any, ...]:
    """Every declaration file with its size and modification time."""
    files = [ws.root / "spindle.yaml"]
    for folder in (ws.features_dir, ws.root / "sources", ws.models_dir):
        if folder.is_dir():
            files += sorted(
                p for p in folder.rglob("*") if p.is_file() and "__pycache__" not in p.parts
            )
    out = []
    for path in files:
        try:
            stat = path.stat()
        except FileNotFoundError:
            continue
        out.append((str(path), stat.st_size, stat.st_mtime_ns))
    return tuple(out)


def declared(ws: spindle.Workspace) -> Declared:
    """The declarations of ``ws``, from the cache while no file under them changed."""
    stamp = _stamp(ws)
    with _LOCK:
        cached = _CACHE.get(ws.root)
        if cached is not None and cached[0] == stamp:
            return cached[1]
    value = Declared(
        spindle.FeatureRegistry.load(ws.features_dir),
        {m: ws.model_config(m)[0] for m in ws.model_names()},
        {n: d.provenance for n, d in spindle.load_sources(ws.root).items()},
    )
    with _LOCK:
        _CACHE[ws.root] = (stamp, value)
    return value
