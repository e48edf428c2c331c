"""Deliverables over HTTP: modules, generate → envelope, amend, approve, export (409 until approved)."""

from __future__ import annotations

from nicegui.testing import User

BRIEF = {"brand": "Lumen", "product": "Solar lantern", "audience": "campers", "goal": "pre-orders"}


async def test_generate_amend_approve_export(user: User) -> None:
    client = user.http_client
    modules = (await client.get("/api/deliverables/modules")).json()["modules"]
    assert {m["id"] for m in modules} == {"campaign", "social_calendar", "launch"}
    envelope = (await client.post("/api/deliverables/generate", json={
        "module": "social_calendar", "brief": BRIEF, "model": "scripted/echo"})).json()
    assert envelope["status"] == "SUCCESS" and envelope["module"] == "social_calendar"
    assert set(envelope["meta"]) >= {"timestamp", "provider", "model", "cost_usd", "tokens_used", "warnings",
                                     "trace_id"}
    item = envelope["deliverables"][0]
    assert item["content_markdown"].startswith("You said:")
    early = await client.get(f"/api/deliverables/{item['id']}/export", params={"format": "md"})
    assert early.status_code == 409 and "approve it first" in early.json()["error"]["message"]
    amended = await client.patch(f"/api/deliverables/{item['id']}", json={"content_markdown": "Approved copy."})
    assert [v["version"] for v in amended.json()["versions"]] == [1, 2]
    assert (await client.post(f"/api/deliverables/{item['id']}/approve")).json()["approved_version"] == 2
    exported = await client.get(f"/api/deliverables/{item['id']}/export", params={"format": "md"})
    assert exported.status_code == 200 and "Approved copy." in exported.text
    assert "attachment" in exported.headers["content-disposition"]
    locked = await client.patch(f"/api/deliverables/{item['id']}", json={"content_markdown": "late"})
    assert locked.status_code == 409


async def test_bad_generate_requests(user: User) -> None:
    client = user.http_client
    unknown = await client.post("/api/deliverables/generate", json={"module": "poster", "brief": BRIEF})
    assert unknown.status_code == 422
    assert "known are campaign, social_calendar, launch" in unknown.json()["error"]["message"]
    missing = await client.post("/api/deliverables/generate", json={"module": "campaign", "brief": {"brand": "x"}})
    assert missing.status_code == 422 and "brief.product" in missing.json()["error"]["message"]
    assert (await client.get("/api/deliverables/nope")).status_code == 404
    run = await client.post("/api/runs", json={"kind": "deliverables", "module": "launch", "brief": BRIEF,
                                                "model": "scripted/echo"})
    assert run.status_code == 201 and run.json()["status"] == "running"
