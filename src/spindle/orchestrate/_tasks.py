"""Task pools: where the partition tasks of a step run — in this process, or on a Ray cluster.

A step's heavy work is a plain, module-level function of picklable arguments (a day's ingest, a
day's feature computation, a training set's build, a model's fit, one day of a backfill): the
stage packages own them, and nothing in them touches the metadata store. The orchestrator
records the step (run, idempotency key, lineage) in its own process exactly as before and hands
the function to the context's pool: :class:`InProcessPool` calls it here,
:class:`RayPool` runs it as a Ray task (on whichever node has room) and returns its result, so
records, keys and lineage are the same wherever the work ran. A task on Ray measures itself
(wall and CPU seconds, peak memory of the worker) and names its node; :func:`placed_tasks`
collects these for the step running now, so the runner records where its work ran and what it
cost there, not only what the driver spent waiting.

The pool is chosen by ``executor:`` in ``spindle.yaml`` (``kind: ray``, ``address``,
``num_cpus``) or by ``--executor``/``--ray-address`` on the command line.
"""

from __future__ import annotations

import contextlib
import contextvars
import os
import resource
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Protocol, TypeVar

from spindle.core import OrchestrationError
from spindle.orchestrate._resources import cpu_seconds

R = TypeVar("R")
Ship = tuple[Path, Sequence[str]]  # a folder sent to the cluster, and the patterns left out
_INIT = threading.Lock()  # threads of one driver (a range's days) start one Ray, not one each

# what a Ray worker of a spindle task needs in its environment (copied from the driver's when set)
_WORKER_ENV = (
    ("OMP_WAIT_POLICY", "PASSIVE"),
    ("MALLOC_MMAP_THRESHOLD_", "1073741824"),
    ("MALLOC_TRIM_THRESHOLD_", "4294967296"),
)


@dataclass(frozen=True)
class Placement:
    """Where one task ran and what it cost there (measured by the task itself)."""

    task: str  # the task's label
    node: str  # the Ray node's id
    host: str  # the node's host name
    wall_s: float
    cpu_s: float  # of the worker process and the children it waited for
    peak_rss_mb: float  # the worker process's peak so far (a worker runs many tasks)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


_PLACED: contextvars.ContextVar[list[Placement] | None] = contextvars.ContextVar(
    "spindle_placed_tasks", default=None
)


@contextlib.contextmanager
def placed_tasks() -> Iterator[list[Placement]]:
    """Collect the placements of the tasks run (by a pool, in this thread) inside the block."""
    found: list[Placement] = []
    token = _PLACED.set(found)
    try:
        yield found
    finally:
        _PLACED.reset(token)


def task_resources(placed: Sequence[Placement]) -> dict[str, float]:
    """What a step's tasks cost where they ran, for its run record (none: nothing ran away)."""
    if not placed:
        return {}
    return {
        "tasks": float(len(placed)),
        "task_wall_s": round(sum(p.wall_s for p in placed), 4),
        "task_cpu_s": round(sum(p.cpu_s for p in placed), 4),
        "task_peak_rss_mb": round(max(p.peak_rss_mb for p in placed), 1),
    }


class TaskPool(Protocol):
    """Runs plain functions of picklable arguments, here or elsewhere."""

    name: str

    def start(self) -> None:
        """Be ready to run tasks (connect to the cluster); called from the main thread before
        threads submit tasks, and by ``map`` itself when it was not."""
        ...

    def map(self, fn: Callable[..., R], calls: Sequence[tuple[Any, ...]], *, label: str) -> list[R]:
        """``[fn(*args) for args in calls]``, possibly at once; results in the calls' order.

        Raises:
            whatever ``fn`` raised (the first failure, as its own type), or
            OrchestrationError: the pool lost a task (a worker or node died).
        """
        ...


def call(pool: TaskPool, fn: Callable[..., R], *args: Any, label: str) -> R:
    """``fn(*args)`` run by ``pool`` (one task)."""
    return pool.map(fn, [args], label=label)[0]


@dataclass
class InProcessPool:
    """Every task in this process, one after another (the default)."""

    name: str = "in-process"

    def start(self) -> None:
        pass

    def map(self, fn: Callable[..., R], calls: Sequence[tuple[Any, ...]], *, label: str) -> list[R]:
        return [fn(*args) for args in calls]


def run_in_worker(
    root: str, shipped: bool, fn: Callable[..., R], args: tuple[Any, ...], label: str = ""
) -> tuple[R, Placement]:
    """``fn(*args)`` on a Ray worker, with the workspace's own modules importable (its feature
    transforms, a custom model): from the workspace's folder ``root``, or, when the workspace
    was ``shipped`` to the cluster (Ray's ``working_dir``), from the copy the worker runs in.
    Returns the result and where it ran (the node's id, as Ray's runtime context names it)
    with what it cost there."""
    import ray

    code = os.getcwd() if shipped else root
    if code not in sys.path:
        sys.path.insert(0, code)
    wall0, cpu0 = time.perf_counter(), cpu_seconds()
    result = fn(*args)
    placement = Placement(
        label,
        ray.get_runtime_context().get_node_id(),
        socket.gethostname(),
        round(time.perf_counter() - wall0, 4),
        round(cpu_seconds() - cpu0, 4),
        round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    )
    return result, placement


def init_ray(address: str | None, ship: Ship | None = None) -> None:
    """Connect to the Ray cluster at ``address`` (or start a local one), once per process.

    ``ship`` = (folder, excluded patterns) sends that folder to the cluster as every task's
    working directory (Ray's ``runtime_env.working_dir``): nodes that do not share the
    workspace's folder get its declarations and code, not its data.

    Raises:
        OrchestrationError: Ray is not installed, or the cluster cannot be reached.
    """
    try:
        import ray
    except ImportError as exc:
        raise OrchestrationError(
            "the Ray executor needs `pip install ray` (the `ray` extra of spindle)"
        ) from exc
    with _INIT:
        if not ray.is_initialized():
            _init(ray, address, ship)


def _init(ray: Any, address: str | None, ship: Ship | None) -> None:
    if address:
        _reachable(address)  # ray.init keeps retrying an address nobody listens on
    env: dict[str, Any] = {"env_vars": {k: os.environ.get(k, v) for k, v in _WORKER_ENV}}
    if ship is not None:
        env |= {"working_dir": str(ship[0]), "excludes": list(ship[1])}
    try:
        ray.init(
            address=address,
            include_dashboard=False,
            log_to_driver=False,
            runtime_env=env,
            configure_logging=False,
        )
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = address or "a local Ray"
        raise OrchestrationError(
            f"cannot reach the Ray cluster at {where} ({str(exc).splitlines()[0]}); start it"
            " (`ray start --head`) or fix executor.address in spindle.yaml / --ray-address"
        ) from exc


def _reachable(address: str) -> None:
    """Refuse at once a ``host:port`` (or ``ray://host:port``) nothing answers on.

    Raises:
        OrchestrationError: the connection is refused or times out (5 s).
    """
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        return  # "auto", "local": Ray resolves them itself
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise OrchestrationError(
            f"cannot reach the Ray cluster at {address} ({exc.strerror or exc}); start it"
            " (`ray start --head`) or fix executor.address in spindle.yaml / --ray-address"
        ) from exc


@dataclass
class RayPool:
    """Every task as a Ray task of the cluster at ``address`` (a local Ray when None).

    ``placements`` keeps, per task run, its label and the node it ran on (newest last).
    """

    root: Path
    address: str | None = None
    num_cpus: float = 1.0
    # the workspace's folder sent to the cluster without these patterns (None: not sent, the
    # nodes see the folder itself)
    ship: tuple[str, ...] | None = None
    name: str = "ray"
    placements: list[tuple[str, str]] = field(default_factory=list)

    def start(self) -> None:
        init_ray(self.address, None if self.ship is None else (self.root, self.ship))

    def map(self, fn: Callable[..., R], calls: Sequence[tuple[Any, ...]], *, label: str) -> list[R]:
        import ray

        self.start()
        task: Any = ray.remote(run_in_worker).options(
            name=label, num_cpus=self.num_cpus, max_retries=2, retry_exceptions=False
        )
        root = str(Path(self.root).resolve())
        for attempt in (1, 2):
            shipped = self.ship is not None
            refs = [task.remote(root, shipped, fn, tuple(args), label) for args in calls]
            try:
                done = ray.get(refs)
                break
            except ray.exceptions.RayTaskError as exc:
                cause = exc.cause if isinstance(exc.cause, BaseException) else None
                if cause is not None:
                    raise cause from None  # the step's own error (a DataError stays one)
                raise OrchestrationError(f"Ray task {label} failed: {_first_line(exc)}") from exc
            except ray.exceptions.ObjectLostError as exc:
                # a result that could not be fetched from its node: the tasks are idempotent
                # (partition overwrites, files renamed into place), so they run once more
                if attempt == 2:
                    raise OrchestrationError(
                        f"Ray task {label}'s result was lost twice ({_first_line(exc)}); "
                        "run the command again"
                    ) from exc
            except ray.exceptions.RayError as exc:
                raise OrchestrationError(
                    f"Ray task {label} was lost ({_first_line(exc)}); run the command again"
                ) from exc
        self.placements.extend((label, placed.node) for _, placed in done)
        log = _PLACED.get()
        if log is not None:
            log.extend(placed for _, placed in done)
        return [result for result, _ in done]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def make_pool(
    root: Path,
    kind: str,
    *,
    address: str | None = None,
    num_cpus: float = 1.0,
    ship: tuple[str, ...] | None = None,
) -> TaskPool:
    """The pool of ``kind`` (``in-process`` or ``ray``) for the workspace at ``root``;
    ``ship``: send the workspace's folder to the cluster without these patterns.

    Raises:
        OrchestrationError: an unknown kind.
    """
    if kind in ("in-process", "inprocess", "local"):
        return InProcessPool()
    if kind == "ray":
        return RayPool(root, address, num_cpus, ship)
    raise OrchestrationError(f"unknown executor {kind!r}; use in-process or ray")
