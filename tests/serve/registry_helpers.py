"""Model versions recorded in a real registry as the train step records them, and the swap of
issue 14 (one version's files copied into another's directory, its manifest rewritten)."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

from spindle.core import ModelVersion, read_package, sha256_file
from spindle.registry import MetadataStore
from spindle.serve import push

MODEL = "search_ranker"


def register(url: str, source: Path, version: int) -> str:
    """Record ``source`` as a ready version, as the train step does; return its content hash."""
    content_hash = read_package(source).content_hash
    with MetadataStore(url) as store:
        assert store.reserve_version(MODEL) == version
        store.complete_version(
            MODEL, version, ModelVersion(MODEL, version, str(source), content_hash, "2026-01-10")
        )
    return content_hash


def swap_in(repo: Path, donor: int, victim: int) -> None:
    """Copy ``donor``'s files into ``victim``'s directory and rewrite its manifest to match."""
    target = repo / MODEL / str(victim)
    for name in ("model.onnx", "transform.json"):
        shutil.copyfile(repo / MODEL / str(donor) / name, target / name)
    manifest = json.loads((target / "manifest.json").read_text())
    for name in ("model.onnx", "transform.json"):
        manifest["files"][name] = sha256_file(target / name)
    (target / "manifest.json").write_text(json.dumps(manifest))


def push_two_and_swap(make_version: Callable[..., Path], repo: Path, url: str) -> None:
    """Versions 1 and 2 registered and pushed (2 serves, 1 is previous); then 1's files are
    copied into 2's directory with 2's manifest rewritten for them."""
    for version, factor in ((1, 1.0), (2, 2.0)):
        source = make_version(version, factor=factor)
        push(source, repo, registered=register(url, source, version))
    swap_in(repo, donor=1, victim=2)
