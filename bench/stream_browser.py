"""Benchmark: what streaming a long reply into the Chat page costs (bytes, time, server CPU, RSS).

Run from the repository root: `.venv/bin/python -m bench.stream_browser [--sizes 1000,4000] [--pace-ms 5]`.
A fake OpenAI-compatible server streams a deterministic markdown reply into a real Lantern subprocess,
which headless Chromium displays; the browser's websocket bytes are counted through CDP.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from playwright.async_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402

from tests.conftest import AppProcess  # noqa: E402
from tests.e2e.conftest import FLAGS  # noqa: E402
from tests.fakes.openai_server import FakeOpenAI, Reply  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
RESULTS = ROOT / "bench" / "results" / "stream_browser.json"
TIMEOUT_S = 120.0
FOOTER = "fake/bench ·"
CLK_TCK = os.sysconf("SC_CLK_TCK")


@dataclass
class Result:
    """One measured reply."""

    tokens: int
    reply_chars: int
    pace_ms: float
    ok: bool
    error: str = ""
    wall_s: float = 0.0
    ws_bytes: int = 0
    ws_frames: int = 0
    text_chars: int = 0
    bytes_per_char: float = 0.0
    server_cpu_s: float = 0.0
    peak_rss_mb: float = 0.0
    page_loads: int = 0
    complete: bool = False


def make_reply(tokens: int) -> str:
    """Deterministic markdown of about `tokens` tokens (4 characters each), ending on a whole section."""
    parts: list[str] = []
    while sum(map(len, parts)) < tokens * 4:
        parts.append(_section(len(parts)))
    return "".join(parts)


def _section(i: int) -> str:
    """Section `i`: heading, paragraph, bullets, and alternately a table or a python code block."""
    words = " ".join(f"lantern{(i * 7 + k) % 23} glows" for k in range(18))
    text = f"## Section {i}: notes on light\n\nThis paragraph {i} has *emphasis*, `code` and **bold**: {words}.\n\n"
    text += "".join(f"- item {i}.{k} with some words about wicks and oil\n" for k in range(4)) + "\n"
    if i % 2:
        rows = "".join(f"| {i}.{k} | {k * k} | lamp {k} |\n" for k in range(4))
        return text + "| id | square | name |\n|---|---:|---|\n" + rows + "\n"
    code = "".join(f"    total += {k} * x  # step {k}\n" for k in range(5))
    return text + f"```python\ndef glow_{i}(x: int) -> int:\n    total = 0\n{code}    return total\n```\n\n"


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process, from /proc/<pid>/stat."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def peak_rss_mb(pid: int) -> float:
    """Peak resident set (VmHWM) of a process in MiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def measure(browser: Any, app: AppProcess, result: Result, last_heading: str) -> None:
    """Open the chat page, send one message, and fill `result` once the footer appears."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        counts = {"bytes": 0, "frames": 0, "loads": 0}

        def on_frame(params: dict[str, Any]) -> None:
            counts["bytes"] += len(params["response"]["payloadData"])
            counts["frames"] += 1

        cdp = await context.new_cdp_session(page)
        await cdp.send("Network.enable")
        cdp.on("Network.webSocketFrameReceived", on_frame)
        await page.goto(app.url)
        await page.get_by_text("Ask anything").wait_for()
        page.on("load", lambda _: counts.update(loads=counts["loads"] + 1))
        box = page.get_by_placeholder("Message Lantern…")
        await box.fill("Write a long markdown document about lanterns.")
        pid = app.proc.pid
        counts.update(bytes=0, frames=0)
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        await box.press("Enter")
        await page.get_by_text(FOOTER).wait_for(timeout=TIMEOUT_S * 1000)
        result.wall_s = time.monotonic() - t0
        result.server_cpu_s = cpu_seconds(pid) - cpu0
        result.ws_bytes, result.ws_frames, result.page_loads = counts["bytes"], counts["frames"], counts["loads"]
        rendered = await page.locator(".lantern-md").last.inner_text()
        result.text_chars = len(rendered)
        result.complete = last_heading in rendered
        result.bytes_per_char = result.ws_bytes / max(result.text_chars, 1)
        result.peak_rss_mb = peak_rss_mb(pid)
        result.ok = True
    finally:
        await context.close()


async def run_size(browser: Any, tokens: int, pace_ms: float) -> Result:
    """Fresh fake server and app for one reply size, bounded by TIMEOUT_S."""
    text = make_reply(tokens)
    result = Result(tokens=tokens, reply_chars=len(text), pace_ms=pace_ms, ok=False)
    with tempfile.TemporaryDirectory(prefix="lantern-bench-") as tmp, \
            FakeOpenAI(replies=[Reply(text=text, chunk=4, delay=pace_ms / 1000)]) as fake:
        data = Path(tmp) / "data"
        compat = json.dumps({"fake": {"base_url": fake.base_url, "models": ["bench"]}})
        app = AppProcess(data, {"LANTERN_OPENAI_COMPAT": compat, "LANTERN_DEFAULT_MODEL": "fake/bench",
                                "DATABASE_URL": f"sqlite:///{data / 'bench.db'}"})
        try:
            await asyncio.to_thread(app.wait_ready)
            last_heading = text.rsplit("## ", 1)[1].split("\n", 1)[0]
            await asyncio.wait_for(measure(browser, app, result, last_heading), TIMEOUT_S)
        except (TimeoutError, PlaywrightTimeout) as exc:
            result.error = f"no completed reply within {TIMEOUT_S:.0f} s ({type(exc).__name__})"
        except Exception as exc:  # a benchmark reports failures instead of stopping
            result.error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        finally:
            if app.proc.poll() is None and not result.peak_rss_mb:
                result.peak_rss_mb = peak_rss_mb(app.proc.pid)
            app.stop()
            if not result.ok:
                print(f"size {tokens}: FAILED: {result.error}\napp log tail:\n"
                      f"{app.log.read_text(errors='replace')[-1500:]}", file=sys.stderr)
    return result


def table(results: list[Result]) -> str:
    """Results as a Markdown table."""
    head = ("| tokens | reply chars | pace ms | wall s | ws bytes | ws frames | text chars | bytes/char "
            "| server CPU s | peak RSS MiB | page loads | status |")
    lines = [head, "|" + "---:|" * 11 + "---|"]
    for r in results:
        lines.append(f"| {r.tokens} | {r.reply_chars} | {r.pace_ms:g} | {r.wall_s:.2f} | {r.ws_bytes} "
                     f"| {r.ws_frames} | {r.text_chars} | {r.bytes_per_char:.2f} | {r.server_cpu_s:.2f} "
                     f"| {r.peak_rss_mb:.0f} | {r.page_loads} | {_status(r)} |")
    return "\n".join(lines)


def _status(r: Result) -> str:
    """ok, incomplete (the last heading never rendered), or the error."""
    return r.error if not r.ok else "ok" if r.complete else "incomplete"


async def main_async(sizes: list[int], pace_ms: float) -> list[Result]:
    """Measure every size with one headless Chromium."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            return [await run_size(browser, n, pace_ms) for n in sizes]
        finally:
            await browser.close()


def main(argv: list[str] | None = None) -> None:
    """Parse flags, run, print the table and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,4000,20000", help="reply sizes in tokens, comma-separated")
    parser.add_argument("--pace-ms", type=float, default=0.0, help="delay between 4-character chunks")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results = asyncio.run(main_async(sizes, args.pace_ms))
    print(table(results))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")
    print(f"\nwrote {RESULTS.relative_to(ROOT)}")
    if not all(r.ok and r.complete for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
