from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from spindle.core import ConfigError, ModelConfig, TrainingConfig, Workspace, load_yaml_model

EXAMPLE = Path(__file__).resolve().parents[2] / "src" / "spindle" / "examples" / "yarnit"


def test_example_configs_load() -> None:
    ws = Workspace.load(EXAMPLE)
    assert ws.config.name == "yarnit"
    assert ws.model_names() == ["purchase_propensity", "search_ranker"]
    ranker, _ = ws.model_config("search_ranker")
    assert ranker.task == "ranking" and ranker.priority == 1


def test_every_error_is_reported_at_once_with_key_and_line(tmp_path: Path) -> None:
    bad = tmp_path / "m.yaml"
    bad.write_text(
        "name: Bad-Name\nowner: me\nteam: t\ntask: clustering\n"
        "examples: {sql: SELECT 1, sources: [s], event_time: ts, label: y, label_delay: soon}\n"
        "features: [price]\ntraining:\n  epochs: 0\n  unknown_key: 1\n"
    )
    with pytest.raises(ConfigError) as info:
        load_yaml_model(bad, ModelConfig)
    text = str(info.value)
    assert str(bad) in text
    for key, line in (
        ("name", 1),
        ("task", 4),
        ("examples.label_delay", 5),
        ("features", 6),
        ("training.epochs", 8),
        ("training.unknown_key", 9),
    ):
        assert f"line {line}, key '{key}'" in text, text
    assert "found 'clustering'" in text
    assert len(info.value.problems) == 6


def test_overrides_are_validated_like_the_file() -> None:
    config, effective = load_yaml_model(
        EXAMPLE / "models" / "search_ranker.yaml",
        ModelConfig,
        ["training.epochs=3", "training.checkpoint_every_steps=20"],
    )
    assert config.training.epochs == 3 and config.training.checkpoint_every_steps == 20
    assert effective["training"]["epochs"] == 3
    with pytest.raises(ConfigError, match=r"training\.epochs"):
        load_yaml_model(
            EXAMPLE / "models" / "search_ranker.yaml", ModelConfig, ["training.epochs=zero"]
        )
    with pytest.raises(ConfigError, match="KEY=VALUE"):
        load_yaml_model(EXAMPLE / "models" / "search_ranker.yaml", ModelConfig, ["training.epochs"])


@pytest.mark.parametrize("key", ["name", "owner", "team", "team.x"])
def test_identity_fields_are_not_overridable(key: str) -> None:
    """The team decides which restricted features a model may pin: --set may not change it."""
    ws = Workspace.load(EXAMPLE)
    with pytest.raises(ConfigError) as info:
        ws.model_config("search_ranker", ["training.epochs=2", f"{key}=growth"])
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"--set {key}=growth: '{key.split('.')[0]}' is an identity field")
    assert "edit models/search_ranker.yaml" in message
    config, effective = ws.model_config("search_ranker", ["training.epochs=2"])
    assert config.training.epochs == 2 and effective["team"] == config.team == "search"


def test_declared_sql_is_checked_at_load_unless_a_report_runs_none(tmp_path: Path) -> None:
    """A model's examples SQL reading a file is refused when the config loads; a report that
    runs no SQL (``spindle status``) may load it without parsing (no DuckDB import)."""
    import shutil

    ws_dir = tmp_path / "ws"
    shutil.copytree(EXAMPLE, ws_dir)
    path = ws_dir / "models" / "search_ranker.yaml"
    data = yaml.safe_load(path.read_text())
    data["examples"]["sql"] = "SELECT * FROM read_csv('/etc/passwd')"
    path.write_text(yaml.safe_dump(data))
    ws = Workspace.load(ws_dir)
    with pytest.raises(ConfigError, match=r"examples.sql.*read_csv"):
        ws.model_config("search_ranker")
    config, _ = ws.model_config("search_ranker", check_sql=False)
    assert "read_csv" in config.examples.sql


def test_missing_workspace_says_what_to_do(tmp_path: Path) -> None:
    from spindle.core import WorkspaceError

    with pytest.raises(WorkspaceError, match="spindle init"):
        Workspace.load(tmp_path)


def test_an_object_store_url_for_a_directory_is_refused_at_load(tmp_path: Path) -> None:
    """``state_dir: s3://...`` was taken as a relative path and wrote a local folder "s3:"."""
    (tmp_path / "spindle.yaml").write_text(
        "name: w\nstate_dir: s3://bucket/state\nraw_dir: gs://bucket/raw\n"
    )
    with pytest.raises(ConfigError) as info:
        Workspace.load(tmp_path)
    text = str(info.value)
    assert "line 2, key 'state_dir'" in text and "line 3, key 'raw_dir'" in text
    assert "'s3://bucket/state' is a URL" in text and "mount the bucket" in text
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spindle.yaml"]


def test_unpinned_feature_is_rejected(tmp_path: Path) -> None:
    text = (
        (EXAMPLE / "models" / "search_ranker.yaml")
        .read_text()
        .replace("product.price_usd@1", "product.price_usd")
    )
    path = tmp_path / "search_ranker.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="pinned"):
        load_yaml_model(path, ModelConfig)


def _model(**examples: object) -> dict[str, object]:
    return {
        "name": "m",
        "owner": "o",
        "team": "t",
        "task": "ranking",
        "features": ["item.price@1"],
        "examples": {
            "sql": "SELECT 1",
            "sources": ["events"],
            "event_time": "ts",
            "label": "y",
            **examples,
        },
    }


def test_examples_hold_label_group_key_and_label_delay() -> None:
    config = ModelConfig.model_validate(_model(group_key="g", label_delay="30d"))
    assert (config.label, config.group_key) == ("y", "g")  # read-only shortcuts
    assert config.examples.label_delay_s == 30 * 86400
    assert config.examples.weight is None
    assert ModelConfig.model_validate(_model(group_key="g")).examples.label_delay_s == 0


def test_a_ranking_model_needs_a_group_key_and_label_lives_in_examples(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"examples\.group_key"):
        ModelConfig.model_validate(_model())
    path = tmp_path / "m.yaml"
    path.write_text(
        "name: m\nowner: o\nteam: t\ntask: binary\nlabel: y\nfeatures: [item.price@1]\n"
    )
    with pytest.raises(ConfigError) as info:
        load_yaml_model(path, ModelConfig)
    text = str(info.value)
    assert "line 5, key 'label': unknown key" in text and "examples" in text
    assert "key 'examples': Field required" in text


def test_baselines_are_one_kind_each_and_must_beat_names_one() -> None:
    base = _model(group_key="g")
    config = ModelConfig.model_validate(
        base
        | {
            "baselines": [
                {"name": "rate", "feature": "route.delay_rate_28d@1"},
                {"name": "prior", "constant": 0.2},
                {"name": "truth", "sql": "true_relevance", "ground_truth": True},
            ],
            "evaluation": {"must_beat": ["rate", "production"]},
        }
    )
    assert [b.name for b in config.baselines] == ["rate", "prior", "truth"]
    bad = [
        (
            [{"name": "x", "sql": "a", "constant": 1.0}],
            {},
            "exactly one of feature, sql or constant",
        ),
        ([{"name": "x"}], {}, "has none"),
        ([{"name": "production", "constant": 1.0}], {}, "names a model system"),
        ([{"name": "x", "feature": "rate"}], {}, "not a pinned feature"),
        ([{"name": "x", "constant": 1.0}], {"must_beat": ["y"]}, "which is not a baseline"),
        (
            [{"name": "t", "sql": "t", "ground_truth": True}],
            {"must_beat": ["t"]},
            "cannot be beaten",
        ),
        ([{"name": "x", "constant": 1.0}, {"name": "x", "constant": 2.0}], {}, "used twice"),
    ]
    for baselines, evaluation, message in bad:
        with pytest.raises(ValueError, match=message):
            ModelConfig.model_validate(base | {"baselines": baselines, "evaluation": evaluation})


def test_the_gate_metric_defaults_to_the_tasks_and_must_fit_it() -> None:
    import spindle.evaluate
    from spindle.core._config_evaluation import GATE_METRICS

    assert {k: tuple(v) for k, v in spindle.evaluate.GATE_METRICS.items()} == GATE_METRICS
    for task, metric in [("binary", "auc"), ("regression", "rmse"), ("multiclass", "log_loss")]:
        assert ModelConfig.model_validate(_model() | {"task": task}).evaluation.metric == metric
    ranker = ModelConfig.model_validate(_model(group_key="g") | {"evaluation": {"replicas": 2}})
    assert (ranker.evaluation.metric, ranker.evaluation.replicas) == ("ndcg@10", 2)
    with pytest.raises(
        ValueError, match="'ndcg@10' does not judge a regression model; use one of rmse"
    ):
        ModelConfig.model_validate(
            _model() | {"task": "regression", "evaluation": {"metric": "ndcg@10"}}
        )


@pytest.mark.parametrize("framework", ["lightgbm", "sklearn"])
def test_one_process_families_refuse_data_parallel_keys(framework: str) -> None:
    with pytest.raises(ValueError, match=f"framework: {framework} trains in one process"):
        TrainingConfig(framework=framework, workers=2)
    with pytest.raises(ValueError, match="leave them at 1 and 0"):
        TrainingConfig(framework=framework, max_staleness_steps=2)
    assert TrainingConfig(framework=framework, threads=4).threads == 4
