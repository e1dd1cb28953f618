"""Completeness of a training window: gaps are listed, and refused unless the config allows them."""

from __future__ import annotations

from pathlib import Path

import pytest

from spindle.core import ValidationFailed
from spindle.orchestrate import Context, load_config, training_window


def test_window_before_history_starts_is_not_a_gap(ingested_workspace: Path) -> None:
    with Context.open(ingested_workspace) as ctx:
        cfg = load_config(ctx, "search_ranker").config
        days, gaps = training_window(ctx, cfg, "2026-01-05")
    assert days == ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
    assert gaps == []


def test_missing_day_in_window_is_refused_unless_allowed(ingested_workspace: Path) -> None:
    with Context.open(ingested_workspace) as ctx:
        cfg = load_config(ctx, "search_ranker").config
        with pytest.raises(ValidationFailed) as info:
            training_window(ctx, cfg, "2026-01-06")  # 2026-01-05 was never ingested
        message = str(info.value)
        assert "2026-01-05 (not ingested/validated)" in message
        assert "allow_gaps" in message  # says how to proceed
        allowed = load_config(ctx, "search_ranker", ["training.allow_gaps=true"]).config
        days, gaps = training_window(ctx, allowed, "2026-01-06")
    assert days == ["2026-01-01", "2026-01-02", "2026-01-03", "2026-01-04"]
    assert gaps == ["2026-01-05 (not ingested/validated)"]
