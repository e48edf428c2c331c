"""Admin-registered read-only SQL sources (a SQLite file, a PostgreSQL URL) as `<name>__sql_query` and
`<name>__describe_data`.

SQLite sources reuse the sample database's tools (services/tools/sql.py: read-only handle, authorizer, a query
process that ends at its deadline). PostgreSQL sources run in a worker thread on a fresh connection per call:
a READ ONLY transaction in a session whose default is read-only, `statement_timeout` and
`idle_in_transaction_session_timeout` inside the server, the same statement check, rows streamed and capped.
Connection URLs hold passwords: every message that could carry one goes through `scrub`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit, urlunsplit

from pydantic import BaseModel, Field

from services.tools.base import Tool, ToolError

if TYPE_CHECKING:
    import psycopg

SEPARATOR = "__"
NAME = re.compile(r"[A-Za-z0-9-]+(_[A-Za-z0-9-]+)*")  # no "__": the separator must split a tool name once
NAME_MAX = 40  # "<name>__describe_data" stays within the 64 characters providers accept
MASK = "***"
CONNECT_TIMEOUT_S = 5
SAMPLE_ROWS = 3
COUNT_CAP = 100_000  # describe_data counts rows up to this, so a huge table costs a bounded scan
# Functions that act outside the transaction (other sessions, server files, settings); a read-only role is the
# real guard, this refuses the obvious ones with a readable message.
PG_DENIED_FUNCTIONS = frozenset({
    "set_config", "pg_terminate_backend", "pg_cancel_backend", "pg_reload_conf", "pg_rotate_logfile",
    "pg_read_file", "pg_read_binary_file", "pg_ls_dir", "pg_stat_file", "lo_import", "lo_export",
    "lo_from_bytea", "lo_put", "dblink", "dblink_exec", "dblink_connect", "pg_advisory_lock",
    "pg_advisory_xact_lock", "pg_notify", "pg_logical_emit_message", "pg_switch_wal", "pg_create_restore_point",
})
log = logging.getLogger(__name__)


class PgQueryArgs(BaseModel):
    """Arguments of a PostgreSQL source's sql_query."""

    query: str = Field(min_length=1, max_length=20_000,
                       description="One PostgreSQL SELECT (or WITH ... SELECT) statement.")


@dataclass(frozen=True, kw_only=True, slots=True)
class SqlSource:
    """One configured source; `url` may hold a password, so it is never shown (see `display_url`)."""

    name: str
    kind: str  # "sqlite", "postgresql", or "" when the configuration is invalid
    url: str = field(repr=False)
    problem: str | None = None

    @property
    def path(self) -> Path | None:
        """The SQLite file (`sqlite:////abs/file.db` or `sqlite:///relative.db`)."""
        return Path(unquote(urlsplit(self.url).path[1:])) if self.kind == "sqlite" else None

    @property
    def display_url(self) -> str:
        """The URL with its password and query values masked."""
        return mask_url(self.url)

    def status(self) -> str:
        """One line for the Settings page: ready, or why the source cannot be used."""
        if self.problem:
            return f"invalid: {self.problem}"
        if self.path is not None:
            return "ready" if self.path.is_file() else f"the file {self.path} does not exist"
        return "configured (connected on each call)"


def parse_sources(raw: Mapping[str, Any]) -> list[SqlSource]:
    """The sources of LANTERN_SQL_SOURCES; a bad entry is kept with its problem, never fatal."""
    sources = []
    for name, url in sorted(raw.items()):
        source = _parse_one(str(name), url)
        if source.problem:
            log.warning("SQL source %s: %s", name, source.problem)
        elif source.path is not None and not source.path.is_file():
            log.warning("SQL source %s: the file %s does not exist (its tools will say so)", name, source.path)
        sources.append(source)
    return sources


def _parse_one(name: str, url: Any) -> SqlSource:
    """One entry, checked: a usable name and a sqlite:/// or postgresql:// URL."""
    if not isinstance(url, str):
        return SqlSource(name=name, kind="", url="", problem="the value must be a URL string")
    if not NAME.fullmatch(name) or len(name) > NAME_MAX:
        return SqlSource(name=name, kind="", url=url, problem=(
            f"the name must be letters, digits, '-' and single '_' (at most {NAME_MAX} characters)"))
    scheme = urlsplit(url).scheme.lower()
    if scheme == "sqlite" and url.startswith("sqlite:///") and len(url) > len("sqlite:///"):
        return SqlSource(name=name, kind="sqlite", url=url)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        # SQLAlchemy's driver suffix is accepted, as DATABASE_URL takes it; libpq wants the plain scheme.
        return SqlSource(name=name, kind="postgresql", url="postgresql" + url[len(scheme):])
    return SqlSource(name=name, kind="", url=url, problem=(
        "the URL must be sqlite:////absolute/path.db or postgresql://user:password@host/database"))


def source_tools(source: SqlSource, *, max_rows: int = 200, timeout_s: float = 5.0) -> list[Tool]:
    """The two tools of a valid source, named `<name>__sql_query` and `<name>__describe_data`."""
    if source.problem:
        return []
    if source.kind == "sqlite":
        return _sqlite_tools(source, max_rows=max_rows, timeout_s=timeout_s)
    return _postgres_tools(source, max_rows=max_rows, timeout_s=timeout_s)


def _describe_help(name: str) -> str:
    """describe_data's description, as the sample database's says it."""
    return f"List the tables of the {name} database with their columns, types, row counts and sample rows."


def _query_help(name: str, engine: str, max_rows: int, timeout_s: float) -> str:
    """sql_query's description, as the sample database's says it, naming the source."""
    return (f"Run one read-only {engine} SELECT over the {name} database and get a Markdown table (at most "
            f"{max_rows} rows, {timeout_s:g} s). Call {name}{SEPARATOR}describe_data first to see tables and "
            "columns. Aggregate in SQL rather than fetching many rows.")


def _sqlite_tools(source: SqlSource, *, max_rows: int, timeout_s: float) -> list[Tool]:
    """The sample database's tools over the source's file, renamed, with a clear error for a missing file."""
    from services.tools.sql import sql_tools

    path = source.path
    assert path is not None
    query_tool, describe_tool = sql_tools(path, max_rows=max_rows, timeout_s=timeout_s)

    def guarded(tool: Tool) -> Tool:
        async def run(args: Any) -> str:
            # Checked here too so the model learns which source is missing, not only a file name.
            if not path.is_file():
                raise ToolError(f"The data source {source.name} is not available: its database file {path.name} "
                                "does not exist. Ask an administrator to check LANTERN_SQL_SOURCES.")
            return await tool.run(args)

        return dataclasses.replace(tool, run=run, source=f"sql:{source.name}")

    return [
        dataclasses.replace(guarded(query_tool), name=f"{source.name}{SEPARATOR}sql_query",
                            description=_query_help(source.name, "SQLite", max_rows, timeout_s)),
        dataclasses.replace(guarded(describe_tool), name=f"{source.name}{SEPARATOR}describe_data",
                            description=_describe_help(source.name)),
    ]


def _postgres_tools(source: SqlSource, *, max_rows: int, timeout_s: float) -> list[Tool]:
    """sql_query and describe_data over a PostgreSQL URL, each call in a worker thread."""
    from services.tools.sql import DescribeDataArgs

    async def sql_query(args: PgQueryArgs) -> str:
        check_pg_query(args.query)
        return await asyncio.to_thread(run_pg_query, source.url, args.query, max_rows, timeout_s,
                                       name=source.name)

    async def describe_data(args: DescribeDataArgs) -> str:
        return await asyncio.to_thread(describe_pg, source.url, args.table, timeout_s, name=source.name)

    # A backstop: the server stops a statement at statement_timeout, which gives the clearer message.
    backstop = timeout_s + CONNECT_TIMEOUT_S + 1
    return [
        Tool(name=f"{source.name}{SEPARATOR}sql_query", args_model=PgQueryArgs, run=sql_query, timeout_s=backstop,
             description=_query_help(source.name, "PostgreSQL", max_rows, timeout_s), source=f"sql:{source.name}"),
        Tool(name=f"{source.name}{SEPARATOR}describe_data", args_model=DescribeDataArgs, run=describe_data,
             timeout_s=backstop * 3, description=_describe_help(source.name), source=f"sql:{source.name}"),
    ]


def check_pg_query(query: str) -> None:
    """sql.py's statement check, plus PostgreSQL functions that reach outside the read-only transaction."""
    from services.tools.sql import ONLY_SELECT, check_read_only, split_statements

    check_read_only(query)
    bad = sorted({w.lower() for w in split_statements(query)[0]} & PG_DENIED_FUNCTIONS)
    if bad:
        raise ToolError(f"{ONLY_SELECT}; the function {', '.join(bad)} is not allowed.")


# ---- PostgreSQL (blocking: call in a worker thread) --------------------------------------------------------


def connect_read_only(url: str, timeout_s: float) -> psycopg.Connection[Any]:
    """A connection whose every transaction is read-only and whose statements stop at `timeout_s`."""
    import psycopg

    ms = max(1, int(timeout_s * 1000))
    conn = psycopg.connect(url, autocommit=True, connect_timeout=CONNECT_TIMEOUT_S,
                           application_name="lantern-sql-source")
    try:
        conn.execute("SET default_transaction_read_only = on")
        conn.execute(f"SET statement_timeout = {ms}")
        # A transaction this app leaves open by accident must not hold locks on someone else's database.
        conn.execute(f"SET idle_in_transaction_session_timeout = {2 * ms + 1000}")
        conn.autocommit = False
        conn.read_only = True  # each transaction starts with BEGIN READ ONLY
    except BaseException:
        conn.close()
        raise
    return conn


def run_pg_query(url: str, query: str, max_rows: int, timeout_s: float, *, name: str = "source") -> str:
    """Run one statement (no statement check: callers make it) in a read-only transaction; a Markdown table."""

    try:
        with _session(url, timeout_s, name) as conn, conn.cursor() as cursor:
            # stream() fetches row by row and cancels the rest when we stop: a big table is not all transferred.
            rows = list(itertools.islice(cursor.stream(query), max_rows + 1))
            columns = [d.name for d in cursor.description or ()] or _result_columns(conn, query)
    except ToolError:
        raise
    except Exception as exc:
        raise _pg_error(exc, url, name, timeout_s) from None
    from services.tools.sql import result_table

    return result_table(columns, rows, max_rows)


def _result_columns(conn: psycopg.Connection[Any], query: str) -> list[str]:
    """The column names a statement would return, without running it (stream() forgets them for no rows)."""
    from psycopg import pq

    pgconn = conn.pgconn
    prepared = pgconn.prepare(b"", query.encode())
    if prepared.status != pq.ExecStatus.COMMAND_OK:
        return []
    described = pgconn.describe_prepared(b"")
    if described.status != pq.ExecStatus.COMMAND_OK:
        return []
    return [(described.fname(i) or b"?").decode() for i in range(described.nfields)]


def describe_pg(url: str, table: str | None, timeout_s: float, *, name: str = "source") -> str:
    """Tables (public first, then other non-system schemas) with columns, keys, row counts and sample rows."""
    try:
        with _session(url, timeout_s, name) as conn:
            tables: list[tuple[str, str]] = conn.execute(
                "SELECT table_schema, table_name FROM information_schema.tables "
                "WHERE table_schema NOT IN ('pg_catalog', 'information_schema') AND table_schema NOT LIKE 'pg\\_%' "
                "ORDER BY table_schema <> 'public', table_schema, table_name").fetchall()
            if table is not None:
                wanted = table.strip().lower()
                tables = [t for t in tables if wanted in (t[1].lower(), f"{t[0]}.{t[1]}".lower())]
                if not tables:
                    raise ToolError(f"No table named '{table}'. Call {name}{SEPARATOR}describe_data without a "
                                    "table to list them.")
            return "\n\n".join(_describe_pg_table(conn, schema, t) for schema, t in tables) or \
                "The database has no tables."
    except ToolError:
        raise
    except Exception as exc:
        raise _pg_error(exc, url, name, timeout_s) from None


def _describe_pg_table(conn: psycopg.Connection[Any], schema: str, table: str) -> str:
    """One table's section: columns with types and keys, a bounded row count, then sample rows."""
    from psycopg import sql

    from services.tools.sql import markdown_table

    ident = sql.Identifier(schema, table)
    qualified = ident.as_string(conn)
    keys: dict[str, str] = {}
    for column, kind, ref_table, ref_column in conn.execute(
            "SELECT a.attname, c.contype, rc.relname, ra.attname FROM pg_constraint c "
            "JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = ANY (c.conkey) "
            "LEFT JOIN pg_class rc ON rc.oid = c.confrelid "
            "LEFT JOIN pg_attribute ra ON ra.attrelid = c.confrelid "
            "  AND ra.attnum = c.confkey[array_position(c.conkey, a.attnum)] "
            "WHERE c.conrelid = %s::regclass AND c.contype IN ('p', 'f')", (qualified,)):
        keys[column] = "primary key" if kind == "p" else keys.get(column) or f"→ {ref_table}.{ref_column}"
    columns = [(c, t, keys.get(c, "")) for c, t in conn.execute(
        "SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = %s AND table_name = %s "
        "ORDER BY ordinal_position", (schema, table))]
    count = conn.execute(sql.SQL("SELECT count(*) FROM (SELECT 1 FROM {} LIMIT %s) AS capped").format(ident),
                         (COUNT_CAP + 1,)).fetchone()
    counted = int(count[0]) if count else 0
    rows = f"more than {COUNT_CAP:,} rows" if counted > COUNT_CAP else f"{counted:,} rows"
    cursor = conn.execute(sql.SQL("SELECT * FROM {} LIMIT %s").format(ident), (SAMPLE_ROWS,))
    samples = cursor.fetchall()
    header = [d.name for d in cursor.description or ()]
    title = table if schema == "public" else f"{schema}.{table}"
    return (f"### {title} ({rows})\n\n" + markdown_table(["column", "type", "key"], columns)
            + "\n\nSample rows:\n\n" + markdown_table(header, samples))


class _session:
    """A read-only connection whose transaction is always rolled back and which is always closed."""

    def __init__(self, url: str, timeout_s: float, name: str) -> None:
        self.url, self.timeout_s, self.name = url, timeout_s, name
        self.conn: psycopg.Connection[Any] | None = None

    def __enter__(self) -> psycopg.Connection[Any]:
        try:
            self.conn = connect_read_only(self.url, self.timeout_s)
        except Exception as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ToolError(f"Cannot reach the data source {self.name} ({mask_url(self.url)}): "
                            f"{scrub(first, self.url)}. Ask an administrator to check it.") from None
        return self.conn

    def __exit__(self, *_: object) -> None:
        assert self.conn is not None
        try:
            self.conn.rollback()  # nothing is ever committed, even if a write slipped through every check
        except Exception:  # the connection may be broken; closing is what matters
            pass
        finally:
            self.conn.close()


def _pg_error(exc: Exception, url: str, name: str, timeout_s: float) -> ToolError:
    """A psycopg error as a message the model can act on, with the URL's secrets removed."""
    import psycopg
    from psycopg import errors

    from services.tools.sql import stopped_message

    message = scrub(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__, url)
    if isinstance(exc, errors.QueryCanceled):
        return ToolError(stopped_message(timeout_s))
    if isinstance(exc, errors.ReadOnlySqlTransaction):
        return ToolError(f"Query refused: the data source {name} is read-only ({message}).")
    if "multiple commands" in message:
        from services.tools.sql import ONLY_SELECT

        return ToolError(f"{ONLY_SELECT}; send one query without ';' between statements.")
    if isinstance(exc, errors.InsufficientPrivilege):
        return ToolError(f"Query refused: {message}.")
    if isinstance(exc, psycopg.Error):
        return ToolError(f"PostgreSQL error: {message}. Call {name}{SEPARATOR}describe_data to check table and "
                         "column names.")
    log.warning("SQL source %s failed: %s", name, type(exc).__name__)
    return ToolError(f"The data source {name} failed ({type(exc).__name__}); try something else.")


def mask_url(url: str) -> str:
    """The URL with its password and query values masked."""
    try:
        parts = urlsplit(url)
        netloc = parts.netloc
        if parts.password is not None:
            user, _, host = netloc.rpartition("@")
            netloc = f"{user.partition(':')[0]}:{MASK}@{host}"
        query = urlencode([(key, MASK) for key, _ in parse_qsl(parts.query)], safe="*")
        return urlunsplit(parts._replace(netloc=netloc, query=query))
    except ValueError:  # an unparsable URL may hold anything
        return MASK


def scrub(text: str, url: str) -> str:
    """`text` without the URL, its password or its query values, in plain or percent-encoded form."""
    secrets: list[str] = [url]
    try:
        parts = urlsplit(url)
        if parts.password:
            secrets += [parts.password, unquote(parts.password)]
        secrets += [v for _, v in parse_qsl(parts.query) if len(v) > 2]
    except ValueError:
        pass
    for secret in sorted({s for s in secrets if s}, key=len, reverse=True):
        text = text.replace(secret, MASK if secret != url else mask_url(url))
    return text


async def probe(source: SqlSource, timeout_s: float = 5.0) -> str:
    """The source's status checked now: a PostgreSQL source is connected to (read-only, `SELECT 1`)."""
    if source.problem or source.kind != "postgresql":
        return source.status()

    def connect() -> str:
        try:
            with _session(source.url, timeout_s, source.name) as conn:
                conn.execute("SELECT 1")
        except ToolError as exc:
            return str(exc)
        except Exception as exc:
            return str(_pg_error(exc, source.url, source.name, timeout_s))
        return "connected (read-only)"

    return await asyncio.to_thread(connect)
