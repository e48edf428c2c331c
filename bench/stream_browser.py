"""Benchmark: what streaming a long reply into the Chat page costs (bytes, time, server CPU, RSS).

Run from the repository root:
`.venv/bin/python -m bench.stream_browser [--sizes 1000,4000] [--pace-ms 5] [--repeat 3] [--dump DIR]`.
A fake OpenAI-compatible server streams a deterministic markdown reply into a real Lantern subprocess,
which headless Chromium displays; the browser's websocket bytes are counted through CDP (payloads, as
inflated by the browser) and on the wire by a relay in front of the app (`bench/wire.py`: compressed, as
received; "modules" is the HTTP received meanwhile, the widget's modules a fresh tab loads once).

Bytes are divided by the length of the reply as rendered (the text a person reads, `innerText`),
and, for reference, by the length of its markdown. "widget" bytes are the frames that carry the reply
body itself; the rest is the page around it (the user's message, the sidebar entry, the footer).
Latency: the time from the fake server sending the last token to that token's frame changing the
page (a MutationObserver in the page; both clocks are this machine's wall clock).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from playwright.async_api import TimeoutError as PlaywrightTimeout  # noqa: E402
from playwright.async_api import async_playwright  # noqa: E402

from bench.common import cpu_seconds, peak_rss_mb, publish  # noqa: E402
from bench.wire import WireCounter  # noqa: E402
from tests.conftest import AppProcess  # noqa: E402
from tests.e2e.conftest import FLAGS  # noqa: E402
from tests.fakes.openai_server import FakeOpenAI, Reply  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
RESULTS = ROOT / "bench" / "results" / "stream_browser.json"
TIMEOUT_S = 120.0
FOOTER = re.compile(r"fake/bench · \d+ in / \d+ out")  # the reply's footer, shown once it is complete
# Frames of the reply body: this widget's `_sm(...)` calls, or the earlier widget's run_method calls.
WIDGET_FRAME = re.compile(r'^42\["sm",|^42\["run_javascript",\{"code":"'
                          r'(_sm\(|return runMethod\(\d+, \\"(append|freeze|done|reset)\\")')
# Records when the last reply's body last changed (text or caret), in wall-clock milliseconds.
WATCH_JS = """() => {
  window.__lastChange = 0;
  new MutationObserver((records) => {
    const bodies = document.querySelectorAll(".lantern-md");
    const body = bodies[bodies.length - 1];
    if (body && records.some((r) => body.contains(r.target))) window.__lastChange = Date.now();
  }).observe(document.body, { subtree: true, childList: true, characterData: true });
}"""


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
    widget_bytes: int = 0
    widget_frames: int = 0
    wire_ws_bytes: int = 0  # the websocket's bytes on the wire (compressed), what the browser received
    wire_http_bytes: int = 0  # HTTP in the same time: the modules a first reply loads in a fresh tab
    wire_bytes_per_char: float = 0.0
    text_chars: int = 0
    bytes_per_char: float = 0.0
    widget_bytes_per_char: float = 0.0
    bytes_per_md_char: float = 0.0
    last_token_lag_ms: float = 0.0
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


class TimedFake(FakeOpenAI):
    """The fake server, noting when it sent the last piece of reply text (wall clock)."""

    last_text_at = 0.0

    async def _chunks(self, model: str, reply: Reply) -> AsyncIterator[str]:
        async for piece in super()._chunks(model, reply):
            yield piece
            if '"content"' in piece:
                self.last_text_at = time.time()


async def measure(browser: Any, app: AppProcess, fake: TimedFake, result: Result, last_heading: str,
                  dump: list[str] | None, wire: WireCounter) -> None:
    """Open the chat page, send one message, and fill `result` once the footer appears."""
    context = await browser.new_context()
    try:
        page = await context.new_page()
        counts = {"bytes": 0, "frames": 0, "loads": 0, "widget_bytes": 0, "widget_frames": 0}

        def on_frame(params: dict[str, Any]) -> None:
            payload = params["response"]["payloadData"]
            counts["bytes"] += len(payload)
            counts["frames"] += 1
            if WIDGET_FRAME.match(payload):
                counts["widget_bytes"] += len(payload)
                counts["widget_frames"] += 1
            if dump is not None:
                dump.append(payload)

        cdp = await context.new_cdp_session(page)
        await cdp.send("Network.enable")
        cdp.on("Network.webSocketFrameReceived", on_frame)
        await page.goto(wire.url)  # through the counting relay
        await page.get_by_text("Ask anything").wait_for()
        page.on("load", lambda _: counts.update(loads=counts["loads"] + 1))
        box = page.get_by_placeholder("Message Lantern…")
        await box.fill("Write a long markdown document about lanterns.")
        await page.evaluate(WATCH_JS)
        pid = app.proc.pid
        counts.update(bytes=0, frames=0, widget_bytes=0, widget_frames=0)
        wire.reset()
        if dump is not None:
            dump.clear()
        cpu0, t0 = cpu_seconds(pid), time.monotonic()
        await box.press("Enter")
        await page.get_by_text(FOOTER).wait_for(timeout=_timeout(result) * 1000)
        result.wall_s = time.monotonic() - t0
        result.server_cpu_s = cpu_seconds(pid) - cpu0
        result.ws_bytes, result.ws_frames, result.page_loads = counts["bytes"], counts["frames"], counts["loads"]
        result.wire_ws_bytes, result.wire_http_bytes = wire.received["ws"], wire.received["http"]
        result.widget_bytes, result.widget_frames = counts["widget_bytes"], counts["widget_frames"]
        rendered = await page.locator(".lantern-md").last.inner_text()
        result.text_chars = len(rendered)
        result.complete = last_heading in rendered
        result.bytes_per_char = result.ws_bytes / max(result.text_chars, 1)
        result.widget_bytes_per_char = result.widget_bytes / max(result.text_chars, 1)
        result.bytes_per_md_char = result.ws_bytes / max(result.reply_chars, 1)
        result.wire_bytes_per_char = result.wire_ws_bytes / max(result.text_chars, 1)
        result.last_token_lag_ms = await page.evaluate("window.__lastChange") - fake.last_text_at * 1000
        result.peak_rss_mb = peak_rss_mb(pid)
        result.ok = True
    finally:
        await context.close()


def _timeout(result: Result) -> float:
    """TIMEOUT_S, plus one and a half times the time the paced upstream needs."""
    return TIMEOUT_S + 1.5 * (result.reply_chars / 4) * result.pace_ms / 1000


async def run_size(browser: Any, tokens: int, pace_ms: float, dump: list[str] | None = None) -> Result:
    """Fresh fake server and app for one reply size, bounded by `_timeout`."""
    text = make_reply(tokens)
    result = Result(tokens=tokens, reply_chars=len(text), pace_ms=pace_ms, ok=False)
    with tempfile.TemporaryDirectory(prefix="lantern-bench-") as tmp, \
            TimedFake(replies=[Reply(text=text, chunk=4, delay=pace_ms / 1000)]) as fake:
        data = Path(tmp) / "data"
        compat = json.dumps({"fake": {"base_url": fake.base_url, "models": ["bench"]}})
        app = AppProcess(data, {"LANTERN_OPENAI_COMPAT": compat, "LANTERN_DEFAULT_MODEL": "fake/bench",
                                "DATABASE_URL": f"sqlite:///{data / 'bench.db'}"})
        try:
            await asyncio.to_thread(app.wait_ready)
            last_heading = text.rsplit("## ", 1)[1].split("\n", 1)[0]
            async with WireCounter(app.port) as wire:
                await asyncio.wait_for(measure(browser, app, fake, result, last_heading, dump, wire),
                                       _timeout(result))
        except (TimeoutError, PlaywrightTimeout) as exc:
            result.error = f"no completed reply within {_timeout(result):.0f} s ({type(exc).__name__})"
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
    """Results as a Markdown table (bytes per char: per rendered character; md: per markdown character)."""
    head = ("| tokens | pace ms | wall s | last token lag ms | ws bytes | ws frames | bytes/char | widget bytes/char "
            "| bytes/md char | wire bytes/char | modules KiB | server CPU s | peak RSS MiB | page loads | status |")
    lines = [head, "|" + "---:|" * 14 + "---|"]
    for r in results:
        lag = f"{r.last_token_lag_ms:.0f}" if r.ok else ""
        lines.append(f"| {r.tokens} | {r.pace_ms:g} | {r.wall_s:.2f} | {lag} | {r.ws_bytes} | {r.ws_frames} "
                     f"| {r.bytes_per_char:.2f} | {r.widget_bytes_per_char:.2f} | {r.bytes_per_md_char:.2f} "
                     f"| {r.wire_bytes_per_char:.2f} | {r.wire_http_bytes / 1024:.0f} | {r.server_cpu_s:.2f} "
                     f"| {r.peak_rss_mb:.0f} | {r.page_loads} | {_status(r)} |")
    return "\n".join(lines)


def _status(r: Result) -> str:
    """ok, incomplete (the last heading never rendered), or the error."""
    return r.error if not r.ok else "ok" if r.complete else "incomplete"


def median(runs: list[Result]) -> Result:
    """The median of each measured figure over repeated runs of one size (ok only if all were)."""
    first = runs[0]
    out = Result(tokens=first.tokens, reply_chars=first.reply_chars, pace_ms=first.pace_ms,
                 ok=all(r.ok for r in runs), error="; ".join(r.error for r in runs if r.error),
                 complete=all(r.complete for r in runs))
    good = [r for r in runs if r.ok] or runs
    for name, value in asdict(first).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool) and name not in (
                "tokens", "reply_chars", "pace_ms"):
            mid = statistics.median(getattr(r, name) for r in good)
            setattr(out, name, type(value)(mid))
    return out


async def main_async(sizes: list[int], pace_ms: float, repeat: int, dump_dir: Path | None) -> list[Result]:
    """Measure every size `repeat` times with one headless Chromium; the medians per size."""
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=FLAGS)
        try:
            medians = []
            for n in sizes:
                runs = []
                for i in range(repeat):
                    frames: list[str] | None = [] if dump_dir else None
                    runs.append(await run_size(browser, n, pace_ms, frames))
                    if dump_dir and frames is not None:
                        dump_dir.mkdir(parents=True, exist_ok=True)
                        (dump_dir / f"frames-{n}-{pace_ms:g}ms-{i}.json").write_text(json.dumps(frames, indent=0))
                medians.append(median(runs))
            return medians
        finally:
            await browser.close()


def main(argv: list[str] | None = None) -> None:
    """Parse flags, run, print the table and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1000,4000,20000", help="reply sizes in tokens, comma-separated")
    parser.add_argument("--pace-ms", type=float, default=0.0, help="delay between 4-character chunks")
    parser.add_argument("--repeat", type=int, default=1, help="runs per size; the table shows medians")
    parser.add_argument("--dump", type=Path, help="write every websocket frame received to this directory")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where to write the JSON results")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    results = asyncio.run(main_async(sizes, args.pace_ms, max(args.repeat, 1), args.dump))
    publish([asdict(r) for r in results], table(results), args.out)
    if not all(r.ok and r.complete for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
