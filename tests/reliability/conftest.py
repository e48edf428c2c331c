"""Reliability fixtures: the real app as a subprocess on a fresh SQLite file or PostgreSQL database,
the fake OpenAI-compatible server wired in as the `fake/...` models, and an SSE reader over real HTTP."""

from __future__ import annotations

import json
import os
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.conftest import AppProcess
from tests.fakes.openai_server import FakeOpenAI, Reply

PG = os.environ.get("TEST_DATABASE_URL")
DATABASES = ["sqlite", pytest.param("postgres", marks=pytest.mark.skipif(
    not PG, reason="TEST_DATABASE_URL is not set: PostgreSQL tests need a server"))]


@contextmanager
def fresh_database(kind: str, data_dir: Path) -> Iterator[str]:
    """A brand-new database: a SQLite file in `data_dir`, or a new PostgreSQL database dropped afterwards."""
    if kind == "sqlite":
        yield f"sqlite:///{data_dir / 'lantern.db'}"
        return
    assert PG
    name = f"lantern_rel_{uuid.uuid4().hex[:12]}"
    admin = create_engine(make_url(PG).set(drivername="postgresql+psycopg"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(PG).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def compat_env(fake: FakeOpenAI, **extra: str) -> dict[str, str]:
    """Environment that makes `fake/<anything>` stream from the fake server."""
    return {"LANTERN_OPENAI_COMPAT": json.dumps({"fake": {"base_url": fake.base_url, "models": ["m"]}}),
            "LANTERN_PROVIDER_TIMEOUT": "10", **extra}


def start_app(data_dir: Path, env: dict[str, str]) -> AppProcess:
    """A ready app subprocess (the caller stops it)."""
    proc = AppProcess(data_dir, extra_env=env)
    proc.wait_ready()
    return proc


@pytest.fixture(scope="package")
def fake() -> Iterator[FakeOpenAI]:
    """One fake upstream for the package; tests set `fake.replies` to what they need."""
    with FakeOpenAI(replies=[Reply()]) as server:
        yield server


@pytest.fixture(scope="package")
def app(fake: FakeOpenAI, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppProcess]:
    """One app subprocess for the package (SQLite), with the fake upstream as `fake/...`."""
    proc = start_app(tmp_path_factory.mktemp("app") / "data", compat_env(fake))
    yield proc
    proc.stop()


def wait_for(predicate: Any, timeout: float = 10.0, interval: float = 0.005) -> float:
    """Poll until `predicate()` is true; returns when (monotonic), or fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return time.monotonic()
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")


class SSEReader:
    """Reads SSE frames from a streaming httpx response, one at a time."""

    def __init__(self, response: httpx.Response) -> None:
        self.lines = response.iter_lines()

    def __iter__(self) -> Iterator[dict[str, Any]]:
        fields: dict[str, str] = {}
        for line in self.lines:
            if not line:
                if "event" in fields:
                    yield {"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])}
                fields = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                fields[key] = value


def parse_sse(body: str) -> list[dict[str, Any]]:
    """Every frame of a whole SSE body."""
    frames = []
    for block in body.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if "event" in fields:
            frames.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
    return frames
