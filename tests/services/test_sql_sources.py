"""Admin-registered SQL sources (LANTERN_SQL_SOURCES): SQLite files and PostgreSQL URLs as read-only tools."""

from __future__ import annotations

import json
import os
import sqlite3
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

from app.context import Lantern
from app.settings import Settings
from services.tools.base import Tool, ToolError, call_tool
from services.tools.sources import SqlSource, mask_url, parse_sources, run_pg_query, scrub, source_tools

PG_URL = os.environ.get("TEST_DATABASE_URL")
needs_pg = pytest.mark.skipif(not PG_URL, reason="TEST_DATABASE_URL is not set: PostgreSQL tests need a server")
PASSWORD = "s3cret-source-pw"


def make_shop(path: Path) -> Path:
    """A small SQLite database: one table with rows."""
    with sqlite3.connect(path) as conn:
        conn.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, name TEXT, price REAL)")
        conn.executemany("INSERT INTO items (name, price) VALUES (?, ?)",
                         [("lamp", 12.5), ("wick", 0.75), ("oil", 4.0)])
    conn.close()
    return path


def tools_of(name: str, url: str, **kwargs: Any) -> dict[str, Tool]:
    """The tools of one source, by name."""
    (source,) = parse_sources({name: url})
    assert source.problem is None, source.problem
    return {t.name: t for t in source_tools(source, **kwargs)}


# ---- SQLite -----------------------------------------------------------------------------------------------


async def test_sqlite_source_answers_queries(tmp_path: Path) -> None:
    tools = tools_of("shop", f"sqlite:///{make_shop(tmp_path / 'shop.db')}")
    assert set(tools) == {"shop__sql_query", "shop__describe_data"}
    result = await call_tool(tools, "shop__sql_query", {"query": "SELECT name, price FROM items ORDER BY price"})
    assert not result.is_error, result.output
    assert "| wick | 0.75 |" in result.output and "3 rows" in result.output
    described = await call_tool(tools, "shop__describe_data", {})
    assert "### items (3 rows)" in described.output and "primary key" in described.output


@pytest.mark.parametrize("query", ["DROP TABLE items", "INSERT INTO items (name) VALUES ('x')",
                                   "ATTACH DATABASE 'other.db' AS other",
                                   "SELECT 1; DELETE FROM items"])
async def test_sqlite_source_refuses_writes(tmp_path: Path, query: str) -> None:
    db = make_shop(tmp_path / "shop.db")
    tools = tools_of("shop", f"sqlite:///{db}")
    result = await call_tool(tools, "shop__sql_query", {"query": query})
    assert result.is_error and "Only a single read-only SELECT" in result.output
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT count(*) FROM items").fetchone()[0] == 3
    conn.close()
    assert not (tmp_path / "other.db").exists()


async def test_sqlite_source_runaway_query_stops_at_the_limit(tmp_path: Path) -> None:
    tools = tools_of("shop", f"sqlite:///{make_shop(tmp_path / 'shop.db')}", timeout_s=1.0)
    started = time.monotonic()
    result = await call_tool(tools, "shop__sql_query", {"query": (
        "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n) SELECT count(*) FROM n")})
    assert result.is_error and "stopped after 1 s" in result.output
    assert time.monotonic() - started < 8  # 1 s plus, at worst, a new query process starting


async def test_sqlite_source_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    missing = tmp_path / "gone.db"
    (source,) = parse_sources({"archive": f"sqlite:///{missing}"})  # no crash at start
    assert source.status() == f"the file {missing} does not exist"
    tools = {t.name: t for t in source_tools(source)}
    for name, args in (("archive__sql_query", {"query": "SELECT 1"}), ("archive__describe_data", {})):
        result = await call_tool(tools, name, args)
        assert result.is_error
        assert "data source archive is not available" in result.output and "gone.db" in result.output


def test_invalid_sources_are_reported_not_fatal() -> None:
    sources = {s.name: s for s in parse_sources({
        "bad__name": "sqlite:////x.db", "ftp": "ftp://host/file", "pg": f"postgresql://me:{PASSWORD}@db/x"})}
    assert sources["bad__name"].problem and sources["ftp"].problem and sources["pg"].problem is None
    assert source_tools(sources["ftp"]) == []
    assert PASSWORD not in repr(sources["pg"]) and PASSWORD not in sources["pg"].display_url
    assert sources["pg"].display_url == "postgresql://me:***@db/x"


def test_masking() -> None:
    url = f"postgresql://me:{PASSWORD}@db.example/sales?sslpassword=keyphrase"
    assert PASSWORD not in mask_url(url) and "keyphrase" not in mask_url(url)
    text = scrub(f"failed for {url} with password {PASSWORD} and keyphrase", url)
    assert PASSWORD not in text and "keyphrase" not in text and "db.example" in text
    assert PASSWORD not in repr(Settings(LANTERN_SQL_SOURCES=json.dumps({"pg": url})))  # type: ignore[call-arg]


# ---- the catalog -----------------------------------------------------------------------------------------


@pytest.fixture
def shop_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """LANTERN_SQL_SOURCES with a SQLite source, set before the `lantern` fixture reads the settings."""
    db = make_shop(tmp_path / "shop.db")
    monkeypatch.setenv("LANTERN_SQL_SOURCES", json.dumps({"shop": f"sqlite:///{db}",
                                                          "missing": f"sqlite:///{tmp_path / 'no.db'}"}))
    return db


@pytest.fixture
async def lantern_with_sources(shop_env: Path, tmp_path: Path) -> AsyncIterator[Lantern]:
    """The services with the sources configured (on SQLite: the catalog does not depend on the database)."""
    instance = Lantern.create(Settings(DATABASE_URL=f"sqlite:///{tmp_path / 'lantern.db'}"))  # type: ignore[call-arg]
    await instance.startup()
    yield instance
    await instance.shutdown()


async def test_sources_appear_in_the_catalog(lantern_with_sources: Lantern) -> None:
    tools = await lantern_with_sources.tools.available("local")
    for name in ("sql_query", "describe_data", "calculator", "shop__sql_query", "shop__describe_data",
                 "missing__sql_query", "missing__describe_data"):
        assert name in tools
    chosen = await lantern_with_sources.tools.select(["shop__sql_query"], user_id="local")
    result = await call_tool(chosen, "shop__sql_query", {"query": "SELECT count(*) AS n FROM items"})
    assert "| 3 |" in result.output
    statuses = {s.name: s.status() for s in lantern_with_sources.tools.sources}
    assert statuses["shop"] == "ready" and "does not exist" in statuses["missing"]


async def test_sources_through_the_lantern_fixture(shop_env: Path, lantern: Lantern) -> None:
    tools = await lantern.tools.available("local")
    assert {"shop__sql_query", "shop__describe_data"} <= set(tools)


# ---- PostgreSQL ------------------------------------------------------------------------------------------


def with_password(url: str, password: str) -> str:
    """The URL with this password (the test server trusts loopback, so any password connects)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    user = parts.username or "postgres"
    return urlunsplit(parts._replace(netloc=f"{user}:{password}@{host}"))


@pytest.fixture
def pg_source() -> Iterator[tuple[str, str]]:
    """A schema of our own in the test database with a table of rows; (URL with a password, schema)."""
    import psycopg

    assert PG_URL
    schema = f"src_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(PG_URL, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")
        conn.execute(f"CREATE TABLE {schema}.items (id serial PRIMARY KEY, name text, price numeric(8, 2))")
        conn.execute(f"INSERT INTO {schema}.items (name, price) VALUES ('lamp', 12.50), ('wick', 0.75), ('oil', 4)")
    try:
        yield with_password(PG_URL, PASSWORD), schema
    finally:
        with psycopg.connect(PG_URL, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@needs_pg
async def test_postgres_source_answers_queries(pg_source: tuple[str, str]) -> None:
    url, schema = pg_source
    tools = tools_of("warehouse", url, max_rows=2)
    result = await call_tool(tools, "warehouse__sql_query",
                             {"query": f"SELECT name, price FROM {schema}.items ORDER BY price"})
    assert not result.is_error, result.output
    assert "| wick | 0.75 |" in result.output and "| oil | 4.00 |" in result.output
    assert "showing first 2" in result.output and "lamp" not in result.output
    empty = await call_tool(tools, "warehouse__sql_query",
                            {"query": f"SELECT name AS nothing FROM {schema}.items WHERE price < 0"})
    assert not empty.is_error and "| nothing |" in empty.output and "0 rows" in empty.output
    described = await call_tool(tools, "warehouse__describe_data", {"table": f"{schema}.items"})
    assert f"### {schema}.items (3 rows)" in described.output, described.output
    assert "| id | integer | primary key |" in described.output and "Sample rows" in described.output


@needs_pg
@pytest.mark.parametrize("query", ["DROP TABLE {schema}.items", "UPDATE {schema}.items SET price = 0",
                                   "SELECT set_config('default_transaction_read_only', 'off', false)",
                                   "SELECT 1; DELETE FROM {schema}.items"])
async def test_postgres_source_statement_check(pg_source: tuple[str, str], query: str) -> None:
    url, schema = pg_source
    result = await call_tool(tools_of("warehouse", url), "warehouse__sql_query",
                             {"query": query.format(schema=schema)})
    assert result.is_error and "Only a single read-only SELECT" in result.output


@needs_pg
@pytest.mark.parametrize("statement", [
    "UPDATE {schema}.items SET price = 0",
    "WITH gone AS (DELETE FROM {schema}.items RETURNING *) SELECT count(*) FROM gone",
    "SELECT nextval(pg_get_serial_sequence('{schema}.items', 'id'))"])
def test_postgres_read_only_transaction_refuses_writes(pg_source: tuple[str, str], statement: str) -> None:
    import psycopg

    url, schema = pg_source
    with pytest.raises(ToolError, match="is read-only") as caught:  # the statement check is bypassed here
        run_pg_query(url, statement.format(schema=schema), 10, 5.0, name="warehouse")
    assert PASSWORD not in str(caught.value)
    assert PG_URL
    with psycopg.connect(PG_URL) as conn:
        row = conn.execute(f"SELECT count(*), sum(price) FROM {schema}.items").fetchone()
    assert row is not None and row[0] == 3 and float(row[1]) == 17.25


@needs_pg
async def test_postgres_statement_timeout(pg_source: tuple[str, str]) -> None:
    url, _ = pg_source
    tools = tools_of("warehouse", url, timeout_s=1.0)
    started = time.monotonic()
    result = await call_tool(tools, "warehouse__sql_query", {"query": "SELECT pg_sleep(10)"})
    assert result.is_error and "stopped after 1 s" in result.output
    assert time.monotonic() - started < 4


@needs_pg
async def test_postgres_errors_never_show_the_password(pg_source: tuple[str, str]) -> None:
    url, _ = pg_source
    bad_db = urlunsplit(urlsplit(url)._replace(path="/no_such_database_here"))
    result = await call_tool(tools_of("ghost", bad_db), "ghost__sql_query", {"query": "SELECT 1"})
    assert result.is_error and "Cannot reach the data source ghost" in result.output
    assert "no_such_database_here" in result.output and PASSWORD not in result.output
    closed_port = urlunsplit(urlsplit(url)._replace(netloc=f"postgres:{PASSWORD}@127.0.0.1:1"))
    result = await call_tool(tools_of("ghost", closed_port), "ghost__describe_data", {})
    assert result.is_error and PASSWORD not in result.output and "***" in result.output
    result = await call_tool(tools_of("warehouse", url), "warehouse__sql_query", {"query": "SELECT nope FROM nada"})
    assert result.is_error and "PostgreSQL error" in result.output and PASSWORD not in result.output


def test_source_repr_hides_the_url() -> None:
    source = SqlSource(name="pg", kind="postgresql", url=f"postgresql://me:{PASSWORD}@db/x")
    assert PASSWORD not in repr(source) and PASSWORD not in " ".join([source.display_url, source.status()])
