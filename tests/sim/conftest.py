"""Simulated raw directories shared by the simulator tests, built once per session."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from spindle.sim import Fault, SimulationResult, simulate
from tests.sim.simdata import DAYS, SCALE, SEED, START

Runner = Callable[[str], tuple[Path, SimulationResult]]


@pytest.fixture(scope="session")
def baseline(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimulationResult]:
    """Five clean days."""
    out = tmp_path_factory.mktemp("baseline") / "raw"
    return out, simulate(out, start=START, days=DAYS, seed=SEED, scale=SCALE)


@pytest.fixture(scope="session")
def with_fault(tmp_path_factory: pytest.TempPathFactory) -> Runner:
    """The same five days with one fault (``KIND@DAY`` text), cached per fault."""
    cache: dict[str, tuple[Path, SimulationResult]] = {}

    def run(text: str) -> tuple[Path, SimulationResult]:
        if text not in cache:
            out = tmp_path_factory.mktemp(text.replace(":", "_").replace("@", "_")) / "raw"
            fault = Fault.parse(text, START)
            cache[text] = (
                out,
                simulate(out, start=START, days=DAYS, seed=SEED, scale=SCALE, faults=[fault]),
            )
        return cache[text]

    return run
