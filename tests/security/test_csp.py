"""Issue #16, item 4: the Content-Security-Policy lets the app work and lets a page reach no other origin."""

from __future__ import annotations

from typing import Any

import httpx

from tests.security.conftest import ADMIN_PASSWORD, SharedApp

# Before any page script: keep every violation the page reports.
RECORD_VIOLATIONS = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(`${e.effectiveDirective} ${e.blockedURI}`));
"""
# From the page: a fetch and a WebSocket to another origin (same host and port, other name), then a moment
# for the browser to report what it refused.
REACH_OUT = """async (base) => {
  const fetched = await fetch(base + "/health").then(() => "reached", () => "refused");
  try { new WebSocket(base.replace("http", "ws") + "/_nicegui_ws/socket.io/?EIO=4&transport=websocket"); }
  catch (e) { /* older browsers throw at once */ }
  await new Promise((resolve) => setTimeout(resolve, 500));
  return fetched;
}"""


def directives(policy: str) -> dict[str, list[str]]:
    """A policy as {directive: sources}."""
    parsed = {}
    for part in policy.split(";"):
        name, *sources = part.split()
        parsed[name] = sources
    return parsed


def test_the_policy_allows_only_this_origin(shared_app: SharedApp) -> None:
    for response in (httpx.get(shared_app.url + "/login"), shared_app.login("ada").get("/settings")):
        assert response.status_code == 200
        policy = directives(response.headers["content-security-policy"])
        assert policy["connect-src"] == ["'self'"]  # no ws: / wss: to any host
        assert policy["script-src-attr"] == ["'none'"]
        assert policy["object-src"] == ["'none'"] and policy["frame-ancestors"] == ["'none'"]
        assert policy["default-src"] == ["'self'"] and policy["base-uri"] == ["'self'"]


async def test_pages_work_under_the_policy_and_reach_no_other_origin(shared_app: SharedApp, page: Any) -> None:
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    await page.add_init_script(RECORD_VIOLATIONS)
    await page.goto(shared_app.url + "/")
    await page.get_by_role("button", name="Log in").wait_for(timeout=20_000)
    assert await page.evaluate("window.__csp") == []  # the login page
    await page.get_by_label("Name").fill("ada")
    await page.get_by_label("Password").fill(ADMIN_PASSWORD)
    await page.get_by_role("button", name="Log in").click()
    composer = page.get_by_placeholder("Message Lantern…")
    await composer.wait_for(timeout=20_000)
    await composer.fill("Hello through the policy")
    await composer.press("Enter")
    await page.get_by_text("Here is a list:").wait_for(timeout=20_000)  # streamed over the page's socket
    assert await page.evaluate("window.socket.io.engine.transport.name") == "websocket"  # not a polling fallback
    assert await page.evaluate("window.__csp") == []
    assert [line for line in console if "Content Security Policy" in line] == []

    other_origin = shared_app.url.replace("127.0.0.1", "localhost")
    assert await page.evaluate(REACH_OUT, other_origin) == "refused"
    refused = await page.evaluate("window.__csp")
    assert f"connect-src {other_origin}/health" in refused
    assert any(v.startswith(f"connect-src {other_origin.replace('http', 'ws')}/") for v in refused), refused
