"""Train/serve consistency: the same raw rows through the training path and the serving path
(online store -> assemble_request_rows) give identical model inputs from one Transform."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from spindle.core import FeatureError, load_sources
from spindle.features import (
    FeatureRegistry,
    RequestFeature,
    Transform,
    apply_request_features,
    assemble_request_rows,
    build_rows,
)
from spindle.orchestrate import Context, load_config

EXAMPLE = Path(__file__).resolve().parents[2] / "src" / "spindle" / "examples" / "yarnit"
DAY = "2026-01-04"


def _assert_same(train: pa.ChunkedArray, served: pa.ChunkedArray) -> None:
    if pa.types.is_string(train.type):
        assert train.to_pylist() == served.to_pylist()
        return
    np.testing.assert_allclose(
        train.to_numpy(zero_copy_only=False), served.to_numpy(zero_copy_only=False), atol=1e-6
    )


def test_training_and_serving_inputs_are_identical(ingested_workspace: Path) -> None:
    with Context.open(ingested_workspace) as ctx:
        loaded = load_config(ctx, "search_ranker")
        rows = build_rows(
            ctx.workspace.tables_dir,
            loaded.config,
            loaded.definitions,
            (DAY,),
            sources=ctx.sources,
        ).table
        transform = Transform.fit(rows, loaded.definitions)
        transform = Transform.from_json(transform.to_json())  # as shipped in the model artifact
        # the request features travel in the transform, their code with them
        assert [f.ref for f in transform.request] == [
            d.ref for d in loaded.definitions if d.computation == "request"
        ]
        user_columns = [d.column for d in loaded.definitions if d.group == "user"]
        store = ctx.online_store()
        try:
            assert store.as_of("product") == DAY
            searches = rows["search_id"].unique().to_pylist()[:25]
            compared = 0
            for search_id in searches:
                train = rows.filter(pc.equal(rows["search_id"], search_id))
                products = store.rows("product", train["product_id"].to_pylist())
                assert products.num_rows == train.num_rows
                user = store.get("user", train["user_id"][0].as_py())
                request = {"query": train["query"][0].as_py()}
                served = assemble_request_rows(
                    products, user, user_columns, request, transform.request
                )
                offline, online = transform.transform(train), transform.transform(served)
                assert offline.keys() == online.keys()
                for key in offline:
                    np.testing.assert_allclose(offline[key], online[key], atol=1e-6, err_msg=key)
                for feature in transform.request:  # the raw request features too
                    _assert_same(train[feature.column], served[feature.column])
                compared += train.num_rows
        finally:
            store.close()
    assert compared > 100


def test_served_request_features_run_the_recorded_code(tmp_path: Path) -> None:
    """The transform carries each request feature's source: serving runs it even after the
    workspace's file changed, and a recorded source that does not match its hash is refused."""
    features = tmp_path / "features"
    shutil.copytree(EXAMPLE / "features", features)
    registry = FeatureRegistry.load(features, sources=load_sources(EXAMPLE))
    recorded = RequestFeature.of(registry.get("query.word_overlap@1")).to_dict()
    rows = pa.table(
        {"query": ["merino yarn", "hooks"], "name_words": ["merino sock yarn", "lace shawl"]}
        | {"product_type": ["yarn", "kits"]}
    )
    before = apply_request_features(rows, [RequestFeature.from_dict(recorded)])
    for path in features.glob("*.py"):  # the workspace's code changes after training
        path.write_text("def word_overlap(rows):\n    raise RuntimeError('new code')\n")
    after = apply_request_features(rows, [RequestFeature.from_dict(recorded)])
    assert after.equals(before)
    assert before["query__word_overlap__v1"].to_pylist() == [1.0, 0.0]
    with pytest.raises(FeatureError, match="does not match its sha256"):
        RequestFeature.from_dict(recorded | {"source": recorded["source"] + "\n# edited\n"})
    with pytest.raises(FeatureError, match="changed after the feature definitions were loaded"):
        RequestFeature.of(registry.get("query.word_overlap@1"))
