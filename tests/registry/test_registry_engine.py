"""The database boundary: SQLite setup, URL handling and translated, actionable errors."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

import pytest

from spindle.core import RegistryError
from spindle.registry import MetadataStore


def test_sqlite_file_is_created_with_its_directory_in_wal_mode(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "er" / "metadata.db"

    with MetadataStore(f"sqlite:///{path}") as store:
        store.reserve_version("m")

    assert path.is_file()
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    conn.close()


def test_reopening_keeps_everything(url: str, make: Any) -> None:
    with MetadataStore(url) as store:
        store.record_artifact(make("a:1"))
        store.reserve_version("m")
    with MetadataStore(url) as store:
        assert store.get_artifact("a:1").id == "a:1"
        assert store.reserve_version("m") == 2


def test_in_memory_sqlite_works() -> None:
    with MetadataStore("sqlite://") as store:
        assert store.reserve_version("m") == 1
        assert store.versions("m")[0].version == 1


def test_a_held_write_lock_becomes_a_registry_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("spindle.registry._engine.BUSY_TIMEOUT_MS", 100)
    url = f"sqlite:///{tmp_path / 'state' / 'metadata.db'}"  # SQLite's one-writer lock
    with MetadataStore(url) as store:
        holder = sqlite3.connect(tmp_path / "state" / "metadata.db", isolation_level=None)
        try:
            holder.execute("BEGIN IMMEDIATE")
            with pytest.raises(RegistryError, match="database is locked") as info:
                store.reserve_version("m")
        finally:
            holder.close()
        assert url in str(info.value)
        assert "held the write lock" in str(info.value)
        assert store.reserve_version("m") == 1  # usable again once the lock is gone


def test_unopenable_file_names_the_url_and_the_fix(tmp_path: Path) -> None:
    with pytest.raises(RegistryError, match=r"unable to open database file; check that the"):
        MetadataStore(f"sqlite:///{tmp_path}")  # a directory, not a file


def test_passwords_are_masked(tmp_path: Path) -> None:
    url = "postgresql://spindle:s3cret@127.0.0.1:1/metadata"
    with pytest.raises(RegistryError) as info:
        MetadataStore(url)  # no driver installed, or nothing listening on port 1
    assert "s3cret" not in str(info.value)
    assert "spindle:***@127.0.0.1:1" in str(info.value)


def test_malformed_url() -> None:
    with pytest.raises(RegistryError, match="is not a database URL"):
        MetadataStore("metadata.db")


def test_closed_store_refuses_work(url: str) -> None:
    store = MetadataStore(url)
    store.close()
    with pytest.raises(RegistryError, match="is closed"):
        store.models()
