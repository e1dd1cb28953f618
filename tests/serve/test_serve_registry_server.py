"""``spindle serve`` checks each version against the registry: a swapped version falls back.

The server half of tests/serve/test_serve_integrity.py: ``create_app(..., registry_url=...)``
(what ``spindle serve`` passes) refuses version 2's directory holding version 1's files under a
rewritten manifest, answers from ``previous``, and says why in ``/v1/versions``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.serve.registry_helpers import push_two_and_swap

CANDIDATES = ["p001", "p002", "p003", "p004", "p005"]


@pytest.fixture
def registry(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state' / 'metadata.db'}"


def test_the_server_refuses_the_swapped_version_and_falls_back(
    make_version, repo: Path, registry: str, serve
) -> None:
    push_two_and_swap(make_version, repo, registry)
    _, client = serve(registry_url=registry)
    versions = {row["version"]: row for row in client.get("/v1/versions").json()["versions"]}
    assert versions["2"]["status"] == "failed checksum"
    assert "registry" in versions["2"]["detail"]
    body = {"user_id": "u1", "query": "red yarn", "candidates": CANDIDATES, "k": 3}
    payload = client.post("/v1/rank", json=body).json()
    assert payload["version"] == "1"
    assert payload["fallback"] == "version 2 failed checksum; served by previous version 1"
