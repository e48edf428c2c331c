"""Process faults on a real subprocess: kill -9 mid-run, then restart; SIGTERM mid-run.

Each test gets a brand-new database (a SQLite file, or a new PostgreSQL database when
TEST_DATABASE_URL is set). Nothing is mocked: the app streams from the fake upstream over HTTP.
"""

from __future__ import annotations

import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import text

from storage.engine import make_engine
from tests.conftest import AppProcess
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.reliability.conftest import DATABASES, compat_env, fresh_database, parse_sse, start_app, wait_for

LONG = "tick " * 2000  # 20 s of reply at 5 characters per 10 ms


def start_runs(app: AppProcess) -> dict[str, str]:
    """A chat reply, a duet and a pipeline, all streaming from the fake upstream."""
    runs = {}
    with httpx.stream("POST", f"{app.url}/api/chat/stream", timeout=10,
                      json={"messages": [{"role": "user", "content": "Talk"}], "model": "fake/m"}) as response:
        assert response.status_code == 200
        runs["chat"] = response.headers["x-run-id"]
    agents = [{"name": name, "model": "fake/m", "temperature": 0.5} for name in ("Ann", "Bob")]
    bodies = {"duet": {"kind": "duet", "topic": "tea", "turns": 4, "agents": agents},
              "pipeline": {"kind": "pipeline", "pipeline": "assessment", "topic": "loops", "model": "fake/m"}}
    for kind, body in bodies.items():
        created = httpx.post(f"{app.url}/api/runs", json=body, timeout=10)
        assert created.status_code == 201, created.text
        runs[kind] = created.json()["run_id"]
    return runs


def kept_text(app: AppProcess, kind: str, run: dict[str, Any]) -> str:
    """The partial output a person finds after the fault, where each kind keeps it."""
    if kind == "chat":
        conv = httpx.get(f"{app.url}/api/conversations/{run['conversation_id']}", timeout=10).json()
        reply = conv["messages"][-1]
        assert reply["status"] == "interrupted"
        assert run["result"]["message"]["content"] == reply["content"]
        return str(reply["content"])
    export = httpx.get(f"{app.url}/api/runs/{run['id']}/export", params={"format": "json"}, timeout=10)
    assert export.status_code == 200
    if kind == "duet":
        turn = export.json()["turns"][0]
        assert turn["status"] == "interrupted" and turn["agent"] == "Ann"
        return str(turn["content"])
    step = export.json()["steps"][0]
    assert step["status"] == "interrupted" and step["model"] == "fake/m"
    return str(step["response"])


def check_intact(url: str) -> None:
    """The database passes its own integrity check and holds no half-finished run."""
    if url.startswith("sqlite"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
            assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            assert conn.execute(text("SELECT count(*) FROM run WHERE status = 'running'")).scalar() == 0
            assert conn.execute(text("SELECT count(*) FROM message WHERE status = 'running'")).scalar() == 0
            orphans = conn.execute(text("SELECT count(*) FROM runeventchunk c LEFT JOIN run r ON r.id = c.run_id "
                                        "WHERE r.id IS NULL")).scalar()
            assert orphans == 0
    finally:
        engine.dispose()


@pytest.mark.parametrize("db", DATABASES)
def test_kill_9_mid_run_then_restart_keeps_partial_output_and_an_intact_database(
        db: str, tmp_path: Path) -> None:
    with FakeOpenAI(replies=[Reply(text=LONG, chunk=5, delay=0.01)]) as fake, \
            fresh_database(db, tmp_path / "data") as url:
        env = compat_env(fake, DATABASE_URL=url)
        app = start_app(tmp_path / "data", env)
        try:
            runs = start_runs(app)
            wait_for(lambda: fake.open_streams == 3)
            time.sleep(1.6)  # past the run manager's 1 s flush interval: some text is on disk
            app.proc.send_signal(signal.SIGKILL)
            app.proc.wait(timeout=10)
        finally:
            app.stop()
        if db == "sqlite":
            check_intact_file_only(url)
        app = start_app(tmp_path / "data", env)  # the same data directory and database
        try:
            for kind, run_id in runs.items():
                run = httpx.get(f"{app.url}/api/runs/{run_id}", timeout=10).json()
                assert run["status"] == "interrupted", (kind, run)
                assert run["finished_at"] is not None
                kept = kept_text(app, kind, run)
                assert kept and LONG.startswith(kept) and len(kept) < len(LONG), (kind, kept[:80])
                frames = parse_sse(httpx.get(f"{app.url}/api/runs/{run_id}/events", timeout=10).text)
                assert [f["id"] for f in frames] == list(range(1, len(frames) + 1))
                assert frames[-1]["event"] == "done" and frames[-1]["data"]["status"] == "interrupted"
                assert "".join(f["data"]["delta"] for f in frames if f["event"] == "text.delta") == kept
            # The database takes new work after the crash.
            fake.replies = [Reply(text="Back again.")]
            again = httpx.post(f"{app.url}/api/chat", timeout=20,
                               json={"messages": [{"role": "user", "content": "Hi"}], "model": "fake/m"})
            assert again.status_code == 200 and again.json()["message"]["content"] == "Back again."
        finally:
            app.stop()
        check_intact(url)


def check_intact_file_only(url: str) -> None:
    """Right after the crash, before anything repairs it: SQLite's own integrity check."""
    with sqlite3.connect(url.removeprefix("sqlite:///")) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchall() == [("ok",)]


@pytest.mark.parametrize("db", DATABASES)
def test_sigterm_stops_running_work_marks_it_and_exits_promptly(db: str, tmp_path: Path) -> None:
    with FakeOpenAI(replies=[Reply(text=LONG, chunk=5, delay=0.01)]) as fake, \
            fresh_database(db, tmp_path / "data") as url:
        app = start_app(tmp_path / "data", compat_env(fake, DATABASE_URL=url))
        try:
            runs = start_runs(app)
            # A client is still following a run when the signal comes (an open SSE stream).
            follower = threading.Thread(target=follow, args=(app, runs["duet"]), daemon=True)
            follower.start()
            wait_for(lambda: fake.open_streams == 3)
            time.sleep(0.3)
            signalled = time.monotonic()
            app.proc.send_signal(signal.SIGTERM)
            code = app.proc.wait(timeout=20)
            took = time.monotonic() - signalled
        finally:
            app.stop()
        assert took < 10, f"SIGTERM took {took:.1f}s to exit"
        assert code in (0, -signal.SIGTERM), app.log.read_text()[-2000:]  # uvicorn re-raises the signal
        assert fake.open_streams == 0  # every upstream request was closed
        assert "Exception in ASGI application" not in app.log.read_text()  # open streams ended, not killed
        follower.join(timeout=5)
        # Read the database as the process left it (no restart, so no start-up recovery ran).
        engine = make_engine(url)
        try:
            with engine.connect() as conn:
                for kind, run_id in runs.items():
                    status = conn.execute(text("SELECT status FROM run WHERE id = :id"), {"id": run_id}).scalar()
                    assert status == "interrupted", (kind, status)
                content, status = conn.execute(text("SELECT content, status FROM message WHERE run_id = :id"),
                                               {"id": runs["chat"]}).one()
                assert status == "interrupted" and content and LONG.startswith(content)
        finally:
            engine.dispose()
        check_intact(url)


def follow(app: AppProcess, run_id: str) -> None:
    """Follow a run until the server goes away."""
    try:
        with httpx.stream("GET", f"{app.url}/api/runs/{run_id}/events", timeout=30) as response:
            for _ in response.iter_lines():
                pass
    except httpx.HTTPError:
        pass
