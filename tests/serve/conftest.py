"""Fixtures for serving tests: real ONNX models, a fitted Transform, a materialised OnlineStore."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import warnings
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import httpx
import numpy as np
import onnx
import pyarrow as pa
import pytest
from onnx import numpy_helper

from spindle.core import sha256_bytes, sha256_file
from spindle.features import (
    EncodingSpec,
    FeatureDefinition,
    FeatureRegistry,
    OnlineStore,
    RequestFeature,
    Transform,
    assemble_request_rows,
)
from spindle.serve import ServerThread, create_app

MODEL = "search_ranker"
WORDS = ["merino", "wool", "cotton", "chunky", "red", "blue", "sock", "lace", "bamboo", "silk"]
TYPES = ["yarn", "needles", "hooks", "patterns", "kits", "notions"]
COUNTRIES = ["us", "gb", "de", "fr"]
QUERIES = ["merino wool", "red yarn", "bamboo needles", "chunky blue", "silk lace patterns"]
N_PRODUCTS = 40


EXAMPLE_FEATURES = Path(__file__).resolve().parents[2] / "src/spindle/examples/yarnit/features"
EXAMPLE_MODEL = Path(__file__).resolve().parents[2] / "src/spindle/examples/yarnit/models"


def shop_serving_config() -> dict[str, object]:
    """What the example ranker declares for serving (its baselines and ``serving:`` block, with
    the declared candidate retrieval), as a version's manifest records it; no task, so the
    fixture's answers stay the bare score of an old manifest."""
    import yaml

    declared = yaml.safe_load((EXAMPLE_MODEL / f"{MODEL}.yaml").read_text())
    return {"baselines": declared["baselines"], "serving": declared["serving"]}


def _definition(group: str, name: str, kind: str, **encoding: object) -> FeatureDefinition:
    if group == "query":  # a request feature: the example's Python function, this encoding
        example = FeatureRegistry.load(EXAMPLE_FEATURES).get(f"query.{name}@1")
        return dataclasses.replace(example, encoding=EncodingSpec(kind=kind, **encoding))  # type: ignore[arg-type]
    return FeatureDefinition(
        group=group,
        name=name,
        version=1,
        owner="test",
        description=f"{group} {name}",
        dtype="string" if kind in ("categorical", "text", "hashed") else "float64",
        tags=(),
        sql=None if group == "query" else name,
        encoding=EncodingSpec(kind=kind, **encoding),  # type: ignore[arg-type]
    )


DEFINITIONS = [
    _definition("product", "product_type", "categorical"),
    _definition("product", "product_id", "hashed", buckets=64),
    _definition("user", "country", "categorical"),
    _definition("query", "text", "text", max_words=4),
    _definition("product", "name_words", "text", max_words=4),
    _definition("product", "price_usd", "numeric", log=True),
    _definition("query", "word_overlap", "numeric"),
    _definition("query", "type_match", "numeric"),
]

REQUEST = [RequestFeature.of(d) for d in DEFINITIONS if d.computation == "request"]


def _products() -> pa.Table:
    rng = np.random.default_rng(0)
    ids = [f"p{i:03d}" for i in range(N_PRODUCTS)]
    names = [" ".join(rng.choice(WORDS, size=3, replace=False)) for _ in ids]
    types = [TYPES[i % len(TYPES)] for i in range(N_PRODUCTS)]
    prices = rng.uniform(2, 80, N_PRODUCTS).round(2)
    popularity = rng.permutation(N_PRODUCTS).astype(np.int64)
    return pa.table(
        {
            "product_id": ids,
            "name_words": names,
            "product_type": types,
            "popularity": pa.array(popularity),
            "product__product_id__v1": ids,
            "product__product_type__v1": types,
            "product__name_words__v1": names,
            "product__price_usd__v1": pa.array(prices),
        }
    )


def _users() -> pa.Table:
    ids = [f"u{i}" for i in range(20)]
    return pa.table({"user_id": ids, "user__country__v1": [COUNTRIES[i % 4] for i in range(20)]})


@pytest.fixture(scope="session")
def catalogue() -> pa.Table:
    return _products()


@pytest.fixture(scope="session")
def transform(catalogue: pa.Table) -> Transform:
    users = _users().to_pylist()
    tables = [
        assemble_request_rows(
            catalogue, users[i % len(users)], ["user__country__v1"], {"query": q}, REQUEST
        )
        for i, q in enumerate(QUERIES)
    ]
    return Transform.fit(pa.concat_tables(tables), DEFINITIONS)


@pytest.fixture
def online_store(tmp_path: Path, catalogue: pa.Table) -> Iterator[Path]:
    path = tmp_path / "online.db"
    store = OnlineStore(path)
    store.materialize("product", catalogue, "2026-01-10")
    store.materialize("user", _users(), "2026-01-10")
    store.close()
    yield path


def _export_base(path: Path, transform: Transform) -> None:
    import torch

    spec = transform.input_spec()

    class Ranker(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.cat = torch.nn.Embedding(max(spec["cat_cardinalities"]), 4)
            self.text = torch.nn.Embedding(spec["text_vocab_size"], 4)
            self.head = torch.nn.Linear(4 + 4 + spec["n_dense"], 1)

        def forward(
            self, cat: torch.Tensor, text: torch.Tensor, dense: torch.Tensor
        ) -> torch.Tensor:
            c = self.cat(cat).sum(1)
            t = self.text(text).mean((1, 2))
            return self.head(torch.cat([c, t, dense], 1)).squeeze(1)

    torch.manual_seed(0)
    n = 3
    args = (
        torch.zeros(n, len(spec["cat_cardinalities"]), dtype=torch.int64),
        torch.zeros(n, spec["n_text"], spec["text_len"], dtype=torch.int64),
        torch.zeros(n, spec["n_dense"]),
    )
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            Ranker(),
            args,
            input_names=["cat", "text", "dense"],
            output_names=["score"],
            dynamo=True,
            verbose=False,
            dynamic_shapes={"cat": {0: batch}, "text": {0: batch}, "dense": {0: batch}},
        )
        assert program is not None
        program.save(str(path))


@pytest.fixture(scope="session")
def base_onnx(tmp_path_factory: pytest.TempPathFactory, transform: Transform) -> Path:
    path = tmp_path_factory.mktemp("onnx") / "base.onnx"
    _export_base(path, transform)
    return path


def _make_slow(proto: onnx.ModelProto, size: int = 600, rounds: int = 30) -> None:
    """Add input-dependent matrix products whose result (times 0) is added to the score.

    30 products of 600 x 600 (13 GFLOP): ~70 ms in NumPy on the 2-core AVX-512 machine, where
    6 products (~11 ms) fitted under the tests' 20 ms budget and the slow model was not slow.
    """
    graph = proto.graph
    producer = next(node for node in graph.node if "score" in node.output)
    producer.output[list(producer.output).index("score")] = "score_fast"
    rng = np.random.default_rng(0)
    weights = (rng.random((size, size)) / size).astype(np.float32)
    graph.initializer.extend(
        [
            numpy_helper.from_array(weights, "slow_w"),
            numpy_helper.from_array(np.array(0.0, np.float32), "slow_zero"),
        ]
    )
    make = onnx.helper.make_node
    nodes = [
        make("ReduceSum", ["dense"], ["slow_s"], keepdims=0),
        make("Add", ["slow_w", "slow_s"], ["slow_m0"]),
    ]
    for i in range(rounds):
        nodes.append(make("MatMul", [f"slow_m{i}", "slow_w"], [f"slow_m{i + 1}"]))
    nodes += [
        make("ReduceSum", [f"slow_m{rounds}"], ["slow_total"], keepdims=0),
        make("Mul", ["slow_total", "slow_zero"], ["slow_nothing"]),
        make("Add", ["score_fast", "slow_nothing"], ["score"]),
    ]
    graph.node.extend(nodes)


def _variant(base: Path, factor: float, slow: bool = False) -> bytes:
    """The base model with its output layer scaled: a different model with other scores."""
    proto = onnx.load(str(base))
    if slow:
        _make_slow(proto)
    for init in proto.graph.initializer:
        array = numpy_helper.to_array(init)
        if array.ndim == 2 and array.shape[0] == 1:  # the head's [1, F] weight
            init.CopyFrom(numpy_helper.from_array((array * factor).astype(array.dtype), init.name))
            break
    else:
        raise AssertionError("head weight not found")
    return proto.SerializeToString()


MakeVersion = Callable[..., Path]


@pytest.fixture
def make_version(tmp_path: Path, base_onnx: Path, transform: Transform) -> MakeVersion:
    """Write a model version directory as training does; ``factor`` changes the model."""

    def make(
        version: int,
        factor: float = 1.0,
        model: str = MODEL,
        transform_json: str | None = None,
        slow: bool = False,
        config: dict[str, object] | None = None,
    ) -> Path:
        tag = "" if transform_json is None else f"-t{sha256_bytes(transform_json.encode())[:8]}"
        tag += "-slow" if slow else ""
        tag += "" if config is None else f"-c{sha256_bytes(json.dumps(config).encode())[:8]}"
        root = tmp_path / "artifacts" / model / f"{version}-{factor}{tag}"
        if root.exists():
            return root
        root.mkdir(parents=True)
        (root / "model.onnx").write_bytes(_variant(base_onnx, factor, slow))
        (root / "transform.json").write_text(transform_json or transform.to_json())
        (root / "weights.pt").write_bytes(b"training-only weights")
        (root / "input_spec.json").write_text(json.dumps(transform.input_spec()))
        names = ["model.onnx", "transform.json", "weights.pt", "input_spec.json"]
        manifest = {
            "model": model,
            "version": version,
            "date": "2026-01-10",
            "base_version": None,
            "config_hash": "c0ffee",
            "features": [d.ref for d in DEFINITIONS],
            "metrics": {"ndcg@10": 0.5},
            "files": {name: sha256_file(root / name) for name in names},
            "created_at": dt.datetime.now(dt.UTC).isoformat(),
            "config": shop_serving_config() if config is None else config,
        }
        (root / "manifest.json").write_text(json.dumps(manifest))
        return root

    return make


# the SQL the example's keyword retrieval (serving.candidates.match) answers like
KEYWORD_SQL = """SELECT product_id FROM candidates
ORDER BY len(list_intersect(string_split(coalesce(name_words, ''), ' '),
                            string_split(lower($query), ' '))) DESC,
         coalesce(popularity, 0) DESC, product_id
LIMIT 50"""


@pytest.fixture
def shop_config() -> dict[str, object]:
    """The example ranker's recorded serving config (see :func:`shop_serving_config`)."""
    return shop_serving_config()


@pytest.fixture
def shop_declarations(shop_config: dict[str, object]) -> object:
    """The example workspace's declarations: its views, request groups and the ranker's config."""
    from spindle.serve import ServingDeclarations

    registry = FeatureRegistry.load(EXAMPLE_FEATURES)
    return ServingDeclarations.of(registry, models={MODEL: shop_config})


@pytest.fixture
def repo(tmp_path: Path) -> Path:
    return tmp_path / "model_repo"


Serve = Callable[..., tuple[ServerThread, httpx.Client]]


@pytest.fixture
def serve(repo: Path, online_store: Path) -> Iterator[Serve]:
    """Start real servers (uvicorn on loopback) with real httpx clients; all stopped at the end."""
    with ExitStack() as stack:

        def start(**kwargs: object) -> tuple[ServerThread, httpx.Client]:
            kwargs.setdefault("poll_interval_s", 0.1)
            # generous: on a loaded 2-core machine a 100 ms budget sends requests to the
            # fallback; tests of the budget pass their own
            kwargs.setdefault("latency_budget_ms", 5000.0)
            kwargs.setdefault("default_model", "search_ranker")  # the example route's model
            app = create_app(repo, online_store, **kwargs)  # type: ignore[arg-type]
            server = stack.enter_context(ServerThread(app))
            client = stack.enter_context(httpx.Client(base_url=server.url, timeout=30))
            return server, client

        yield start
