"""SQL declared in a workspace is one SELECT (or one expression) over the tables spindle gives
it, checked with DuckDB's parser when the workspace loads; the connection it runs on reaches no
file. Each attack below wrote a file or read ``/etc/passwd`` before these checks."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as pads
import pyarrow.parquet as pq
import pytest
import yaml

from spindle.core import (
    BaselineConfig,
    CandidatesConfig,
    ConfigError,
    ExamplesConfig,
    expression_problem,
    load_sources,
    load_validation,
    load_yaml_model,
    lock_connection,
    select_problem,
)

EXAMPLES = Path(__file__).resolve().parents[2] / "src" / "spindle" / "examples"
TABLES = ["flights", "weather"]


@pytest.mark.parametrize(
    ("sql", "found"),
    [
        ("SELECT * FROM read_csv('/etc/passwd')", "reads a file with read_csv()"),
        ("SELECT * FROM '/etc/passwd'", "reads the file '/etc/passwd'"),
        ("SELECT * FROM read_text('/etc/hostname')", "reads a file with read_text()"),
        ("SELECT * FROM glob('/*')", "reads a file with glob()"),
        (
            "SELECT * FROM flights WHERE EXISTS (FROM read_parquet('x.parquet'))",
            "reads a file with read_parquet()",
        ),
        (
            "SELECT 1 FROM flights; COPY (SELECT 1) TO '/tmp/x.csv'",
            "holds 2 statements (SELECT, COPY)",
        ),
        ("COPY (SELECT 1) TO '/tmp/x.csv'", "is a COPY statement, not a SELECT"),
        ("ATTACH '/tmp/other.db'", "is an ATTACH statement, not a SELECT"),
        ("INSTALL httpfs", "is an INSTALL/LOAD statement, not a SELECT"),
        ("PRAGMA version", "is a PRAGMA statement, not a SELECT"),
        ("SET threads = 8", "is a SET statement, not a SELECT"),
        ("CREATE TABLE t AS SELECT 1", "is a CREATE statement, not a SELECT"),
        ("EXPORT DATABASE '/tmp/db'", "is an EXPORT statement, not a SELECT"),
        ("DESCRIBE flights", "is a DESCRIBE, SHOW or SUMMARIZE"),
        ("SELECT * FROM duckdb_settings()", "calls the table function duckdb_settings()"),
        ("SELECT * FROM query('SELECT 1')", "calls the table function query()"),
        ("SELECT * FROM main.flights", "reads main.flights, a qualified name"),
        ("SELECT * FROM planes", "reads 'planes', which is not a table it may read (flights, "),
        # a CTE's name is visible inside its own query only
        ("SELECT * FROM (WITH p AS (SELECT 1) SELECT * FROM p), p", "reads 'p', which is not"),
        # a CTE's own name, or a later CTE's, is to DuckDB the table of that name
        ("WITH secret AS (SELECT * FROM secret) SELECT * FROM secret", "reads 'secret', which"),
        ("WITH a AS (SELECT * FROM b), b AS (SELECT 1) SELECT * FROM a", "reads 'b', which"),
        (
            "WITH RECURSIVE s AS (SELECT * FROM s UNION ALL SELECT x FROM s) SELECT * FROM s",
            "reads 's', which is not",
        ),
        ("SELECT (1", "is not valid SQL (Parser Error: syntax error"),
        ("-- nothing", "is empty"),
    ],
)
def test_what_a_declared_query_may_not_do(sql: str, found: str) -> None:
    problem = select_problem(sql, TABLES)
    assert problem is not None and problem.startswith(found), problem


@pytest.mark.parametrize(
    "sql",
    [
        "SELECT carrier, count(*) FROM flights GROUP BY 1",
        "WITH w AS (SELECT * FROM weather) SELECT * FROM FLIGHTS f JOIN w USING (origin)",
        "SELECT * FROM flights WHERE time_hour >= cutoff - INTERVAL 7 DAY",
        "SELECT x FROM range(3) t(x), unnest([1, 2]) u(y), (VALUES (1)) v(z)",
        "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r WHERE n < 3) FROM r",
        "WITH a AS (SELECT * FROM weather), b AS (SELECT * FROM a) SELECT * FROM b, flights",
        "WITH flights AS (SELECT * FROM flights WHERE dep_delay > 0) SELECT * FROM flights",
        "SELECT * FROM flights WHERE carrier = $carrier LIMIT 5",
    ],
)
def test_a_select_over_its_tables_is_fine(sql: str) -> None:
    assert select_problem(sql, TABLES) is None


@pytest.mark.parametrize(
    ("expression", "found"),
    [
        ("(SELECT max(x) FROM read_csv('/etc/passwd'))", "reads a file with read_csv()"),
        (
            "1) AS x FROM __spindle_row; COPY (SELECT 1) TO '/tmp/x.csv'; SELECT (1",
            "holds 3 statements (SELECT, COPY, SELECT)",
        ),
        ("a) AS b, (c", "is not one expression"),
        ("1) FROM read_csv('/etc/passwd') --", "reads a file with read_csv()"),
        ("1 /*", "is not valid SQL"),  # would swallow what spindle writes after it
    ],
)
def test_what_a_declared_expression_may_not_do(expression: str, found: str) -> None:
    problem = expression_problem(expression, ["fx_rates"])
    assert problem is not None and problem.startswith(found), problem


@pytest.mark.parametrize(
    "expression",
    [
        "minutes >= 0",
        "currency IN (SELECT currency FROM fx_rates)",
        "CASE WHEN a < 1 THEN 0 ELSE 1 END",
        "avg((amount > 100)::DOUBLE)",
    ],
)
def test_one_expression_is_fine(expression: str) -> None:
    assert expression_problem(expression, ["fx_rates"]) is None


def _declared_sql(node: object, key: str = "") -> list[tuple[str, str]]:
    """Every (key, text) of a YAML document whose key is ``sql``, ``check``, ``expr`` or ``at``."""
    if isinstance(node, dict):
        return [p for k, v in node.items() for p in _declared_sql(v, str(k))]
    if isinstance(node, list):
        return [p for v in node for p in _declared_sql(v, key)]
    return [(key, node)] if key in ("sql", "check", "expr", "at") and isinstance(node, str) else []


@pytest.mark.parametrize("example", ["flights", "yarnit"])
def test_every_packaged_example_passes(example: str) -> None:
    """The packaged workspaces' SQL (views, features, examples, baselines, rules, checks,
    retrieval) is each one SELECT or one expression over the tables it is given."""
    root = EXAMPLES / example
    tables = [*load_sources(root), "candidates"]
    texts = [
        item
        for path in sorted(root.rglob("*.yaml"))
        for doc in yaml.safe_load_all(path.read_text(encoding="utf-8"))
        for item in _declared_sql(doc)
    ]
    assert len(texts) > 20
    for key, text in texts:
        query = text.lstrip().upper().startswith(("SELECT", "WITH"))
        found = select_problem(text, tables) if query else expression_problem(text, tables)
        assert found is None, (key, text, found)


def test_a_locked_connection_reaches_no_file_but_reads_registered_data(tmp_path: Path) -> None:
    pq.write_table(pa.table({"a": [1, 2, 3]}), tmp_path / "t.parquet")
    (tmp_path / "secret.csv").write_text("s\nhidden\n")
    con = duckdb.connect()
    con.register("before", pads.dataset(tmp_path / "t.parquet"))
    con.execute("CREATE TEMP VIEW v AS SELECT * FROM before")
    lock_connection(con)
    lock_connection(con)  # again: nothing to do
    con.register("after", pads.dataset(tmp_path / "t.parquet"))
    assert con.sql("SELECT sum(a) FROM v").fetchall() == [(6,)]
    assert con.sql("SELECT sum(a) FROM after").fetchall() == [(6,)]
    target = tmp_path / "written.csv"
    for attack in [
        f"SELECT * FROM read_csv('{tmp_path / 'secret.csv'}')",
        f"SELECT * FROM '{tmp_path / 'secret.csv'}'",
        f"COPY (SELECT 1) TO '{target}'",
        f"ATTACH '{tmp_path / 'other.db'}'",
        "SET enable_external_access = true",
        "SET lock_configuration = false",
    ]:
        with pytest.raises(duckdb.Error):
            con.execute(attack)
    assert not target.exists() and not (tmp_path / "other.db").exists()


def test_a_locked_connection_reads_no_python_variable() -> None:
    """DuckDB's Python client reads a name it has no table for as the pandas/Arrow variable of
    that name in the calling frame ("replacement scans"): declared SQL would read what the code
    running it holds. A locked connection and its cursors, made before or after, read only
    what is registered. (DuckDB 2.0 already skips them without external access; the setting
    says so itself, whatever a later DuckDB ties it to.)"""
    secret = pa.table({"password": ["hunter2"]})  # a local of this frame, never registered
    query = "SELECT * FROM secret"
    unlocked = duckdb.connect()
    assert unlocked.sql(query).fetchall() == [("hunter2",)]  # what the lock prevents
    con = duckdb.connect()
    early = con.cursor()
    lock_connection(con)
    setting = "SELECT current_setting('python_enable_replacements')"
    for reader in (con, early, con.cursor()):
        assert reader.execute(setting).fetchall() == [(False,)]
        with pytest.raises(duckdb.CatalogException, match="secret does not exist"):
            reader.sql(query)
        with pytest.raises(duckdb.Error, match="configuration has been locked"):
            reader.execute("SET python_enable_replacements = true")
    con.register("secret", secret)  # registered, it is read
    assert con.sql(query).fetchall() == [("hunter2",)]


SOURCE = """\
name: sessions
location: raw/sessions/{{date}}.parquet
format: parquet
kind: events
event_time: {{column: started_at}}
columns: {{session_id: string, started_at: timestamp, minutes: float64}}
provenance: {{origin: app, licence: internal, retention_days: 30}}
rules:
  - {{check: "{check}", reason: sneaky}}
---
name: visits
location: raw/visits/{{date}}.parquet
format: parquet
kind: events
event_time: {{column: ts}}
columns: {{ts: timestamp}}
provenance: {{origin: app, licence: internal, retention_days: 30}}
"""


def test_a_rule_that_writes_a_file_is_refused_at_load_without_running(tmp_path: Path) -> None:
    """Loading the declaration prepared the rule with DESCRIBE, which ran every statement."""
    target = tmp_path / "written.csv"
    check = f"true) AS ok FROM source_row; COPY (SELECT 1) TO '{target}'; SELECT (true"
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "sessions.yaml").write_text(SOURCE.format(check=check))
    with pytest.raises(ConfigError) as info:
        load_sources(tmp_path)
    assert not target.exists()
    message = str(info.value)
    assert "sources/sessions.yaml: line 9, key 'rules.0.check'" in message
    assert "holds 3 statements (SELECT, COPY, SELECT)" in message
    assert "a rule is one true/false expression" in message and "\n" not in message


def test_a_rule_that_reads_a_file_is_refused_at_load(tmp_path: Path) -> None:
    check = "(SELECT count(*) FROM read_csv('/etc/passwd')) > 0"
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "sessions.yaml").write_text(SOURCE.format(check=check))
    with pytest.raises(ConfigError, match=r"key 'rules\.0\.check'.*reads a file with read_csv"):
        load_sources(tmp_path)


def test_a_validation_check_that_reads_or_writes_a_file_is_refused_at_load(
    tmp_path: Path,
) -> None:
    target = tmp_path / "written.csv"
    (tmp_path / "sources").mkdir()
    (tmp_path / "sources" / "sessions.yaml").write_text(SOURCE.format(check="minutes >= 0"))
    (tmp_path / "validation.yaml").write_text(
        "checks:\n"
        "  - source: sessions\n"
        "    sql: SELECT * FROM read_csv('/etc/passwd')\n"
        "  - source: visits\n"
        "    label_rate:\n"
        "      what: x\n"
        f"      expr: \"1) FROM sessions; COPY (SELECT 1) TO '{target}'; SELECT (1\"\n"
    )
    with pytest.raises(ConfigError) as info:
        load_validation(tmp_path, load_sources(tmp_path))
    assert not target.exists()
    problems = info.value.problems
    assert len(problems) == 2
    assert problems[0].startswith("line 3, key 'checks.0.sql': the check's sql reads a file")
    assert "key 'checks.1.label_rate.expr': the expression holds 3 statements" in problems[1]


MODEL = """\
name: m
owner: me@example
team: growth
task: binary
examples:
  sql: {examples}
  sources: [sessions]
  event_time: ts
  label: y
features: []
baselines:
  - {{name: b, sql: "{baseline}"}}
serving:
  candidates: {{view: v, sql: "{candidates}"}}
"""


@pytest.mark.parametrize(
    ("examples", "baseline", "candidates", "key", "found"),
    [
        (
            "SELECT * FROM read_csv('/etc/passwd')",
            "1",
            "SELECT 1 FROM candidates",
            "examples.sql",
            "examples.sql reads a file with read_csv()",
        ),
        (
            "SELECT 1 AS y; COPY (SELECT 1) TO '/tmp/spindle-attack.csv'",
            "1",
            "SELECT 1 FROM candidates",
            "examples.sql",
            "examples.sql holds 2 statements (SELECT, COPY)",
        ),
        (
            "SELECT 1 AS y",
            "(SELECT count(*) FROM read_csv('/etc/passwd'))",
            "SELECT 1 FROM candidates",
            "baselines.0.sql",
            "the baseline's sql reads a file with read_csv()",
        ),
        (
            "SELECT 1 AS y",
            "1",
            "SELECT * FROM '/etc/passwd'",
            "serving.candidates.sql",
            "serving.candidates.sql reads the file '/etc/passwd'",
        ),
    ],
)
def test_a_models_sql_that_reaches_a_file_is_refused_at_load(
    tmp_path: Path, examples: str, baseline: str, candidates: str, key: str, found: str
) -> None:
    from spindle.core import ModelConfig

    path = tmp_path / "m.yaml"
    path.write_text(MODEL.format(examples=examples, baseline=baseline, candidates=candidates))
    with pytest.raises(ConfigError) as info:
        load_yaml_model(path, ModelConfig)
    assert f"key '{key}': Value error, {found}" in str(info.value)
    assert "\n" not in str(info.value)


def test_the_configs_refuse_the_same_in_code() -> None:
    with pytest.raises(ValueError, match="reads a file with read_csv"):
        ExamplesConfig(sql="SELECT * FROM read_csv('x')", sources=["s"], event_time="ts", label="y")
    with pytest.raises(ValueError, match="is not one expression"):
        BaselineConfig(name="b", sql="a) AS b, (c")
    with pytest.raises(ValueError, match="an ATTACH statement"):
        CandidatesConfig(view="v", sql="ATTACH 'x.db'")
