"""Source declarations: the workspace's ``sources/*.yaml``, validated at load, as typed models.

A declaration says where a raw dataset lives (daily partitions, one historical dump split by
event time, or a Delta table), how to parse it, its columns and key, its event time and time
zone, the row rules whose failures go to quarantine, and its provenance. See docs/your-data.md.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo
from pathlib import Path
from typing import Any, ClassVar, Literal

import pyarrow as pa
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic import ValidationError as _PydanticValidationError
from pydantic_core import InitErrorDetails, PydanticCustomError

from spindle.core._config_workspace import SourceConfig
from spindle.core._declared_sql import (
    SQL_RULES,
    column_names_problem,
    expression_problem,
    lock_connection,
    quote_identifier,
)
from spindle.core._errors import ConfigError

#: The column types a declaration may use, and the Arrow type each is read as. Timestamps are
#: stored in UTC (microseconds, no zone attached); ``decimal`` takes ``precision`` and ``scale``.
COLUMN_TYPES: dict[str, pa.DataType] = {
    "bool": pa.bool_(),
    "date": pa.date32(),
    "decimal": pa.decimal128(18, 2),
    "float32": pa.float32(),
    "float64": pa.float64(),
    "int32": pa.int32(),
    "int64": pa.int64(),
    "string": pa.string(),
    "timestamp": pa.timestamp("us"),
}
_DUCKDB_TYPES = {
    "bool": "BOOLEAN",
    "date": "DATE",
    "float32": "FLOAT",
    "float64": "DOUBLE",
    "int32": "INTEGER",
    "int64": "BIGINT",
    "string": "VARCHAR",
    "timestamp": "TIMESTAMP",
}
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
_DURATION = re.compile(r"^\s*(\d+)\s*(s|m|h|d)\s*$")
_DURATION_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DATE_FIELD = "{date}"
#: A location inside an installed Python package: ``package://<package>/<path in it>``.
PACKAGE_SCHEME = "package://"
_PACKAGE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*$")


def _check_timezone(value: str) -> str:
    try:
        zoneinfo.ZoneInfo(value)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown time zone {value!r}: use an IANA name such as UTC") from exc
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class ColumnSpec(_Strict):
    """One declared column: its type, whether it may be null, and what it means."""

    type: Literal[
        "bool", "date", "decimal", "float32", "float64", "int32", "int64", "string", "timestamp"
    ]
    nullable: bool = False
    description: str | None = None
    timezone: str | None = None  # timestamp columns: the zone of values written without one
    precision: int = Field(default=18, ge=1, le=38)  # decimal only
    scale: int = Field(default=2, ge=0, le=38)  # decimal only

    _tz = field_validator("timezone")(lambda v: v if v is None else _check_timezone(v))

    @model_validator(mode="after")
    def _fits(self) -> ColumnSpec:
        if self.timezone is not None and self.type != "timestamp":
            raise ValueError("timezone is only for timestamp columns")
        if self.scale > self.precision:
            raise ValueError(f"scale {self.scale} is larger than precision {self.precision}")
        return self

    def arrow_type(self) -> pa.DataType:
        """The Arrow type values of this column are read as."""
        if self.type == "decimal":
            return pa.decimal128(self.precision, self.scale)
        return COLUMN_TYPES[self.type]

    def duckdb_type(self) -> str:
        """The DuckDB type of this column (row rules run in DuckDB)."""
        if self.type == "decimal":
            return f"DECIMAL({self.precision},{self.scale})"
        return _DUCKDB_TYPES[self.type]


class CsvOptions(_Strict):
    """How a CSV file is parsed."""

    delimiter: str = Field(default=",", min_length=1, max_length=1)
    quote: str = Field(default='"', min_length=1, max_length=1)
    header: bool = True  # without a header, columns are taken in declaration order
    null_values: list[str] = Field(default_factory=lambda: [""])
    timestamp_format: str | None = None  # strptime format, e.g. "%d/%m/%Y %H:%M"


class EventTime(_Strict):
    """The column that says when each row happened, and the zone its values are written in."""

    column: str
    timezone: str = "UTC"
    format: str | None = None  # strptime format when the column is text in a non-ISO form

    _tz = field_validator("timezone")(lambda v: _check_timezone(v))


class Rule(_Strict):
    """A row rule: a SQL boolean over the row's columns; rows where it is not true are set aside.

    ``uses`` names other sources the check reads, as tables of the same day's rows that passed
    their own checks (``currency IN (SELECT currency FROM fx_rates)``, with
    ``uses: [fx_rates]``); such a rule is prepared when every declaration is loaded.
    """

    check: str = Field(min_length=1)
    reason: str = Field(min_length=1)
    uses: list[str] = Field(default_factory=list)


class Calendar(_Strict):
    """Days on which no data is expected (not an alarm when a partition is missing)."""

    closed_weekdays: list[Literal[WEEKDAYS]] = Field(default_factory=list)  # type: ignore[valid-type]
    closed_dates: list[dt.date] = Field(default_factory=list)

    def is_closed(self, day: dt.date) -> bool:
        """Whether ``day`` is an expected gap."""
        return day in self.closed_dates or WEEKDAYS[day.weekday()] in self.closed_weekdays


class SourceDeclaration(_Strict):
    """One raw source of the workspace (``sources/<name>.yaml``).

    Example:
        >>> decl = SourceDeclaration.model_validate({
        ...     "name": "orders", "location": "raw/orders/{date}.csv", "format": "csv",
        ...     "event_time": {"column": "ts"}, "primary_key": ["id"],
        ...     "columns": {"id": "string", "ts": "timestamp", "amount": "float64"},
        ...     "provenance": {"origin": "shop database"}})
        >>> decl.layout
        'daily'
    """

    #: The placeholder of a daily partition's date (``YYYY-MM-DD``) in ``location``.
    DATE_FIELD: ClassVar[str] = DATE_FIELD

    name: str
    location: str = Field(min_length=1)
    format: Literal["parquet", "csv", "jsonl", "delta"]
    csv: CsvOptions | None = None
    kind: Literal["events", "snapshot", "changelog", "dimension"] = "events"
    event_time: EventTime | None = None
    primary_key: list[str] = Field(default_factory=list)
    columns: dict[str, ColumnSpec] = Field(min_length=1)
    allowed_lateness: str = "0s"
    rules: list[Rule] = Field(default_factory=list)
    provenance: SourceConfig
    tags: list[str] = Field(default_factory=list)
    allowed_teams: list[str] | None = None
    calendar: Calendar = Field(default_factory=Calendar)
    description: str | None = None

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("source names are lowercase letters, digits and _ (max 64)")
        return value

    @field_validator("columns", mode="before")
    @classmethod
    def _short_columns(cls, value: Any) -> Any:
        # `price: float64` is short for `price: {type: float64}`.
        if isinstance(value, dict):
            return {k: {"type": v} if isinstance(v, str) else v for k, v in value.items()}
        return value

    @field_validator("columns")
    @classmethod
    def _column_names(cls, value: dict[str, ColumnSpec]) -> dict[str, ColumnSpec]:
        found = column_names_problem(value)
        if found is not None:
            raise ValueError(
                f"{found}: rename it where the data is written (a CSV read with "
                "`header: false` takes the declared names in order)"
            )
        return value

    @field_validator("allowed_lateness")
    @classmethod
    def _lateness(cls, value: str) -> str:
        if not _DURATION.match(value):
            raise ValueError("expected a duration such as 30m, 6h or 2d")
        return value

    @field_validator("location")
    @classmethod
    def _location(cls, value: str) -> str:
        if value.count(DATE_FIELD) > 1:
            raise ValueError("{date} may appear only once in a location")
        leftover = value.replace(DATE_FIELD, "")
        if "{" in leftover or "}" in leftover:
            raise ValueError("the only placeholder a location may hold is {date}")
        if value.startswith(PACKAGE_SCHEME):
            package, _, inside = value[len(PACKAGE_SCHEME) :].partition("/")
            if not _PACKAGE.match(package) or not inside.strip("/"):
                raise ValueError(
                    "a package location is package://<package>/<path inside it>,"
                    " e.g. package://mypackage/data/orders.csv"
                )
        return value

    @model_validator(mode="after")
    def _consistent(self) -> SourceDeclaration:
        problems = [
            InitErrorDetails(type=PydanticCustomError("source", message), loc=loc, input=value)
            for loc, message, value in declaration_problems(self)
        ]
        if problems:
            raise _PydanticValidationError.from_exception_data(type(self).__name__, problems)
        return self

    @property
    def layout(self) -> Literal["daily", "dump", "delta", "static"]:
        """``daily`` (one partition per ``{date}``), ``dump`` (one file or folder split by event
        time), ``delta`` (a Delta table split by event time) or ``static`` (a ``dimension``: one
        file or folder without dates, the same rows on every day)."""
        if self.format == "delta":
            return "delta"
        if DATE_FIELD in self.location:
            return "daily"
        return "static" if self.kind == "dimension" else "dump"

    @property
    def allowed_lateness_s(self) -> int:
        """``allowed_lateness`` in seconds."""
        match = _DURATION.match(self.allowed_lateness)
        assert match is not None  # checked at load
        return int(match.group(1)) * _DURATION_S[match.group(2)]

    @property
    def csv_options(self) -> CsvOptions:
        """The CSV options (the defaults when the declaration has no ``csv`` block)."""
        return self.csv or CsvOptions()

    def arrow_schema(self) -> pa.Schema:
        """The Arrow schema rows of this source are read into (declared order and nullability)."""
        return pa.schema(
            [pa.field(n, c.arrow_type(), nullable=c.nullable) for n, c in self.columns.items()]
        )

    def column_timezone(self, column: str) -> str:
        """The zone in which values of a timestamp column without an offset are written."""
        if self.event_time is not None and self.event_time.column == column:
            return self.event_time.timezone
        return self.columns[column].timezone or "UTC"


def declaration_problems(decl: SourceDeclaration) -> list[tuple[tuple[str | int, ...], str, Any]]:
    """Cross-field problems of a declaration: (key path, message, value found)."""
    problems: list[tuple[tuple[str | int, ...], str, Any]] = []
    declared = list(decl.columns)
    for i, key in enumerate(decl.primary_key):
        if key not in decl.columns:
            problems.append((("primary_key", i), f"{key!r} is not a declared column", key))
        elif decl.columns[key].nullable:
            problems.append((("primary_key", i), f"key column {key!r} cannot be nullable", key))
    if decl.kind == "dimension":
        if DATE_FIELD in decl.location or decl.format == "delta":
            problems.append(
                (
                    ("location",),
                    "a dimension is one file or folder without {date} (and not delta): the same"
                    " rows on every day; use kind snapshot for a daily partition",
                    decl.location,
                )
            )
        if decl.event_time is not None:
            message = "a dimension has no event time: its rows hold on every day"
            problems.append((("event_time",), message, None))
    elif decl.event_time is not None:
        column = decl.event_time.column
        spec = decl.columns.get(column)
        if spec is None:
            message = f"{column!r} is not a declared column (declared: {', '.join(declared)})"
            problems.append((("event_time", "column"), message, column))
        elif spec.type not in ("timestamp", "date"):
            message = (
                f"the event time column must be a timestamp or date, {column!r} is {spec.type}"
            )
            problems.append((("event_time", "column"), message, column))
        elif spec.nullable:
            message = f"the event time column {column!r} cannot be nullable"
            problems.append((("event_time", "column"), message, column))
    elif decl.layout != "daily" or decl.kind != "snapshot":
        why = (
            "a source split into days by event time"
            if decl.layout != "daily"
            else f"a {decl.kind} source"
        )
        problems.append(
            (
                (),
                f"event_time is required for {why} (only daily snapshots and dimensions may"
                " omit it)",
                None,
            )
        )
    if decl.csv is not None and decl.format != "csv":
        problems.append((("csv",), f"csv options are only for format csv, not {decl.format}", None))
    problems.extend(_rule_problems(decl))
    return problems


def _create_sql(table: str, decl: SourceDeclaration) -> str:
    columns = ", ".join(f"{quote_identifier(n)} {c.duckdb_type()}" for n, c in decl.columns.items())
    return f"CREATE TABLE {quote_identifier(table)} ({columns})"


def _rule_problems(
    decl: SourceDeclaration, others: dict[str, SourceDeclaration] | None = None
) -> list[tuple[tuple[str | int, ...], str, Any]]:
    """Prepare each rule over an empty table with the declared columns, so typos fail at load.

    Without ``others`` (one declaration alone), rules that use other sources are only checked
    for their ``uses`` names; with them (``load_sources``), only those rules are prepared, with
    an empty table per used source.
    """
    import duckdb

    problems: list[tuple[tuple[str | int, ...], str, Any]] = []
    for i, rule in enumerate(decl.rules):
        for k, name in enumerate(rule.uses):
            if name == decl.name or not _NAME.match(name):
                message = f"rule {rule.reason!r} uses {name!r}: name another declared source"
                problems.append((("rules", i, "uses", k), message, name))
            elif others is not None and name not in others:
                message = (
                    f"rule {rule.reason!r} uses source {name!r}, which is not declared"
                    f" (declared: {', '.join(sorted(others))})"
                )
                problems.append((("rules", i, "uses", k), message, name))
    if problems:
        return problems
    rules = [(i, r) for i, r in enumerate(decl.rules) if bool(r.uses) == (others is not None)]
    for i, rule in rules:  # refused before anything of it runs, even a DESCRIBE
        found = expression_problem(rule.check, ["source_row", *rule.uses])
        if found is not None:
            message = f"rule {rule.reason!r}: the check {found}; {SQL_RULES['rule']}"
            problems.append((("rules", i, "check"), message, rule.check))
    if problems or not rules:
        return problems
    with duckdb.connect() as con:
        lock_connection(con)
        con.execute(_create_sql("source_row", decl))
        for name in sorted({n for _, r in rules for n in r.uses}):
            assert others is not None
            con.execute(_create_sql(name, others[name]))
        for i, rule in rules:
            try:
                kind = con.execute(
                    f"DESCRIBE SELECT ({rule.check}) AS ok FROM source_row"
                ).fetchall()
            except duckdb.Error as exc:
                first = str(exc).splitlines()[0]
                problems.append(
                    (
                        ("rules", i, "check"),
                        f"rule {rule.reason!r} does not run: {first}",
                        rule.check,
                    )
                )
                continue
            if len(kind) != 1 or kind[0][1] != "BOOLEAN":
                found = ", ".join(str(k[1]) for k in kind)
                message = (
                    f"rule {rule.reason!r} must be one true/false expression, it gives {found}"
                )
                problems.append((("rules", i, "check"), message, rule.check))
    return problems


def load_sources(root: str | Path) -> dict[str, SourceDeclaration]:
    """Load every declaration in ``<root>/sources/*.yaml`` (several per file with ``---``).

    Returns:
        Declarations by name, in name order (empty when there is no ``sources/`` folder).

    Raises:
        ConfigError: every problem of every file at once, each with file, line and key; two
            declarations with one name are an error naming both files.
    """
    from spindle.core._yaml import load_yaml_models

    folder = Path(root) / "sources"
    files = sorted([*folder.glob("*.yaml"), *folder.glob("*.yml")]) if folder.is_dir() else []
    found: dict[str, tuple[SourceDeclaration, str]] = {}
    places: dict[str, str] = {}
    problems: list[str] = []
    for file in files:
        shown = f"sources/{file.name}"
        models, file_problems = load_yaml_models(file, SourceDeclaration)
        problems.extend(f"{shown}: {p}" for p in file_problems)
        for decl, line in models:
            if decl.name in found:
                other = found[decl.name][1]
                problems.append(
                    f"{shown}: line {line}, key 'name': source {decl.name!r} is already declared"
                    f" in {other}; rename one of them"
                )
                continue
            found[decl.name] = (decl, f"{shown} line {line}")
            places[decl.name] = f"{shown}: line {line}"
    declared = {name: decl for name, (decl, _) in found.items()}
    for name, decl in declared.items():
        if any(rule.uses for rule in decl.rules):
            for loc, message, _ in _rule_problems(decl, declared):
                key = ".".join(str(part) for part in loc)
                problems.append(f"{places[name]}, key '{key}': {message}")
    problems.extend(_cycles(declared, places))
    if problems:
        raise ConfigError(str(folder), problems)
    return {name: found[name][0] for name in sorted(found)}


def check_order(sources: dict[str, SourceDeclaration]) -> list[str]:
    """Source names in an order where each comes after the sources its rules use (their good
    rows must be known first), otherwise by name.

    Raises:
        ConfigError: the rules' ``uses`` form a cycle.
    """
    cycles = _cycles(sources, {name: name for name in sources})
    if cycles:
        raise ConfigError("sources", cycles)
    order: list[str] = []

    def visit(name: str) -> None:
        if name in order or name not in sources:
            return
        for rule in sources[name].rules:
            for used in sorted(rule.uses):
                visit(used)
        order.append(name)

    for name in sorted(sources):
        visit(name)
    return order


def _cycles(sources: dict[str, SourceDeclaration], where: dict[str, str]) -> list[str]:
    """One problem per source whose rules, through ``uses``, come back to it."""
    problems: list[str] = []
    for start in sorted(sources):
        stack = [(start, [start])]
        seen: set[str] = set()
        while stack:
            name, path = stack.pop()
            for used in sorted({u for r in sources[name].rules for u in r.uses} & set(sources)):
                if used == start:
                    chain = " -> ".join([*path, start])
                    problems.append(
                        f"{where[start]}: rules use each other's sources in a cycle ({chain});"
                        " a rule may only read sources checked before it"
                    )
                    stack = []
                    break
                if used not in seen:
                    seen.add(used)
                    stack.append((used, [*path, used]))
    return problems
