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


def test_smoke_passes_against_a_running_instance_and_fails_against_a_stopped_one(app_process) -> None:
    ok = run_smoke("--url", app_process.url, "--model", "scripted/echo")
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("lantern smoke: ok") and "SUCCESS with 4 deliverables" in ok.stdout
    failing = run_smoke("--url", app_process.url, "--model", "scripted/broken")
    assert failing.returncode == 1 and "generation FAILED" in failing.stderr and "trace" in failing.stderr
    app_process.stop()
    stopped = run_smoke("--url", app_process.url)
    assert stopped.returncode == 2
    assert stopped.stderr.count("\n") == 1 and "cannot reach" in stopped.stderr


def run_smoke(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
    return subprocess.run([sys.executable, "-m", "app", "smoke", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)
