"""core._location and spindle.yaml's tables_url: where a workspace's Delta tables live.

A local root behaves as the ``Path`` it wraps; ``tables_url`` accepts ``s3://`` and local paths
only (anything else is one line naming the key), and an ``s3://`` root never becomes a local
folder.
"""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa
import pytest

from spindle.core import (
    ConfigError,
    Location,
    Workspace,
    is_object_store_url,
    table_exists,
    write_partition,
)


def _workspace(root: Path, extra: str = "") -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "spindle.yaml").write_text(f"name: shop\n{extra}")
    return root


def test_a_local_root_behaves_as_its_path(tmp_path: Path) -> None:
    root = Location.of(tmp_path / "tables")
    assert root.is_local and root.storage_options is None and root.path == tmp_path / "tables"
    assert not root.exists() and root.iterdir() == [] and root.delta_tables() == []
    write_partition(root / "raw" / "orders", pa.table({"a": [1]}), "2026-01-01", "raw/orders")
    assert (tmp_path / "tables" / "raw" / "orders" / "_delta_log").is_dir()
    assert table_exists(tmp_path / "tables" / "raw" / "orders")  # a Path still works
    assert [t.relative_to(root).as_posix() for t in root.delta_tables()] == ["raw/orders"]
    assert [p.name for p in (root / "raw").iterdir()] == ["orders"]
    assert (root / "raw" / "orders").parent == root / "raw"
    assert str(root / "raw") == str(tmp_path / "tables" / "raw")
    assert root.scratch_dir == tmp_path / "tmp"
    (root / "note.json").write_bytes(b"{}")
    assert (root / "note.json").read_bytes() == b"{}" and (root / "note.json").is_file()
    (root / "raw").delete()
    assert not (root / "raw").exists()


def test_an_object_store_root_names_no_local_folder(tmp_path: Path) -> None:
    root = Location.of("s3://bucket/ws/tables/", {"AWS_REGION": "eu-west-1"})
    assert root.url == "s3://bucket/ws/tables" and not root.is_local
    assert str(root / "raw" / "orders") == "s3://bucket/ws/tables/raw/orders"
    assert (root / "raw").name == "raw" and root.parent.url == "s3://bucket/ws"
    options = root.storage_options or {}
    assert options["AWS_REGION"] == "eu-west-1" and options["max_retries"] == "2"
    assert is_object_store_url(root.url) and not is_object_store_url(str(tmp_path))
    with pytest.raises(Exception, match="object store"):
        _ = root.path


def test_workspace_tables_dir_default_local_and_s3(tmp_path: Path) -> None:
    ws = Workspace.load(_workspace(tmp_path / "a"))
    assert ws.tables_dir.path == tmp_path / "a" / ".spindle" / "tables"
    assert ws.tables_dir.scratch_dir == tmp_path / "a" / ".spindle" / "tmp"
    ws = Workspace.load(_workspace(tmp_path / "b", "tables_url: shared/tables\n"))
    assert ws.tables_dir.path == tmp_path / "b" / "shared" / "tables"
    assert tmp_path / "b" / "shared" / "tables" in ws.storage().paths  # its disk is checked
    extra = (
        "tables_url: s3://lake/shop\nstorage_options:\n"
        "  AWS_ENDPOINT_URL: http://127.0.0.1:9000\n  AWS_ALLOW_HTTP: true\n"
    )
    ws = Workspace.load(_workspace(tmp_path / "c", extra))
    assert ws.tables_dir.url == "s3://lake/shop"
    assert (ws.tables_dir.storage_options or {})["AWS_ALLOW_HTTP"] == "true"
    assert ws.tables_dir.scratch_dir == tmp_path / "c" / ".spindle" / "tmp"
    assert not any(p.name.startswith("s3:") for p in tmp_path.rglob("*"))


@pytest.mark.parametrize(
    "url", ["gs://lake/shop", "http://lake/shop", "s3:/lake/shop", "s3://", "abfss://x/y"]
)
def test_tables_url_refuses_other_stores_in_one_line(tmp_path: Path, url: str) -> None:
    root = _workspace(tmp_path / "w", f"tables_url: '{url}'\n")
    with pytest.raises(ConfigError) as caught:
        Workspace.load(root)
    message = str(caught.value)
    assert "tables_url" in message and "\n" not in message, message


def test_state_dir_still_refuses_urls(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="state_dir"):
        Workspace.load(_workspace(tmp_path / "w", "state_dir: s3://lake/state\n"))
