"""Rollback and route from the dashboard: refused without a configured token or with a wrong
one (nothing changes), done with the right one exactly as `spindle rollback` and `spindle
route` do them (a recorded deployment with actor and reason, routing and production moved)."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

import spindle
from spindle.registry import DeploymentRecord

MODEL = "search_ranker"
TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def writable(demo_workspace: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("actions") / "ws"
    shutil.copytree(demo_workspace, target, symlinks=True)
    return target


@pytest.fixture(scope="module")
def token_url(writable: Path) -> Iterator[str]:
    from spindle.serve import ServerThread
    from spindle.ui import create_ui_app

    with ServerThread(create_ui_app(writable, token=TOKEN)) as server:
        yield server.url


def _deployments(root: Path) -> list[DeploymentRecord]:
    with spindle.Context.open_reader(root) as ctx:
        return ctx.store.deployments(MODEL)


def test_the_read_only_dashboard_offers_no_action_and_refuses_one(
    ui_url: str, demo_workspace: Path
) -> None:
    before = _deployments(demo_workspace)
    assert 'id="actions"' not in httpx.get(f"{ui_url}/models/{MODEL}").text
    answer = httpx.post(f"{ui_url}/models/{MODEL}/rollback", data={"token": "anything"})
    assert answer.status_code == 403 and "read-only" in answer.text
    assert _deployments(demo_workspace) == before


def test_a_wrong_or_missing_token_changes_nothing(token_url: str, writable: Path) -> None:
    before = _deployments(writable)
    assert 'id="actions"' in httpx.get(f"{token_url}/models/{MODEL}").text
    for data in ({"token": "guess"}, {}):
        answer = httpx.post(f"{token_url}/models/{MODEL}/rollback", data=data)
        assert answer.status_code == 403 and "nothing was changed" in answer.text
    assert _deployments(writable) == before


def test_rollback_and_route_with_the_token_are_recorded_like_the_cli(
    token_url: str, writable: Path
) -> None:
    with spindle.Context.open_reader(writable) as ctx:
        production = ctx.store.get_alias(MODEL, "production")
        previous = ctx.store.get_alias(MODEL, "previous")
    assert production is not None and previous is not None
    answer = httpx.post(
        f"{token_url}/models/{MODEL}/rollback", data={"token": TOKEN, "reason": "bad ranking"}
    )
    assert answer.status_code == 303 and answer.headers["location"] == f"/models/{MODEL}"
    last = _deployments(writable)[-1]
    assert (last.status, last.actor, last.main) == ("done", "spindle rollback", previous)
    assert last.reason == "bad ranking (from the dashboard)"
    assert spindle.read_routing(spindle.Workspace.load(writable).model_repo, MODEL).weights == {
        previous: 1.0
    }
    weights = f"{previous}=0.25 {production}=0.75"
    answer = httpx.post(
        f"{token_url}/models/{MODEL}/route",
        data={"token": TOKEN, "weights": weights, "reason": "ramp up"},
    )
    assert answer.status_code == 303
    last = _deployments(writable)[-1]
    assert (last.actor, last.weights) == ("spindle route", {previous: 0.25, production: 0.75})
    with spindle.Context.open_reader(writable) as ctx:
        assert ctx.store.get_alias(MODEL, "production") == production
    page = httpx.get(f"{token_url}/models/{MODEL}").text
    assert "ramp up (from the dashboard)" in page and "bad ranking (from the dashboard)" in page


def test_a_bad_routing_is_refused_with_the_reason(token_url: str, writable: Path) -> None:
    before = _deployments(writable)
    answer = httpx.post(
        f"{token_url}/models/{MODEL}/route", data={"token": TOKEN, "weights": "1=half"}
    )
    assert answer.status_code == 400 and "VERSION=WEIGHT" in answer.text
    assert _deployments(writable) == before
