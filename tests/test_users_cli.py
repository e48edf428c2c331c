"""Accounts from the command line, and no unguarded start on a network address."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from services.accounts.passwords import hash_password, verify_password
from storage import users as repo
from storage.engine import Database
from tests.conftest import ROOT


def lantern(*args: str, data: Path, stdin: str = "", env: dict[str, str] | None = None,
            ) -> subprocess.CompletedProcess[str]:
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}, **(env or {})}
    env["LANTERN_DATA_DIR"] = str(data)
    return subprocess.run([sys.executable, "-m", "app", *args], cwd=ROOT, env=env, input=stdin,
                          capture_output=True, text=True, timeout=60)


def test_users_add_list_passwd_remove(tmp_path: Path) -> None:
    data = tmp_path / "data"
    added = lantern("users", "add", "ada", "--admin", "--password-stdin", data=data, stdin="correct horse battery\n")
    assert added.returncode == 0 and "added ada (admin)" in added.stdout
    assert "correct horse" not in added.stdout + added.stderr
    assert lantern("users", "add", "ada", "--password-stdin", data=data, stdin="another long one\n").returncode == 1
    short = lantern("users", "add", "bob", "--password-stdin", data=data, stdin="short\n")
    assert short.returncode == 1 and "at least 10 characters" in short.stderr
    listed = lantern("users", "list", data=data)
    assert listed.stdout.startswith("ada\tadmin")
    db = Database(f"sqlite:///{data / 'lantern.db'}")
    db.open()
    stored = db.session_call(repo.find_user, name="ada")
    assert stored.password_hash.startswith("$argon2id$")
    assert verify_password(stored.password_hash, "correct horse battery")
    assert lantern("users", "passwd", "ada", "--password-stdin", data=data, stdin="a new long secret\n").returncode == 0
    assert verify_password(db.session_call(repo.find_user, name="ada").password_hash, "a new long secret")
    assert lantern("users", "remove", "ada", data=data).returncode == 0
    assert lantern("users", "list", data=data).stdout == ""
    assert lantern("users", "remove", "nobody", data=data).returncode == 1
    db.close()


def test_network_address_is_refused_without_accounts(tmp_path: Path) -> None:
    data = tmp_path / "data"
    refused = lantern("--no-browser", "--host", "0.0.0.0", "--port", "0", data=data)
    assert refused.returncode == 2 and "without accounts" in refused.stderr and "lantern users add" in refused.stderr
    forced = lantern("--no-browser", "--port", "0", data=data, env={"LANTERN_REQUIRE_LOGIN": "1"})
    assert forced.returncode == 2 and "LANTERN_REQUIRE_LOGIN without accounts" in forced.stderr


def test_password_hashes_verify_and_reject() -> None:
    hashed = hash_password("long enough secret")
    assert verify_password(hashed, "long enough secret")
    assert not verify_password(hashed, "wrong secret here")
    assert not verify_password(None, "anything") and not verify_password("garbage", "anything")
