"""The built-in tools through `call_tool`, over a real sample database file."""

from __future__ import annotations

import hashlib
import sqlite3
import threading
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from services.tools.base import Tool, ToolResult, call_tool
from services.tools.registry import TOOL_NAMES, build_tools
from services.tools.sql import open_read_only, sql_tools
from tests.services.test_sample_data import SAMPLE_DIGEST, TOTAL_REVENUE, content_digest, rows

RUNAWAY = ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000000) "
           "SELECT count(*) FROM c")


@pytest.fixture
def tools(tmp_path: Path) -> dict[str, Tool]:
    return build_tools(tmp_path)


@pytest.fixture
def db(tmp_path: Path, tools: dict[str, Tool]) -> Path:
    return tmp_path / "sample_business.db"


def snapshot(db: Path) -> tuple[str, str, list[str]]:
    """The file's exact bytes, its rows, and what else sits beside it (journals, attached files)."""
    return (hashlib.sha256(db.read_bytes()).hexdigest(), content_digest(db),
            sorted(p.name for p in db.parent.iterdir()))


def table(output: str) -> list[list[str]]:
    """The data rows of the first Markdown table in a tool's output."""
    lines = [line for line in output.splitlines() if line.startswith("|")]
    return [[cell.strip() for cell in line.strip("|").split(" | ")] for line in lines[2:]]


async def sql(tools: dict[str, Tool], query: str) -> ToolResult:
    return await call_tool(tools, "sql_query", {"query": query})


def test_registry_offers_the_three_tools_with_schemas(tools: dict[str, Tool]) -> None:
    assert tuple(tools) == TOOL_NAMES == ("sql_query", "describe_data", "calculator")
    assert tools["sql_query"].schema()["required"] == ["query"]
    assert tools["calculator"].schema()["properties"]["expression"]["maxLength"] == 500
    assert "required" not in tools["describe_data"].schema()
    assert all(t.description for t in tools.values())


def test_concurrent_first_calls_build_one_good_database(tmp_path: Path) -> None:
    errors: list[BaseException] = []

    def build() -> None:
        try:
            build_tools(tmp_path)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=build) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []
    assert [p.name for p in tmp_path.iterdir()] == ["sample_business.db"]
    assert content_digest(tmp_path / "sample_business.db") == SAMPLE_DIGEST


async def test_total_revenue(tools: dict[str, Tool], db: Path) -> None:
    result = await sql(tools, "SELECT round(sum(quantity * unit_price), 2) AS revenue "
                              "FROM orders WHERE status = 'completed'")
    assert not result.is_error
    expected = sum(q * p for q, p, s in rows(db, "SELECT quantity, unit_price, status FROM orders")
                   if s == "completed")
    assert table(result.output) == [[repr(round(expected, 2))]] == [[repr(TOTAL_REVENUE)]]
    assert result.output.splitlines()[:2] == ["| revenue |", "|---|"]
    assert result.output.endswith("\n\n1 row")


async def test_region_count_and_revenue_by_region(tools: dict[str, Tool], db: Path) -> None:
    count = await sql(tools, "SELECT count(*) AS n FROM regions")
    assert table(count.output) == [["5"]]

    result = await sql(tools, """
        SELECT r.name AS region, round(sum(o.quantity * o.unit_price), 2) AS revenue
        FROM orders o JOIN customers c ON c.id = o.customer_id JOIN regions r ON r.id = c.region_id
        WHERE o.status = 'completed' GROUP BY r.name ORDER BY revenue DESC""")
    region_of = dict(rows(db, "SELECT c.id, r.name FROM customers c JOIN regions r ON r.id = c.region_id"))
    totals: dict[str, float] = defaultdict(float)
    for customer_id, q, p, s in rows(db, "SELECT customer_id, quantity, unit_price, status FROM orders"):
        if s == "completed":
            totals[region_of[customer_id]] += q * p
    expected = sorted(((name, repr(round(v, 2))) for name, v in totals.items()), key=lambda t: -float(t[1]))
    assert [tuple(r) for r in table(result.output)] == expected
    assert result.output.endswith("5 rows")


async def test_rows_are_capped_and_the_cut_is_said(tools: dict[str, Tool], db: Path) -> None:
    result = await sql(tools, "SELECT id FROM orders ORDER BY id")
    assert not result.is_error
    assert [r[0] for r in table(result.output)] == [str(i) for i in range(1, 201)]
    assert "showing first 200" in result.output

    small = {t.name: t for t in sql_tools(db, max_rows=3)}
    cut = await sql(small, "SELECT id FROM orders ORDER BY id")
    assert table(cut.output) == [["1"], ["2"], ["3"]]
    assert "More than 3 rows; showing first 3" in cut.output
    # Rows are fetched lazily: an endless result is cut at the cap, not run until the time limit.
    endless = await sql(small, "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c) SELECT x FROM c")
    assert not endless.is_error and table(endless.output) == [["1"], ["2"], ["3"]]
    exact = await sql(small, "SELECT id FROM regions WHERE id <= 3 ORDER BY id")
    assert exact.output.endswith("3 rows") and "showing" not in exact.output


@pytest.mark.parametrize("query, cells", [
    ("SELECT 'DROP TABLE orders; --' AS s; -- a trailing comment", [["DROP TABLE orders; --"]]),
    ("/* DELETE FROM orders; */ SELECT replace(name, 'North', 'N') AS r FROM regions WHERE id = 1", [["N"]]),
    ("WITH big AS (SELECT * FROM orders WHERE quantity > 30) SELECT count(*) > 0 FROM big", [["1"]]),
    ("SELECT 'a|b' || char(10) || 'c' AS s, NULL AS n", [["a\\|b c", "NULL"]]),
    ("SELECT strftime('%Y', order_date) AS y FROM orders GROUP BY y ORDER BY y", [["2024"], ["2025"]]),
])
async def test_read_only_queries_that_look_risky_are_answered(
        tools: dict[str, Tool], query: str, cells: list[list[str]]) -> None:
    result = await sql(tools, query)
    assert not result.is_error, result.output
    assert table(result.output) == cells


BAD_CALLS: list[tuple[str, Any, str]] = [
    ("sql_query", {"query": "DROP TABLE orders"}, "starts with DROP"),
    ("sql_query", {"query": "UPDATE orders SET quantity = 0"}, "starts with UPDATE"),
    ("sql_query", {"query": "DELETE FROM orders"}, "starts with DELETE"),
    ("sql_query", {"query": "/* harmless */ DELETE FROM orders"}, "starts with DELETE"),
    ("sql_query", {"query": "INSERT INTO regions (name) VALUES ('Mars')"}, "starts with INSERT"),
    ("sql_query", {"query": "ATTACH DATABASE '{dir}/stolen.db' AS stolen"}, "starts with ATTACH"),
    ("sql_query", {"query": "PRAGMA writable_schema=1"}, "starts with PRAGMA"),
    ("sql_query", {"query": "VACUUM INTO '{dir}/copy.db'"}, "starts with VACUUM"),
    ("sql_query", {"query": "SELECT 1; DROP TABLE orders"}, "found 2 statements"),
    ("sql_query", {"query": "WITH doomed AS (SELECT id FROM orders) DELETE FROM orders WHERE id IN doomed"},
     "DELETE is not allowed"),
    ("sql_query", {"query": "WITH x AS (SELECT 1) REPLACE INTO regions VALUES (1, 'Mars')"}, "REPLACE is not allowed"),
    ("sql_query", {"query": "SELECT load_extension('{dir}/evil')"}, "load_extension() is not allowed"),
    ("sql_query", {"query": "SELECT * FROM pragma_table_info('orders')"}, "describe_data"),
    ("sql_query", {"query": "SELECT length(replace(printf('%.*c', 900000, 'x'), 'x', 'xx'))"}, "1,000,000 bytes"),
    ("sql_query", {"query": "SELECT revenu FROM orders"}, "no such column: revenu"),
    ("sql_query", {"query": "  -- nothing\n"}, "found no statement"),
    ("sql_query", {}, "Invalid arguments for sql_query: query: Field required"),
    ("sql_query", {"query": 5}, "query: Input should be a valid string"),
    ("sql_query", '{"query": "SELECT 1"', "not valid JSON"),
    ("drop_database", {"query": "SELECT 1"}, "Unknown tool 'drop_database'. Available tools: calculator,"),
    ("describe_data", {"table": "payroll"}, "No table named 'payroll'. Tables: customers, orders"),
]


@pytest.mark.parametrize("name, args, message", BAD_CALLS, ids=[f"{n}:{str(a)[:40]}" for n, a, _ in BAD_CALLS])
async def test_bad_calls_are_recoverable_errors_and_leave_the_database_alone(
        tools: dict[str, Tool], db: Path, name: str, args: Any, message: str) -> None:
    if isinstance(args, dict) and isinstance(args.get("query"), str):
        args = {"query": args["query"].replace("{dir}", str(db.parent))}
    before = snapshot(db)
    result = await call_tool(tools, name, args)
    assert result.is_error
    assert message in result.output
    assert snapshot(db) == before


async def test_a_runaway_query_is_stopped_and_the_tool_still_works(db: Path) -> None:
    tools = {t.name: t for t in sql_tools(db, timeout_s=0.5)}
    before = snapshot(db)
    result = await sql(tools, RUNAWAY)
    assert result.is_error
    assert "stopped after 0.5 s" in result.output
    assert result.seconds < 1.5  # generous: three times the limit
    assert table((await sql(tools, "SELECT count(*) FROM products")).output) == [["30"]]
    assert snapshot(db) == before


def test_each_connection_layer_refuses_writes_on_its_own(db: Path) -> None:
    before = snapshot(db)
    conn, denials = open_read_only(db, timeout_s=5)
    try:
        with pytest.raises(sqlite3.DatabaseError, match="not authorized"):
            conn.execute("DELETE FROM orders")
        assert denials
        conn.set_authorizer(None)
        assert conn.execute("PRAGMA query_only").fetchone() == (1,)
        with pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("DELETE FROM orders")
        conn.execute("PRAGMA query_only=OFF")
        with pytest.raises(sqlite3.OperationalError, match="readonly database"):  # mode=ro
            conn.execute("DELETE FROM orders")
    finally:
        conn.close()
    assert snapshot(db) == before


async def test_a_missing_database_is_reported_not_created(tmp_path: Path) -> None:
    missing = tmp_path / "elsewhere" / "none.db"
    tools = {t.name: t for t in sql_tools(missing)}
    result = await sql(tools, "SELECT 1")
    assert result.is_error and "none.db does not exist" in result.output
    assert not missing.exists()


async def test_a_file_that_is_not_a_database_is_reported(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not sqlite" * 100)
    tools = {t.name: t for t in sql_tools(junk)}
    for name, args in [("sql_query", {"query": "SELECT 1"}), ("describe_data", {})]:
        result = await call_tool(tools, name, args)
        assert result.is_error and "Cannot read the database junk.db: file is not a database" in result.output
    assert junk.read_bytes() == b"this is not sqlite" * 100


async def test_deeply_nested_json_arguments_are_an_error_not_a_crash(tools: dict[str, Tool]) -> None:
    result = await call_tool(tools, "sql_query", '{"query": ' + "[" * 100_000 + "]" * 100_000 + "}")
    assert result.is_error and "nested too deeply" in result.output


async def test_describe_data_shows_tables_columns_keys_and_samples(tools: dict[str, Tool], db: Path) -> None:
    before = snapshot(db)
    result = await call_tool(tools, "describe_data", {})
    assert not result.is_error
    text = result.output
    for name, count in rows(db, "SELECT 'orders', count(*) FROM orders UNION ALL SELECT 'regions', count(*) "
                                "FROM regions"):
        assert f"### {name} ({count:,} rows)" in text
    assert "### customers" in text and "### products" in text
    assert "| unit_price | REAL |  |" in text
    assert "| region_id | INTEGER | → regions.id |" in text
    first_product = rows(db, "SELECT name FROM products ORDER BY id LIMIT 1")[0][0]
    assert f"| 1 | {first_product} |" in text
    assert snapshot(db) == before

    only = await call_tool(tools, "describe_data", {"table": "Regions"})
    assert "### regions (5 rows)" in only.output and "### orders" not in only.output
    assert table(only.output.split("Sample rows:")[1]) == [["1", "North"], ["2", "South"], ["3", "East"]]


@pytest.mark.parametrize("expression, answer", [
    ("1 + 2 * 3", "7"),
    ("(1200 - 950) / 950 * 100", "26.3157894736842"),
    ("2 ** 10", "1024"),
    ("2 ** -1", "0.5"),
    ("7 // 2 + 7 % 3", "4"),
    ("-3 + +2", "-1"),
    ("0.1 + 0.2", "0.3"),
    ("round(1234.5678, 2)", "1234.57"),
    ("sqrt(16) + abs(-4.5)", "8.5"),
    ("max(3, 7, 5) - min(3, 7)", "4"),
    ("13791824.13 / 24", "574659.33875"),
    ("10 ** 30", "1" + "0" * 30),
])
async def test_calculator_answers(tools: dict[str, Tool], expression: str, answer: str) -> None:
    result = await call_tool(tools, "calculator", {"expression": expression})
    assert (result.is_error, result.output) == (False, answer)


@pytest.mark.parametrize("expression, message", [
    ("__import__('os')", "function '__import__' is not allowed"),
    ("().__class__", "Attribute is not allowed"),
    ("open('/etc/passwd')", "function 'open' is not allowed"),
    ("x + 1", "Unknown name 'x'"),
    ("'a' * 3", "Only numbers are allowed"),
    ("True + 1", "Only numbers are allowed"),
    ("[1, 2]", "List is not allowed"),
    ("lambda: 1", "Lambda is not allowed"),
    ("9**9**9", "too large"),
    ("2 ** 100000", "too large"),
    ("1e308 * 10", "not a finite number"),
    ("exp(1000)", "too large"),
    ("1 / 0", "Division by zero"),
    ("5 // 0", "Division by zero"),
    ("5 % 0.0", "Division by zero"),
    ("2 ^ 3", "Use ** for powers"),
    ("1,234 + 1", "without thousands separators"),
    ("sqrt(-1)", "math domain error"),
    ("max(1)", "at least two numbers"),
    ("(" * 240 + "1" + ")" * 240, "Not a valid arithmetic expression"),
    ("1" * 501, "at most 500 characters"),
])
async def test_calculator_refusals(tools: dict[str, Tool], expression: str, message: str) -> None:
    result = await call_tool(tools, "calculator", {"expression": expression})
    assert result.is_error
    assert message in result.output
    assert result.seconds < 1.0  # refused up front, never computed


async def test_a_tool_that_crashes_becomes_an_error_result() -> None:
    """A bug inside a tool is reported to the model, not raised into the agent loop."""
    from pydantic import BaseModel

    from services.tools.base import Tool, call_tool

    class NoArgs(BaseModel):
        pass

    async def broken(_: NoArgs) -> str:
        raise OSError("disk on fire")

    tool = Tool(name="broken", description="always fails", args_model=NoArgs, run=broken)
    result = await call_tool({"broken": tool}, "broken", {})
    assert result.is_error and "failed unexpectedly (OSError)" in result.output
    assert "disk on fire" not in result.output  # internals stay in the server log
