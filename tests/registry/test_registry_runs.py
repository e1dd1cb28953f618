"""Runs: start, finish with outputs and lineage in one transaction, idempotency, stale runs."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap
from typing import Any

import pytest

from spindle.core import NotFound, RegistryError
from spindle.registry import MetadataStore


def test_start_records_process_params_and_inputs(store: MetadataStore, make: Any) -> None:
    store.record_artifact(make("in:1"))
    store.record_artifact(make("in:2"))

    run = store.start_run(
        "train",
        "train:m:2026-01-07:abc",
        model="m",
        date="2026-01-07",
        config_hash="abc",
        params={"epochs": 3, "lr": 0.01},
        inputs=["in:2", "in:1"],
    )

    assert run.status == "running"
    assert run.pid == os.getpid()
    assert run.host == socket.gethostname()
    assert run.inputs == ("in:2", "in:1")
    assert run.outputs == ()
    assert run.params == {"epochs": 3, "lr": 0.01}
    assert run.ended_at is None
    assert run.duration_s is None
    assert store.get_run(run.id) == run


def test_start_with_an_unrecorded_input_is_not_found(store: MetadataStore) -> None:
    with pytest.raises(NotFound, match=r"inputs of step 'train': no artifact 'raw:missing'"):
        store.start_run("train", "k", inputs=["raw:missing"])
    assert store.runs() == []


def test_finish_records_outputs_and_lineage(store: MetadataStore, make: Any) -> None:
    store.record_artifact(make("in:1"))
    store.record_artifact(make("in:2"))
    run = store.start_run("build", "k", inputs=["in:1", "in:2"])

    finished = store.finish_run(
        run.id,
        "succeeded",
        outputs=[make("out:1"), make("out:2")],
        resources={"cpu_s": 1.5, "examples_per_s": 1000.0},
    )

    assert finished.status == "succeeded"
    assert finished.outputs == ("out:1", "out:2")
    assert finished.resources == {"cpu_s": 1.5, "examples_per_s": 1000.0}
    assert finished.duration_s is not None and finished.duration_s >= 0
    assert store.get_artifact("out:1").run_id == run.id
    graph = store.lineage("out:2", direction="upstream")
    assert {(n.id, n.relation, n.depth) for n in graph.upstream} == {
        ("in:1", "produced_by:build", 1),
        ("in:2", "produced_by:build", 1),
    }
    assert store.lineage("in:1", direction="downstream").downstream[0].run_id == run.id


def test_finish_is_one_transaction(store: MetadataStore, make: Any) -> None:
    store.record_artifact(make("in:1"))
    store.record_artifact(make("clash", content_hash="old"))
    run = store.start_run("build", "k", inputs=["in:1"])

    with pytest.raises(RegistryError, match="clash is already recorded"):
        store.finish_run(
            run.id, "succeeded", outputs=[make("out:1"), make("clash", content_hash="new")]
        )

    # nothing of the failed call was written: no output, no edge, the run still runs
    with pytest.raises(NotFound):
        store.get_artifact("out:1")
    assert store.lineage("in:1").downstream == []
    assert store.get_run(run.id).status == "running"


def test_finish_rejects_bad_status_and_double_finish(store: MetadataStore) -> None:
    run = store.start_run("step", "k")
    with pytest.raises(RegistryError, match="succeeded, failed, skipped; got 'done'"):
        store.finish_run(run.id, "done")

    store.finish_run(run.id, "failed", error="boom")
    assert store.get_run(run.id).error == "boom"
    with pytest.raises(RegistryError, match="already finished as failed"):
        store.finish_run(run.id, "succeeded")


def test_finish_accepts_ids_of_recorded_outputs(store: MetadataStore, make: Any) -> None:
    store.record_artifact(make("in:1"))
    store.record_artifact(make("out:1"))
    run = store.start_run("step", "k", inputs=["in:1"])

    store.finish_run(run.id, "skipped", outputs=["out:1"])

    assert [e.parent_id for e in store.lineage("out:1").edges] == ["in:1"]


def test_find_succeeded_run_returns_the_latest_success(store: MetadataStore, make: Any) -> None:
    assert store.find_succeeded_run("k") is None
    first = store.start_run("step", "k")
    store.finish_run(first.id, "succeeded", outputs=[make("out:1")])
    failed = store.start_run("step", "k")
    store.finish_run(failed.id, "failed", error="boom")
    second = store.start_run("step", "k")
    store.finish_run(second.id, "succeeded", outputs=[make("out:1")])
    store.start_run("step", "k")  # still running
    other = store.start_run("step", "other key")
    store.finish_run(other.id, "succeeded")

    found = store.find_succeeded_run("k")

    assert found is not None
    assert found.id == second.id
    assert found.outputs == ("out:1",)
    assert store.get_artifact("out:1").run_id == first.id  # the first producer is kept


def test_runs_newest_first_with_filters(store: MetadataStore) -> None:
    a = store.start_run("ingest", "k1", date="2026-01-01")
    b = store.start_run("train", "k2", model="m")
    c = store.start_run("train", "k3", model="n")
    store.finish_run(b.id, "succeeded")

    assert [r.id for r in store.runs()] == [c.id, b.id, a.id]
    assert [r.id for r in store.runs(step="train")] == [c.id, b.id]
    assert [r.id for r in store.runs(model="m")] == [b.id]
    assert [r.id for r in store.runs(status="running")] == [c.id, a.id]
    assert [r.id for r in store.runs(limit=1)] == [c.id]
    with pytest.raises(RegistryError, match="got 'ok'"):
        store.runs(status="ok")


def test_get_unknown_run_names_the_newest(store: MetadataStore) -> None:
    run = store.start_run("train", "k")
    with pytest.raises(NotFound, match=rf"no run 'nope'; the newest runs are {run.id} \(train"):
        store.get_run("nope")


def test_mark_stale_runs_fails_runs_of_dead_processes(store: MetadataStore, url: str) -> None:
    # A child process starts a run and dies without finishing it.
    code = textwrap.dedent(
        f"""
        import os
        from spindle.registry import MetadataStore
        store = MetadataStore({url!r})
        print(store.start_run("train", "crashed").id, flush=True)
        store.close()
        os._exit(3)
        """
    )
    child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert child.returncode == 3, child.stderr
    dead_id = child.stdout.strip()
    alive = store.start_run("train", "alive")  # this process is alive

    assert [r.id for r in store.stale_runs()] == [dead_id]  # found, not yet changed
    assert store.get_run(dead_id).status == "running"
    stale = store.mark_stale_runs()

    assert [r.id for r in stale] == [dead_id]
    dead = store.get_run(dead_id)
    assert (dead.status, dead.error) == ("failed", "process died")
    assert dead.pid != os.getpid()
    assert dead.ended_at is not None
    assert store.get_run(alive.id).status == "running"
    assert store.mark_stale_runs() == []
    assert store.stale_runs() == []
