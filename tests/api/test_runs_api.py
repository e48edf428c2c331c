"""Duets over the run API: start, follow, steer, stop, export, and clear errors."""

from __future__ import annotations

import json
from typing import Any

from nicegui.testing import User

from tests.api.test_api import parse_sse


def duet_body(**overrides: Any) -> dict[str, Any]:
    return {"kind": "duet", "topic": "Tabs or spaces", "turns": 2, "agents": [
        {"name": "Ann", "model": "scripted/echo", "system_prompt": "Tabs", "temperature": 0.3},
        {"name": "Ben", "model": "scripted/hello", "system_prompt": "Spaces", "temperature": 0.8}], **overrides}


async def test_duet_runs_and_replays_as_sse(user: User) -> None:
    created = await user.http_client.post("/api/runs", json=duet_body())
    assert created.status_code == 201 and created.json()["status"] == "running"
    run_id = created.json()["run_id"]
    frames = parse_sse((await user.http_client.get(f"/api/runs/{run_id}/events")).text)
    turns = [f["data"] for f in frames if f["event"] == "turn.finished"]
    assert [(t["turn"], t["agent"]) for t in turns] == [(0, "Ann"), (1, "Ben")]
    assert {f["data"]["agent"] for f in frames if f["event"] == "text.delta"} == {"Ann", "Ben"}
    run = (await user.http_client.get(f"/api/runs/{run_id}")).json()
    assert run["status"] == "completed" and "user_id" not in run
    listing = (await user.http_client.get("/api/runs", params={"kind": "duet"})).json()
    assert [r["id"] for r in listing["items"]] == [run_id]
    exported = await user.http_client.get(f"/api/runs/{run_id}/export", params={"format": "json"})
    assert exported.status_code == 200 and "attachment" in exported.headers["content-disposition"]
    assert [t["agent"] for t in json.loads(exported.text)["turns"]] == ["Ann", "Ben"]


async def test_bad_duets_and_patches_get_clear_errors(user: User) -> None:
    client = user.http_client
    assert (await client.post("/api/runs", json=duet_body(turns=0))).status_code == 400
    assert (await client.post("/api/runs", json=duet_body(topic=""))).status_code == 400
    three = duet_body()
    three["agents"].append(three["agents"][0])
    bad = await client.post("/api/runs", json=three)
    assert bad.status_code == 422 and "agents" in bad.json()["error"]["message"]
    assert (await client.post("/api/runs", json={**duet_body(), "kind": "poetry"})).status_code == 422
    run_id = (await client.post("/api/runs", json=duet_body())).json()["run_id"]
    await client.get(f"/api/runs/{run_id}/events")  # let it finish
    finished = await client.patch(f"/api/runs/{run_id}/agents/0", json={"temperature": 1.0})
    assert finished.status_code == 409 and "only a running duet" in finished.json()["error"]["message"]
    assert (await client.patch(f"/api/runs/{run_id}/agents/5", json={"temperature": 1.0})).status_code == 404
    assert (await client.patch(f"/api/runs/{run_id}/agents/0", json={"temperature": 9})).status_code == 422
    assert (await client.patch("/api/runs/nope/agents/0", json={"temperature": 1})).status_code == 404
    assert len((await client.get("/api/runs")).json()["items"]) == 1


async def test_pipeline_runs_over_the_api(user: User) -> None:
    body = {"kind": "pipeline", "topic": "tides", "definition": {
        "name": "one-liner", "roles": ["writer"],
        "steps": [{"id": "line", "title": "One line", "role": "writer", "prompt": "Write about {topic}."}]},
        "model": "scripted/echo"}
    created = await user.http_client.post("/api/runs", json=body)
    assert created.status_code == 201
    run_id = created.json()["run_id"]
    frames = parse_sse((await user.http_client.get(f"/api/runs/{run_id}/events")).text)
    assert [f["event"] for f in frames if f["event"].startswith("step.")] == ["step.started", "step.finished"]
    assert frames[0]["data"]["prompt"] == "Write about tides."
    md = await user.http_client.get(f"/api/runs/{run_id}/export", params={"format": "md"})
    assert md.status_code == 200 and "## 1. One line" in md.text
    bad = await user.http_client.post("/api/runs", json={**body, "definition": {**body["definition"], "extra": 1}})
    assert bad.status_code == 400 and "extra" in bad.json()["error"]["message"]
    unknown = await user.http_client.post("/api/runs", json={"kind": "pipeline", "topic": "t", "pipeline": "nope"})
    assert unknown.status_code == 404
