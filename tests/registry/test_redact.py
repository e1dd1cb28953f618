"""MetadataStore.redact: a deletion request's ids leave the store's records and its file."""

from __future__ import annotations

from pathlib import Path

from spindle.registry import MetadataStore


def test_redact_replaces_whole_ids_and_leaves_no_bytes(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    with MetadataStore(f"sqlite:///{path}") as store:
        run = store.start_run("validate", "k1", params={"note": "user u10 and u100", "u10": 1})
        store.finish_run(run.id, "failed", error="burst: user_id u10 has 60 rows")
        other = store.start_run("ingest", "k2", params={"date": "2026-01-10"})
        counts = store.redact(["u10", "2026"])
        assert counts == {"artifacts": 0, "runs": 1, "model_versions": 0}
        got = store.get_run(run.id)
        assert got.params == {"note": "user [forgotten] and u100", "[forgotten]": 1}
        assert got.error == "burst: user_id [forgotten] has 60 rows"
        assert store.get_run(other.id).params == {"date": "2026-01-10"}  # a date is no id
    data = path.read_bytes() + b"".join(
        p.read_bytes() for p in tmp_path.glob("metadata.db-*") if p.is_file()
    )
    assert b"u10 " not in data and b'u10"' not in data and b"u100" in data
