"""The `lantern` command: a bad database URL stops start-up with a reason, no secrets shown."""

from __future__ import annotations

import os
import subprocess
import sys

from tests.conftest import ROOT


def run_app(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
    return subprocess.run([sys.executable, "-m", "app", "--no-browser", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def test_unreachable_database_names_the_url_and_exits_non_zero() -> None:
    result = run_app("--db", "postgresql://lantern:s3cret-pw@127.0.0.1:9/lantern")
    assert result.returncode == 2
    assert "Cannot open the database at postgresql://lantern:***@127.0.0.1:9/lantern" in result.stderr
    assert "s3cret-pw" not in result.stderr + result.stdout
    assert "Traceback" not in result.stderr


def test_help_lists_the_flags() -> None:
    result = run_app("--help")
    assert result.returncode == 0
    for flag in ("--host", "--port", "--native", "--no-browser", "--db"):
        assert flag in result.stdout
