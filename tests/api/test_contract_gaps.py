"""Issue #17 item 9 and item 4's cap: the API answers unknown routes in its own shape, a run shows its config,
usage and error type, and the per-run token cap holds while a reply streams."""

from __future__ import annotations

from typing import Any

from nicegui.testing import User

from services.core.events import Error, TextDelta
from tests.api.test_runs_api import duet_body


async def test_an_unknown_api_route_answers_json(user: User) -> None:
    for method in ("GET", "POST", "DELETE"):
        response = await user.http_client.request(method, "/api/no-such-thing")
        # Before: NiceGUI's HTML 404 page.
        assert response.status_code == 404 and response.headers["content-type"].startswith("application/json")
        assert response.json()["error"]["type"] == "not_found" and "/docs" in response.json()["error"]["message"]


async def test_a_run_shows_its_config_usage_and_error_type(user: User) -> None:
    created = await user.http_client.post("/api/runs", json=duet_body())
    run_id = created.json()["run_id"]
    await user.http_client.get(f"/api/runs/{run_id}/events")  # until it ends
    run = (await user.http_client.get(f"/api/runs/{run_id}")).json()
    assert run["config"]["topic"] == "Tabs or spaces"
    assert set(run["usage"]) == {"input_tokens", "output_tokens", "cost_usd"} and run["usage"]["output_tokens"] > 0
    failed = await user.http_client.post("/api/chat", json={"messages": [{"role": "user", "content": "hi"}],
                                                            "model": "scripted/broken"})
    body = failed.json()
    assert body["status"] == "failed"
    assert body["error"]["type"] == "unavailable"  # before: every error was "provider_error"
    stored = (await user.http_client.get(f"/api/runs/{body['run_id']}")).json()
    assert stored["error_type"] == "unavailable"


async def test_the_token_cap_holds_while_the_reply_streams(lantern: Any) -> None:
    lantern.runs.max_run_tokens = 100  # the slow script streams ~2,000 characters and reports usage at its end
    start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "talk"}],
                                     model="scripted/slow")
    assert await lantern.runs.wait(start.run.id) == "failed"
    events = [e for _, e in start.run.events]
    streamed = sum(len(e.delta) for e in events if isinstance(e, TextDelta))
    errors = [e for e in events if isinstance(e, Error)]
    assert errors and errors[0].error_type == "token_cap"
    assert streamed < 1000  # before: the whole reply streamed, and the cap was only seen at the end

