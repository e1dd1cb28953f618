"""What SQL declared in a workspace may do: one SELECT, or one expression, over the tables
spindle gives it, on a DuckDB connection that can reach no file and change no setting.

A workspace declares SQL in YAML: a view's query, a feature's expression, a model's examples
and baselines, a source's row rules, validation checks, candidate retrieval. spindle runs that
text in DuckDB, which can also read and write files (``read_csv``, ``COPY``, ``ATTACH``, a
quoted path as a table name), so a YAML file could reach outside the workspace's data. Two
guards keep it inside, and a reviewer never has to suspect a YAML file of file access:

- :func:`select_problem` / :func:`expression_problem` parse the text with DuckDB's own parser
  (no regular expressions) and refuse anything but one SELECT (or one expression) whose tables
  are the ones spindle registered for it (declared sources, the CTEs it defines) and a few
  table functions that read nothing (``range``, ``generate_series``, ``unnest``). Loading a
  workspace reports these with the other config errors; each run checks again.
- :func:`lock_connection` turns off DuckDB's external access and its Python replacement scans
  (a name read as a variable of the calling Python frame) and locks its configuration on the
  connection the text runs on, after spindle registered the data (Arrow tables and datasets,
  which keep working), so even a check that missed something cannot touch a file or a
  variable of spindle's.

Names declared in a workspace (a source's columns, a view's keys and kept columns) also reach
SQL, in the statements spindle writes around the declared text: :func:`quote_identifier` quotes
each one (a ``"`` doubled, so a name is one name whatever it holds), and
:func:`column_name_problem` refuses, at load, a name no author could write in their own SQL
without knowing that rule (a double quote, a control character).

Python features (``python: file.py:function``) remain the explicit, trusted way to run code.
"""

from __future__ import annotations

import functools
import json
import threading
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import duckdb

#: What each kind of declared SQL may do: the fix that ends a refusal's message.
SQL_RULES: dict[str, str] = {
    "view": (
        "a view's SQL is one SELECT over its declared `sources`, with no file or network "
        "access: declare what it reads as a source, or use a Python feature for anything else"
    ),
    "view_at": "`view.at` is one expression over the source's row",
    "feature": (
        "a feature's sql is one expression over its view's columns; use a Python feature "
        "(`python: file.py:function`) for anything else"
    ),
    "examples": (
        "it must be one SELECT over the sources in `examples.sources`, with no file or network "
        "access: list what it reads there, or compute it in a Python feature"
    ),
    "baseline": (
        "it must be one expression over the holdout's columns: compute anything else in a "
        "Python feature and name it as `feature:`"
    ),
    "candidates": (
        "it must be one SELECT over `candidates` (the view's online rows) with $name "
        "parameters, with no file or network access"
    ),
    "rule": (
        "a rule is one true/false expression over the row's columns (and the sources in "
        "`uses`), with no file or network access"
    ),
    "check": (
        "a check's sql is one SELECT over the declared sources and its label_rate.expr one "
        "expression over its rows, with no file or network access"
    ),
}
#: Table functions declared SQL may call: they generate rows and read nothing.
SAFE_TABLE_FUNCTIONS = frozenset({"range", "generate_series", "unnest"})
#: Table references that read nothing by themselves (joins, subqueries, VALUES, no FROM).
_PLAIN_REFS = frozenset({"JOIN", "SUBQUERY", "EXPRESSION_LIST", "EMPTY", "PIVOT"})
#: The name of the one row an expression is checked over.
_ROW = "__spindle_row"
_local = threading.local()


def _parser() -> duckdb.DuckDBPyConnection:
    """This thread's DuckDB connection for parsing (it runs nothing of the text it checks)."""
    con: duckdb.DuckDBPyConnection | None = getattr(_local, "con", None)
    if con is None:
        import duckdb

        con = duckdb.connect()
        lock_connection(con)
        _local.con = con
    return con


def lock_connection(con: duckdb.DuckDBPyConnection) -> None:
    """Turn off file and network access on ``con`` and lock its configuration.

    Call it after spindle's own setup (``SET threads``, the memory limit, the spill folder),
    before the declared SQL runs: Arrow tables and datasets registered before or after still
    work (they are read by Arrow, not through DuckDB's file system), a database file and its
    spilling still work, but ``read_csv``, ``COPY``, ``ATTACH``, ``INSTALL`` and any ``SET``
    fail, and a name that is no table on ``con`` is not looked up among the calling Python
    frame's variables (``python_enable_replacements = false``: register what SQL reads). The
    settings are the database's, so every cursor of ``con`` is locked too. Calling it again on
    a locked connection does nothing.

    Example:
        >>> import duckdb
        >>> con = duckdb.connect()
        >>> lock_connection(con)
        >>> con.execute("SELECT current_setting('enable_external_access')").fetchall()
        [(False,)]
    """
    # fetchall, not fetchone: a result left unfinished blocks the connection's next query
    (row,) = con.execute(
        "SELECT current_setting('lock_configuration'), current_setting('enable_external_access'),"
        " current_setting('python_enable_replacements')"
    ).fetchall()
    if row[0]:
        if row[1] or row[2]:
            raise RuntimeError(
                "lock_connection: the connection was locked with external access or Python "
                "replacement scans on; lock it with lock_connection before anything else does"
            )
        return
    con.execute("SET enable_external_access = false")
    # DuckDB's Python client reads a name it has no table for as the pandas or Arrow variable
    # of that name in the calling Python frame ("replacement scans"): declared SQL would read
    # whatever spindle's own code holds there. The setting is per session: GLOBAL reaches
    # every cursor (ones made before included), the plain SET this one if it set its own.
    con.execute("SET GLOBAL python_enable_replacements = false")
    con.execute("SET python_enable_replacements = false")
    con.execute("SET lock_configuration = true")


def quote_identifier(name: str) -> str:
    """``name`` as one quoted SQL identifier (DuckDB and SQLite): in double quotes, each ``"``
    in it doubled. Every declared name spindle writes into its own SQL goes through it.

    Example:
        >>> quote_identifier("dep_delay")
        '"dep_delay"'
        >>> quote_identifier('a" FROM t --')
        '"a"" FROM t --"'
    """
    return '"' + name.replace('"', '""') + '"'


def column_name_problem(name: str) -> str | None:
    """What makes ``name`` unfit as a declared column name (None: nothing is wrong with it).

    A column name may hold any text a file's header does (``Dep Delay``, ``a.b``, ``Ünïcode``;
    SQL reads those as ``"Dep Delay"``) but a double quote, which SQL could only read doubled
    and which would end the name in SQL built by pasting it, and control characters (a
    newline, a tab), which nobody sees; and it may not be empty.

    Example:
        >>> column_name_problem('a"b')
        'holds a double quote (")'
        >>> column_name_problem("Dep Delay") is None
        True
    """
    if not name:
        return "is empty"
    if '"' in name:
        return 'holds a double quote (")'
    if any(ord(c) < 32 or ord(c) == 127 for c in name):
        return "holds a control character (a newline, a tab, ...)"
    return None


def column_names_problem(names: Iterable[str]) -> str | None:
    """``column name 'a"b' holds a double quote (")`` for every unfit name among ``names``
    (see :func:`column_name_problem`), on one line; None when all are fit."""
    bad = [(n, found) for n in names if (found := column_name_problem(n)) is not None]
    if not bad:
        return None
    shown = "; ".join(f"{n!r} {found}" for n, found in bad)
    return f"column name{'s' if len(bad) > 1 else ''} {shown}"


def select_problem(sql: str, tables: Iterable[str] | None) -> str | None:
    """What makes ``sql`` more than one SELECT over ``tables`` (None when it is just that).

    ``sql`` may be a ``WITH ... SELECT``, join, union or subquery over ``tables`` and the CTEs
    it defines; it may not be several statements, another kind of statement (``COPY``,
    ``ATTACH``, ``INSTALL``/``LOAD``, ``PRAGMA``, ``SET``, ``CREATE``, ``INSERT``,
    ``EXPORT``, ``DESCRIBE``...), or read anything else: a file (``read_csv(...)``,
    ``'/etc/passwd'`` as a table), another table, a qualified name, a table function other
    than :data:`SAFE_TABLE_FUNCTIONS`.

    Args:
        sql: the declared text, as spindle runs it.
        tables: the names spindle registers for it (case-insensitive); None: any plain table
            name (where the names are checked later, against what is declared beside it).

    Returns:
        What was found, as a phrase for a message (``"holds 2 statements (SELECT, COPY)"``,
        ``"reads a file with read_csv()"``), or None.

    Example:
        >>> select_problem("SELECT * FROM read_csv('/etc/passwd')", ["flights"])
        'reads a file with read_csv()'
        >>> select_problem("SELECT carrier, count(*) FROM flights GROUP BY 1", ["flights"]) is None
        True
    """
    return _select_problem(sql, None if tables is None else _names(tables))


def expression_problem(expression: str, tables: Iterable[str] = ()) -> str | None:
    """What makes ``expression`` more than one SQL expression (None when it is just that).

    The expression may hold subqueries over ``tables`` (a rule's ``currency IN (SELECT
    currency FROM fx_rates)``); as in :func:`select_problem`, nothing else may be read, and
    the text may not close the parentheses spindle puts around it to add clauses or
    statements of its own.

    Example:
        >>> expression_problem("minutes >= 0") is None
        True
        >>> expression_problem("(SELECT max(x) FROM read_csv('/etc/passwd'))")
        'reads a file with read_csv()'
    """
    wrapped = f"SELECT ({expression}) AS __spindle_value FROM {_ROW}"
    found = _select_problem(wrapped, _names([*tables, _ROW]))
    if found is not None:
        return found
    node = _parsed(wrapped)[1][0]["node"]
    source = node.get("from_table") or {}
    alone = (
        node.get("type") == "SELECT_NODE"
        and len(node.get("select_list", ())) == 1
        and source.get("type") == "BASE_TABLE"
        and source.get("table_name") == _ROW
        and not source.get("alias")
        and not node.get("modifiers")
        and not node.get("cte_map", {}).get("map")
        and not node.get("group_expressions")
        and all(node.get(k) is None for k in ("where_clause", "having", "qualify", "sample"))
    )
    return None if alone else "is not one expression (it closes the parentheses around it)"


def _names(tables: Iterable[str]) -> frozenset[str]:
    return frozenset(t.lower() for t in tables)


# A workspace's texts are checked at load and again at each run (a view every day, a rule
# every ingest): parsing is ~1 ms, so a text is parsed once per process.
@functools.lru_cache(maxsize=4096)
def _select_problem(sql: str, allowed: frozenset[str] | None) -> str | None:
    found, statements = _parsed(sql)
    return found if found is not None else _tree_problem(statements, allowed, frozenset())


@functools.lru_cache(maxsize=4096)
def _parsed(sql: str) -> tuple[str | None, list[Any]]:
    """What makes ``sql`` other than one SELECT statement, else its parse tree's statements
    (``json_serialize_sql``)."""
    import duckdb

    con = _parser()
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as exc:
        return f"is not valid SQL ({_first_line(exc)})", []
    if not statements:
        return "is empty", []
    if len(statements) != 1:
        kinds = ", ".join(_kind(s) for s in statements)
        return f"holds {len(statements)} statements ({kinds})", []
    if statements[0].type != duckdb.StatementType.SELECT:
        kind = _kind(statements[0])
        return f"is {'an' if kind[0] in 'AEIOU' else 'a'} {kind} statement, not a SELECT", []
    (row,) = con.execute("SELECT json_serialize_sql(?)", [sql]).fetchall()
    tree: dict[str, Any] = json.loads(row[0])
    if tree.get("error"):
        return f"is a query spindle cannot inspect ({tree.get('error_message', 'unknown')})", []
    return None, list(tree["statements"])


def _tree_problem(
    value: object, allowed: frozenset[str] | None, ctes: frozenset[str]
) -> str | None:
    """The first table reference in a parsed query that reads something it may not."""
    if isinstance(value, list):
        for item in value:
            found = _tree_problem(item, allowed, ctes)
            if found is not None:
                return found
        return None
    if not isinstance(value, dict):
        return None
    cte_map = value.get("cte_map")
    entries = cte_map.get("map") if isinstance(cte_map, dict) else None
    if entries:
        found = _with_problem(entries, allowed, ctes)
        if found is not None:
            return found
        ctes = ctes | {str(entry["key"]).lower() for entry in entries}
    kind = value.get("type")
    # a table reference (a FROM item) has a sample clause; so does a query node, an expression
    # has a class
    if isinstance(kind, str) and "sample" in value and "class" not in value:
        found = None if kind.endswith("_NODE") else _ref_problem(value, kind, allowed, ctes)
        if found is not None:
            return found
    for key, item in value.items():
        found = None if key == "cte_map" else _tree_problem(item, allowed, ctes)
        if found is not None:
            return found
    return None


def _with_problem(
    entries: list[Any], allowed: frozenset[str] | None, ctes: frozenset[str]
) -> str | None:
    """The first problem in a WITH clause's queries. Each sees the CTEs defined before it; its
    own name and a later CTE's are, to DuckDB, the table of that name (``WITH t AS (SELECT *
    FROM t)`` reads a table ``t``), except in the recursive part of a recursive CTE."""
    seen = ctes
    for entry in entries:
        name = str(entry["key"]).lower()
        definition = dict(entry.get("value") or {})
        body = definition.pop("query_node", None)
        found = _tree_problem(definition, allowed, seen)
        if isinstance(body, dict) and body.get("type") == "RECURSIVE_CTE_NODE":
            itself = seen | {name} if str(body.get("cte_name", "")).lower() == name else seen
            anchor = {k: v for k, v in body.items() if k != "right"}
            found = found or _tree_problem(anchor, allowed, seen)
            found = found or _tree_problem(body.get("right"), allowed, itself)
        else:
            found = found or _tree_problem(body, allowed, seen)
        if found is not None:
            return found
        seen = seen | {name}
    return None


def _ref_problem(
    ref: dict[str, Any], kind: str, allowed: frozenset[str] | None, ctes: frozenset[str]
) -> str | None:
    """What one table reference reads that it may not (None: nothing)."""
    if kind == "BASE_TABLE":
        name = str(ref.get("table_name", ""))
        qualifier = [str(ref.get(k) or "") for k in ("catalog_name", "schema_name")]
        if any(qualifier):
            return f"reads {'.'.join([*(q for q in qualifier if q), name])}, a qualified name"
        if ref.get("at_clause") is not None:
            return f"reads {name} AT a version (time travel)"
        if name.lower() in ctes or (allowed is not None and name.lower() in allowed):
            return None
        if any(c in name for c in "/\\.:*?~"):  # a path or URL: DuckDB would read the file
            return f"reads the file {name!r}"
        if allowed is None:
            return None
        shown = ", ".join(sorted(t for t in allowed if t != _ROW)) or "none"
        return f"reads {name!r}, which is not a table it may read ({shown})"
    if kind == "TABLE_FUNCTION":
        function = ref.get("function") or {}
        name = str(function.get("function_name", "?")).lower()
        if name in SAFE_TABLE_FUNCTIONS and not function.get("schema"):
            return None
        if name.startswith(("read_", "parquet_", "sniff_", "glob", "delta_", "iceberg_")):
            return f"reads a file with {name}()"
        return f"calls the table function {name}()"
    if kind == "SHOW_REF":
        return "is a DESCRIBE, SHOW or SUMMARIZE, not a query over its tables"
    if kind in _PLAIN_REFS:
        return None
    return f"uses a {kind} table reference"


def _kind(statement: Any) -> str:
    """A statement's kind as a person writes it (``COPY``, ``INSTALL/LOAD``, ``SELECT``)."""
    name = str(statement.type.name)
    return "INSTALL/LOAD" if name == "LOAD" else name


def _first_line(exc: BaseException) -> str:
    return str(exc).splitlines()[0] if str(exc) else type(exc).__name__


def retracted_sql(column: str, keys_table: str, salt: str | None) -> str:
    """The SQL condition of a row that a retraction's keys name: the row's ``column`` as text
    (or, with a ``salt``, ``sha256(salt || text)``, how a deletion request's ids are kept) is
    a ``key`` of the one-column table ``keys_table``. A null is never named when the caller
    wraps it in ``coalesce(..., false)``.

    Example:
        >>> retracted_sql("id", "keys", None)
        'CAST("id" AS VARCHAR) IN (SELECT key FROM "keys")'
    """
    text = f"CAST({quote_identifier(column)} AS VARCHAR)"
    if salt is not None:
        text = "sha256('" + salt.replace("'", "''") + f"' || {text})"
    return f"{text} IN (SELECT key FROM {quote_identifier(keys_table)})"
