"""Read-only SQL over a SQLite file: `sql_query` (run in a process that ends at its deadline) and `describe_data`."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field

from services.tools.base import Tool, ToolError
from services.tools.query_process import START_ALLOWANCE_S, run_isolated

MAX_CELL_CHARS = 120
SAMPLE_ROWS = 3
MAX_VALUE_BYTES = 1_000_000  # caps strings/blobs a query can build (zeroblob, printf, replace bombs)

# Words that only appear in statements that change something; none is valid inside a read-only query.
WRITE_WORDS = frozenset({
    "INSERT", "UPDATE", "DELETE", "REPLACE", "UPSERT", "MERGE", "DROP", "CREATE", "ALTER", "TRUNCATE",
    "ATTACH", "DETACH", "PRAGMA", "VACUUM", "REINDEX", "ANALYZE", "BEGIN", "COMMIT", "ROLLBACK",
    "SAVEPOINT", "RELEASE",
})
ALLOWED_FUNCTIONS = frozenset({
    # core scalar
    "abs", "char", "coalesce", "concat", "concat_ws", "format", "glob", "hex", "ifnull", "iif", "instr",
    "length", "like", "likelihood", "likely", "lower", "ltrim", "max", "min", "nullif", "octet_length",
    "printf", "quote", "random", "replace", "round", "rtrim", "sign", "substr", "substring", "trim",
    "typeof", "unicode", "unlikely", "upper",
    # aggregates and window functions
    "avg", "count", "group_concat", "string_agg", "sum", "total", "row_number", "rank", "dense_rank",
    "percent_rank", "cume_dist", "ntile", "lag", "lead", "first_value", "last_value", "nth_value",
    # dates
    "date", "time", "datetime", "julianday", "unixepoch", "strftime", "timediff",
    # math
    "acos", "asin", "atan", "atan2", "ceil", "ceiling", "cos", "degrees", "exp", "floor", "ln", "log",
    "log10", "log2", "mod", "pi", "pow", "power", "radians", "sin", "sqrt", "tan", "trunc",
    # json
    "json", "json_array", "json_array_length", "json_extract", "json_object", "json_type", "json_valid",
    "json_group_array", "json_group_object", "->", "->>",
})
ALLOWED_ACTIONS = frozenset({sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_RECURSIVE})
READ_ONLY_DENIAL = ("only plain SELECTs over the tables are allowed (table-valued functions such as "
                    "pragma_table_info or json_each are not available; call describe_data for the schema)")
ONLY_SELECT = "Only a single read-only SELECT (or WITH ... SELECT) statement is allowed"


class SqlQueryArgs(BaseModel):
    """Arguments of sql_query."""

    query: str = Field(min_length=1, max_length=20_000,
                       description="One SQLite SELECT (or WITH ... SELECT) statement.")


class DescribeDataArgs(BaseModel):
    """Arguments of describe_data."""

    table: str | None = Field(default=None, description="Only this table; omit to describe every table.")


def sql_tools(db_path: Path, *, max_rows: int = 200, timeout_s: float = 5.0) -> list[Tool]:
    """The two SQL tools bound to one database file."""

    async def sql_query(args: SqlQueryArgs) -> str:
        check_read_only(args.query)
        job = {"db": str(db_path), "query": args.query, "max_rows": max_rows, "timeout_s": timeout_s,
               "late": stopped_message(timeout_s)}
        return await asyncio.to_thread(run_isolated, job, timeout_s)

    async def describe_data(args: DescribeDataArgs) -> str:
        return await asyncio.to_thread(_describe, db_path, args.table, timeout_s)

    # The outer timeout is a backstop: the query's own process stops first with a clearer message.
    backstop = timeout_s + START_ALLOWANCE_S + 1
    return [
        Tool(name="sql_query", args_model=SqlQueryArgs, run=sql_query, timeout_s=backstop,
             description=(f"Run one read-only SQLite SELECT over the business database and get a Markdown "
                          f"table (at most {max_rows} rows, {timeout_s:g} s). Call describe_data first to "
                          "see tables and columns. Aggregate in SQL rather than fetching many rows.")),
        Tool(name="describe_data", args_model=DescribeDataArgs, run=describe_data, timeout_s=backstop,
             description="List the database tables with their columns, types, row counts and sample rows."),
    ]


def check_read_only(query: str) -> None:
    """Refuse anything but one statement that starts with SELECT or WITH and contains no write keyword."""
    statements = split_statements(query)
    if len(statements) != 1:
        found = "no statement" if not statements else f"{len(statements)} statements"
        raise ToolError(f"{ONLY_SELECT}; found {found}. Send one query without ';' between statements.")
    words = statements[0]
    if words[0] not in ("SELECT", "WITH"):
        raise ToolError(f"{ONLY_SELECT}; this statement starts with {words[0]}.")
    bad = sorted({w for w in words if w in WRITE_WORDS})
    if bad:
        raise ToolError(f"{ONLY_SELECT}; {', '.join(bad)} is not allowed. "
                        "Quote an identifier with double quotes if it is a column name.")


_WORD = re.compile(r"[^\W\d][\w$]*")  # SQLite identifiers may hold any letter
_CLOSERS = {"'": "'", '"': '"', "`": "`", "[": "]"}


def split_statements(sql: str) -> list[list[str]]:
    """Tokens of each non-empty statement split on ';', ignoring what is inside quotes and comments."""
    # Bare words come back upper-cased; any other token is its first character (a quote, a digit, '('),
    # so a statement that starts with anything but a word is visible to the caller.
    statements: list[list[str]] = []
    current: list[str] = []
    i, n = 0, len(sql)
    while i < n:
        ch = sql[i]
        if ch in _CLOSERS:
            end = sql.find(_CLOSERS[ch], i + 1)
            # SQL escapes a quote by doubling it, which this loop sees as two adjacent quoted runs.
            current.append(ch)
            i = n if end < 0 else end + 1
        elif sql.startswith("--", i):
            end = sql.find("\n", i)
            i = n if end < 0 else end + 1
        elif sql.startswith("/*", i):
            end = sql.find("*/", i + 2)
            i = n if end < 0 else end + 2
        elif ch == ";":
            if current:
                statements.append(current)
            current = []
            i += 1
        elif match := _WORD.match(sql, i):
            word = match.group().upper()
            # replace(...) is a harmless string function; REPLACE INTO is a write.
            if word == "REPLACE" and sql[match.end():].lstrip().startswith("("):
                word = "REPLACE("
            current.append(word)
            i = match.end()
        else:
            if not ch.isspace():
                current.append(ch)
            i += 1
    if current:
        statements.append(current)
    return statements


def open_read_only(db_path: Path, timeout_s: float) -> tuple[sqlite3.Connection, list[str]]:
    """A connection that cannot write, attach or load code, and aborts after `timeout_s`; plus its denials."""
    if not db_path.is_file():
        raise ToolError(f"The database file {db_path.name} does not exist; ask an administrator to configure it.")
    conn = sqlite3.connect(f"{db_path.resolve().as_uri()}?mode=ro", uri=True, isolation_level=None)
    try:
        conn.execute("PRAGMA query_only=ON")
        conn.execute("PRAGMA trusted_schema=OFF")  # views/triggers of a foreign file may not call risky functions
        conn.execute("SELECT count(*) FROM sqlite_master").fetchone()  # fail here on a corrupt or locked file
    except sqlite3.Error as exc:
        conn.close()
        raise ToolError(f"Cannot read the database {db_path.name}: {exc}. Ask an administrator to check it.") from exc
    conn.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)
    conn.setlimit(sqlite3.SQLITE_LIMIT_LENGTH, MAX_VALUE_BYTES)
    denials: list[str] = []
    conn.set_authorizer(_authorizer(denials))
    deadline = time.monotonic() + timeout_s
    # Checked every 1000 VM steps: returning True aborts the running statement with "interrupted".
    conn.set_progress_handler(lambda: time.monotonic() > deadline, 1000)
    return conn, denials


def _authorizer(denials: list[str]) -> Callable[[int, str | None, str | None, str | None, str | None], int]:
    """Allow reading and a known-safe function list; record why anything else was denied."""

    def authorize(action: int, arg1: str | None, arg2: str | None, _db: str | None, _src: str | None) -> int:
        if action in ALLOWED_ACTIONS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION and (arg2 or "").lower() in ALLOWED_FUNCTIONS:
            return sqlite3.SQLITE_OK
        if action == sqlite3.SQLITE_FUNCTION:
            denials.append(f"the function {arg2}() is not allowed")
        elif action == sqlite3.SQLITE_PRAGMA:
            denials.append("PRAGMA and pragma_* functions are not allowed; call describe_data instead")
        else:
            denials.append(READ_ONLY_DENIAL)
        return sqlite3.SQLITE_DENY

    return authorize


def run_query(db_path: Path, query: str, max_rows: int, timeout_s: float) -> str:
    """Execute (in a query process) and format the rows as a Markdown table."""
    conn, denials = open_read_only(db_path, timeout_s)
    try:
        cursor = conn.execute(query)
        rows = cursor.fetchmany(max_rows + 1)
        columns = [d[0] for d in cursor.description or ()]
    except sqlite3.Error as exc:
        raise _tool_error(exc, denials, timeout_s) from exc
    finally:
        conn.close()
    return result_table(columns, rows, max_rows)


def result_table(columns: list[str], rows: list[Any], max_rows: int) -> str:
    """A query's rows (fetched up to max_rows + 1) as Markdown, saying when there were more."""
    if not columns:
        raise ToolError(f"{ONLY_SELECT}; this statement returned no columns.")
    if len(rows) > max_rows:
        return (markdown_table(columns, rows[:max_rows]) + f"\n\nMore than {max_rows} rows; showing first "
                f"{max_rows}. Aggregate or add LIMIT/WHERE to see what matters.")
    return markdown_table(columns, rows) + f"\n\n{len(rows)} row{'' if len(rows) == 1 else 's'}"


def _describe(db_path: Path, table: str | None, timeout_s: float) -> str:
    """Tables, columns, foreign keys, row counts and a few sample rows, as Markdown."""
    conn, denials = open_read_only(db_path, timeout_s)
    try:
        conn.set_authorizer(None)  # our own fixed statements below; PRAGMA table_info needs it
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type IN ('table', 'view') AND name NOT LIKE 'sqlite_%' "
            "ORDER BY name")]
        if table is not None:
            # SQLite table names are case-insensitive, so "Orders" means orders.
            wanted = [n for n in names if n.lower() == table.strip().lower()]
            if not wanted:
                raise ToolError(f"No table named '{table}'. Tables: {', '.join(names) or 'none'}.")
            names = wanted
        return "\n\n".join(_describe_table(conn, name) for name in names) or "The database has no tables."
    except sqlite3.Error as exc:
        raise _tool_error(exc, denials, timeout_s) from exc
    finally:
        conn.close()


def _describe_table(conn: sqlite3.Connection, name: str) -> str:
    """One table's section: columns with types and keys, then sample rows."""
    quoted = '"' + name.replace('"', '""') + '"'
    count = conn.execute(f"SELECT count(*) FROM {quoted}").fetchone()[0]
    links = {r[3]: f"→ {r[2]}.{r[4]}" for r in conn.execute(f"PRAGMA foreign_key_list({quoted})")}
    columns = [(r[1], r[2] or "ANY", "primary key" if r[5] else links.get(r[1], ""))
               for r in conn.execute(f"PRAGMA table_info({quoted})")]
    cursor = conn.execute(f"SELECT * FROM {quoted} LIMIT {SAMPLE_ROWS}")
    samples = cursor.fetchall()
    header = [d[0] for d in cursor.description or ()]
    return (f"### {name} ({count:,} rows)\n\n" + markdown_table(["column", "type", "key"], columns)
            + "\n\nSample rows:\n\n" + markdown_table(header, samples))


def _tool_error(exc: sqlite3.Error, denials: list[str], timeout_s: float) -> ToolError:
    """Turn a sqlite3 error into a message the model can act on."""
    message = str(exc).rstrip(".")
    if denials:
        # SQLite may deny an internal step first; the pragma or function denial is the one to explain.
        specific = [d for d in denials if d != READ_ONLY_DENIAL] or denials
        return ToolError(f"Query refused: {specific[0]}.")
    if message == "interrupted":
        return ToolError(stopped_message(timeout_s))
    if "one statement at a time" in message:
        return ToolError(f"{ONLY_SELECT}.")
    if "string or blob too big" in message:
        return ToolError(f"A value in the query grew past {MAX_VALUE_BYTES:,} bytes; build smaller strings.")
    return ToolError(f"SQLite error: {message}. Call describe_data to check table and column names.")


def stopped_message(timeout_s: float) -> str:
    """What the model reads when its query ran out of time."""
    return (f"The query was stopped after {timeout_s:g} s. Add WHERE/LIMIT, avoid unbounded recursive CTEs, "
            "cross joins and very long strings, or aggregate.")


def markdown_table(columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-style Markdown table; cells are escaped and cut so one value cannot flood the output."""
    lines = ["| " + " | ".join(_cell(c) for c in columns) + " |", "|" + "---|" * len(columns)]
    lines += ["| " + " | ".join(_cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def _cell(value: Any) -> str:
    """One value as Markdown-safe text."""
    if value is None:
        text = "NULL"
    elif isinstance(value, bytes):
        text = f"<blob {len(value)} bytes>"
    elif isinstance(value, float):
        text = repr(round(value, 6))  # sums of REAL cents print as 123.45, not 123.45000000000002
    else:
        text = str(value)
    text = text.replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")
    return text if len(text) <= MAX_CELL_CHARS else text[:MAX_CELL_CHARS - 1] + "…"
