"""`lantern --native` on a virtual X display: a desktop window opens and shows the app."""

from __future__ import annotations

import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import ROOT, SCRIPTS, free_port, stop_process

XVFB = shutil.which("Xvfb")
# QtWebEngine's Chromium: no sandbox as root (containers, CI), and nothing fetched from the network.
QT_FLAGS = "--no-sandbox --disable-background-networking --disable-component-update --disable-sync"


def missing() -> str | None:
    """Why the native window cannot run here, or None."""
    if XVFB is None:
        return "Xvfb is not installed (apt-get install xvfb)"
    for module in ("webview", "qtpy", "PyQt6.QtWebEngineWidgets"):
        try:
            if importlib.util.find_spec(module) is None:
                raise ImportError(module)
        except ImportError:
            return f"{module} is not installed (pip install -e '.[native]')"
    return None


@pytest.fixture
def display() -> Iterator[str]:
    """A fresh Xvfb server on a display number it picks itself; stopped by pid."""
    if (reason := missing()) is not None:
        pytest.skip(reason)
    read, write = os.pipe()
    xvfb = subprocess.Popen([str(XVFB), "-displayfd", str(write), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write)
    with os.fdopen(read) as pipe:
        number = pipe.readline().strip()
    try:
        if not number:
            pytest.skip("Xvfb did not start")
        yield f":{number}"
    finally:
        stop_process(xvfb)


def test_native_window_shows_the_app(display: str, tmp_path: Path) -> None:
    port, debug_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
    env.update({"DISPLAY": display, "LANTERN_DATA_DIR": str(tmp_path / "data"), "LANTERN_SCRIPTS": json.dumps(SCRIPTS),
                "LANTERN_DEFAULT_MODEL": "scripted/hello", "PYWEBVIEW_GUI": "qt",
                "QTWEBENGINE_CHROMIUM_FLAGS": QT_FLAGS, "QTWEBENGINE_DISABLE_SANDBOX": "1",
                # The window's web engine answers DevTools' page list: which URL it shows, with which title.
                "QTWEBENGINE_REMOTE_DEBUGGING": f"127.0.0.1:{debug_port}",
                "XDG_CACHE_HOME": str(tmp_path / "cache"), "XDG_RUNTIME_DIR": str(tmp_path / "run")})
    (tmp_path / "run").mkdir(mode=0o700)
    log = tmp_path / "native.log"
    # Its own session: the window runs in a child process (with the web engine's own children) that a
    # SIGTERM to the app alone would leave behind; the whole group is stopped below.
    app = subprocess.Popen([sys.executable, "-m", "app", "--native", "--no-browser", "--port", str(port)],
                           cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        wait_for(lambda: httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200, app, log, 60,
                 "the app did not answer /health")
        shown = wait_for(lambda: next((p for p in httpx.get(f"http://127.0.0.1:{debug_port}/json", timeout=1).json()
                                       if p.get("type") == "page" and p.get("title") == "Lantern"), None),
                         app, log, 60, "the native window did not load the app")
        assert shown["url"].startswith(f"http://127.0.0.1:{port}/")
        shot = wait_for(lambda: rendered(display), app, log, 30, "the window stayed blank")
        shot.save(tmp_path / "native.png")
        colours = len(shot.getcolors(1 << 20) or [])
        assert colours > 50, f"only {colours} colours on screen: nothing rendered"
    finally:
        stop_group(app)


def rendered(display: str) -> Any:
    """Probe: a screenshot of the whole display once the page has drawn (many colours) and settled (fonts, icons)."""
    from PIL import ImageChops, ImageGrab

    shot = ImageGrab.grab(xdisplay=display)
    previous = SHOTS.get(display)
    SHOTS[display] = shot
    drawn = len(shot.getcolors(1 << 20) or []) > 50
    return shot if drawn and previous is not None and ImageChops.difference(shot, previous).getbbox() is None else None


SHOTS: dict[str, Any] = {}


def wait_for(probe: Any, app: subprocess.Popen[bytes], log: Path, timeout: float, what: str) -> Any:
    """Poll until `probe` returns something truthy; skip if Qt cannot run here, fail with the log otherwise."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and app.poll() is None:
        try:
            if result := probe():
                return result
        except (httpx.HTTPError, ValueError, OSError):
            pass
        time.sleep(1)
    text = log.read_text(errors="replace")
    if "Could not load the Qt platform plugin" in text:
        pytest.skip("Qt cannot open a window here: install its X11 libraries (docs/DEPLOY.md, native window)")
    pytest.fail(f"{what}:\n{text[-3000:]}")


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM the process group we started (app, window, web engine), SIGKILL what is left."""
    for sig, grace in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            proc.poll()  # reap the leader, or the group never looks empty
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.2)
    if proc.poll() is None:
        proc.wait(timeout=5)
