"""Shared mode as an attacker meets it: a real app subprocess with an admin and a member."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from app.gate import COOKIE
from services.accounts.service import digest
from storage import auth_store
from storage import users as user_repo
from storage.engine import Database
from storage.models import utcnow
from tests.conftest import ROOT, AppProcess
from tests.e2e.conftest import page  # noqa: F401  (headless Chromium, for the tests here that need a browser)

ADMIN_PASSWORD = "lantern keeper phrase"
MEMBER_PASSWORD = "member secret phrase"


@dataclass
class SharedApp:
    """The running app, its data dir and how to log in."""

    proc: AppProcess
    data: Path

    @property
    def url(self) -> str:
        """Where it listens."""
        return self.proc.url

    def login(self, name: str = "ada") -> httpx.Client:
        """An HTTP client holding a live session cookie of `name`."""
        return login_client(self.url, self.data, name)

    def token(self, name: str, label: str = "script") -> str:
        """A live API token of `name` called `label`, written to the database as Settings would."""
        secret = "lt_" + secrets.token_urlsafe(32)
        db = Database(f"sqlite:///{self.data / 'lantern.db'}")
        db.open()
        try:
            user = db.session_call(user_repo.find_user, name=name)
            assert user is not None, name
            db.session_call(auth_store.add_token, user_id=user.id, name=label, token_hash=digest(secret),
                            prefix=secret[:8])
        finally:
            db.close()
        return secret

    def users(self, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run `lantern users ...` against this app's data dir (while the server runs)."""
        return run_users_cli(self.data, *args, password=password)


def cli_env(data: Path) -> dict[str, str]:
    """The environment of a CLI or app subprocess: no pytest/NiceGUI test variables."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
    env["LANTERN_DATA_DIR"] = str(data)
    return env


def run_users_cli(data: Path, *args: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    """`python -m app users ...` with an optional password on stdin."""
    extra = ["--password-stdin"] if password is not None else []
    return subprocess.run([sys.executable, "-m", "app", "users", *args, *extra], cwd=ROOT, env=cli_env(data),
                          input=(password + "\n") if password is not None else None, capture_output=True,
                          text=True, timeout=60)


def login_client(url: str, data: Path, name: str) -> httpx.Client:
    """An HTTP client with a fresh browser session of `name`, written to the database as a login would."""
    token = secrets.token_urlsafe(32)
    db = Database(f"sqlite:///{data / 'lantern.db'}")
    db.open()
    try:
        user = db.session_call(user_repo.find_user, name=name)
        assert user is not None, name
        db.session_call(auth_store.create_session, token_hash=digest(token), user_id=user.id,
                        expires_at=utcnow() + timedelta(hours=1))
    finally:
        db.close()
    return httpx.Client(base_url=url, cookies={COOKIE: token}, timeout=10)


@pytest.fixture
def shared_app(tmp_path: Path) -> Iterator[SharedApp]:
    """The app with login required: admin `ada`, member `bob`; replies from a scripted model."""
    data = tmp_path / "data"
    for name, password, role in (("ada", ADMIN_PASSWORD, ["--admin"]), ("bob", MEMBER_PASSWORD, [])):
        added = run_users_cli(data, "add", name, *role, password=password)
        assert added.returncode == 0, added.stderr
    proc = AppProcess(data, {"LANTERN_REQUIRE_LOGIN": "1", "LANTERN_DEFAULT_MODEL": "scripted/hello"})
    proc.wait_ready()
    yield SharedApp(proc=proc, data=data)
    proc.stop()
