"""Executors: where a model's daily pipeline runs — in this process, or as Ray tasks.

Either way every step is recorded in the same metadata store with the same idempotency keys, so
a day run on Ray and re-run in-process (or the reverse) is skipped, not repeated. On a real
cluster the workspace must be on storage every node sees and the metadata store a server
(PostgreSQL); a local Ray, as in the tests, stands in for one.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from spindle.core import OrchestrationError
from spindle.orchestrate._context import Context
from spindle.orchestrate._daily import DayReport, run_day
from spindle.orchestrate._tasks import init_ray

Job = tuple[str, str]  # (model, date)
OnDone = Callable[[DayReport], None]  # called as each job finishes (progress), in this process


def run_job(
    workspace: str,
    model: str,
    date: str,
    overrides: list[str] | None = None,
    allow_older: bool = False,
) -> dict[str, Any]:
    """One model-day in a fresh context (module level, so Ray can ship it to a worker)."""
    with Context.open(workspace) as ctx:
        return run_day(ctx, model, date, overrides=overrides, allow_older=allow_older).to_dict()


class Executor(Protocol):
    name: str

    def run(
        self,
        workspace: Path,
        jobs: list[Job],
        overrides: list[str] | None = None,
        allow_older: bool = False,
        on_done: OnDone | None = None,
    ) -> list[DayReport]:
        """Run ``jobs`` and return their reports in the jobs' order; call ``on_done`` with
        each report as its job finishes (in finishing order)."""
        ...


@dataclass
class InProcessExecutor:
    """Jobs in this process one at a time, or ``max_parallel`` at a time in spawned worker
    processes, each with its own context.

    Not threads: torch keeps global tracing state that its ONNX exporter and a training step
    both touch, so a model exporting while another trains in the same process can crash
    (seen: ``KeyError: 'custom'`` in ``torch.fx.traceback`` under ``run-all --max-parallel 2``).
    Workers are spawned, never forked (a process that used deltalake must not fork).
    """

    max_parallel: int = 1
    name: str = "in-process"

    def run(
        self,
        workspace: Path,
        jobs: list[Job],
        overrides: list[str] | None = None,
        allow_older: bool = False,
        on_done: OnDone | None = None,
    ) -> list[DayReport]:
        def one(job: Job) -> DayReport:
            return DayReport(**run_job(str(workspace), job[0], job[1], overrides, allow_older))

        if self.max_parallel == 1:
            reports = []
            for job in jobs:
                reports.append(one(job))
                if on_done is not None:
                    on_done(reports[-1])
            return reports
        spawn = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=self.max_parallel, mp_context=spawn) as pool:
            futures = [
                pool.submit(run_job, str(workspace), model, date, overrides, allow_older)
                for model, date in jobs
            ]
            for future in as_completed(futures):
                if on_done is not None:
                    on_done(DayReport(**future.result()))
            return [DayReport(**f.result()) for f in futures]


@dataclass
class RayExecutor:
    """Jobs as Ray tasks on a cluster (``address``) or a local Ray started on demand."""

    address: str | None = None
    num_cpus_per_job: float = 1.0
    name: str = "ray"

    def run(
        self,
        workspace: Path,
        jobs: list[Job],
        overrides: list[str] | None = None,
        allow_older: bool = False,
        on_done: OnDone | None = None,
    ) -> list[DayReport]:
        import ray

        init_ray(self.address)
        task = ray.remote(num_cpus=self.num_cpus_per_job, max_retries=2, retry_exceptions=False)(
            run_job
        )
        root = str(Path(workspace).resolve())
        refs = [task.remote(root, m, d, overrides, allow_older) for m, d in jobs]
        try:
            pending = list(refs)
            while pending and on_done is not None:
                finished, pending = ray.wait(pending, num_returns=1)
                on_done(DayReport(**ray.get(finished[0])))
            return [DayReport(**r) for r in ray.get(refs)]
        except ray.exceptions.RayError as exc:
            raise OrchestrationError(f"a Ray task failed: {exc}") from exc


def make_executor(name: str, *, max_parallel: int = 1, address: str | None = None) -> Executor:
    """``in-process`` (default) or ``ray``."""
    if name in ("in-process", "inprocess", "local"):
        return InProcessExecutor(max_parallel)
    if name == "ray":
        return RayExecutor(address)
    raise OrchestrationError(f"unknown executor {name!r}; use in-process or ray")
