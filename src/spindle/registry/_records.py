"""Records: the frozen, typed values the metadata store returns (never live database rows)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

RUN_STATUSES = ("running", "succeeded", "failed", "skipped")
FINAL_RUN_STATUSES = ("succeeded", "failed", "skipped")
VERSION_STATUSES = ("reserved", "ready", "failed")
DIRECTIONS = ("upstream", "downstream", "both")


@dataclass(frozen=True)
class ArtifactRecord:
    """An artifact as recorded: its registry fields, when it was recorded and by which run."""

    id: str
    kind: str
    uri: str
    content_hash: str
    properties: dict[str, Any] = field(hash=False)
    created_at: datetime
    run_id: str | None


@dataclass(frozen=True)
class RunRecord:
    """One execution of a step: status, timings, config, resources, inputs and outputs.

    ``status`` is one of ``running``, ``succeeded``, ``failed``, ``skipped``; ``inputs`` and
    ``outputs`` are artifact ids in the order they were given.
    """

    id: str
    step: str
    key: str
    model: str | None
    date: str | None
    status: str
    started_at: datetime
    ended_at: datetime | None
    config_hash: str | None
    params: dict[str, Any] = field(hash=False)
    resources: dict[str, Any] = field(hash=False)
    error: str | None
    inputs: tuple[str, ...]
    outputs: tuple[str, ...]
    pid: int | None
    host: str | None

    @property
    def duration_s(self) -> float | None:
        """Wall time of a finished run in seconds (None while it runs)."""
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds()


@dataclass(frozen=True)
class ModelVersionRecord:
    """One immutable, numbered version of a model.

    ``status`` is ``reserved`` (number taken, training under way), ``ready`` (artifact recorded,
    never changes again) or ``failed`` (``error`` says why; the number is never reused).
    """

    model: str
    version: int
    status: str
    artifact_id: str | None
    date: str | None
    base_version: int | None
    created_at: datetime
    error: str | None = None


@dataclass(frozen=True)
class AliasEvent:
    """One change of an alias (``production``, ``previous``, ``candidate``, ...): who, why, when."""

    model: str
    alias: str
    version: int | None
    previous_version: int | None
    actor: str
    reason: str
    at: datetime


DEPLOYMENT_STATUSES = ("pending", "done", "abandoned", "refused")


@dataclass(frozen=True)
class DeploymentRecord:
    """One change of what serves a model: the routing weights asked for and how it ended.

    A deployment is recorded ``pending`` before routing.json is written and marked ``done``
    (moving the ``production`` alias to :attr:`main` in the same transaction) after, so a crash
    in between leaves a pending record that says what was intended. ``abandoned`` means the
    routing was never written; ``refused`` records a push that was not allowed (``detail``).
    """

    seq: int
    model: str
    weights: dict[int, float] = field(hash=False)
    previous: int | None
    status: str
    actor: str
    reason: str
    created_at: datetime
    finished_at: datetime | None = None
    detail: str | None = None

    @property
    def main(self) -> int | None:
        """The version with the most traffic (the newest on a tie); None when nothing routes."""
        live = [(w, v) for v, w in self.weights.items() if w > 0]
        return max(live)[1] if live else None


INTENT_OPS = ("push", "route", "rollback", "fix")


@dataclass(frozen=True)
class IntentRecord:
    """A state-changing command (push, route, rollback, ``doctor --fix``), recorded before it acts.

    ``key`` names the command: its op, model and arguments (``args``). The intent is recorded
    with its deployment, in one transaction, before the command touches the model repository;
    the deployment's weights and previous version are the target, ``base_weights`` and
    ``base_previous`` the routing the target was planned from. A rerun of the same command
    after a crash finds the pending intent by its key and completes it, instead of planning a
    second change from what the first one already wrote. Its status is the deployment's.
    """

    op: str
    key: str
    args: dict[str, Any] = field(hash=False)
    base_weights: dict[int, float] = field(hash=False)
    base_previous: int | None
    deployment: DeploymentRecord

    @property
    def model(self) -> str:
        return self.deployment.model

    @property
    def status(self) -> str:
        """``pending``, ``done`` or ``abandoned``: the status of its deployment."""
        return self.deployment.status


@dataclass(frozen=True)
class LineageNode:
    """An artifact reached by a lineage walk.

    ``relation`` is the relation of the edge the walk first reached it by (None for the root),
    ``depth`` the number of edges from the root, ``run_id`` the run that produced it.
    """

    id: str
    kind: str
    uri: str
    relation: str | None
    depth: int
    properties: dict[str, Any] = field(hash=False)
    run_id: str | None = None


@dataclass(frozen=True)
class LineageEdge:
    """A directed edge: ``parent_id`` was used to make ``child_id``."""

    parent_id: str
    child_id: str
    relation: str


@dataclass(frozen=True)
class LineageGraph:
    """The artifacts upstream (inputs, recursively) and downstream of ``root``, nearest first."""

    root: LineageNode
    upstream: list[LineageNode] = field(hash=False)
    downstream: list[LineageNode] = field(hash=False)
    edges: list[LineageEdge] = field(hash=False)

    def node(self, artifact_id: str) -> LineageNode | None:
        """Return the node with this id anywhere in the graph, or None."""
        for candidate in (self.root, *self.upstream, *self.downstream):
            if candidate.id == artifact_id:
                return candidate
        return None
