"""Shared fixtures: a fresh data dir and database per test, scripts, a real app subprocess."""

from __future__ import annotations

import json
import logging
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import SQLModel

from app.context import Lantern
from app.settings import Settings
from storage.engine import make_engine

ROOT = Path(__file__).resolve().parent.parent

# What must never appear in any log of the whole run (test passwords, fake keys, token and hash shapes).
LEAK_PATTERNS = [re.compile(p) for p in (
    r"correct horse battery", r"member secret phrase", r"lantern keeper phrase", r"(ann|ben) long password",
    r"sk-lantern-test-", r"\blt_[A-Za-z0-9_-]{40,}", r"\$argon2id\$")]
CAPTURED_LOGS: list[str] = []
APP_LOGS: list[Path] = []  # logs of app subprocesses, scanned at the end too

PL_CATEGORIES = json.dumps({"categories": [{"name": "basic", "description": "syntax slips"},
                                            {"name": "subtle", "description": "off-by-one errors"}]})
PL_QUESTION = "```json\n" + json.dumps({
    "title": "Summing a list", "difficulty": "subtle",
    "code": "def total(xs):\n    s = 0\n    for i in range(1, len(xs)):\n        s += xs[i]\n    return s",
    "errors": [{"id": "E1", "description": "The loop starts at 1 and skips the first element."}]}) + "\n```"

SCRIPTS: dict[str, Any] = {
    "hello": {"replies": ["Hello! I am a **scripted** model.\n\nHere is a list:\n\n- one\n- two\n"]},
    "cutoff": {"replies": [{"text": "The lighthouse keeper climbed the", "stop_reason": "length"},
                           "stairs, one hundred and twelve of them."]},
    "slow": {"replies": ["word " * 400], "delay": 0.02, "chunk": 5},
    "xss": {"replies": ['Look: <script>window.__xss = 1</script> and <img src=x onerror="window.__xss = 2">'
                        '\n\n[click](javascript:window.__xss=3)\n']},
    "analyst": {"replies": [
        {"text": "Let me count the regions.",
         "tool_calls": [{"name": "sql_query", "args": {"query": "SELECT COUNT(*) AS regions FROM regions"}}]},
        "We sell in **5 regions**."]},
    "dropper": {"replies": [{"tool_calls": [{"name": "sql_query", "args": {"query": "DROP TABLE orders"}}]},
                            "I can only read data."]},
    "broken": {"replies": [{"text": "Partial answer", "error": {"type": "unavailable",
                                                                 "message": "upstream went away"}}]},
    # The assessment pipeline's roles (each run uses a whole cycle of a script's replies).
    "pl_gen": {"replies": [PL_CATEGORIES, PL_QUESTION]},
    "pl_gen_loop": {"replies": [PL_CATEGORIES, PL_QUESTION, PL_QUESTION]},  # two question attempts
    "pl_strong": {"replies": ["E1: the loop starts at 1, so the first element is skipped."]},
    "pl_weak": {"replies": ["The code looks correct to me."]},
    "pl_judge_yes": {"replies": [json.dumps({"strong_found": True, "weak_found": False, "differentiates": True,
                                             "reason": "A found E1; B found nothing."})]},
    "pl_judge_no": {"replies": [json.dumps({"strong_found": True, "weak_found": True, "differentiates": False,
                                            "reason": "Both found E1."})]},
    "pl_bad_json": {"replies": ["Sure! Here are the categories: easy, medium, hard."]},
    "pl_gen_slow": {"replies": [PL_CATEGORIES, PL_QUESTION], "delay": 0.01, "chunk": 8},
    # Studio: one JSON deliverable per call (a "campaign" takes four calls).
    "studio_ok": {"replies": [json.dumps({"title": "Lumen launch",
                                          "content_markdown": "Bright **coffee** for night owls.",
                                          "hashtags": ["lumen", "coffee"]})]},
    "studio_partial": {"replies": [  # the second deliverable answers with a manifest twice, then fails
        json.dumps({"title": "Brief", "content_markdown": "The campaign brief.", "hashtags": []}),
        json.dumps({"id": "x"}), json.dumps({"id": "x"}),
        json.dumps({"title": "Post", "content_markdown": "A short post.", "hashtags": ["go"]}),
        json.dumps({"title": "Email", "content_markdown": "Dear reader.", "hashtags": []})]},
    "studio_down": {"replies": [{"error": {"type": "unavailable", "message": "503"}}]},
    "studio_slow": {"replies": [json.dumps({"title": "Slow", "content_markdown": "Taking our time " * 6})],
                    "delay": 0.01, "chunk": 2},
}


def database_urls() -> list[Any]:
    """SQLite always; PostgreSQL when TEST_DATABASE_URL is set (as .ci/run does)."""
    urls: list[Any] = ["sqlite"]
    pg = os.environ.get("TEST_DATABASE_URL")
    urls.append(pytest.param(pg or "postgresql", marks=pytest.mark.skipif(
        not pg, reason="TEST_DATABASE_URL is not set: PostgreSQL tests need a server")))
    return urls


@pytest.fixture(params=database_urls(), ids=lambda u: "postgres" if "postgres" in str(u) else "sqlite")
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh, empty database: a SQLite file, or the PostgreSQL test database wiped."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    url = str(request.param)
    engine = make_engine(url)
    with engine.begin() as conn:
        SQLModel.metadata.drop_all(conn)
    engine.dispose()
    return url


@pytest.fixture(autouse=True)
def lantern_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Every test gets its own data dir and SQLite file, no provider keys, and the test scripts."""
    for var in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "OPENAI_BASE_URL", "DATABASE_URL",
                "LANTERN_OPENAI_COMPAT", "LANTERN_DEFAULT_MODEL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("LANTERN_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("LANTERN_SCRIPTS", json.dumps(SCRIPTS))
    # In-process clients (NiceGUI's User fixture, httpx over ASGI) address the app as http://test.
    monkeypatch.setenv("LANTERN_ALLOWED_HOSTS", '["test"]')
    monkeypatch.chdir(tmp_path)  # no stray .env from the checkout
    return tmp_path / "data"


@pytest.fixture
async def lantern(db_url: str) -> Any:
    """The services without any UI, on the test database."""
    settings = Settings(DATABASE_URL=db_url)
    instance = Lantern.create(settings)
    await instance.startup()
    yield instance
    await instance.shutdown()


def free_port() -> int:
    """An unused loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class AppProcess:
    """Lantern as a real subprocess on 127.0.0.1, stopped by the test that started it."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items()
               if not k.startswith(("PYTEST_", "NICEGUI_"))}
        env.update({"LANTERN_DATA_DIR": str(data_dir), "LANTERN_SCRIPTS": json.dumps(SCRIPTS)})
        env.update(extra_env or {})
        self.log = data_dir.parent / f"app-{self.port}.log"
        APP_LOGS.append(self.log)
        data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "app", "--no-browser", "--port", str(self.port)],
            cwd=ROOT, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)

    def wait_ready(self, timeout: float = 60) -> None:
        """Block until /health answers, or fail with the app's log."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                break
            try:
                if httpx.get(f"{self.url}/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"app did not start:\n{self.log.read_text()[-3000:]}")

    def stop(self) -> None:
        """Terminate the process we started."""
        stop_process(self.proc, timeout=15)


def stop_process(proc: subprocess.Popen[bytes], timeout: float = 10) -> None:
    """SIGTERM a process we started, SIGKILL if it lingers past `timeout`."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def app_process(tmp_path: Path) -> Iterator[AppProcess]:
    """A running app subprocess with its own data directory."""
    proc = AppProcess(tmp_path / "proc-data")
    proc.wait_ready()
    yield proc
    proc.stop()


@pytest.fixture(autouse=True)
def patient_user(monkeypatch: pytest.MonkeyPatch) -> None:
    """`User.should_see` waits up to 3 s instead of 0.3 s: runs finish later on a loaded 2-core CI machine.

    It still returns as soon as the element is there, so passing tests are not slower.
    """
    from nicegui.testing import User

    kwdefaults = dict(User.should_see.__kwdefaults__ or {})
    kwdefaults["retries"] = 30
    monkeypatch.setattr(User.should_see, "__kwdefaults__", kwdefaults)


class _KeepRecords(logging.Handler):
    """Keeps every formatted log record (with tracebacks) of the test run."""

    def emit(self, record: logging.LogRecord) -> None:
        CAPTURED_LOGS.append(self.format(record))


@pytest.fixture(scope="session", autouse=True)
def log_everything() -> Iterator[None]:
    """Log at INFO into memory for the whole run, so the leak scan sees what an operator's log would."""
    root, handler = logging.getLogger(), _KeepRecords()
    level = root.level
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    yield
    root.removeHandler(handler)
    root.setLevel(level)


def find_leaks(texts: list[str]) -> list[str]:
    """Excerpts of texts that match a secret pattern."""
    leaks = []
    for text in texts:
        for pattern in LEAK_PATTERNS:
            for match in pattern.finditer(text):
                leaks.append(text[max(0, match.start() - 80):match.end() + 20].replace("\n", " "))
    return leaks


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a secret reached any log: in-process records or an app subprocess's output."""
    texts = CAPTURED_LOGS + [p.read_text(errors="replace") for p in APP_LOGS if p.exists()]
    leaks = find_leaks(texts)
    if leaks:
        print("\n\nSECRETS FOUND IN LOGS (fix the code that logged them):", *leaks[:10], sep="\n  ")
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif session.config.getoption("verbose") >= 0:
        print(f"\nleak scan: {len(texts)} log records and app logs, no secrets")
