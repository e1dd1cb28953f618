"""A daily run loads the model's effective config once and gives every step the same one."""

from __future__ import annotations

from pathlib import Path

import pytest

from spindle.core import ConfigError, ProgressEvent

MODEL = "purchase_propensity"
OVERRIDES = ["training.epochs=1", "serving.max_rss_mb=4096"]


def test_a_daily_run_trains_evaluates_and_pushes_with_the_config_it_loaded_first(
    workspace_copy: Path,
) -> None:
    from spindle.orchestrate import Context, run_day
    from spindle.orchestrate._model_common import load_config

    path = workspace_copy / "models" / f"{MODEL}.yaml"
    broken: list[str] = []

    def break_the_file(event: ProgressEvent) -> None:
        # once training started, the model's file becomes invalid: a step that loaded the
        # config again would fail on it (evaluate and push used to)
        if not broken:
            broken.append(event.task)
            path.write_text("name: [not, a, config\n")

    with Context.open(workspace_copy) as ctx:
        expected = load_config(ctx, MODEL, OVERRIDES).config_hash
        report = run_day(ctx, MODEL, "2026-01-04", overrides=OVERRIDES, progress=break_the_file)
        assert broken, "the run reported no progress"
        assert report.error is None and report.status == "ok", report.error
        assert report.gate == "pass" and report.serving_version == report.version
        steps = {r.step: r for r in ctx.store.runs(model=MODEL) if r.status == "succeeded"}
        assert {steps[s].config_hash for s in ("train", "evaluate")} == {expected}
        with pytest.raises(ConfigError):  # the file is broken indeed: a fresh load fails
            load_config(ctx, MODEL, OVERRIDES)
    infra = workspace_copy / ".spindle" / "artifacts" / "evaluations" / MODEL
    assert [p.name for p in infra.glob("*-infra-*.json")]  # judged with the run's overrides


def test_a_step_refuses_another_models_or_another_runs_config(workspace_copy: Path) -> None:
    from spindle.orchestrate import Context
    from spindle.orchestrate._model_common import load_config, resolve_config

    with Context.open(workspace_copy) as ctx:
        loaded = load_config(ctx, MODEL, OVERRIDES)
        assert resolve_config(ctx, MODEL, None, loaded) is loaded
        assert resolve_config(ctx, MODEL, OVERRIDES, loaded) is loaded
        with pytest.raises(ConfigError, match="search_ranker"):
            resolve_config(ctx, "search_ranker", None, loaded)
        with pytest.raises(ConfigError, match=r"training\.epochs=2"):
            resolve_config(ctx, MODEL, ["training.epochs=2"], loaded)
        fresh = resolve_config(ctx, MODEL, OVERRIDES, None)
        assert fresh is not loaded and fresh.config_hash == loaded.config_hash
