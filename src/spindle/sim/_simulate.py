"""``simulate``: write YarnIt raw logs, one Parquet file per table and day, with faults injected.

Determinism: the world is a function of ``(seed, scale, epoch)`` and each partition a function
of the world, the date and the faults, so equal arguments give byte-identical files, and
simulating days 1-7 at once or as 1-3 then 4-7 (same ``epoch``) gives the same files. Parquet is
written with fixed options and no wall-clock metadata. Flags raised on a day can belong to
purchases made up to ten days earlier and late rows to the previous day; when those days
precede ``start`` (but not the epoch) they are regenerated in memory, never written.
"""

from __future__ import annotations

import datetime as dt
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from spindle.core import ConfigError, atomic_write_bytes
from spindle.sim._day import DayLog, generate_day
from spindle.sim._faults import (
    Events,
    Fault,
    FaultPlan,
    corrupt_products,
    corrupt_purchases,
    drop_countries,
    drop_discounted,
    duplicate_purchases,
    split_late,
)
from spindle.sim._schema import TABLES, Frame, frame_concat, frame_take
from spindle.sim._tables import (
    fraud_table,
    fx_table,
    impressions_table,
    products_frame,
    products_table,
    purchases_table,
    searches_table,
    users_table,
)
from spindle.sim._world import World, build_world

PART_FILE = "part-00000.parquet"
MAX_SCALE = 1000.0
"""2M searches and 40M impressions a day: the per-day counters in ids have room for that."""
FLAG_DELAY_DAYS = (2, 10)
EVENT_TABLES = ("searches", "impressions", "purchases")
_DICTIONARY_COLUMNS = frozenset(
    {"user_id", "product_id", "country", "currency", "product_type", "query", "reason", "device"}
)
"""Repetitive strings; unique ids and names gain nothing from a dictionary."""
_RAW_COLUMNS = frozenset({"true_purchase_prob", "true_relevance"})
"""Random doubles: zstd saves ~5% of their bytes for ~25% of the encoding time."""


@dataclass(frozen=True)
class SimulationResult:
    """What ``simulate`` wrote.

    Attributes:
        out_dir: the raw directory (``<out_dir>/<table>/date=YYYY-MM-DD/part-00000.parquet``).
        dates: every simulated day, in order.
        rows: rows written per table, summed over the days.
        impressions: impression rows written (``rows["impressions"]``).
        seconds: wall-clock time of the whole call.
        faults: the faults passed in, sorted by date.
    """

    out_dir: Path
    dates: tuple[dt.date, ...]
    rows: dict[str, int]
    impressions: int
    seconds: float
    faults: tuple[Fault, ...]


class _Days:
    """Generated days, kept only while a later partition may still need them."""

    def __init__(self, world: World, plan: FaultPlan) -> None:
        self.world, self._plan = world, plan
        self._logs: dict[int, DayLog] = {}
        self._fraud: dict[int, Frame] = {}

    def _generate(self, ordinal: int) -> DayLog:
        log = generate_day(
            self.world,
            ordinal,
            label_flip=self._plan.at("label_flip", ordinal),
            burst=self._plan.at("duplicate_burst", ordinal),
        )
        self._fraud[ordinal] = log.fraud
        return log

    def log(self, ordinal: int) -> DayLog:
        """The day's events, generated once and kept until ``forget_before`` passes it."""
        if ordinal not in self._logs:
            self._logs[ordinal] = self._generate(ordinal)
        return self._logs[ordinal]

    def flags(self, ordinal: int) -> Frame:
        """Fraud flags raised on this day, for purchases since the epoch, by flag time.

        Days before the first simulated one are regenerated for their flags only (the rest
        of such a day is dropped at once, so a late start costs time, not memory).
        """
        first = max(self.world.epoch.toordinal(), ordinal - FLAG_DELAY_DAYS[1])
        frames = [self.log(ordinal).fraud]  # never flagged today; gives the columns
        for origin in range(first, ordinal - FLAG_DELAY_DAYS[0] + 1):
            if origin not in self._fraud:
                self._generate(origin)
            frames.append(self._fraud[origin])
        flags = frame_concat(frames)
        flags = frame_take(flags, flags["flag_day"] == ordinal)
        return frame_take(flags, np.argsort(flags["ts"], kind="stable"))

    def forget_before(self, ordinal: int) -> None:
        self._logs = {o: log for o, log in self._logs.items() if o >= ordinal}
        self._fraud = {o: f for o, f in self._fraud.items() if o >= ordinal - FLAG_DELAY_DAYS[1]}


def _events(days: _Days, plan: FaultPlan, ordinal: int) -> Events | None:
    """The event rows bound for this day's partitions after logging faults (None: missing)."""
    log = days.log(ordinal)
    seed, epoch = days.world.seed, days.world.epoch.toordinal()
    events = Events(log.searches, log.impressions, log.purchases)
    if plan.at("late_data", ordinal):
        events = split_late(events, seed, ordinal)[0]
    if ordinal - 1 >= epoch and plan.at("late_data", ordinal - 1):
        prev = days.log(ordinal - 1)
        late = split_late(
            Events(prev.searches, prev.impressions, prev.purchases), seed, ordinal - 1
        )
        events = late[1].concat(events)
    if plan.at("missing_day", ordinal):
        return None
    events = drop_countries(events, plan.missing_countries(ordinal))
    purchases = events.purchases
    if plan.at("duplicate_burst", ordinal):
        purchases = duplicate_purchases(purchases, seed, ordinal)
    if plan.since("discount_drop", ordinal):
        purchases = drop_discounted(purchases)
    if plan.at("corrupt_rows", ordinal):
        purchases = corrupt_purchases(purchases, seed, ordinal)
    return Events(events.searches, events.impressions, purchases)


def iter_partitions(
    world: World, dates: Sequence[dt.date], plan: FaultPlan
) -> Iterator[tuple[dt.date, dict[str, pa.Table | None]]]:
    """Each day's tables, in ``TABLES`` order; ``None`` marks a partition that must not exist."""
    days = _Days(world, plan)
    for date in dates:
        o = date.toordinal()
        products = products_frame(world, o)
        if plan.at("corrupt_rows", o):
            products = corrupt_products(products, world.seed, o)
        events = _events(days, plan, o)
        tables: dict[str, pa.Table | None] = {
            "products": products_table(products, o, world),
            "users": users_table(world, o),
            "fx_rates": fx_table(world, o),
            "searches": None,
            "impressions": None,
            "purchases": None,
            "fraud_flags": fraud_table(days.flags(o), o),
        }
        if events is not None:
            device = plan.since("schema_change", o)
            tables["searches"] = searches_table(events.searches, o, world)
            tables["impressions"] = impressions_table(events.impressions, o, world, device)
            tables["purchases"] = purchases_table(events.purchases, o, world)
        days.forget_before(o)
        yield date, tables


def parquet_bytes(table: pa.Table) -> bytes:
    """The table as Parquet with fixed options, so equal tables give equal bytes."""
    sink = pa.BufferOutputStream()
    names = table.column_names
    zstd = [c for c in names if c not in _RAW_COLUMNS]
    pq.write_table(
        table,
        sink,
        compression={c: "zstd" if c in zstd else "none" for c in names},
        compression_level=dict.fromkeys(zstd, 1),
        use_dictionary=[c for c in names if c in _DICTIONARY_COLUMNS],
        # Min/max of ids and names cost a third of the encoding and prune nothing useful.
        write_statistics=[f.name for f in table.schema if not pa.types.is_string(f.type)],
        version="2.6",
        data_page_version="1.0",
    )
    return bytes(sink.getvalue())


def partition_path(out_dir: Path, table: str, date: dt.date) -> Path:
    """``<out_dir>/<table>/date=YYYY-MM-DD/part-00000.parquet``."""
    return out_dir / table / f"date={date.isoformat()}" / PART_FILE


def _problems(
    start: object, days: object, seed: object, scale: object, epoch: object, faults: object
) -> list[str]:
    problems = []
    if not isinstance(start, dt.date) or isinstance(start, dt.datetime):
        problems.append(f"start: expected a datetime.date, found {start!r}")
    if not isinstance(days, int) or isinstance(days, bool) or days < 1:
        problems.append(f"days: expected an integer >= 1, found {days!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        problems.append(f"seed: expected an integer >= 0, found {seed!r}")
    if not isinstance(scale, int | float) or not math.isfinite(scale) or not 0 < scale <= MAX_SCALE:
        problems.append(f"scale: expected a number > 0 and <= {MAX_SCALE:g}, found {scale!r}")
    if epoch is not None and (not isinstance(epoch, dt.date) or isinstance(epoch, dt.datetime)):
        problems.append(f"epoch: expected a datetime.date or None, found {epoch!r}")
    elif isinstance(epoch, dt.date) and isinstance(start, dt.date) and epoch > start:
        problems.append(f"epoch: must not be after start ({start}), found {epoch}")
    if not isinstance(faults, Sequence) or not all(isinstance(f, Fault) for f in faults):
        problems.append("faults: expected a sequence of Fault (use Fault.parse('KIND@DAY', start))")
    return problems


def simulate(
    out_dir: Path,
    *,
    start: dt.date,
    days: int,
    seed: int = 7,
    scale: float = 1.0,
    faults: Sequence[Fault] = (),
    epoch: dt.date | None = None,
    progress: Callable[[dt.date], None] | None = None,
) -> SimulationResult:
    """Write ``days`` days of YarnIt raw logs from ``start`` under ``out_dir``.

    Args:
        out_dir: raw directory; each file is written atomically and overwritten if present.
        start: first day to write.
        days: how many consecutive days.
        seed: the random seed of the world and of every day.
        scale: multiplies searches (~2,000/day at 1.0, 20 impressions each), users and products.
        faults: faults to inject; those on days not written here only matter if they reach in
            (a ``late_data`` the day before ``start``, a persistent kind from earlier).
        epoch: the day the world starts (default ``start``); keep it fixed across split runs.
        progress: called with each day once its files are written.

    Returns:
        rows written per table, the dates, the impression count and the wall time.

    Raises:
        ConfigError: an argument is invalid (all problems listed); nothing is written.

    Example:
        >>> simulate(Path("raw"), start=dt.date(2026, 1, 1), days=7,
        ...          faults=[Fault.parse("discount_drop@5", dt.date(2026, 1, 1))])
    """
    began = time.perf_counter()
    problems = _problems(start, days, seed, scale, epoch, faults)
    if problems:
        raise ConfigError("simulate", problems)
    out_dir = Path(out_dir)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError("simulate", [f"out_dir: {out_dir} exists and is not a directory"])
    dates = tuple(start + dt.timedelta(days=i) for i in range(days))
    world = build_world(seed, float(scale), epoch or start, dates[-1])
    ordered = tuple(sorted(faults, key=lambda f: (f.date, f.kind, f.arg or "")))
    rows = dict.fromkeys(TABLES, 0)
    for date, tables in iter_partitions(world, dates, FaultPlan(ordered)):
        for name, table in tables.items():
            path = partition_path(out_dir, name, date)
            if table is None:
                _remove_stale(path)
                continue
            atomic_write_bytes(path, parquet_bytes(table))
            rows[name] += table.num_rows
        if progress is not None:
            progress(date)
    return SimulationResult(
        out_dir=out_dir,
        dates=dates,
        rows=rows,
        impressions=rows["impressions"],
        seconds=time.perf_counter() - began,
        faults=ordered,
    )


def _remove_stale(path: Path) -> None:
    """A partition that must be missing (``missing_day``) may exist from an earlier run."""
    path.unlink(missing_ok=True)
    if path.parent.is_dir() and not any(path.parent.iterdir()):
        path.parent.rmdir()
