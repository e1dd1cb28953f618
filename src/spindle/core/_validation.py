"""Data validation, declared: the workspace's optional ``validation.yaml``, validated at load.

It says which sources are checked and how: slice columns (with their missing-data-bias test),
derived slices from a SQL over the day's sources, distribution-drift columns, a label rate,
bursts of one key, and the thresholds (volume, drift, null rates, the quarantine-rate limit,
the reference window). Without the file every declared source gets the default checks: volume
(with the missing-partition check and the source's calendar of expected gaps), quarantine,
duplicate keys, late rows, schema changes and null rates. See docs/data.md "Validation, declared".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from spindle.core._declared_sql import (
    SQL_RULES,
    expression_problem,
    lock_connection,
    select_problem,
)
from spindle.core._errors import ConfigError

if TYPE_CHECKING:
    import duckdb

    from spindle.core._sources import SourceDeclaration

#: The file, in the workspace root.
VALIDATION_FILE = "validation.yaml"
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h)\s*$")
_DURATION_S = {"s": 1, "m": 60, "h": 3600}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class VolumeThresholds(_Strict):
    """When a day's row count is an anomaly, as a share of the usual (the reference median)."""

    drop_warn: float = Field(default=0.88, gt=0, le=1)  # below: WARN (if unlikely by chance)
    drop_fail: float = Field(default=0.80, gt=0, le=1)  # below: FAIL (if very unlikely)
    jump_warn: float = Field(default=1.5, ge=1)  # above: WARN (duplicates or a replay?)
    # ``same_weekday``: the usual is the median of the reference days on the same weekday
    # (for weekly seasonality: a light Saturday is compared with other Saturdays)
    baseline: Literal["median", "same_weekday"] = "median"

    @model_validator(mode="after")
    def _ordered(self) -> VolumeThresholds:
        if self.drop_fail > self.drop_warn:
            raise ValueError(f"drop_fail ({self.drop_fail}) must not exceed drop_warn")
        return self


class DriftThresholds(_Strict):
    """Population stability index limits of a column's distribution against the reference."""

    psi_warn: float = Field(default=0.15, gt=0)
    psi_fail: float = Field(default=0.25, gt=0)
    min_rows: int = Field(default=100, ge=1)  # fewer rows today or in the reference: not tested


class LabelRate(_Strict):
    """A rate computed per day over a check's rows, FAIL when far from its usual value."""

    expr: str = Field(min_length=1)  # a SQL aggregate, e.g. avg((amount > 100)::DOUBLE)
    what: str = Field(min_length=1)  # words for messages, e.g. "share of orders returned"
    ratio_min: float = Field(default=0.6, ge=0)
    ratio_max: float = Field(default=1.6, ge=1)


class Bursts(_Strict):
    """Many rows of one key within a short window of event time (a bot or a replay): a WARN."""

    key: str = Field(min_length=1)  # column, e.g. the sender of the rows
    window: str = "10m"  # duration: s, m or h
    max_rows: int = Field(default=50, ge=2)  # this many rows of one key in one window: WARN

    @property
    def window_s(self) -> int:
        """``window`` in seconds."""
        match = _DURATION.match(self.window)
        if match is None:
            raise ValueError(f"bursts.window {self.window!r}: expected a duration such as 10m")
        return int(match.group(1)) * _DURATION_S[match.group(2)]

    @model_validator(mode="after")
    def _window(self) -> Bursts:
        _ = self.window_s
        return self


class SourceCheck(_Strict):
    """The checks of one declared source.

    ``sql`` (optional) gives the rows the slices and the label rate are computed over: a DuckDB
    query over the declared sources (each a table of every ingested day, with its ``date``
    column) that keeps a ``date`` column, e.g. the source's rows joined to a dimension for a
    derived slice. Without it they are computed over the source's own rows.
    """

    source: str = Field(min_length=1)
    # row counts, and a missing partition on an open day is a FAIL; ``true`` compares with
    # ``volume.baseline``, ``median`` or ``same_weekday`` choose for this source alone
    volume: bool | Literal["median", "same_weekday"] = True
    null_rate_jump_max: float | None = Field(default=None, gt=0, le=1)  # None: the top-level one
    # columns whose null rate is not tested: known to be filled now and then (say why beside it)
    null_rate_exempt: list[str] = Field(default_factory=list)
    sql: str | None = None
    slices: list[str] = Field(default_factory=list)  # columns whose slice shares are tested
    unit: str | None = None  # independent unit (e.g. a customer): slice tests divide by it
    key: list[str] | None = None  # slice rows counted once per key (default the primary key)
    drift: list[str] = Field(default_factory=list)  # numeric columns, PSI against the reference
    label_drift: list[str] = Field(default_factory=list)  # drift of these is a label shift
    label_rate: LabelRate | None = None
    bursts: Bursts | None = None


class ValidationConfig(_Strict):
    """The workspace's ``validation.yaml`` (every key optional).

    Example:
        >>> ValidationConfig.model_validate({"checks": [{"source": "orders"}]}).quarantine_rate_max
        0.05
    """

    history_days: int = Field(default=7, ge=1)  # reference: the last N healthy/accepted days
    min_baseline_days: int = Field(default=2, ge=1)  # fewer: a "no_baseline" WARN, never PASS
    quarantine_rate_max: float = Field(default=0.05, ge=0, le=1)  # above: FAIL, else a WARN
    duplicate_rate_max: float = Field(default=0.05, ge=0, le=1)  # repeated primary keys: FAIL
    late_rate_max: float = Field(default=0.01, ge=0, le=1)  # rows of earlier days: WARN above
    null_rate_jump_max: float = Field(default=0.05, gt=0, le=1)
    volume: VolumeThresholds = Field(default_factory=VolumeThresholds)
    drift: DriftThresholds = Field(default_factory=DriftThresholds)
    # None (the key absent): every declared source with the default checks
    checks: list[SourceCheck] | None = None

    @model_validator(mode="after")
    def _consistent(self) -> ValidationConfig:
        if self.min_baseline_days > self.history_days:
            raise ValueError(
                f"min_baseline_days ({self.min_baseline_days}) exceeds history_days "
                f"({self.history_days}): no day could ever have a baseline"
            )
        seen: set[str] = set()
        for check in self.checks or []:
            if check.source in seen:
                raise ValueError(f"source {check.source!r} has two checks: merge them into one")
            seen.add(check.source)
        return self

    def baseline(self, check: SourceCheck) -> Literal["median", "same_weekday"]:
        """How a check's row count is compared with the reference days."""
        return self.volume.baseline if isinstance(check.volume, bool) else check.volume

    def checks_for(self, sources: Mapping[str, SourceDeclaration | None]) -> list[SourceCheck]:
        """The checks that run: the declared ones, or a default check of each source (without
        volume for a changelog, whose daily row count has no usual size)."""
        if self.checks is not None:
            return list(self.checks)
        return [
            SourceCheck(source=name, volume=decl is None or decl.kind != "changelog")
            for name, decl in sorted(sources.items())
        ]

    def sql_problems(self, sources: Iterable[str]) -> list[str]:
        """The declared SQL that is more than one SELECT over the ``sources`` (a check's
        ``sql``) or one expression over its rows (``label_rate.expr``): one line per problem,
        each with its key, found by parsing (nothing runs; see ``_declared_sql``)."""
        names = list(sources)
        return [p for i, c in enumerate(self.checks or []) for p in _sql_problems(i, c, names)]


def load_validation(
    root: str | Path, sources: dict[str, SourceDeclaration] | None = None
) -> ValidationConfig:
    """Load ``<root>/validation.yaml`` (the defaults when there is none).

    Args:
        root: the workspace root.
        sources: the declared sources; when given, every check must name one of them and each
            check's ``sql`` is prepared over empty tables of their columns (a typo fails here).

    Returns:
        The validated configuration.

    Raises:
        ConfigError: every problem of the file at once, each with its line and key.
    """
    from spindle.core._yaml import load_yaml_model

    path = Path(root) / VALIDATION_FILE
    if not path.is_file():
        return ValidationConfig()
    config, _ = load_yaml_model(path, ValidationConfig)
    if sources is not None:
        problems = config_problems(config, sources)
        if problems:
            raise ConfigError(str(path), _with_lines(path, problems))
    return config


def _with_lines(path: Path, problems: list[str]) -> list[str]:
    """Prefix each ``key '...'`` problem with the line of that key in the file."""
    from spindle.core._yaml import _line_index

    lines = _line_index(path.read_text(encoding="utf-8"))
    out = []
    for problem in problems:
        match = re.match(r"key '([^']+)'", problem)
        loc = (
            tuple(int(p) if p.isdigit() else p for p in match.group(1).split(".")) if match else ()
        )
        line = None
        while loc and line is None:
            line, loc = lines.get(loc), loc[:-1]
        out.append(f"line {line}, {problem}" if line else problem)
    return out


def config_problems(config: ValidationConfig, sources: dict[str, SourceDeclaration]) -> list[str]:
    """Checks that name undeclared sources or columns, and check SQL that does not run.

    Each check's SQL, slice, unit and key columns and label rate are prepared over empty tables
    of the declared columns (plus ``date``), so a typo fails at load, not on the first day.

    Returns:
        One line per problem, each with its key (empty: none).
    """
    import duckdb

    problems: list[str] = []
    declared = ", ".join(sorted(sources)) or "none"
    for i, check in enumerate(config.checks or []):
        if check.source not in sources:
            problems.append(
                f"key 'checks.{i}.source': {check.source!r} is not a declared source "
                f"(declared: {declared})"
            )
    problems += config.sql_problems(sources)  # refused before anything of it runs
    if problems:
        return problems
    with duckdb.connect() as con:
        lock_connection(con)
        for name, decl in sources.items():
            columns = ", ".join(f"{_quote(c)} {s.duckdb_type()}" for c, s in decl.columns.items())
            date = "" if "date" in decl.columns else ', "date" DATE'
            con.execute(f'CREATE TABLE "{name}" ({columns}{date})')
        for i, check in enumerate(config.checks or []):
            problems += _check_problems(con, i, check, sources[check.source])
    return problems


def _sql_problems(i: int, check: SourceCheck, sources: list[str]) -> list[str]:
    """A check's ``sql`` that is not one SELECT over the declared sources, or its
    ``label_rate.expr`` not one expression over its rows (see ``_declared_sql``)."""
    problems = []
    if check.sql is not None:
        found = select_problem(check.sql, sources)
        if found is not None:
            problems.append(f"key 'checks.{i}.sql': the check's sql {found}; {SQL_RULES['check']}")
    if check.label_rate is not None:
        found = expression_problem(check.label_rate.expr, [*sources, check.source])
        if found is not None:
            problems.append(
                f"key 'checks.{i}.label_rate.expr': the expression {found}; {SQL_RULES['check']}"
            )
    return problems


def _quote(name: str) -> str:
    """A SQL identifier, quoted (a declared name cannot end the quotes)."""
    return '"' + name.replace('"', '""') + '"'


def _check_problems(
    con: duckdb.DuckDBPyConnection, i: int, check: SourceCheck, decl: SourceDeclaration
) -> list[str]:
    """The problems of one check (its index ``i`` in ``checks``)."""
    import duckdb

    name = f'"{check.source}"'
    rows = f"({check.sql}) AS {name}" if check.sql is not None else name
    where = f"key 'checks.{i}.sql'" if check.sql is not None else f"key 'checks.{i}.source'"
    probes = [(where, "SELECT date FROM {rows}")]
    probes += [
        (f"key 'checks.{i}.slices.{k}'", f"SELECT {_quote(c)} FROM {{rows}}")
        for k, c in enumerate(check.slices)
    ]
    if check.unit is not None:
        probes.append((f"key 'checks.{i}.unit'", f"SELECT {_quote(check.unit)} FROM {{rows}}"))
    for k, column in enumerate(check.key or []):
        probes.append((f"key 'checks.{i}.key.{k}'", f"SELECT {_quote(column)} FROM {{rows}}"))
    if check.label_rate is not None:
        expr = check.label_rate.expr
        sql = f"SELECT date, ({expr})::DOUBLE FROM {{rows}} GROUP BY date"
        probes.append((f"key 'checks.{i}.label_rate.expr'", sql))
    problems = []
    for key, sql in probes:
        try:
            con.execute("DESCRIBE " + sql.format(rows=rows)).fetchall()
        except duckdb.Error as exc:
            first = str(exc).splitlines()[0]
            problems.append(f"{key}: the check of {check.source!r} does not run: {first}")
            if key == where:
                return problems
    numeric = ("int32", "int64", "float32", "float64", "decimal")
    for field in ("drift", "label_drift"):
        for k, column in enumerate(getattr(check, field)):
            spec = decl.columns.get(column)
            if spec is None or spec.type not in numeric:
                found = "not a declared column" if spec is None else f"a {spec.type} column"
                problems.append(
                    f"key 'checks.{i}.{field}.{k}': {column!r} is {found} of {check.source}; "
                    "drift is measured on numeric columns of the source"
                )
    for k, column in enumerate(check.null_rate_exempt):
        if column not in decl.columns:
            problems.append(
                f"key 'checks.{i}.null_rate_exempt.{k}': {column!r} is not a declared column of "
                f"{check.source}"
            )
    if check.bursts is not None:
        if decl.event_time is None:
            problems.append(
                f"key 'checks.{i}.bursts': {check.source} has no event_time to find bursts in"
            )
        elif check.bursts.key not in decl.columns:
            problems.append(
                f"key 'checks.{i}.bursts.key': {check.bursts.key!r} is not a column of {check.source}"
            )
    return problems
