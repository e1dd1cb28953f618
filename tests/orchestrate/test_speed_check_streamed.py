"""``speed_check`` on a training set above ``training.in_memory_max_rows``: both runs stream it
from its file and the holdout is scored in batches, so neither is held whole."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

# bounded staleness in one process against its half: no worker processes, one short epoch
QUICK = ["training.max_staleness_steps=1", "training.epochs=1"]
STREAMED = ["training.in_memory_max_rows=100", "training.stream_buffer_rows=1000"]


@pytest.mark.parametrize("streamed", [True, False])
def test_speed_check_streams_a_training_set_above_in_memory_max_rows(
    workspace_copy: Path, streamed: bool
) -> None:
    from spindle.orchestrate import Context, speed_check

    overrides = [*QUICK, *(STREAMED if streamed else [])]
    with Context.open(workspace_copy) as ctx:
        check = speed_check(ctx, "search_ranker", "2026-01-04", overrides=overrides)
    assert check.streamed is streamed and check.notes == ()
    assert (check.fast.parallelism, check.slow.parallelism) == (2, 1)
    for run in (check.fast, check.slow):
        assert run.examples > 1000
        if streamed:  # every row trained on, never all of them held at once
            assert 0 < run.peak_rows_held < run.examples
        else:  # the in-memory path holds every row
            assert run.peak_rows_held == run.examples
        assert math.isfinite(run.metric_value) and math.isfinite(run.final_loss)
    assert check.fast.examples == check.slow.examples
    assert check.verdict in {"ok", "training too fast"}
    interval = check.interval
    assert interval.lower <= interval.estimate <= interval.upper
    assert check.slow.metric_value == pytest.approx(interval.value_a)
    assert check.fast.metric_value == pytest.approx(interval.value_b)
    artifacts = workspace_copy / ".spindle" / "artifacts"
    path = artifacts / "speed_checks" / "search_ranker" / "2026-01-04.json"
    report = json.loads(path.read_text())
    assert report == json.loads(json.dumps(check.to_dict()))
    assert report["streamed"] is streamed
    assert not (artifacts / "scratch" / "speed_check" / "search_ranker").exists()
