"""The HTTP API as a client sees it (in-process ASGI, the app built by tests/app_main.py)."""

from __future__ import annotations

import json
from typing import Any

from nicegui.testing import User


def parse_sse(text: str) -> list[dict[str, Any]]:
    """SSE frames as dicts with id, event and data."""
    frames = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if not line.startswith(":"))
        if fields:
            frames.append({"id": int(fields["id"]), "event": fields["event"], "data": json.loads(fields["data"])})
    return frames


async def test_health_and_models(user: User) -> None:
    health = await user.http_client.get("/health")
    assert health.status_code == 200
    assert health.json()["status"] == "ok" and health.json()["database"] == "ok"
    models = (await user.http_client.get("/api/models")).json()
    assert models["default"] == "local/smollm2"
    local = next(m for m in models["models"] if m["id"] == "local/smollm2")
    assert local["available"] is True and local["reason"] is None
    openai = next(m for m in models["models"] if m["id"] == "openai/gpt-4o-mini")
    assert openai["available"] is False and "OPENAI_API_KEY" in openai["reason"]


async def test_chat_stream_sends_numbered_events_and_stores_the_run(user: User) -> None:
    body = {"messages": [{"role": "user", "content": "Hi"}], "model": "scripted/hello"}
    response = await user.http_client.post("/api/chat/stream", json=body)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/event-stream")
    assert response.headers["cache-control"] == "no-cache" and response.headers["x-accel-buffering"] == "no"
    frames = parse_sse(response.text)
    assert [f["id"] for f in frames] == list(range(1, len(frames) + 1))
    assert frames[0]["event"] == "text.delta" and frames[-2]["event"] == "usage"
    assert frames[-1]["event"] == "done" and frames[-1]["data"]["status"] == "completed"
    run_id = frames[-1]["data"]["run_id"]
    run = (await user.http_client.get(f"/api/runs/{run_id}")).json()
    assert run["status"] == "completed" and run["kind"] == "chat"
    # Re-attaching with Last-Event-ID replays only what came after.
    replay = await user.http_client.get(f"/api/runs/{run_id}/events", headers={"Last-Event-ID": "2"})
    assert [f["id"] for f in parse_sse(replay.text)] == [f["id"] for f in frames[2:]]
    conv = (await user.http_client.get(f"/api/conversations/{run['conversation_id']}")).json()
    assert [m["role"] for m in conv["messages"]] == ["user", "assistant"]
    assert conv["messages"][1]["content"].startswith("Hello! I am a **scripted** model.")


async def test_chat_waits_for_the_whole_reply_and_continues_a_conversation(user: User) -> None:
    first = (await user.http_client.post("/api/chat", json={
        "messages": [{"role": "user", "content": "One"}], "model": "scripted/echo"})).json()
    assert first["status"] == "completed" and first["message"]["content"] == "You said: One"
    assert first["provider"] == "scripted" and set(first["usage"]) == {"input_tokens", "output_tokens", "cost_usd"}
    second = (await user.http_client.post("/api/chat", json={
        "messages": [{"role": "user", "content": "Two"}], "model": "scripted/echo",
        "conversation_id": first["conversation_id"]})).json()
    assert second["conversation_id"] == first["conversation_id"]
    listing = (await user.http_client.get("/api/conversations")).json()
    assert listing["total"] == 1 and listing["items"][0]["message_count"] == 4
    assert (await user.http_client.get("/api/conversations", params={"q": "said: two"})).json()["total"] == 1
    assert (await user.http_client.delete(f"/api/conversations/{first['conversation_id']}")).status_code == 204
    assert (await user.http_client.get("/api/conversations")).json()["total"] == 0


async def test_bad_requests_get_clear_errors_and_store_nothing(user: User) -> None:
    client = user.http_client
    malformed = await client.post("/api/chat/stream", json={"messages": "hi"})
    assert malformed.status_code == 422
    assert malformed.json()["error"]["fields"][0]["field"] == "messages"
    wrong_role = await client.post("/api/chat", json={"messages": [{"role": "robot", "content": "x"}]})
    assert wrong_role.status_code == 422 and "messages.0.role" in wrong_role.json()["error"]["message"]
    unknown_field = await client.post("/api/chat", json={"messages": [{"role": "user", "content": "x"}],
                                                         "colour": "red"})
    assert unknown_field.status_code == 422 and "colour" in unknown_field.json()["error"]["message"]
    empty = await client.post("/api/chat", json={"messages": [{"role": "user", "content": "  "}]})
    assert empty.status_code == 400 and empty.json()["error"]["type"] == "bad_input"
    unknown = await client.post("/api/chat", json={"messages": [{"role": "user", "content": "x"}],
                                                   "model": "nope/x"})
    assert unknown.status_code == 400 and unknown.json()["error"]["type"] == "unknown_model"
    no_key = await client.post("/api/chat", json={"messages": [{"role": "user", "content": "x"}],
                                                  "model": "openai/gpt-4o-mini"})
    assert no_key.status_code == 503 and "OPENAI_API_KEY" in no_key.json()["error"]["message"]
    missing = await client.post("/api/chat", json={"messages": [{"role": "user", "content": "x"}],
                                                   "model": "scripted/echo", "conversation_id": "nope"})
    assert missing.status_code == 404
    assert (await client.get("/api/conversations/nope")).status_code == 404
    assert (await client.get("/api/runs/nope/events")).status_code == 404
    assert (await client.get("/api/conversations")).json()["total"] == 0


async def test_page_styles_are_served(user: User) -> None:
    css = await user.http_client.get("/lantern/highlight.css")
    assert css.status_code == 200 and ".lantern-md .hl .k" in css.text  # keywords are coloured
    assert (await user.http_client.get("/static/lantern.css")).status_code == 200


def test_a_client_that_disconnects_does_not_stop_the_reply(app_process) -> None:
    """Closing the stream (a closed tab, a dropped network) leaves the run to finish and be stored."""
    import httpx

    body = {"messages": [{"role": "user", "content": "Keep going"}], "model": "scripted/slow"}
    with httpx.stream("POST", f"{app_process.url}/api/chat/stream", json=body, timeout=10) as response:
        run_id = response.headers["x-run-id"]
        for line in response.iter_lines():
            if line.startswith("event: text.delta"):
                break  # hang up after the first token
    events = httpx.get(f"{app_process.url}/api/runs/{run_id}/events", timeout=30).text
    assert events.rstrip().endswith('"status": "completed", "run_id": "' + run_id + '"}')
    conv_id = httpx.get(f"{app_process.url}/api/runs/{run_id}").json()["conversation_id"]
    reply = httpx.get(f"{app_process.url}/api/conversations/{conv_id}").json()["messages"][-1]
    assert reply["status"] == "completed" and reply["content"] == "word " * 400


async def test_chat_stream_with_tools_sends_tool_events(user: User) -> None:
    body = {"messages": [{"role": "user", "content": "Regions?"}], "model": "scripted/analyst",
            "tools": ["sql_query", "describe_data"]}
    frames = parse_sse((await user.http_client.post("/api/chat/stream", json=body)).text)
    events = [f["event"] for f in frames]
    assert events.index("tool.call") < events.index("tool.output") < events.index("done")
    call = frames[events.index("tool.call")]["data"]
    output = frames[events.index("tool.output")]["data"]
    assert call["name"] == "sql_query" and call["args"] == {"query": "SELECT COUNT(*) AS regions FROM regions"}
    assert output["id"] == call["id"] and output["is_error"] is False and "| 5 |" in output["output"]
    refused = await user.http_client.post("/api/chat", json={**body, "model": "scripted/echo"})
    assert refused.status_code == 400 and "cannot call tools" in refused.json()["error"]["message"]


async def test_pages_and_api_carry_security_headers(user: User) -> None:
    for path in ("/", "/health", "/api/models"):
        response = await user.http_client.get(path)
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
        assert "access-control-allow-origin" not in response.headers  # CORS stays off


async def test_openapi_schema_and_docs_page_are_served(user: User) -> None:
    schema = (await user.http_client.get("/openapi.json")).json()
    assert "/api/runs/{run_id}/events" in schema["paths"] and "/api/chat/stream" in schema["paths"]
    assert not [p for p in schema["paths"] if not p.startswith(("/api/", "/v1/", "/health"))]  # no pages, no internals
    assert "/v1/chat/completions" in schema["paths"]
    docs = await user.http_client.get("/docs")
    assert docs.status_code == 200 and "POST</span> <code>/api/chat/stream</code>" in docs.text
    assert "<script" not in docs.text  # self-contained: no CDN, nothing for the CSP to block
    # Types and an example body, not a bare route list (issue #18).
    chat = docs.text.split("<code>/api/chat/stream</code>")[1].split("</section>")[0]
    assert "<code>messages</code> <i>list of " in chat and "<i>number or null</i>" in chat
    assert "Example body" in chat and "&quot;messages&quot;" in chat


async def test_api_requests_skip_the_page_session_but_keep_our_middleware(user: User) -> None:
    user.http_client.cookies.clear()
    for path in ("/api/models", "/api/conversations"):
        response = await user.http_client.get(path)
        assert response.status_code == 200
        assert "session=" not in response.headers.get("set-cookie", "")  # the API lane skips NiceGUI's layers
        assert "frame-ancestors 'none'" in response.headers["content-security-policy"]
    page = await user.http_client.get("/")
    assert "session=" in page.headers.get("set-cookie", "")  # NiceGUI's page storage is in place for pages
    too_big = await user.http_client.post("/api/chat", content=b"x" * (2 << 20),
                                          headers={"content-type": "application/json"})
    assert too_big.status_code == 413 and too_big.json()["error"]["type"] == "too_large"
