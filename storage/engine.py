"""Engine creation, connectivity checks and the thread-offloading database handle."""

from __future__ import annotations

import asyncio
import contextvars
import functools
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import event, text
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import DisconnectionError, SQLAlchemyError
from sqlmodel import Session, create_engine

from storage.migrations import migrate

T = TypeVar("T")
PING_IDLE_S = 5.0  # a pooled PostgreSQL connection idle longer than this is checked before use


class DatabaseUnavailable(RuntimeError):
    """The database URL could not be opened; the message names the URL (without password)."""


def safe_url(url: str) -> str:
    """The URL with any password masked, fit for messages and logs."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # an unparsable URL is shown as a placeholder, never raw
        return "<unparsable database URL>"


def make_engine(url: str) -> Engine:
    """An engine for SQLite (WAL, busy timeout) or PostgreSQL (psycopg 3)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    if parsed.drivername.startswith("sqlite"):
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(parsed, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    engine = create_engine(parsed, connect_args={"connect_timeout": 5})
    event.listen(engine, "before_cursor_execute", _without_nul, retval=True)
    event.listen(engine, "checkout", _ping_if_idle)
    event.listen(engine, "checkin", _mark_used)
    return engine


class Database:
    """The app's database; every call runs in its own worker threads, never on the event loop.

    Few threads, on purpose (issue #9): SQLAlchemy work is Python that holds the GIL, and with the default
    executor's six threads all busy (58 runs starting or ending at once) the event loop got a seventh of
    the interpreter and streams stalled for up to a second. SQLite has one writer anyway; PostgreSQL gets
    a few threads so a slow query does not hold up the rest.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self._threads = ThreadPoolExecutor(max_workers=1 if self.is_sqlite else 3, thread_name_prefix="lantern-db")

    @property
    def is_sqlite(self) -> bool:
        """Whether this is a SQLite database."""
        return self.engine.dialect.name == "sqlite"

    def open(self) -> None:
        """Connect and bring the schema up to date, or raise DatabaseUnavailable."""
        try:
            with self.engine.begin() as conn:
                conn.execute(text("SELECT 1"))
            migrate(self.engine)
        except SQLAlchemyError as exc:
            cause = type(getattr(exc, "orig", None) or exc).__name__
            raise DatabaseUnavailable(
                f"Cannot open the database at {safe_url(self.url)}: {cause}. "
                "Check DATABASE_URL / --db, that the server is running and the credentials are right."
            ) from exc

    def session_call(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        """Run `fn(session, **kwargs)` in one transaction (blocking; use `call` from async code)."""
        with Session(self.engine, expire_on_commit=False) as session:
            result = fn(session, **kwargs)
            session.commit()
            return result

    async def call(self, fn: Callable[..., T], /, **kwargs: Any) -> T:
        """Run a repository function in a worker thread and one transaction."""
        context = contextvars.copy_context()  # as asyncio.to_thread does
        return await asyncio.get_running_loop().run_in_executor(
            self._threads, functools.partial(context.run, self.session_call, fn, **kwargs))

    async def ping(self) -> bool:
        """Whether the database answers."""

        def _ping() -> bool:
            try:
                with self.engine.connect() as conn:
                    conn.execute(text("SELECT 1"))
                return True
            except SQLAlchemyError:
                return False

        return await asyncio.get_running_loop().run_in_executor(self._threads, _ping)

    def close(self) -> None:
        """Release pooled connections."""
        self._threads.shutdown(wait=False)
        self.engine.dispose()


def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    """Check a connection that sat idle (the server may have restarted or dropped it) before handing it out.

    Not `pool_pre_ping`, which pays a round trip on every checkout: in replica mode events are stored 20 times
    a second, and a connection in steady use is known to be alive. The pool retries with a fresh connection.
    """
    if time.monotonic() - record.info.get("used", 0.0) <= PING_IDLE_S:
        return
    try:
        with dbapi_conn.cursor() as cur:
            cur.execute("SELECT 1")
        dbapi_conn.rollback()
    except Exception as exc:
        raise DisconnectionError() from exc


def _mark_used(_dbapi_conn: Any, record: Any) -> None:
    """Note when a connection was last given back (it worked up to then)."""
    record.info["used"] = time.monotonic()


def _without_nul(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any,
                 _executemany: bool) -> tuple[str, Any]:
    """PostgreSQL text cannot hold NUL characters: store U+FFFD in their place rather than fail the request."""
    return statement, _replace_nul(parameters)


def _replace_nul(value: Any) -> Any:
    """`value` with every NUL in its strings replaced (JSON columns arrive here already escaped)."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd") if "\x00" in value else value
    if isinstance(value, dict):
        return {k: _replace_nul(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_replace_nul(v) for v in value)
    return value


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    """WAL keeps readers and the writer apart and survives kill -9 intact."""
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()
