"""Soak: 50 SSE clients and 8 Chromium tabs on one Lantern for 60 s, then memory back near baseline.

Run from the repository root: `.venv/bin/python -m soak.soak [--seconds 60] [--clients 50] [--tabs 8]`
(`make soak`). Everything is on 127.0.0.1: a fake OpenAI-compatible server streams every reply at
5 ms a token (from a process of its own) into a real Lantern subprocess on a fresh SQLite file.
SSE clients come in fives: one starts chat
replies over `POST /api/chat/stream` one after another and checks every event (ids 1..n without a
gap, the whole text, `done: completed`); each tab sends messages on the Chat page and waits for
each reply's footer. At the end the tabs are closed in the middle of a reply (those runs must
still complete and be stored), every run in history must be completed, the server log must hold
no traceback, and the server's RSS must come back to within the margin of its warmed-up baseline.

Exit status: 0 when all of that holds, 1 otherwise. A JSON summary is printed last.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from tests.conftest import AppProcess  # noqa: E402
from tests.fakes.openai_server import FakeOpenAI, Reply  # noqa: E402

REPLY = " ".join(f"token{i}" for i in range(120)) + "."  # 120 words, ~1,000 characters
CHUNK = 8  # characters per upstream chunk: one "token" every 5 ms
PACE_S = 0.005
FOOTER = "fake/m ·"
FOLLOWERS = 4  # SSE clients come in fives: one starts a reply, four more follow the same run
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
FLAGS = ["--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--disable-quic"]


@dataclass
class Outcome:
    """What the soak saw."""

    seconds: float = 0.0
    sse_replies: int = 0
    tab_replies: int = 0
    errors: list[str] = field(default_factory=list)
    rss_baseline_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_after_mb: float = 0.0
    rss_margin_mb: float = 0.0
    runs_in_history: int = 0
    closed_mid_reply_completed: int = 0

    @property
    def ok(self) -> bool:
        return not self.errors and self.rss_after_mb <= self.rss_baseline_mb + self.rss_margin_mb


def main(argv: list[str] | None = None) -> int:
    """Run the soak; 0 when it passes."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--tabs", type=int, default=8)
    parser.add_argument("--rss-margin-mb", type=float, default=60.0,
                        help="how far above the warmed-up baseline RSS may end (allocator slack)")
    args = parser.parse_args(argv)
    outcome = asyncio.run(soak(args.seconds, args.clients, args.tabs, args.rss_margin_mb))
    print(json.dumps({**asdict(outcome), "errors": outcome.errors[:50], "ok": outcome.ok}, indent=2))
    print("soak:", "PASS" if outcome.ok else "FAIL")
    return 0 if outcome.ok else 1


async def soak(seconds: float, clients: int, tabs: int, margin_mb: float) -> Outcome:
    """Start everything, load it, measure, stop everything we started."""
    outcome = Outcome(rss_margin_mb=margin_mb)
    with fake_upstream() as base_url, tempfile.TemporaryDirectory(prefix="lantern-soak-") as tmp:
        compat = json.dumps({"fake": {"base_url": base_url, "models": ["m"]}})
        app = AppProcess(Path(tmp) / "data", {"LANTERN_OPENAI_COMPAT": compat, "LANTERN_DEFAULT_MODEL": "fake/m",
                                              "LANTERN_RUNS_PER_MINUTE": "0", "LANTERN_MAX_RUN_TOKENS": "0"})
        try:
            await asyncio.to_thread(app.wait_ready)
            async with httpx.AsyncClient(base_url=app.url, timeout=60,
                                         limits=httpx.Limits(max_connections=clients + 10)) as http:
                await load(app, http, outcome, seconds, clients, tabs, warm_up=True)
                await settle(http, outcome, quiet_s=5)
                outcome.rss_baseline_mb = rss_mb(app.proc.pid)
                outcome.rss_peak_mb = outcome.rss_baseline_mb
                sampler = asyncio.create_task(sample_rss(app.proc.pid, outcome))
                started = time.monotonic()
                await load(app, http, outcome, seconds, clients, tabs)
                outcome.seconds = round(time.monotonic() - started, 1)
                sampler.cancel()
                await settle(http, outcome)
            outcome.rss_after_mb = rss_mb(app.proc.pid)
        finally:
            app.stop()
        log = app.log.read_text(errors="replace")
        if tracebacks := unexpected_tracebacks(log):
            kept = Path(tempfile.gettempdir()) / "lantern-soak-server.log"
            kept.write_text(log)
            outcome.errors.append(f"server log has {len(tracebacks)} traceback(s) (whole log: {kept}):\n"
                                  + tracebacks[0][-1500:])
    return outcome


@contextmanager
def fake_upstream() -> Iterator[str]:
    """The fake OpenAI-compatible server in a process of its own (its own GIL, like a real upstream)."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=serve_fake, args=(child,), daemon=True)
    proc.start()
    try:
        yield str(parent.recv())
    finally:
        parent.send("stop")
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()


def serve_fake(conn: Any) -> None:
    """Child process: serve paced replies until told to stop."""
    with FakeOpenAI(replies=[Reply(text=REPLY, chunk=CHUNK, delay=PACE_S)]) as fake:
        conn.send(fake.base_url)
        conn.recv()


async def load(app: AppProcess, http: httpx.AsyncClient, outcome: Outcome, seconds: float, clients: int,
               tabs: int, warm_up: bool = False) -> None:
    """SSE clients and browser tabs at once, for `seconds` (a short single pass when warming up)."""
    # Warming up runs the same load for a while, so the baseline already holds what that concurrency
    # needs (imports, caches, allocator arenas): what stays above it afterwards is what the soak leaked.
    deadline = time.monotonic() + (min(10.0, seconds) if warm_up else seconds)
    rng = random.Random(1)
    tasks = [asyncio.create_task(sse_group(http, outcome, deadline, FOLLOWERS, delay=rng.uniform(0, 2)))
             for _ in range(max(1, clients // (FOLLOWERS + 1)))]
    tasks.append(asyncio.create_task(browser_tabs(app, outcome, deadline, tabs)))
    for result in await asyncio.gather(*tasks, return_exceptions=True):
        if isinstance(result, BaseException):
            outcome.errors.append(f"a load task crashed: {result!r}")


async def sse_group(http: httpx.AsyncClient, outcome: Outcome, deadline: float, followers: int,
                    delay: float = 0.0) -> None:
    """One client starts replies one after another; `followers` more follow each run live."""
    await asyncio.sleep(delay)
    while True:
        try:
            body = {"messages": [{"role": "user", "content": "Soak"}], "model": "fake/m"}
            async with http.stream("POST", "/api/chat/stream", json=body) as response:
                if response.status_code != 200:
                    outcome.errors.append(f"SSE: HTTP {response.status_code}: {(await response.aread())[:200]!r}")
                    return
                run_id = response.headers["x-run-id"]
                follow = [asyncio.create_task(follow_run(http, run_id)) for _ in range(followers)]
                results = [await read_frames(response), *await asyncio.gather(*follow)]
            for frames in results:
                problem = check_frames(frames)
                if problem:
                    outcome.errors.append(f"SSE run {run_id}: {problem}")
                else:
                    outcome.sse_replies += 1
        except httpx.HTTPError as exc:
            outcome.errors.append(f"SSE: {type(exc).__name__}: {exc}")
        if time.monotonic() > deadline:
            return


async def follow_run(http: httpx.AsyncClient, run_id: str) -> list[dict[str, Any]]:
    """Every event of a run, from the first."""
    async with http.stream("GET", f"/api/runs/{run_id}/events") as response:
        return await read_frames(response)


async def read_frames(response: httpx.Response) -> list[dict[str, Any]]:
    """SSE frames of a streaming response."""
    frames: list[dict[str, Any]] = []
    fields: dict[str, str] = {}
    async for line in response.aiter_lines():
        if not line:
            if "event" in fields:
                frames.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
            fields = {}
        elif not line.startswith(":"):
            key, _, value = line.partition(": ")
            fields[key] = value
    return frames


def check_frames(frames: list[dict[str, Any]]) -> str | None:
    """Why a reply's events are wrong, or None."""
    if [f["id"] for f in frames] != list(range(1, len(frames) + 1)):
        return "event ids have a gap or a duplicate"
    if not frames or frames[-1]["event"] != "done" or frames[-1]["data"]["status"] != "completed":
        return f"did not end with done: completed ({frames[-1:] or 'no events'})"
    text = "".join(f["data"]["delta"] for f in frames if f["event"] == "text.delta")
    return None if text == REPLY else f"text differs ({len(text)} of {len(REPLY)} characters)"


async def browser_tabs(app: AppProcess, outcome: Outcome, deadline: float, tabs: int) -> None:
    """`tabs` Chat pages sending messages until the deadline; then closed mid-reply."""
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            pages = [await browser.new_page() for _ in range(tabs)]
            loads = [0] * tabs
            for i, page in enumerate(pages):
                page.on("load", lambda _page, i=i: loads.__setitem__(i, loads[i] + 1))
            await asyncio.gather(*(tab(app, page, outcome, deadline) for page in pages))
            # Close every tab in the middle of one more reply: the runs must finish without them.
            await asyncio.gather(*(send(page, "One more, then I leave") for page in pages))
            await asyncio.sleep(0.3)
            reloads = [n - 1 for n in loads if n > 1]
            if reloads:
                outcome.errors.append(f"tabs reloaded mid-soak (socket dropped): {reloads}")
        finally:
            await browser.close()


async def tab(app: AppProcess, page: Any, outcome: Outcome, deadline: float) -> None:
    """One tab: send, wait for the reply's footer, repeat."""
    try:
        await page.goto(app.url)
        await page.get_by_text("Ask anything").wait_for(timeout=30_000)
        done = 0
        while time.monotonic() < deadline:
            await send(page, f"Message {done + 1}")
            await page.get_by_text(FOOTER).nth(done).wait_for(timeout=60_000)
            done += 1
            outcome.tab_replies += 1
    except Exception as exc:  # a timeout or a crashed page is an error of the soak, not of the script
        outcome.errors.append(f"tab: {type(exc).__name__}: {str(exc)[:300]}")


async def send(page: Any, text: str) -> None:
    box = page.get_by_placeholder("Message Lantern…")
    await box.fill(text)
    await box.press("Enter")


async def settle(http: httpx.AsyncClient, outcome: Outcome, quiet_s: float = 15) -> None:
    """Wait for the runs left by closed tabs, check history, give the server time to free memory."""
    deadline = time.monotonic() + 60
    runs: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        runs = []
        for offset in range(0, 100_000, 500):
            page = (await http.get("/api/runs", params={"limit": 500, "offset": offset})).json()["items"]
            runs += page
            if len(page) < 500:
                break
        if not any(r["status"] == "running" for r in runs):
            break
        await asyncio.sleep(0.5)
    outcome.runs_in_history = len(runs)
    bad = [(r["id"], r["status"], r["error"]) for r in runs if r["status"] != "completed"]
    if bad:
        outcome.errors.append(f"{len(bad)} runs did not complete: {bad[:5]}")
    convs = (await http.get("/api/conversations", params={"q": "then I leave", "limit": 100})).json()["items"]
    outcome.closed_mid_reply_completed = 0
    for conv in convs:
        reply = (await http.get(f"/api/conversations/{conv['id']}")).json()["messages"][-1]
        if reply["status"] == "completed" and reply["content"] == REPLY:
            outcome.closed_mid_reply_completed += 1
    if outcome.closed_mid_reply_completed < len(convs) or not convs:
        outcome.errors.append(f"replies of closed tabs: {outcome.closed_mid_reply_completed} of {len(convs)} intact")
    await asyncio.sleep(quiet_s)  # NiceGUI forgets closed tabs after its reconnect timeout (10 s)


async def sample_rss(pid: int, outcome: Outcome) -> None:
    """Track the server's peak RSS."""
    while True:
        outcome.rss_peak_mb = max(outcome.rss_peak_mb, rss_mb(pid))
        await asyncio.sleep(0.5)


def unexpected_tracebacks(log: str) -> list[str]:
    """Logged errors with a traceback, except a tab that closed while NiceGUI's own middleware
    waited for a response (Starlette's BaseHTTPMiddleware reports that as "No response returned")."""
    blocks = re.split(r"(?m)^(?=ERROR:)", log)
    return [b for b in blocks if "Traceback" in b and not b.rstrip().endswith("RuntimeError: No response returned.")]


def rss_mb(pid: int) -> float:
    """Resident set size of a process, from /proc."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return round(int(line.split()[1]) / 1024, 1)
    return 0.0


if __name__ == "__main__":
    sys.exit(main())
