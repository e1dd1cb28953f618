"""Access policies cannot be bypassed: not by ``--set team=...``, not by a tag's case, and not at
any door a model goes through (train, evaluate, push, route, serve); run through the real CLI."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.conftest import START, make_workspace
from typer.testing import CliRunner

import spindle
from spindle.cli import app
from spindle.orchestrate import Context, check_served_policies, ingest, init_workspace, validate

runner = CliRunner()
DAY = "2026-01-03"


def _cli(*args: str) -> tuple[int, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.output


def _pin(ws: Path, model: str, ref: str) -> None:
    """Add ``ref`` to the features ``models/<model>.yaml`` pins."""
    path = ws / "models" / f"{model}.yaml"
    text = path.read_text()
    assert "\nfeatures:\n" in text
    path.write_text(text.replace("\nfeatures:\n", f"\nfeatures:\n  - {ref}\n", 1))


def _restrict(ws: Path, feature: str, tags: str, teams: str) -> None:
    """Give ``user.<feature>`` (example's features/user.yaml) the tags and allowed teams."""
    path = ws / "features" / "user.yaml"
    lines = path.read_text().splitlines()
    at = lines.index(f"  - name: {feature}")
    end = next((i for i in range(at + 1, len(lines)) if lines[i].startswith("  - ")), len(lines))
    kept = [
        line
        for line in lines[at + 1 : end]
        if not line.lstrip().startswith(("tags:", "allowed_teams:"))
    ]
    block = [f"    tags: {tags}", f"    allowed_teams: {teams}"]
    path.write_text("\n".join([*lines[: at + 1], *block, *kept, *lines[end:]]) + "\n")


@pytest.fixture
def ws(tmp_path: Path) -> Path:
    """The example workspace, no data: config loads need none."""
    root = tmp_path / "ws"
    init_workspace(root, "yarnit")
    return root


def _one_line_error(code: int, out: str) -> str:
    assert code == 1, out
    assert "Traceback" not in out
    lines = [line for line in out.splitlines() if line.strip()]
    assert len(lines) == 1, out  # what, where and the fix, on one line
    return lines[0]


# -- bypass 1: the team (and the rest of a model's identity) is not a command-line knob ----------


@pytest.mark.parametrize("key", ["team", "owner", "name"])
@pytest.mark.parametrize("command", ["train", "evaluate"])
def test_identity_fields_are_not_overridable(ws: Path, key: str, command: str) -> None:
    # search_ranker (team search) pins a feature only team growth may use
    _pin(ws, "search_ranker", "user.spend_usd_28d@1")
    extra = ["--version", "1"] if command == "evaluate" else []
    code, out = _cli(
        command, "search_ranker", *extra, "--date", DAY, "--set", f"{key}=growth", "-w", str(ws)
    )
    line = _one_line_error(code, out)
    assert f"--set {key}=growth" in line
    assert "identity" in line and "models/search_ranker.yaml" in line


def test_the_team_override_no_longer_unlocks_a_restricted_feature(ws: Path) -> None:
    """The issue's bypass: without --set the policy refuses; with --set team=growth it must too."""
    _pin(ws, "search_ranker", "user.spend_usd_28d@1")
    plain = _one_line_error(*_cli("train", "search_ranker", "--date", DAY, "-w", str(ws)))
    assert "user.spend_usd_28d@1" in plain and "team search" in plain
    bypass = _one_line_error(
        *_cli("train", "search_ranker", "--date", DAY, "--set", "team=growth", "-w", str(ws))
    )
    assert "training window" not in bypass  # the run never got past loading its config
    assert "--set team=growth" in bypass


def test_the_check_runs_on_the_effective_config(ws: Path) -> None:
    """An override may change what a model pins: the policy judges the result."""
    code, out = _cli(
        "train", "search_ranker", "--date", DAY,
        "--set", "features=[user.purchases_28d@1, user.spend_usd_28d@1]", "-w", str(ws),
    )  # fmt: skip
    line = _one_line_error(code, out)
    assert "model search_ranker (team search)" in line and "user.spend_usd_28d@1" in line


def test_other_overrides_still_apply(ws: Path) -> None:
    with Context.open(ws) as ctx:
        loaded = spindle.load_config(ctx, "search_ranker", ["training.epochs=2"])
    assert loaded.config.training.epochs == 2 and loaded.config.team == "search"


# -- bypass 2: a tag's case ---------------------------------------------------------------------


def test_upper_case_pii_is_restricted(ws: Path) -> None:
    _restrict(ws, "country", "[PII]", "[growth]")  # search_ranker (team search) pins user.country
    line = _one_line_error(*_cli("train", "search_ranker", "--date", DAY, "-w", str(ws)))
    assert "user.country@1 (tags pii; allowed teams: growth)" in line
    assert "team search" in line and "allowed_teams" in line


def test_tags_list_and_filter_in_lower_case(ws: Path) -> None:
    _restrict(ws, "country", "[PII, Geo]", "[growth, search]")
    for asked in ("pii", "PII", "Pii"):
        code, out = _cli("features", "list", "--tag", asked, "--json", "-w", str(ws))
        assert code == 0, out
        records = json.loads(out)
        assert [r["ref"] for r in records] == ["user.country@1"]
        assert records[0]["tags"] == ["pii", "geo"]
        assert records[0]["allowed_teams"] == ["growth", "search"]
    code, out = _cli("features", "list", "--tag", "SENSITIVE", "--json", "-w", str(ws))
    assert code == 0, out
    assert [r["ref"] for r in json.loads(out)] == ["user.spend_usd_28d@1"]


# -- every door: evaluate, push, route, serve -----------------------------------------------------


@pytest.fixture(scope="module")
def pushed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """purchase_propensity (team growth) trained on three small days and pushed: version 1
    serves ``user.country@1`` and ``user.spend_usd_28d@1``, which team growth may use."""
    root = make_workspace(tmp_path_factory.mktemp("policy") / "ws", days=3, scale=0.1)
    with Context.open(root) as ctx:
        for i in range(3):
            day = (START + dt.timedelta(days=i)).isoformat()
            ingest(ctx, day)
            validate(ctx, day)
        spindle.train_version(ctx, "purchase_propensity", DAY, overrides=["training.epochs=1"])
        spindle.push(ctx, "purchase_propensity", 1, force=True, reason="test", infra=False)
    yield root


@pytest.fixture
def tightened(pushed: Path, tmp_path: Path) -> Path:
    """A copy of ``pushed`` whose owner then took team growth off ``user.spend_usd_28d``."""
    root = tmp_path / "ws"
    shutil.copytree(pushed, root, symlinks=True)
    _restrict(root, "spend_usd_28d", "[SENSITIVE]", "[finance]")
    return root


def test_serve_starts_checked_when_the_policy_allows(pushed: Path) -> None:
    ws = spindle.Workspace.load(pushed)
    from spindle.features import FeatureRegistry

    check_served_policies(ws, FeatureRegistry.load(ws.features_dir), ws.model_repo)


def test_serve_refuses_a_pushed_version_its_team_may_no_longer_use(tightened: Path) -> None:
    # a subprocess: a server that wrongly starts would serve forever
    spindle_bin = str(Path(sys.executable).parent / "spindle")
    done = subprocess.run(
        [spindle_bin, "serve", "--port", "0", "-w", str(tightened)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = _one_line_error(done.returncode, done.stdout + done.stderr)
    assert "purchase_propensity@1" in line and "team growth" in line
    assert "user.spend_usd_28d@1 (tags sensitive; allowed teams: finance)" in line
    assert "spindle route" in line  # how to take it out of serving


def test_evaluate_refuses_a_feature_the_team_may_not_use(pushed: Path, tmp_path: Path) -> None:
    root = tmp_path / "ws"
    shutil.copytree(pushed, root, symlinks=True)
    _restrict(root, "purchases_28d", "[Sensitive]", "[search]")  # pinned by team growth's model
    code, out = _cli(
        "evaluate", "purchase_propensity", "--version", "1", "--date", DAY, "-w", str(root)
    )
    line = _one_line_error(code, out)
    assert "model purchase_propensity (team growth)" in line
    assert "user.purchases_28d@1 (tags sensitive; allowed teams: search)" in line


def test_push_and_route_refuse_it_even_forced(tightened: Path) -> None:
    code, out = _cli(
        "push", "purchase_propensity", "--version", "1", "--force", "--reason", "x",
        "-w", str(tightened),
    )  # fmt: skip
    assert "user.spend_usd_28d@1" in _one_line_error(code, out)
    code, out = _cli("route", "purchase_propensity", "1=1", "-w", str(tightened))
    assert "user.spend_usd_28d@1" in _one_line_error(code, out)


def test_a_version_is_judged_by_the_team_of_its_model_file(pushed: Path, tmp_path: Path) -> None:
    """Identity comes from models/<name>.yaml, not from what a version recorded."""
    root = tmp_path / "ws"
    shutil.copytree(pushed, root, symlinks=True)
    path = root / "models" / "purchase_propensity.yaml"
    path.write_text(path.read_text().replace("\nteam: growth\n", "\nteam: search\n"))
    ws = spindle.Workspace.load(root)
    from spindle.features import FeatureRegistry

    with pytest.raises(spindle.FeatureError, match=r"purchase_propensity@1 \(team search\)"):
        check_served_policies(ws, FeatureRegistry.load(ws.features_dir), ws.model_repo)


# -- sources: a model's examples.sources, and the features of a view that reads one ------------


def _restrict_source(ws: Path, source: str, tags: str, teams: str) -> None:
    """Give ``sources/<source>.yaml`` the tags and allowed teams (replacing any)."""
    path = ws / "sources" / f"{source}.yaml"
    lines = [
        line
        for line in path.read_text().splitlines()
        if not line.startswith(("tags:", "allowed_teams:"))
    ]
    path.write_text("\n".join([*lines, f"tags: {tags}", f"allowed_teams: {teams}"]) + "\n")


def test_a_restricted_source_in_examples_needs_an_allowed_team(ws: Path) -> None:
    """search_ranker (team search) reads impressions in its examples only (no view reads it)."""
    _restrict_source(ws, "impressions", "[PII]", "[growth]")
    line = _one_line_error(*_cli("train", "search_ranker", "--date", DAY, "-w", str(ws)))
    assert (
        "model search_ranker (team search) may not use restricted source(s): "
        "source impressions (tags pii; allowed teams: growth). Remove them from the model's "
        "examples.sources, or ask their owners to add team 'search' to `allowed_teams` in "
        "sources/impressions.yaml." in line
    )
    _restrict_source(ws, "impressions", "[PII]", "[growth, search]")
    with Context.open(ws) as ctx:
        assert spindle.load_config(ctx, "search_ranker").config.team == "search"


def test_allowed_teams_alone_restrict_no_source(ws: Path) -> None:
    """As for a feature: without a pii/sensitive tag, a source's allowed_teams limit nothing."""
    _restrict_source(ws, "impressions", "[clickstream]", "[growth]")
    with Context.open(ws) as ctx:
        assert spindle.load_config(ctx, "search_ranker").config.team == "search"


def test_a_view_reading_a_restricted_source_restricts_its_features(ws: Path) -> None:
    """Every feature of the user view (which reads users) carries the source's tag; its teams
    are the source's, kept only where the feature's own allow them too (user.country: growth,
    search)."""
    _restrict_source(ws, "users", "[Sensitive]", "[growth, finance]")
    line = _one_line_error(*_cli("train", "search_ranker", "--date", DAY, "-w", str(ws)))
    assert "model search_ranker (team search) may not use restricted feature(s): " in line
    assert "user.country@1 (tags pii, sensitive; allowed teams: growth; from source users)" in line
    assert "user.purchases_28d@1 (tags sensitive; allowed teams: growth, finance; from " in line
    assert "`allowed_teams` in the feature's YAML, sources/users.yaml." in line
    code, out = _cli("features", "list", "--tag", "sensitive", "--json", "-w", str(ws))
    assert code == 0, out
    listed = {r["ref"]: r for r in json.loads(out)}
    assert listed["user.purchases_28d@1"]["allowed_teams"] == ["growth", "finance"]
    assert listed["user.spend_usd_28d@1"]["allowed_teams"] == ["growth"]  # its own: growth
    assert not any(ref.startswith(("product.", "query.")) for ref in listed)
    with Context.open(ws) as ctx:  # team growth may use them all
        assert spindle.load_config(ctx, "purchase_propensity").config.team == "growth"
    _restrict_source(ws, "users", "[Sensitive]", "[growth, search]")
    with Context.open(ws) as ctx:
        assert spindle.load_config(ctx, "search_ranker").config.team == "search"


@pytest.mark.parametrize(
    ("source", "found"),
    [
        ("users", "user.country@1 (tags pii; allowed teams: none; from source users)"),
        ("searches", "source searches (tags pii; allowed teams: finance)"),
    ],
)
def test_every_door_refuses_a_version_reading_a_restricted_source(
    pushed: Path, tmp_path: Path, source: str, found: str
) -> None:
    """purchase_propensity@1 (team growth) pins user features (view of users) and was trained
    on examples of searches; then the source's owner allows team finance only: evaluate,
    push (forced), route and serve refuse it."""
    root = tmp_path / "ws"
    shutil.copytree(pushed, root, symlinks=True)
    _restrict_source(root, source, "[PII]", "[finance]")
    code, out = _cli(
        "evaluate", "purchase_propensity", "--version", "1", "--date", DAY, "-w", str(root)
    )
    line = _one_line_error(code, out)
    assert "model purchase_propensity (team growth) may not use restricted" in line
    assert found in line
    version = "purchase_propensity@1 (team growth) may not use restricted"
    code, out = _cli(
        "push", "purchase_propensity", "--version", "1", "--force", "--reason", "x",
        "-w", str(root),
    )  # fmt: skip
    line = _one_line_error(code, out)
    assert version in line and found in line and "not pushed" in line
    line = _one_line_error(*_cli("route", "purchase_propensity", "1=1", "-w", str(root)))
    assert version in line and found in line and "not routed" in line
    spindle_bin = str(Path(sys.executable).parent / "spindle")
    done = subprocess.run(
        [spindle_bin, "serve", "--port", "0", "-w", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    line = _one_line_error(done.returncode, done.stdout + done.stderr)
    assert version in line and found in line and "spindle route" in line
    assert "models/purchase_propensity.yaml (team growth) may not use restricted" in line


def test_a_candidate_retrieval_over_a_restricted_view_needs_an_allowed_team(ws: Path) -> None:
    """search_ranker's serving.candidates reads the product view's online rows: a restricted
    product feature (pinned or not) refuses a team its policy does not allow, naming
    serving.candidates as where the model reads it."""
    path = ws / "features" / "product.yaml"
    lines = path.read_text().splitlines()
    at = lines.index("  - name: name_word_count")  # not pinned by search_ranker
    lines[at + 1 : at + 1] = ["    tags: [sensitive]", "    allowed_teams: [growth]"]
    path.write_text("\n".join(lines) + "\n")
    line = _one_line_error(*_cli("train", "search_ranker", "--date", DAY, "-w", str(ws)))
    assert "model search_ranker (team search)" in line
    assert "product.name_word_count@1 (tags sensitive; allowed teams: growth)" in line
    assert "serving.candidates (its retrieval reads view product)" in line
    refused = pytest.raises(spindle.FeatureError, match=r"name_word_count@1.*serving.candidates")
    with Context.open(ws) as ctx, refused:
        check_served_policies(ctx.workspace, ctx.features, ctx.workspace.model_repo)
