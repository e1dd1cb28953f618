"""Run rows: start, finish (outputs and lineage in one transaction), queries, stale runs."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import psutil
from sqlalchemy import select
from sqlalchemy.orm import Session

from spindle.core import RegistryError
from spindle.registry._artifacts import artifact_row, record_artifact
from spindle.registry._lineage import add_edge, require_artifacts
from spindle.registry._not_found import unknown_run
from spindle.registry._records import FINAL_RUN_STATUSES, RUN_STATUSES, RunRecord
from spindle.registry._schema import RunArtifactRow, RunRow, utc_now
from spindle.registry._values import json_safe

STALE_ERROR = "process died"
# psutil derives a process's start time from boot time and clock ticks; allow for rounding.
_START_TOLERANCE_S = 2.0


def run_row(session: Session, run_id: str, *, lock: bool = False) -> RunRow:
    """Return run ``run_id`` or raise NotFound naming the newest runs."""
    stmt = select(RunRow).where(RunRow.id == run_id)
    row = session.scalar(stmt.with_for_update() if lock else stmt)
    if row is not None:
        return row
    newest = session.scalars(select(RunRow).order_by(RunRow.seq.desc()).limit(3))
    raise unknown_run(run_id, [(r.id, r.step, r.status) for r in newest])


def start(
    session: Session,
    step: str,
    key: str,
    *,
    model: str | None,
    date: str | None,
    config_hash: str | None,
    params: dict[str, Any],
    inputs: Sequence[str],
) -> RunRow:
    """Insert a ``running`` run of this process with its inputs."""
    if not step or not key:
        raise RegistryError(f"a run needs a step and an idempotency key; got {step!r}, {key!r}")
    input_ids = list(dict.fromkeys(inputs))
    require_artifacts(session, input_ids, f"inputs of step {step!r}")
    row = RunRow(
        id=uuid.uuid4().hex,
        step=step,
        key=key,
        model=model,
        date=date,
        status="running",
        started_at=utc_now(),
        config_hash=config_hash,
        params=json_safe(params),
        resources={},
        pid=os.getpid(),
        host=socket.gethostname(),
    )
    row.io = [
        RunArtifactRow(role="input", artifact_id=artifact_id, position=i)
        for i, artifact_id in enumerate(input_ids)
    ]
    session.add(row)
    session.flush()
    return row


def finish(
    session: Session,
    run_id: str,
    status: str,
    *,
    outputs: Sequence[Any],
    resources: dict[str, Any],
    error: str | None,
    ran_on: Sequence[dict[str, Any]] = (),
) -> RunRow:
    """Set a run's final status and record its outputs and input -> output edges (and, in its
    params, where its tasks ran: ``ran_on``)."""
    if status not in FINAL_RUN_STATUSES:
        raise RegistryError(
            f"a run finishes as one of {', '.join(FINAL_RUN_STATUSES)}; got {status!r}"
        )
    row = run_row(session, run_id, lock=True)
    if row.status != "running":
        raise RegistryError(
            f"run {run_id} ({row.step}) already finished as {row.status} at {row.ended_at}; "
            "start a new run to redo the work"
        )
    output_ids: list[str] = []
    for output in outputs:
        stored = (
            artifact_row(session, output)
            if isinstance(output, str)
            else record_artifact(session, output, run_id)
        )
        if stored.id not in output_ids:
            output_ids.append(stored.id)
    inputs = row.ids("input")
    for output_id in output_ids:
        for input_id in inputs:
            if input_id != output_id:
                add_edge(session, input_id, output_id, f"produced_by:{row.step}")
    row.io.extend(
        RunArtifactRow(role="output", artifact_id=artifact_id, position=i)
        for i, artifact_id in enumerate(output_ids)
    )
    row.status = status
    row.ended_at = utc_now()
    row.resources = json_safe(resources)
    if ran_on:
        row.params = {**row.params, "ran_on": json_safe(list(ran_on))}
    row.error = error
    session.flush()
    return row


def latest_succeeded(session: Session, key: str) -> RunRecord | None:
    stmt = (
        select(RunRow)
        .where(RunRow.key == key, RunRow.status == "succeeded")
        .order_by(RunRow.ended_at.desc(), RunRow.seq.desc())
        .limit(1)
    )
    row = session.scalar(stmt)
    return row.to_record() if row is not None else None


def query(
    session: Session,
    *,
    model: str | None,
    step: str | None,
    status: str | None,
    limit: int | None,
) -> list[RunRecord]:
    if status is not None and status not in RUN_STATUSES:
        raise RegistryError(f"run status is one of {', '.join(RUN_STATUSES)}; got {status!r}")
    stmt = select(RunRow)
    if model is not None:
        stmt = stmt.where(RunRow.model == model)
    if step is not None:
        stmt = stmt.where(RunRow.step == step)
    if status is not None:
        stmt = stmt.where(RunRow.status == status)
    stmt = stmt.order_by(RunRow.seq.desc())
    if limit is not None:
        stmt = stmt.limit(limit)
    return [row.to_record() for row in session.scalars(stmt)]


def process_alive(pid: int | None, started_at: datetime) -> bool:
    """True unless process ``pid`` of this host is gone, a zombie, or a newer process reusing it."""
    if pid is None:
        return True  # nothing to check: leave the run alone
    try:
        process = psutil.Process(pid)
        if process.status() == psutil.STATUS_ZOMBIE:
            return False
        created = process.create_time()
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True  # exists, owned by someone else
    return created <= started_at.timestamp() + _START_TOLERANCE_S


def _stale_rows(session: Session) -> list[RunRow]:
    host = socket.gethostname()
    stmt = select(RunRow).where(RunRow.status == "running", RunRow.host == host)
    return [row for row in session.scalars(stmt) if not process_alive(row.pid, row.started_at)]


def find_stale(session: Session) -> list[RunRecord]:
    """Running runs of this host whose process no longer exists (nothing is changed)."""
    return [row.to_record() for row in _stale_rows(session)]


def mark_stale(session: Session) -> list[RunRecord]:
    """Fail every running run of this host whose process no longer exists."""
    stale = _stale_rows(session)
    now = utc_now()
    for row in stale:
        row.status = "failed"
        row.ended_at = now
        row.error = STALE_ERROR
    session.flush()
    return [row.to_record() for row in stale]
