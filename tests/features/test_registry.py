"""Feature registry: version pinning, access policies, the catalogue and the CLI."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from spindle.cli import app
from spindle.core import BaselineConfig, FeatureError, ModelConfig, load_sources
from spindle.features import FeatureRegistry, feature_catalog

EXAMPLE = Path(__file__).resolve().parents[2] / "src" / "spindle" / "examples" / "yarnit"


def _config(team: str, features: list[str]) -> ModelConfig:
    return ModelConfig(
        name="probe",
        owner="me@yarnit",
        team=team,
        task="binary",
        examples={
            "sql": "SELECT user_id, ts, purchased_today FROM searches",
            "sources": ["searches"],
            "event_time": "ts",
            "label": "purchased_today",
        },
        features=features,
    )


def test_pii_feature_refused_for_a_team_outside_its_policy() -> None:
    registry = FeatureRegistry.load(EXAMPLE / "features")
    with pytest.raises(FeatureError) as info:
        registry.resolve(_config("marketing", ["user.country@1", "user.purchases_28d@1"]))
    message = str(info.value)
    assert "user.country@1" in message and "pii" in message and "marketing" in message
    assert "allowed_teams" in message  # says what to do
    assert [d.ref for d in registry.resolve(_config("growth", ["user.country@1"]))] == [
        "user.country@1"
    ]


def test_sensitive_feature_limited_to_its_teams() -> None:
    registry = FeatureRegistry.load(EXAMPLE / "features")
    with pytest.raises(FeatureError, match="sensitive"):
        registry.resolve(_config("search", ["user.spend_usd_28d@1"]))


def test_tags_are_lower_case_once_loaded_so_upper_case_pii_is_restricted(tmp_path: Path) -> None:
    features = tmp_path / "features"
    features.mkdir()
    text = (EXAMPLE / "features" / "user.yaml").read_text()
    text = text.replace("tags: [pii]", "tags: [' PII', Geo, pii]", 1)
    text = text.replace("tags: [sensitive]", "tags: [SeNsItIvE]", 1)
    (features / "user.yaml").write_text(text)
    registry = FeatureRegistry.load(features, load_sources(EXAMPLE))
    country = registry.get("user.country@1")
    assert country.tags == ("pii", "geo") and country.restricted
    assert registry.get("user.spend_usd_28d@1").tags == ("sensitive",)
    with pytest.raises(FeatureError, match=r"user\.country@1 \(tags pii, geo; allowed teams"):
        registry.resolve(_config("marketing", ["user.country@1"]))
    with pytest.raises(FeatureError, match="sensitive"):
        registry.resolve(_config("search", ["user.spend_usd_28d@1"]))
    # a definition built in code is normalised too: no caller can forget
    built = replace(country, tags=("Sensitive",))
    assert built.tags == ("sensitive",) and built.restricted


def test_a_baseline_may_not_read_what_the_team_may_not_pin() -> None:
    registry = FeatureRegistry.load(EXAMPLE / "features")
    config = _config("search", ["user.purchases_28d@1"]).model_copy(
        update={"baselines": [BaselineConfig(name="spend", feature="user.spend_usd_28d@1")]}
    )
    with pytest.raises(FeatureError, match=r"model probe \(team search\).*user\.spend_usd_28d@1"):
        registry.resolve(config)


def test_model_pins_a_version_and_keeps_it(tmp_path: Path) -> None:
    features = tmp_path / "features"
    features.mkdir()
    text = (EXAMPLE / "features" / "product.yaml").read_text()
    text += """  - name: price_usd
    version: 2
    description: List price in USD, ignoring discounts.
    dtype: float64
    sql: list_price * usd_per_unit
    encoding: {kind: numeric, log: true}
"""
    (features / "product.yaml").write_text(text)
    (features / "product_features.py").write_bytes(
        (EXAMPLE / "features" / "product_features.py").read_bytes()
    )
    registry = FeatureRegistry.load(features, load_sources(EXAMPLE))
    old = registry.resolve(_config("search", ["product.price_usd@1"]))[0]
    new = registry.resolve(_config("search", ["product.price_usd@2"]))[0]
    assert old.column == "product__price_usd__v1" and new.column == "product__price_usd__v2"
    assert old.sql != new.sql
    assert [d.version for d in registry.versions("product", "price_usd")] == [1, 2]
    with pytest.raises(FeatureError, match=r"known versions: product\.price_usd@1"):
        registry.resolve(_config("search", ["product.price_usd@3"]))


def test_catalogue_lists_users_and_provenance() -> None:
    from spindle.core import SourceConfig

    registry = FeatureRegistry.load(EXAMPLE / "features")
    configs = {"ranker": _config("search", ["user.country@1"])}
    sources = {"users": SourceConfig(origin="accounts", licence="internal", retention_days=30)}
    [record] = feature_catalog(registry, configs, sources, "user.country")
    assert record["used_by"] == ["ranker"]
    assert record["allowed_teams"] == ["growth", "search"]
    assert record["sources"]["users"]["retention_days"] == 30
    assert "undeclared" in record["sources"]["purchases"]["origin"]
    with pytest.raises(FeatureError, match="spindle features list"):
        feature_catalog(registry, configs, sources, "no_such_feature")


def test_features_cli_list_and_show(tmp_path: Path) -> None:
    from spindle.orchestrate import init_workspace

    init_workspace(tmp_path / "ws", "yarnit")
    runner = CliRunner()
    listed = runner.invoke(app, ["features", "list", "--json", "-w", str(tmp_path / "ws")])
    assert listed.exit_code == 0, listed.output
    records = {r["ref"]: r for r in json.loads(listed.stdout)}
    assert records["user.country@1"]["used_by"] == ["purchase_propensity", "search_ranker"]
    shown = runner.invoke(app, ["features", "show", "user.country", "-w", str(tmp_path / "ws")])
    assert shown.exit_code == 0, shown.output
    assert "retention" in shown.stdout and "pii" in shown.stdout
    assert "view user: entity user keys user_id; ttl 8d" in shown.stdout
    assert "FROM users_now u LEFT JOIN agg a" in shown.stdout  # the view's SQL
    country = records["user.country@1"]
    assert (country["entity"], country["keys"], country["ttl_s"]) == ("user", ["user_id"], 691200)
    assert country["view_sql"].lstrip().startswith("WITH")
    text = records["query.text@1"]
    assert text["computation"]["kind"] == "request" and text["keys"] == []
    assert text["computation"]["python"] == "query_features.py:text"
    shown = runner.invoke(app, ["features", "show", "query.text", "-w", str(tmp_path / "ws")])
    assert "per request: python query_features.py:text" in shown.stdout, shown.output
