"""A version serves only with the files the registry recorded for it, not the manifest's say-so.

The attack of issue 14: version 1's files copied into version 2's directory of the model
repository, and version 2's manifest rewritten with their sha256. The files match that manifest,
so a manifest check alone serves them as "2"; against the registry's record of version 2 they
are refused and its traffic falls back, as for a damaged file.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from tests.serve.registry_helpers import MODEL, push_two_and_swap, register, swap_in

from spindle.core import ServingError, read_package
from spindle.registry import MetadataStore
from spindle.serve import (
    ChecksumMismatch,
    ModelRuntime,
    RegistryHashes,
    leftovers,
    list_versions,
    push,
    read_routing,
    remove_leftovers,
    restore_version,
    rollback,
    routing_lock,
)
from spindle.serve._state import load_state


@pytest.fixture
def registry(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'metadata.db'}"


@pytest.fixture
def attacked(make_version, repo: Path, registry: str) -> Path:
    """Versions 1 and 2 registered and pushed (2 serves, 1 is previous); then 1's files are
    copied into 2's directory with 2's manifest rewritten for them."""
    push_two_and_swap(make_version, repo, registry)
    ModelRuntime.load(repo / MODEL / "2")  # the manifest alone is fooled: it loads as "2"
    return repo


def test_a_rewritten_manifest_does_not_make_other_files_the_registered_version(
    attacked: Path, registry: str
) -> None:
    state = load_state(attacked, registered=RegistryHashes(registry))
    loaded = state.models[MODEL].versions
    assert (loaded[2].status, loaded[1].status) == ("failed checksum", "loaded")
    assert "not the version the registry recorded" in loaded[2].detail
    assert "doctor --fix" in loaded[2].detail
    assert state.models[MODEL].serving_versions() == [1]
    # without the registry the swap goes unnoticed: what this test guards against
    assert load_state(attacked).models[MODEL].versions[2].status == "loaded"


def test_push_and_rollback_refuse_files_that_are_not_the_registered_version(
    make_version, repo: Path, registry: str
) -> None:
    one, two = make_version(1), make_version(2, factor=2.0)
    first, second = register(registry, one, 1), register(registry, two, 2)
    with pytest.raises(ChecksumMismatch, match="not the version the registry recorded"):
        push(two, repo, registered=first)
    assert list_versions(repo, MODEL) == []
    push(one, repo, registered=first)
    push(two, repo, registered=second)
    swap_in(repo, donor=2, victim=1)
    hashes = RegistryHashes(registry)
    with pytest.raises(ChecksumMismatch, match="registry recorded"):
        rollback(repo, MODEL, registered=hashes)
    assert read_routing(repo, MODEL).weights == {2: 1.0}
    with routing_lock(repo, MODEL):  # what `spindle doctor --fix` does: copy it back
        restore_version(one, repo, registered=first)
    assert rollback(repo, MODEL, registered=hashes) == 1


def test_registry_hashes_refuse_versions_the_registry_does_not_serve(
    make_version, registry: str
) -> None:
    register(registry, make_version(1), 1)
    with MetadataStore(registry) as store:
        store.reserve_version(MODEL)  # 2: training under way
    hashes = RegistryHashes(registry)
    with pytest.raises(ServingError, match=r"search_ranker@2 is reserved in the registry"):
        hashes(MODEL, 2)
    with pytest.raises(ServingError, match=r"cannot verify search_ranker@9 .*no version 9"):
        hashes(MODEL, 9)
    assert hashes(MODEL, 1) == read_package(make_version(1)).content_hash


def _push_killed_while_copying(source: Path, repo: Path) -> subprocess.CompletedProcess[str]:
    code = "import sys; from spindle.serve import push; push(sys.argv[1], sys.argv[2])"
    env = dict(os.environ, SPINDLE_KILL_AT="repository:copied", OMP_WAIT_POLICY="PASSIVE")
    return subprocess.run(
        [sys.executable, "-c", code, str(source), str(repo)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_a_push_killed_while_copying_leaves_a_leftover_the_next_push_removes(
    make_version, repo: Path
) -> None:
    source = make_version(1)
    killed = _push_killed_while_copying(source, repo)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    (left,) = leftovers(repo)
    assert left.parent == repo / MODEL and left.name.startswith(".1.") and left.is_dir()
    assert list_versions(repo, MODEL) == []  # never a half-written version
    assert push(source, repo).created
    assert leftovers(repo) == [] and list_versions(repo, MODEL) == [1]


def test_leftovers_are_removed_only_by_a_holder_of_the_lock(repo: Path, make_version) -> None:
    push(make_version(1), repo)
    stray = repo / MODEL / ".routing.json.abc123.tmp"
    stray.write_text("{")
    assert leftovers(repo) == [stray]
    with routing_lock(repo, MODEL):
        assert remove_leftovers(repo, MODEL) == [stray]
    assert not stray.exists() and read_routing(repo, MODEL).weights == {1: 1.0}
    assert leftovers(repo) == []  # the lock file itself is no leftover
