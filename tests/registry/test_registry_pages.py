"""The paged reads of spindle.registry (runs_page, run_facets, day_steps, versions_page,
latest_by_version, artifact_fields): the SQL of the SQLite reader and the generic path over a
MetadataStore give the same answers on one real store, and the answers are the right ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from spindle.core import Artifact, ModelVersion, NotFound, RegistryError
from spindle.registry import (
    MetadataStore,
    RegistryReader,
    SQLiteReader,
    artifact_fields,
    day_steps,
    latest_by_version,
    run_facets,
    runs_page,
    versions_page,
)

DAYS = ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-05"]


def _fill(store: MetadataStore) -> None:
    """Runs of two models over four days (a retry that failed then succeeded, a skip, a run
    with no model, one with no date); seven versions; evaluations, one re-evaluated."""
    for day in DAYS:
        ingest = store.start_run("ingest", f"ingest-{day}", date=day)
        store.finish_run(ingest.id, "succeeded")
        for model in ("ranker", "churn"):
            train = store.start_run("train", f"train-{model}-{day}", model=model, date=day)
            if day == "2026-01-02" and model == "ranker":
                store.finish_run(train.id, "failed", error="loss diverged")
                train = store.start_run("train", f"train-{model}-{day}", model=model, date=day)
            store.finish_run(train.id, "skipped" if day == "2026-01-05" else "succeeded")
    push = store.start_run("push", "push-1", model="ranker")  # no date
    store.finish_run(push.id, "succeeded")
    for version in range(1, 8):
        date = f"2026-01-0{version}"
        store.reserve_version("ranker", date=date)
        store.complete_version(
            "ranker",
            version,
            ModelVersion("ranker", version, f"file:///m/{version}", f"h{version}", date),
        )
        for n in range(2 if version == 3 else 1):
            store.record_artifact(
                Artifact(
                    "evaluation",
                    f"eval:ranker@{version}/{n}",
                    f"file:///e/{version}/{n}",
                    f"e{n}",
                    {
                        "model": "ranker",
                        "version": version,
                        "holdout_date": date,
                        "decision": "block" if n else "pass",
                        "metrics": {"candidate": {"ndcg": 0.1 * version}},
                    },
                )
            )
    store.record_artifact(
        Artifact("evaluation", "eval:churn@1", "file:///e/c", "c", {"model": "churn", "version": 1})
    )


@pytest.fixture(scope="module")
def database(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("pages") / "metadata.db"
    with MetadataStore(f"sqlite:///{path}") as store:
        _fill(store)
    return path


@pytest.fixture(params=["MetadataStore", "SQLiteReader"])
def reader(request: pytest.FixtureRequest, database: Path) -> Iterator[RegistryReader]:
    opened: RegistryReader | None
    if request.param == "SQLiteReader":
        opened = SQLiteReader.open(database)
    else:
        opened = MetadataStore(f"sqlite:///{database}")
    assert opened is not None
    yield opened
    opened.close()


@pytest.fixture
def both(database: Path) -> Iterator[tuple[RegistryReader, RegistryReader]]:
    fast = SQLiteReader.open(database)
    assert fast is not None
    with fast, MetadataStore(f"sqlite:///{database}") as full:
        yield fast, full


CALLS: list[tuple[Any, tuple[Any, ...], dict[str, Any]]] = [
    (runs_page, (), {}),
    (runs_page, (), {"limit": 3, "offset": 2}),
    (runs_page, (), {"model": "ranker", "status": "failed"}),
    (runs_page, (), {"step": "train", "since": "2026-01-02", "until": "2026-01-03"}),
    (runs_page, (), {"since": "2026-01-04"}),
    (runs_page, (), {"offset": 100}),
    (run_facets, (), {}),
    (day_steps, (), {"since": "2026-01-01", "until": "2026-01-31"}),
    (day_steps, (), {"since": "2026-01-02", "until": "2026-01-02", "model": "ranker"}),
    (versions_page, ("ranker",), {}),
    (versions_page, ("ranker",), {"offset": 2, "limit": 3}),
    (latest_by_version, ("evaluation", "ranker", [3, 5, 9]), {}),
    (latest_by_version, ("evaluation", "ranker", []), {}),
    (artifact_fields, ("evaluation", ["version", "decision", "metrics"]), {}),
    (artifact_fields, ("evaluation", ["version"]), {"where": {"model": "churn"}}),
    (
        artifact_fields,
        ("evaluation", ["version", "decision"]),
        {
            "where": {"model": "ranker"},
            "since": "2026-01-02",
            "until": "2026-01-04",
            "date_field": "holdout_date",
        },
    ),
    (artifact_fields, ("evaluation", ["version"]), {"limit": 2}),
]


@pytest.mark.parametrize(
    ("call", "args", "kwargs"), CALLS, ids=lambda v: getattr(v, "__name__", None)
)
def test_sqlite_and_generic_paths_agree(
    both: tuple[RegistryReader, RegistryReader],
    call: Any,
    args: tuple[Any, ...],
    kwargs: dict[str, Any],
) -> None:
    fast, full = both
    assert call(fast, *args, **kwargs) == call(full, *args, **kwargs)


def test_runs_page_counts_every_match_and_returns_one_page_newest_first(
    reader: RegistryReader,
) -> None:
    every = reader.runs(limit=None)
    page = runs_page(reader, offset=2, limit=3)
    assert page.total == len(every) == 4 + 4 * 2 + 1 + 1
    assert [r.id for r in page.runs] == [r.id for r in every[2:5]]
    failed = runs_page(reader, status="failed")
    assert failed.total == 1 and failed.runs[0].error == "loss diverged"
    window = runs_page(reader, step="train", since="2026-01-02", until="2026-01-03")
    assert {r.date for r in window.runs} == {"2026-01-02", "2026-01-03"} and window.total == 5
    with pytest.raises(RegistryError, match="run status is one of"):
        runs_page(reader, status="broken")


def test_day_steps_show_retries_failures_and_gaps(reader: RegistryReader) -> None:
    cells = {
        (c.date, c.model, c.step): c
        for c in day_steps(reader, since="2026-01-01", until="2026-01-31")
    }
    retried = cells[("2026-01-02", "ranker", "train")]
    assert (retried.runs, retried.failed, retried.last_status) == (2, 1, "succeeded")
    assert cells[("2026-01-05", "churn", "train")].last_status == "skipped"
    assert not any(day == "2026-01-04" for day, _, _ in cells)  # nothing ran: a gap
    assert ("2026-01-01", None, "ingest") in cells


def test_facets_name_what_runs_can_be_filtered_by(reader: RegistryReader) -> None:
    facets = run_facets(reader)
    assert facets.models == ["churn", "ranker"]
    assert facets.steps == ["ingest", "push", "train"]
    assert facets.statuses == ["failed", "skipped", "succeeded"]
    assert (facets.first_date, facets.last_date) == ("2026-01-01", "2026-01-05")


def test_versions_and_their_newest_evaluations_by_page(reader: RegistryReader) -> None:
    page = versions_page(reader, "ranker", offset=2, limit=3)
    assert page.total == 7 and [v.version for v in page.versions] == [5, 4, 3]
    newest = latest_by_version(reader, "evaluation", "ranker", [v.version for v in page.versions])
    assert sorted(newest) == [3, 4, 5]
    assert newest[3].id == "eval:ranker@3/1"  # re-evaluated: the newer one
    with pytest.raises(NotFound):
        versions_page(reader, "rankr")


def test_artifact_fields_project_filter_and_keep_the_newest(reader: RegistryReader) -> None:
    rows = artifact_fields(
        reader,
        "evaluation",
        ["version", "metrics", "absent"],
        where={"model": "ranker"},
        since="2026-01-03",
        until="2026-01-04",
        date_field="holdout_date",
    )
    assert [(r["version"], r["absent"]) for r in rows] == [(3, None), (3, None), (4, None)]
    assert rows[-1]["metrics"] == {"candidate": {"ndcg": pytest.approx(0.4)}}
    newest = artifact_fields(reader, "evaluation", ["model"], limit=2)
    assert [r["id"] for r in newest] == ["eval:ranker@7/0", "eval:churn@1"]
    with pytest.raises(RegistryError, match="plain names"):
        artifact_fields(reader, "evaluation", ["x'); DROP TABLE runs; --"])
