"""Fixtures of the orchestrator's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest


@pytest.fixture
def local_ray() -> Iterator[None]:
    """A local Ray of two CPUs for the test, shut down after it."""
    ray = pytest.importorskip("ray")
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        configure_logging=False,
        runtime_env={"env_vars": {"OMP_WAIT_POLICY": "PASSIVE"}},
    )
    yield
    ray.shutdown()
