"""The RegistryReader contract: MetadataStore and the stdlib SQLiteReader read one real SQLite
store filled through MetadataStore and return equal records and equal NotFound messages; the
reader is read-only, sees a concurrent writer's commits only once they are made, and hands a
store it cannot read to MetadataStore."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from spindle.core import Artifact, ModelVersion, NotFound, RegistryError
from spindle.registry import (
    MetadataStore,
    RegistryReader,
    SQLiteReader,
    latest_by_version,
    open_reader,
)
from spindle.registry._reader import sqlite_file
from spindle.registry._schema import Base
from spindle.registry._sqlite_reader import COLUMNS


def _fill(store: MetadataStore) -> None:
    """Two models; versions ready, failed and reserved; aliases moved and cleared; deployments
    done, abandoned and refused; evaluations and deployment artifacts with properties."""
    for version in (1, 2, 3):
        store.reserve_version("search_ranker", date=f"2026-01-0{version}")
        artifact = ModelVersion(
            "search_ranker", version, f"file:///m/{version}", f"h{version}", f"2026-01-0{version}"
        )
        store.complete_version("search_ranker", version, artifact)
    store.reserve_version("search_ranker", base_version=3)  # 4: failed
    store.fail_version("search_ranker", 4, "loss diverged")
    store.reserve_version("search_ranker")  # 5: reserved, training under way
    store.reserve_version("popularity", date="2026-01-02")
    store.complete_version(
        "popularity", 1, ModelVersion("popularity", 1, "file:///p/1", "p1", "2026-01-02")
    )
    store.set_alias("search_ranker", "candidate", 2, actor="ci", reason="gate passed")
    store.set_alias("search_ranker", "candidate", None, actor="ana", reason="cleared")
    store.set_alias("search_ranker", "production", 1, actor="ci", reason="first push")
    done = store.begin_deployment(
        "search_ranker", {1: 0.25, 3: 0.75}, 1, actor="spindle route", reason="ramp"
    )
    store.finish_deployment(done.seq)  # production -> 3, previous -> 1
    gone = store.begin_deployment("search_ranker", {2: 1.0}, 3, actor="ci", reason="push")
    store.abandon_deployment(gone.seq, "routing.json was never written")
    store.refuse_deployment(
        "popularity", {1: 1.0}, actor="spindle push", reason="gate", detail="blocked"
    )
    for n, (version, decision) in enumerate(((2, "block"), (3, "pass"), (3, "pass"))):
        store.record_artifact(
            Artifact(
                "evaluation",
                f"evaluation:search_ranker@{version}/{n}",
                f"file:///e/{version}",
                "e",
                {
                    "model": "search_ranker",
                    "version": version,
                    "decision": decision,
                    "metrics": {"candidate": {"ndcg": 0.5, "nan": float("nan")}},
                    "passed": decision == "pass",
                },
            )
        )
    raw = Artifact("raw_partition", "raw:2026-01-01", "file:///r/1", "r1", {"date": "2026-01-01"})
    store.record_artifact(raw)
    ingest = store.start_run("ingest", "k-ingest", date="2026-01-01")
    store.finish_run(ingest.id, "succeeded", outputs=[raw], resources={"wall_s": 1.5})
    train = store.start_run(
        "train", "k-train", model="search_ranker", params={"lr": 0.1}, inputs=[raw.id]
    )
    store.finish_run(train.id, "failed", error="loss diverged")
    trainset = Artifact("training_set", "trainset:1", "file:///t/1", "t1", {"days": 1})
    build = store.start_run("training_set", "k-set", model="search_ranker", inputs=[raw.id])
    store.finish_run(build.id, "succeeded", outputs=[trainset])
    store.add_edges(
        [
            ("trainset:1", "model:search_ranker@1", "trained_on"),
            ("trainset:1", "model:search_ranker@2", "trained_on"),
            ("model:search_ranker@1", "model:search_ranker@2", "warm_start"),
        ]
    )
    store.start_run(
        "train", "k-train-2", model="search_ranker", inputs=[raw.id, "model:popularity@1"]
    )
    store.record_artifact(
        Artifact(
            "deployment",
            "deployment:search_ranker@3",
            "file:///d/3",
            "d",
            {"model": "search_ranker", "version": 3, "forced_reason": None},
        )
    )


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("reader") / "metadata.db"
    with MetadataStore(f"sqlite:///{path}") as store:
        _fill(store)
    return path


def _open_sqlite(path: Path) -> RegistryReader:
    reader = SQLiteReader.open(path)
    assert reader is not None
    return reader


IMPLEMENTATIONS: dict[str, Callable[[Path], RegistryReader]] = {
    "MetadataStore": lambda path: MetadataStore(f"sqlite:///{path}"),
    "SQLiteReader": _open_sqlite,
}


@pytest.fixture(params=sorted(IMPLEMENTATIONS))
def reader(request: pytest.FixtureRequest, database: Path) -> Iterator[RegistryReader]:
    opened = IMPLEMENTATIONS[request.param](database)
    yield opened
    opened.close()


# Every read method, on hits and misses (each miss must raise the same NotFound).
CALLS: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
    ("models", (), {}),
    ("versions", ("search_ranker",), {}),
    ("versions", ("popularity",), {}),
    ("versions", ("search_rankr",), {}),
    ("get_version", ("search_ranker", 4), {}),
    ("get_version", ("search_ranker", 9), {}),
    ("get_version", ("popularity", 2), {}),
    ("get_version", ("nope", 1), {}),
    ("aliases", ("search_ranker",), {}),
    ("aliases", ("popularity",), {}),
    ("aliases", ("nope",), {}),
    ("get_alias", ("search_ranker", "production"), {}),
    ("get_alias", ("search_ranker", "candidate"), {}),
    ("get_alias", ("nope", "production"), {}),
    ("alias_history", ("search_ranker",), {}),
    ("alias_history", ("search_ranker", "production"), {}),
    ("alias_history", ("nope",), {}),
    ("get_artifact", ("model:search_ranker@2",), {}),
    ("get_artifact", ("model:search_ranker@7",), {}),
    ("get_artifact", ("evaluation:other@1",), {}),
    ("get_artifact", ("unheard-of",), {}),
    ("latest_artifact", ("evaluation",), {"model": "search_ranker", "version": 3}),
    ("latest_artifact", ("evaluation",), {"model": "search_ranker", "decision": "block"}),
    ("latest_artifact", ("evaluation",), {"model": "search_ranker", "version": 1}),
    ("latest_artifact", ("evaluation",), {"passed": 1}),  # a bool is not 1
    ("latest_artifact", ("evaluation",), {"passed": True}),
    ("latest_artifact", ("deployment",), {"forced_reason": None}),
    ("latest_artifact", ("model_version",), {}),
    ("find_artifacts", (), {}),
    ("find_artifacts", ("evaluation",), {"model": "search_ranker", "version": 3}),
    ("find_artifacts", ("evaluation",), {"passed": True}),
    ("find_artifacts", (None,), {"date": "2026-01-01"}),
    ("runs", (), {}),
    ("runs", (), {"model": "search_ranker", "step": "train"}),
    ("runs", (), {"step": "train", "status": "failed", "limit": 1}),
    ("runs", (), {"limit": None}),
    ("runs", (), {"status": "bogus"}),
    ("get_run", ("no-such-run",), {}),
    ("lineage", ("model:search_ranker@2",), {}),
    ("lineage", ("raw:2026-01-01",), {"direction": "downstream"}),
    ("lineage", ("trainset:1",), {"direction": "upstream", "max_depth": 1}),
    ("lineage", ("raw:2026-01-01",), {"max_depth": 0}),
    ("lineage", ("model:search_ranker@9",), {}),
    ("lineage", ("raw:2026-01-01",), {"direction": "sideways"}),
    ("deployments", (), {}),
    ("deployments", ("search_ranker",), {}),
    ("deployments", (), {"status": "refused"}),
    ("deployments", ("popularity",), {"status": "done"}),
]


def _outcome(reader: RegistryReader, name: str, args: tuple[Any, ...], kwargs: Any) -> Any:
    try:
        return getattr(reader, name)(*args, **kwargs)
    except RegistryError as exc:  # NotFound included
        return (type(exc).__name__, str(exc))


@pytest.mark.parametrize(("name", "args", "kwargs"), CALLS, ids=[c[0] for c in CALLS])
def test_every_read_returns_what_the_store_returns(
    database: Path, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    store, light = MetadataStore(f"sqlite:///{database}"), _open_sqlite(database)
    try:
        assert _outcome(light, name, args, kwargs) == _outcome(store, name, args, kwargs)
    finally:
        store.close()
        light.close()


def test_the_contract(reader: RegistryReader) -> None:
    assert isinstance(reader, RegistryReader)
    assert reader.models() == ["popularity", "search_ranker"]
    versions = reader.versions("search_ranker")
    assert [(v.version, v.status) for v in versions] == [
        (1, "ready"),
        (2, "ready"),
        (3, "ready"),
        (4, "failed"),
        (5, "reserved"),
    ]
    assert versions[3].error == "loss diverged" and versions[3].base_version == 3
    assert versions[0].created_at.utcoffset() is not None  # aware, UTC
    assert reader.get_version("search_ranker", 2) == versions[1]
    assert reader.aliases("search_ranker") == {"previous": 1, "production": 3}
    assert reader.get_alias("search_ranker", "candidate") is None  # set, then cleared
    production = reader.alias_history("search_ranker", "production")
    assert [(e.version, e.previous_version) for e in production] == [(1, None), (3, 1)]
    assert [d.status for d in reader.deployments()] == ["done", "abandoned", "refused"]
    assert reader.deployments("search_ranker")[0].weights == {1: 0.25, 3: 0.75}
    newest = reader.latest_artifact("evaluation", model="search_ranker", version=3)
    assert newest is not None and newest.id.endswith("/2")
    assert newest.properties["metrics"]["candidate"]["nan"] == "nan"  # stored as a string
    assert reader.latest_artifact("evaluation", passed=1) is None
    assert reader.get_artifact("model:popularity@1").properties["model"] == "popularity"
    runs = reader.runs()
    assert [(r.step, r.status) for r in runs] == [
        ("train", "running"),
        ("training_set", "succeeded"),
        ("train", "failed"),
        ("ingest", "succeeded"),
    ]
    assert runs[0].inputs == ("raw:2026-01-01", "model:popularity@1") and runs[0].ended_at is None
    assert runs[3].outputs == ("raw:2026-01-01",) and runs[3].resources["wall_s"] == 1.5
    assert [r.error for r in reader.runs(model="search_ranker", status="failed")] == [
        "loss diverged"
    ]
    assert [a.id for a in reader.find_artifacts("raw_partition", date="2026-01-01")] == [
        "raw:2026-01-01"
    ]
    assert reader.get_run(runs[1].id) == runs[1] and runs[1].inputs == ("raw:2026-01-01",)
    down = reader.lineage("raw:2026-01-01", direction="downstream")
    assert [(n.id, n.relation, n.depth) for n in down.downstream] == [
        ("trainset:1", "produced_by:training_set", 1),
        ("model:search_ranker@1", "trained_on", 2),
        ("model:search_ranker@2", "trained_on", 2),
    ]
    assert down.node("trainset:1") is not None and down.upstream == []


def test_unknown_names_raise_notfound_naming_what_exists(reader: RegistryReader) -> None:
    with pytest.raises(NotFound, match=r"no model 'search_rankr' \(did you mean 'search_ranker'"):
        reader.aliases("search_rankr")
    with pytest.raises(NotFound, match="model search_ranker has versions 1-5; no version 9"):
        reader.get_version("search_ranker", 9)
    with pytest.raises(NotFound, match="recorded ids starting with 'model:search_ranker@'"):
        reader.get_artifact("model:search_ranker@9")
    with pytest.raises(NotFound, match="no similar id; recorded kinds: deployment, evaluation"):
        reader.get_artifact("unheard-of")


def test_a_closed_reader_says_so(reader: RegistryReader) -> None:
    reader.close()
    with pytest.raises(RegistryError, match="is closed"):
        reader.models()


def test_the_reader_cannot_write(database: Path) -> None:
    writes = {n for n in dir(MetadataStore) if n.split("_")[0] in ("record", "start", "finish")}
    writes |= {"set_alias", "reserve_version", "complete_version", "add_edge", "begin_deployment"}
    assert writes <= set(dir(MetadataStore))
    assert writes.isdisjoint(dir(SQLiteReader)) and writes.isdisjoint(dir(RegistryReader))
    reader = _open_sqlite(database)
    try:  # and its connection is read-only (mode=ro), whatever SQL reaches it
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            reader._conn.execute("DELETE FROM model_aliases")  # type: ignore[attr-defined]
        assert reader.models() == ["popularity", "search_ranker"]
    finally:
        reader.close()


_WRITER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
conn.execute("UPDATE model_aliases SET version = 2 WHERE alias = 'production'")
print("holding", flush=True)
sys.stdin.readline()
conn.execute("COMMIT")
print("committed", flush=True)
"""


def test_reads_while_another_process_holds_the_write_lock(tmp_path: Path) -> None:
    path = tmp_path / "metadata.db"
    with MetadataStore(f"sqlite:///{path}") as store:
        _fill(store)
    reader = _open_sqlite(path)
    with subprocess.Popen(
        [sys.executable, "-c", _WRITER, str(path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    ) as writer:
        try:
            assert writer.stdout is not None and writer.stdin is not None
            assert writer.stdout.readline().strip() == "holding"
            assert reader.get_alias("search_ranker", "production") == 3  # the committed state
            writer.stdin.write("go\n")
            writer.stdin.flush()
            assert writer.stdout.readline().strip() == "committed"
            assert reader.get_alias("search_ranker", "production") == 2
        finally:
            writer.kill()
            reader.close()


def test_open_reader_uses_sqlite3_for_an_existing_sqlite_file(database: Path) -> None:
    reader = open_reader(f"sqlite:///{database}")
    try:
        assert isinstance(reader, SQLiteReader)
    finally:
        reader.close()


def test_open_reader_falls_back_to_the_store(tmp_path: Path) -> None:
    missing = tmp_path / "state" / "metadata.db"
    first = open_reader(f"sqlite:///{missing}")  # not made yet: the store makes it
    first.close()
    assert isinstance(first, MetadataStore) and missing.is_file()
    memory = open_reader("sqlite://")
    memory.close()
    assert isinstance(memory, MetadataStore)
    old = tmp_path / "old.db"  # a store of another version: a column read here is missing
    with sqlite3.connect(old) as conn:
        conn.execute("CREATE TABLE model_versions (model TEXT, version INTEGER)")
    conn.close()
    fallback = open_reader(f"sqlite:///{old}")
    fallback.close()
    assert isinstance(fallback, MetadataStore)


def test_sqlite_file_reads_only_plain_sqlite_file_urls() -> None:
    assert sqlite_file("sqlite:////abs/metadata.db") == Path("/abs/metadata.db")
    assert sqlite_file("sqlite:///rel/metadata.db") == Path("rel/metadata.db")
    for other in (
        "sqlite://",
        "sqlite:///:memory:",
        "sqlite:///file.db?mode=ro",
        "postgresql+psycopg://u@h/db",
    ):
        assert sqlite_file(other) is None


def test_the_columns_read_are_those_of_the_orm_schema() -> None:
    for table, columns in COLUMNS.items():
        assert table in Base.metadata.tables, table
        assert set(columns) <= set(Base.metadata.tables[table].columns.keys()), table


@pytest.mark.parametrize("implementation", sorted(IMPLEMENTATIONS))
def test_paths_inside_the_workspace_are_recorded_relative_and_read_resolved(
    tmp_path: Path, implementation: str
) -> None:
    """A store written for the workspace at A and read for its copy at B names B's files."""
    original, copy = tmp_path / "A", tmp_path / "B"
    path = tmp_path / "metadata.db"
    uris = {
        "inside": (f"{original}/.spindle/artifacts/models/m/1", ".spindle/artifacts/models/m/1"),
        "root": (str(original), "."),
        "outside": ("/srv/model_repo/m/1", "/srv/model_repo/m/1"),
        "scheme": ("s3://bucket/m/1", "s3://bucket/m/1"),
        "none": ("", ""),
    }
    with MetadataStore(f"sqlite:///{path}", root=original) as store:
        store.reserve_version("m")
        store.complete_version("m", 1, ModelVersion("m", 1, uris["inside"][0], "h", "2026-01-01"))
        run = store.start_run("step", "k", inputs=["model:m@1"])
        others = [Artifact("file", name, uri, name, {}) for name, (uri, _) in uris.items()]
        store.finish_run(run.id, "succeeded", outputs=others[1:])
        assert store.get_artifact("model:m@1").uri == uris["inside"][0]
    with sqlite3.connect(path) as conn:
        recorded = dict(conn.execute("SELECT id, uri FROM artifacts").fetchall())
    assert recorded["model:m@1"] == uris["inside"][1]
    assert [recorded[name] for name in uris if name != "inside"] == [
        kept for name, (_, kept) in uris.items() if name != "inside"
    ]

    reader = IMPLEMENTATIONS[implementation](path)
    reader.root = copy
    try:
        expected = {
            "model:m@1": f"{copy}/.spindle/artifacts/models/m/1",
            "root": str(copy),
            "outside": "/srv/model_repo/m/1",
            "scheme": "s3://bucket/m/1",
            "none": "",
        }
        assert {r.id: r.uri for r in reader.find_artifacts()} == expected
        assert reader.get_artifact("model:m@1").uri == expected["model:m@1"]
        latest = reader.latest_artifact("model_version", model="m")
        assert latest is not None and latest.uri == expected["model:m@1"]
        graph = reader.lineage("model:m@1")
        assert {n.id: n.uri for n in [graph.root, *graph.downstream]} == expected
        assert latest_by_version(reader, "model_version", "m", [1])[1].uri == expected["model:m@1"]
    finally:
        reader.close()
