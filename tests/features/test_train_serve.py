"""Train/serve consistency: the same raw rows through the training path and the serving path
(online store -> assemble_request_rows) give identical model inputs from one Transform."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.compute as pc

from spindle.features import Transform, assemble_request_rows, build_rows
from spindle.orchestrate import Context, load_config

DAY = "2026-01-04"  # the online store holds this day's values (the latest ingested)


def test_training_and_serving_inputs_are_identical(ingested_workspace: Path) -> None:
    with Context.open(ingested_workspace) as ctx:
        loaded = load_config(ctx, "search_ranker")
        rows = build_rows(ctx.workspace.tables_dir, loaded.config, loaded.definitions, (DAY,)).table
        transform = Transform.fit(rows, loaded.definitions)
        transform = Transform.from_json(transform.to_json())  # as shipped in the model artifact
        user_columns = [d.column for d in loaded.definitions if d.group == "user"]
        store = ctx.online_store()
        try:
            assert store.as_of("product") == DAY
            searches = rows["search_id"].unique().to_pylist()[:25]
            compared = 0
            for search_id in searches:
                train = rows.filter(pc.equal(rows["search_id"], search_id))
                products = store.products(train["product_id"].to_pylist())
                assert products.num_rows == train.num_rows
                user = store.user(train["user_id"][0].as_py())
                served = assemble_request_rows(
                    products, user, train["query"][0].as_py(), user_columns
                )
                offline, online = transform.transform(train), transform.transform(served)
                assert offline.keys() == online.keys()
                for key in offline:
                    np.testing.assert_array_equal(offline[key], online[key], err_msg=key)
                compared += train.num_rows
        finally:
            store.close()
    assert compared > 100
