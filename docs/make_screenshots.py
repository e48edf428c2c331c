"""Regenerate the README screenshots: `.venv/bin/python docs/make_screenshots.py` (needs Debian chromium)."""

from __future__ import annotations

import asyncio
import json
import os
import re
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from playwright.async_api import async_playwright  # noqa: E402

from tests.conftest import AppProcess  # noqa: E402
from tests.e2e.conftest import CHROMIUM, FLAGS  # noqa: E402

SHOWCASE = """Here is a function that reverses a string, and how it behaves.

```python
def reverse(text: str) -> str:
    \"\"\"Return `text` backwards.\"\"\"
    return text[::-1]
```

| input | output |
|---|---|
| `"lantern"` | `"nretnal"` |
| `""` | `""` |

Slicing with a step of **-1** walks the string from the end, so it runs in *O(n)*.
"""


ANALYST = [
    {"text": "Let me add up completed orders by region.",
     "tool_calls": [{"name": "sql_query", "args": {"query": (
         "SELECT r.name AS region, ROUND(SUM(o.quantity * o.unit_price), 2) AS revenue\n"
         "FROM orders o JOIN customers c ON c.id = o.customer_id JOIN regions r ON r.id = c.region_id\n"
         "WHERE o.status = 'completed' AND o.order_date >= '2025-01-01'\n"
         "GROUP BY r.name ORDER BY revenue DESC")}}]},
    "In 2025 the region with the most revenue is at the top of the table above.",
]


async def main() -> None:
    """Start the app with a scripted showcase reply and take light and dark screenshots."""
    out = ROOT / "docs" / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    from tests.conftest import SCRIPTS

    scripts = {**{k: v for k, v in SCRIPTS.items() if k.startswith(("pl_", "studio_"))},
               "showcase": {"replies": [SHOWCASE], "delay": 0.005, "chunk": 6},
               "optimist": {"replies": ["Python is fast enough for most services: the bottleneck is I/O, "
                                        "and the hot loops can live in C extensions.",
                                        "Then measure first — profile, and rewrite only the 5% that matters."],
                            "delay": 0.01, "chunk": 5},
               "sceptic": {"replies": ["Until it isn't: a CPU-bound endpoint on two cores will queue up fast.",
                                       "Agreed, with one rule: set a latency budget before choosing the language."],
                           "delay": 0.01, "chunk": 5},
               "analyst": {"replies": ANALYST, "delay": 0.005, "chunk": 6}}
    with tempfile.TemporaryDirectory() as tmp:
        app = AppProcess(Path(tmp) / "data", {"LANTERN_SCRIPTS": json.dumps(scripts),
                                              "LANTERN_DEFAULT_MODEL": "scripted/showcase"})
        app.wait_ready()
        try:
            async with async_playwright() as pw:
                browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
                page = await browser.new_page(viewport={"width": 1280, "height": 820})
                await page.goto(app.url)
                await page.get_by_text("Ask anything").wait_for()
                box = page.get_by_placeholder("Message Lantern…")
                await box.fill("How do I reverse a string in Python?")
                await box.press("Enter")
                # The reply's footer ("… · 8 in / 57 out tokens"), not the model picker's "scripted/showcase · tools".
                await page.get_by_text(re.compile(r"scripted/showcase · \d+ in")).wait_for(timeout=30_000)
                await page.screenshot(path=str(out / "chat.png"))
                await page.keyboard.press("Control+Shift+D")
                await asyncio.sleep(0.5)
                await page.screenshot(path=str(out / "chat-dark.png"))
                await page.keyboard.press("Control+Shift+D")
                await page.goto(f"{app.url}/tools")
                await page.get_by_label("Model").click()
                await page.get_by_role("option", name="scripted/analyst").click()
                box = page.get_by_placeholder("Message Lantern…")
                await box.fill("Which region sold the most in 2025?")
                await box.press("Enter")
                await page.get_by_text("scripted/analyst · ", exact=False).last.wait_for(timeout=30_000)
                await asyncio.sleep(0.5)
                await page.screenshot(path=str(out / "tools.png"))
                await page.goto(f"{app.url}/duet")
                for i, model in enumerate(("scripted/optimist", "scripted/sceptic")):
                    await page.get_by_label("Model").nth(i).click()
                    await page.get_by_role("option", name=model).last.click()
                await page.get_by_label("Topic or opening message").fill("Is Python fast enough for a web API?")
                await page.get_by_label("Turns").fill("4")
                await page.get_by_role("button", name="Start").click()
                await page.get_by_text("4 turns · finished").wait_for(timeout=30_000)
                await page.evaluate("window.scrollTo(0, 0)")
                await page.screenshot(path=str(out / "duet.png"), full_page=True)
                await page.goto(f"{app.url}/pipelines")
                await page.get_by_text("Model per role").click()
                for role, model in (("generator", "scripted/pl_gen"), ("strong", "scripted/pl_strong"),
                                    ("weak", "scripted/pl_weak"), ("judge", "scripted/pl_judge_yes")):
                    await page.get_by_label(f"{role} model").click()
                    await page.get_by_role("option", name=model).last.click()
                await page.get_by_label("Topic").fill("Python list slicing")
                await page.get_by_role("button", name="Run").click()
                await page.get_by_text("completed").first.wait_for(timeout=30_000)
                await asyncio.sleep(0.5)
                await page.screenshot(path=str(out / "pipelines.png"), full_page=True)
                await page.goto(f"{app.url}/studio")
                for label, value in (("Brand", "Lumen"), ("Product", "Solar camping lantern"),
                                     ("Audience", "weekend campers"), ("Goal", "pre-orders before summer")):
                    await page.get_by_label(f"{label} *", exact=True).fill(value)
                await page.get_by_label("Model").click()
                await page.get_by_role("option", name="scripted/studio_ok").last.click()
                await page.get_by_role("button", name="Generate").click()
                await page.get_by_text("Export all approved").wait_for(timeout=30_000)
                await page.evaluate("window.scrollTo(0, 0)")
                await page.screenshot(path=str(out / "studio.png"))
                await browser.close()
        finally:
            app.stop()
        await shared_screens(Path(tmp) / "shared", out)


async def shared_screens(data: Path, out: Path) -> None:
    """The login page and an admin's Settings, in shared mode."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
    subprocess.run([sys.executable, "-m", "app", "users", "add", "ada", "--admin", "--password-stdin"],
                   env={**env, "LANTERN_DATA_DIR": str(data)}, input="screenshot password\n", text=True,
                   check=True, capture_output=True, cwd=ROOT)
    shop = data / "shop.db"  # a data source to show on Settings
    with sqlite3.connect(shop) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS orders (id INTEGER PRIMARY KEY, region TEXT, total REAL)")
    app = AppProcess(data, {"LANTERN_REQUIRE_LOGIN": "1",
                            "LANTERN_SQL_SOURCES": json.dumps({"shop": f"sqlite:///{shop}"})})
    app.wait_ready()
    try:
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = await browser.new_page(viewport={"width": 1280, "height": 820})
            await page.goto(f"{app.url}/settings")
            await page.get_by_label("Name").fill("ada")
            await page.screenshot(path=str(out / "login.png"))
            await page.get_by_label("Password").fill("screenshot password")
            await page.get_by_label("Password").press("Enter")
            await page.get_by_label("Token name").fill("nightly report")
            await page.get_by_role("button", name="Create token").click()
            await page.get_by_role("button", name="Done").click()
            await page.get_by_role("dialog").wait_for(state="detached")
            await page.get_by_text(re.compile(r"^(ready|connected)")).first.wait_for()  # the data source's check
            await page.mouse.move(0, 0)  # no tooltip in the picture
            await asyncio.sleep(0.5)  # the dialog's fade-out
            await page.screenshot(path=str(out / "settings.png"), full_page=True)
            await browser.close()
    finally:
        app.stop()


if __name__ == "__main__":
    asyncio.run(main())
