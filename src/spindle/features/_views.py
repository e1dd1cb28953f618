"""Feature views and request groups: the YAML of a workspace's ``features/<group>.yaml``, parsed.

A file declares one *group*. Either it is a **feature view** (``entity`` + ``view``): DuckDB SQL
over declared sources, run once per day as of that day's cutoff, one row per entity, whose
features are SQL expressions or Python functions over the view's rows; or it is a **request
group** (``request``): the columns a caller sends at serving time, whose features are Python
functions over request rows (see ``_request.py``)::

    group: account
    owner: growth@example
    entity: {name: account, keys: [account_id]}
    sources: [sessions, accounts]
    ttl: 2d
    view:
      sql: |
        SELECT a.account_id, a.plan, coalesce(sum(s.minutes), 0) AS minutes_28d
        FROM accounts a LEFT JOIN sessions s
          ON s.account_id = a.account_id AND s.started_at >= cutoff - INTERVAL 28 DAY
        GROUP BY ALL
      keep: [plan]
    features:
      - {name: minutes_28d, version: 1, dtype: float64, sql: minutes_28d, encoding: {kind: numeric}}

Point-in-time correctness is spindle's job, not the author's: see ``_cutoff.py``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from spindle.core import column_names_problem, duration_s, quote_identifier, sha256_json

Dtype = Literal["float64", "int64", "bool", "string"]
EncodingKind = Literal["numeric", "categorical", "hashed", "text"]
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class EncodingSpec(BaseModel):
    """How the transform turns a raw value into a model input."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: EncodingKind
    log: bool = False
    buckets: int = Field(default=4096, ge=2)
    max_words: int = Field(default=8, ge=1)


class FeatureYaml(BaseModel):
    """One feature version as written under ``features:``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: int = Field(ge=1)
    description: str = ""
    dtype: Dtype
    owner: str | None = None
    tags: list[str] = Field(default_factory=list)
    sql: str | None = None
    python: str | None = None
    encoding: EncodingSpec
    allowed_teams: list[str] | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("feature names are lowercase letters, digits and _")
        return value


def _column_names(names: list[str]) -> list[str]:
    """Refuse column names SQL cannot read as written (see ``core.column_name_problem``)."""
    found = column_names_problem(names)
    if found is not None:
        raise ValueError(f"{found}: rename the column in the view's SQL (`... AS flight_no`)")
    return names


class EntityYaml(BaseModel):
    """``entity:``: the entity's name and its join keys."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    keys: list[str] = Field(min_length=1)

    _keys = field_validator("keys")(_column_names)


class ViewYaml(BaseModel):
    """``view:``: the SQL computing one row per entity, and the columns stored beside features.

    Or ``from: <source>``: an *event-time view*, whose rows are the source's own rows, each a
    feature row at its event time (hourly observations, a price change), joined to examples as
    of their event time. Its features are expressions over one row, so no row can read another
    row's future. ``at`` (with ``from``): a SQL expression over the row saying when its values
    became known (a departure's delay once the plane has left); the row is joined as of that
    time, never before its event time.

    ``every`` (with ``sql``): run the SQL as of every ``every`` of the day (``1h``: at 00:00,
    01:00, ... 23:00) instead of once at 00:00, each run seeing only the rows known at its own
    cutoff; each run's rows are feature rows from that cutoff on (the origin's departures of
    the last two hours, as of each hour).

    ``lookback`` (with ``sql``): the SQL sees only the rows of its sources with an event time
    within this long before the cutoff, so each run reads the few daily partitions that can
    hold them instead of the whole history (sources without an event time are whole).
    """

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    sql: str | None = Field(default=None, min_length=1)
    from_: str | None = Field(default=None, alias="from", min_length=1)
    at: str | None = Field(default=None, min_length=1)
    every: str | None = None
    lookback: str | None = None
    keep: list[str] = Field(default_factory=list)

    _keep = field_validator("keep")(_column_names)

    @field_validator("lookback")
    @classmethod
    def _lookback(cls, value: str | None) -> str | None:
        if value is not None and duration_s(value) <= 0:
            raise ValueError(f"`lookback: {value}` must be a positive duration (e.g. 7d)")
        return value

    @field_validator("every")
    @classmethod
    def _every(cls, value: str | None) -> str | None:
        if value is None:
            return value
        seconds = duration_s(value)
        if seconds < 60 or seconds > 86400 or 86400 % seconds:
            raise ValueError(
                f"`every: {value}` must divide a day into runs at least a minute apart "
                "(e.g. 15m, 1h, 6h; 1d is the default of a daily view)"
            )
        return value

    @model_validator(mode="after")
    def _one(self) -> ViewYaml:
        if (self.sql is None) == (self.from_ is None):
            raise ValueError(
                "a view needs exactly one of `sql` (one row per entity per day, as of the "
                "cutoff) or `from: <source>` (the source's rows, each at its event time)"
            )
        if self.at is not None and self.from_ is None:
            raise ValueError(
                "`at` (when a row's values became known) belongs to an event-time view: "
                "use it with `from: <source>`, or drop it"
            )
        if self.every is not None and self.sql is None:
            raise ValueError(
                "`every` (how often a day's SQL runs) belongs to a view with `sql`; an "
                "event-time view (`from`) already has a row per event"
            )
        if self.lookback is not None and self.sql is None:
            raise ValueError(
                "`lookback` (how far back the SQL sees) belongs to a view with `sql`; an "
                "event-time view (`from`) reads its day's rows only"
            )
        return self


class RequestYaml(BaseModel):
    """``request:``: the columns a caller sends at serving time, with their dtypes."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    columns: dict[str, Dtype] = Field(min_length=1)


class GroupYaml(BaseModel):
    """A whole ``features/<group>.yaml``: a feature view or a request group."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    group: str
    owner: str
    description: str | None = None
    entity: EntityYaml | None = None
    sources: list[str] = Field(default_factory=list)
    ttl: str | None = None
    view: ViewYaml | None = None
    request: RequestYaml | None = None
    allowed_teams: list[str] = Field(default_factory=list)
    features: list[FeatureYaml]

    @field_validator("group")
    @classmethod
    def _group(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("group names are lowercase letters, digits and _")
        return value

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: str | None) -> str | None:
        if value is not None:
            duration_s(value)
        return value

    @model_validator(mode="after")
    def _kind(self) -> GroupYaml:
        if self.request is not None:
            if self.entity is not None or self.view is not None or self.ttl is not None:
                raise ValueError(
                    "a request group (`request:`) has no `entity`, `view` or `ttl`; "
                    "declare either `request:` or `entity:` + `view:`"
                )
        elif self.entity is None or self.view is None:
            raise ValueError(
                "a feature view needs `entity: {name, keys}` and `view: {sql}` "
                "(or declare a request group with `request: {columns: ...}`)"
            )
        return self


@dataclass(frozen=True)
class FeatureView:
    """A declared feature view: SQL over sources, one row per entity per day."""

    name: str
    """The group's name: table ``features/<name>``, columns ``<name>__<feature>__v<version>``."""
    entity: str
    keys: tuple[str, ...]
    sources: tuple[str, ...]
    sql: str
    ttl_s: int | None
    keep: tuple[str, ...]
    file: Path
    owner: str
    description: str | None = None
    event_times: tuple[tuple[str, str | None], ...] = ()
    """Each source the view reads with its declared event-time column (None: none declared)."""
    timestamp: str | None = None
    """An event-time view's time column (its source's event time): each row is a feature row
    at that time, not at the day's cutoff. None for a daily view; :data:`CUTOFF` for a view
    run ``every`` few hours of the day."""
    every_s: int | None = None
    """Seconds between the runs of a day's SQL (``view.every``); None: once, at 00:00."""
    lookback_s: int | None = None
    """How far before its cutoff a run sees its sources' events (``view.lookback``); None: all."""

    @property
    def run(self) -> tuple[tuple[str, int], ...]:
        """How the SQL runs, where declared (``every_s``, ``lookback_s``): part of the
        view's fingerprint."""
        declared = (("every_s", self.every_s), ("lookback_s", self.lookback_s))
        return tuple((name, value) for name, value in declared if value is not None)

    @property
    def stored_columns(self) -> tuple[str, ...]:
        """The view's columns stored beside the features: the keys, then ``keep``."""
        return (*self.keys, *(c for c in self.keep if c not in self.keys))

    @property
    def fingerprint(self) -> str:
        """The hash of the view's rows' definition (SQL, keys, kept columns)."""
        return view_fingerprint(self.sql, self.keys, self.keep, self.run)

    @property
    def row_keys(self) -> tuple[str, ...]:
        """What identifies one row of a day: the keys, and the time of an event-time view."""
        return self.keys if self.timestamp is None else (*self.keys, self.timestamp)


def view_fingerprint(
    sql: str,
    keys: tuple[str, ...],
    keep: tuple[str, ...],
    run: tuple[tuple[str, int], ...] = (),
) -> str:
    """The hash of what defines a view's rows: its SQL (stripped), keys, kept columns and how
    it runs (``every``, ``lookback``: only those declared, so a daily view's hash is what it
    always was).

    Part of every feature's fingerprint: a changed view changes every feature of the view.
    """
    return sha256_json({"sql": sql.strip(), "keys": keys, "keep": keep, **dict(run)})


KNOWN_AT = "known_at"
"""The time column of an event-time view with ``at``: when each row's values became known."""

CUTOFF = "spindle_cutoff"
"""The time column of a view run ``every`` few hours: the cutoff each row was computed as of."""


def view_from_yaml(
    group: GroupYaml,
    file: Path,
    event_times: dict[str, str | None],
    row_orders: dict[str, tuple[str, ...]] | None = None,
) -> FeatureView | None:
    """The :class:`FeatureView` of a parsed file, or None for a request group.

    An event-time view (``from: <source>``) reads its source's rows of the day: it is run as
    of the next day's 00:00 and keeps the rows whose event time falls on the day. With ``at``
    each row is a feature row at ``known_at``, the later of its event time and ``at``: a row
    whose ``at`` or key is null is never joined, so it is not kept, and of rows of one entity
    known at the same instant the last in ``row_orders[source]`` (the source's primary key,
    else its declared columns) is kept, so the view is the same on every run.
    """
    if group.entity is None or group.view is None:
        return None
    sources = tuple(group.sources)
    sql, timestamp = group.view.sql, None
    if group.view.from_ is not None:
        source = group.view.from_
        sources = (source, *(s for s in sources if s != source))
        timestamp = event_times.get(source)
        time = quote_identifier(timestamp or "")
        day = f"FROM {quote_identifier(source)} WHERE {time} >= cutoff - INTERVAL 1 DAY"
        sql = f"SELECT * {day}"
        if group.view.at is not None:
            at = group.view.at
            keys = [quote_identifier(k) for k in group.entity.keys]
            order = ", ".join(
                f"{quote_identifier(c)} DESC" for c in (row_orders or {}).get(source, ())
            )
            sql = (
                f"SELECT *, greatest({time}, CAST(({at}) AS TIMESTAMP)) AS {KNOWN_AT} "
                f"{day} AND ({at}) IS NOT NULL"
                + "".join(f" AND {k} IS NOT NULL" for k in keys)
                + f" QUALIFY row_number() OVER (PARTITION BY {', '.join(keys)}, {KNOWN_AT}"
                + (f" ORDER BY {order}" if order else "")
                + ") = 1"
            )
            timestamp = KNOWN_AT
    every_s = None if group.view.every is None else duration_s(group.view.every)
    if every_s is not None and every_s < 86400:
        timestamp = CUTOFF
    else:
        every_s = None  # `every: 1d` is a daily view
    assert sql is not None  # ViewYaml holds exactly one of sql and from
    return FeatureView(
        name=group.group,
        entity=group.entity.name,
        keys=tuple(group.entity.keys),
        sources=sources,
        sql=sql,
        ttl_s=None if group.ttl is None else duration_s(group.ttl),
        keep=tuple(group.view.keep),
        file=file,
        owner=group.owner,
        description=group.description,
        event_times=tuple((s, event_times.get(s)) for s in sources),
        timestamp=timestamp,
        every_s=every_s,
        lookback_s=None if group.view.lookback is None else duration_s(group.view.lookback),
    )
