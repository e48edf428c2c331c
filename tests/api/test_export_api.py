"""`GET /api/conversations/{id}/export` as a client sees it: the file, its type and its name."""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from nicegui.testing import User


async def new_conversation(user: User) -> str:
    body = {"messages": [{"role": "user", "content": "Hi there"}], "model": "scripted/hello"}
    response = await user.http_client.post("/api/chat", json=body)
    assert response.status_code == 200 and response.json()["status"] == "completed"
    return str(response.json()["conversation_id"])


async def test_markdown_is_the_default(user: User) -> None:
    conv_id = await new_conversation(user)
    for params in ({}, {"format": "md"}):
        response = await user.http_client.get(f"/api/conversations/{conv_id}/export", params=params)
        assert response.status_code == 200
        assert response.headers["content-type"] == "text/markdown; charset=utf-8"
        assert response.headers["content-disposition"] == 'attachment; filename="hi-there.md"'
        assert response.text.startswith("# Hi there\n")
        assert "## You\n" in response.text and "## Assistant (scripted/hello)\n" in response.text
        assert "Hello! I am a **scripted** model." in response.text


async def test_json_is_the_whole_document(user: User) -> None:
    conv_id = await new_conversation(user)
    response = await user.http_client.get(f"/api/conversations/{conv_id}/export", params={"format": "json"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    assert response.headers["content-disposition"] == 'attachment; filename="hi-there.json"'
    doc = response.json()
    assert doc["format"] == "lantern.conversation" and doc["id"] == conv_id
    assert [m["role"] for m in doc["messages"]] == ["user", "assistant"]
    assert doc["current_path"] == [m["id"] for m in doc["messages"]]


async def test_pdf_is_a_pdf_file(user: User) -> None:
    conv_id = await new_conversation(user)
    response = await user.http_client.get(f"/api/conversations/{conv_id}/export", params={"format": "pdf"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"] == 'attachment; filename="hi-there.pdf"'
    assert response.content.startswith(b"%PDF") and response.content.rstrip().endswith(b"%%EOF")


async def test_unknown_conversation_and_format(user: User) -> None:
    missing = await user.http_client.get("/api/conversations/nope/export")
    assert missing.status_code == 404 and missing.json()["error"]["type"] == "not_found"
    conv_id = await new_conversation(user)
    docx = await user.http_client.get(f"/api/conversations/{conv_id}/export", params={"format": "docx"})
    assert docx.status_code == 422
    error = docx.json()["error"]
    assert error["type"] == "validation" and "format" in error["message"]
    assert error["fields"][0]["field"].endswith("format")


async def test_pdf_without_weasyprint_says_what_to_install(user: User, monkeypatch: pytest.MonkeyPatch) -> None:
    conv_id = await new_conversation(user)
    monkeypatch.setitem(sys.modules, "weasyprint", None)  # as if it were not installed
    response = await user.http_client.get(f"/api/conversations/{conv_id}/export", params={"format": "pdf"})
    assert response.status_code == 501
    assert response.json()["error"]["type"] == "export_unavailable"
    assert "weasyprint" in response.json()["error"]["message"]
    # The other formats do not need it.
    assert (await user.http_client.get(f"/api/conversations/{conv_id}/export")).status_code == 200


# --- a continued duet's export covers the whole conversation -------------------------------------------------


@pytest.fixture
def paced_scripts(monkeypatch: pytest.MonkeyPatch) -> None:
    """`pace` speaks for about a second a turn, long enough to steer the other bot meanwhile."""
    import json

    from tests.conftest import SCRIPTS

    monkeypatch.setenv("LANTERN_SCRIPTS", json.dumps(
        {**SCRIPTS, "pace": {"replies": ["word " * 40], "delay": 0.03, "chunk": 5}}))


def duet_agents(ann: dict[str, Any], ben: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"name": "Ann", "model": "scripted/pace", "system_prompt": "Be brief", "temperature": 0.5, **ann},
            {"name": "Ben", "model": "scripted/echo", "system_prompt": "Be blunt", "temperature": 0.9, **ben}]


async def finished_run(user: User, run_id: str) -> dict[str, Any]:
    for _ in range(200):
        run = (await user.http_client.get(f"/api/runs/{run_id}")).json()
        if run["status"] != "running":
            return dict(run)
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} did not finish")


async def test_a_continued_duet_exports_the_whole_conversation(paced_scripts: None, user: User) -> None:
    client = user.http_client
    first = (await client.post("/api/runs", json={"kind": "duet", "topic": "Tea", "turns": 2,
                                                  "agents": duet_agents({}, {})})).json()["run_id"]
    # While Ann speaks turn 1, Ben's prompt is changed: it applies from his turn, turn 2.
    steered = await client.patch(f"/api/runs/{first}/agents/1", json={"system_prompt": "Be kind"})
    assert steered.status_code == 200
    one = await finished_run(user, first)
    # Continued with Ben as he ended and Ann cooler: that change applies from her next turn, turn 3.
    second = (await client.post("/api/runs", json={
        "kind": "duet", "topic": "Tea", "turns": 2, "continue_from": first,
        "agents": duet_agents({"temperature": 0.3}, {"system_prompt": "Be kind"})})).json()["run_id"]
    two = await finished_run(user, second)
    assert (one["status"], two["status"]) == ("completed", "completed")

    doc = (await client.get(f"/api/runs/{second}/export", params={"format": "json"})).json()
    assert doc["continue_from"] == first and doc["conversation_runs"] == [first, second]
    assert [(a["name"], a["system_prompt"], a["temperature"]) for a in doc["agents_at_start"]] == [
        ("Ann", "Be brief", 0.5), ("Ben", "Be blunt", 0.9)]  # the bots as the conversation started
    assert [(c["before_turn"], c["agent"], c["changes"]) for c in doc["changes"]] == [
        (1, "Ben", {"system_prompt": "Be kind"}), (2, "Ann", {"temperature": 0.3})]
    assert [t["turn"] for t in doc["turns"]] == [0, 1, 2, 3]
    assert doc["totals"]["turns"] == 4 and doc["run_totals"]["turns"] == 2
    for key in ("input_tokens", "output_tokens"):
        assert doc["run_totals"][key] == two[key] > 0
        assert doc["totals"][key] == one[key] + two[key]
    assert doc["totals"]["seconds"] >= doc["run_totals"]["seconds"] > 0

    md = (await client.get(f"/api/runs/{second}/export", params={"format": "md"})).text
    assert "**Ben** — scripted/echo · temperature 0.9 · up to 256 tokens a turn\n\n> Be blunt\n" in md
    ben, ann = "> ✎ Ben's system prompt changed (from turn 2) to:", "> ✎ Ann's temperature changed to 0.3 (from turn 3)"
    assert md.index("### Turn 1") < md.index(ben) < md.index("### Turn 2") < md.index(ann) < md.index("### Turn 3")
    assert "not used" not in md
