"""Raw files, tables and training sets on an S3-compatible store (moto on loopback), in this
process: three days ingested from the bucket's raw files, then the fourth day's whole run
(and a training set rebuilt as 4 parts on the store, equal to the one-task build);
the training sets are objects under ``artifacts_url`` and nothing of them, of the raw files or
of the tables is written to the workspace's folder. A missing raw object and a bad one give
their one-line errors."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from tests.conftest import START, make_workspace
from tests.objectstore import MotoServer, running_moto
from tests.orchestrate.test_two_nodes import _everything_on_store

import spindle
from spindle.core import Location
from spindle.orchestrate import build_training_set, load_config

pytestmark = pytest.mark.e2e

DAYS = [START.isoformat(), "2026-01-02", "2026-01-03"]
PARTS = ["examples.partitions=4", "examples.partition_key=user_id"]


@pytest.fixture(scope="module")
def moto() -> Iterator[MotoServer]:
    yield from running_moto()


def test_a_day_runs_with_raw_files_and_training_sets_on_the_store(
    tmp_path: Path, moto: MotoServer
) -> None:
    bucket = moto.bucket()
    root = make_workspace(tmp_path / "yarnit", days=4)
    _everything_on_store(root, bucket.url, bucket.options)
    with spindle.Context.open(root) as ctx:
        for day in DAYS:
            spindle.ingest(ctx, day)
            spindle.validate(ctx, day)
        spindle.run_day(ctx, "search_ranker", "2026-01-04", overrides=["training.epochs=1"])
        assert ctx.store.get_alias("search_ranker", "production") == 1
        one = build_training_set(ctx, load_config(ctx, "search_ranker"), DAYS)
        assert one.uri.startswith(f"{bucket.url}/artifacts/trainsets/search_ranker/")
        whole = pq.read_table(Location.of(one.uri, bucket.options).local_copy(tmp_path / "c"))
        Location.of(one.uri, bucket.options).delete()  # gone: rebuilt, now as 4 parts
        four = build_training_set(ctx, load_config(ctx, "search_ranker", PARTS), DAYS)
        assert four.uri == one.uri and four.rows == one.rows == whole.num_rows > 0
        assert pq.read_table(Location.of(four.uri, bucket.options).local_copy()).equals(whole)
    keys = bucket.keys()
    assert any(k.startswith("artifacts/trainsets/search_ranker/") for k in keys)
    assert not (root / "raw").exists() and not (root / ".spindle" / "tables").exists()
    assert not (root / ".spindle" / "artifacts" / "trainsets").exists()
    assert not [k for k in keys if ".parts/" in k]  # the parts are removed from the store
