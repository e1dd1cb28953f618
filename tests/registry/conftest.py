"""Fixtures of the registry tests: a real metadata store on each backend, SQLite in a temp dir
and PostgreSQL on a throwaway server on loopback (a database of its own per test)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from tests.postgres import PostgresServer

from spindle.core import Artifact
from spindle.registry import MetadataStore

MakeArtifact = Callable[..., Artifact]


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "postgresql":
        server: PostgresServer = request.getfixturevalue("postgres")
        return server.database("registry")
    return f"sqlite:///{tmp_path / 'state' / 'metadata.db'}"


@pytest.fixture
def store(url: str) -> Iterator[MetadataStore]:
    with MetadataStore(url) as opened:
        yield opened


@pytest.fixture
def make() -> MakeArtifact:
    """Build a generic artifact: ``make("raw:a", kind="raw", content_hash="h2", date=...)``."""

    def build(
        artifact_id: str, kind: str = "thing", content_hash: str = "h1", **props: Any
    ) -> Artifact:
        return Artifact(kind, artifact_id, f"file:///data/{artifact_id}", content_hash, props)

    return build
