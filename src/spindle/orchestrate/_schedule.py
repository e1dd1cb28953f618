"""The scheduler: fire each model's cron slots, write a heartbeat, catch up missed slots.

A slot at time T (say 02:00 on day X) runs the daily pipeline for the day before (X-1), whose
logs are complete by then. The heartbeat file remembers the last time the scheduler looked, so
after a restart every slot between that time and now is run, in priority order.
"""

from __future__ import annotations

import datetime as dt
import json
import time
from collections.abc import Callable
from typing import Any

from spindle.core import atomic_write_json
from spindle.orchestrate._context import Context
from spindle.orchestrate._cron import Cron
from spindle.orchestrate._daily import run_day
from spindle.orchestrate._data_steps import raw_data_of_day

HEARTBEAT = "scheduler.json"


def _heartbeat_path(ctx: Context) -> Any:
    return ctx.workspace.state_dir / HEARTBEAT


def read_heartbeat(ctx: Context) -> dict[str, Any] | None:
    path = _heartbeat_path(ctx)
    return json.loads(path.read_text()) if path.is_file() else None


def due_slots(
    ctx: Context, since: dt.datetime, now: dt.datetime
) -> list[tuple[dt.datetime, int, str]]:
    """Every (slot time, priority, model) with ``since < slot <= now``, in the order to run them."""
    slots = []
    for model in ctx.workspace.model_names():
        config, _ = ctx.workspace.model_config(model)
        cron = Cron(config.schedule.cron)
        day = since.date()
        while day <= now.date():
            slots += [(t, config.priority, model) for t in cron.times_on(day) if since < t <= now]
            day += dt.timedelta(days=1)
    return sorted(slots, key=lambda s: (s[0].date(), s[1], s[0], s[2]))


def tick(
    ctx: Context, now: dt.datetime, *, first_start: dt.datetime | None = None
) -> list[dict[str, Any]]:
    """Run every slot due since the last heartbeat (or ``first_start``), then beat."""
    beat = read_heartbeat(ctx)
    since = (
        dt.datetime.fromisoformat(beat["last_tick"])
        if beat
        else (first_start or now - dt.timedelta(days=1))
    )
    actions: list[dict[str, Any]] = []
    for slot, _, model in due_slots(ctx, since, now):
        day = (slot.date() - dt.timedelta(days=1)).isoformat()
        if not raw_data_of_day(ctx, day):
            actions.append(
                {"slot": slot.isoformat(), "model": model, "date": day, "status": "no data yet"}
            )
            continue
        report = run_day(ctx, model, day)
        actions.append(
            {
                "slot": slot.isoformat(),
                "model": model,
                "date": day,
                "status": "failed" if report.error else "done",
                "version": report.version,
                "gate": report.gate,
                "error": report.error,
            }
        )
    atomic_write_json(
        _heartbeat_path(ctx),
        {
            "last_tick": now.isoformat(),
            "beat_at": dt.datetime.now(dt.UTC).isoformat(),
            "actions": actions[-20:],
        },
    )
    return actions


def run_schedule(
    ctx: Context,
    *,
    poll_s: float = 60.0,
    once: bool = False,
    clock: Callable[[], dt.datetime] | None = None,
    report: Callable[[dict[str, Any]], None] | None = None,
) -> None:
    """Run the scheduler in the foreground (Ctrl-C stops it); ``once`` does a single tick."""
    now_of = clock or (lambda: dt.datetime.now(dt.UTC).replace(tzinfo=None))
    while True:
        for action in tick(ctx, now_of()):
            if report:
                report(action)
        if once:
            return
        time.sleep(poll_s)
