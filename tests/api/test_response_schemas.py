"""What /docs says each JSON route answers is what it answers: real responses checked against the served schema."""

from __future__ import annotations

import asyncio
from typing import Any

from jsonschema import Draft202012Validator
from nicegui.testing import User

BRIEF = {"brand": "Lumen", "product": "coffee", "audience": "night owls", "goal": "launch"}
AGENTS = [{"name": "Ann", "model": "scripted/slow"}, {"name": "Ben", "model": "scripted/slow"}]


class Checker:
    """Sends requests and checks each JSON answer against the schema documented for its route and status."""

    def __init__(self, user: User, schema: dict[str, Any]) -> None:
        self.user = user
        self.schema = schema
        self.checked: set[tuple[str, str, int]] = set()

    async def call(self, method: str, path: str, route: str, **kwargs: Any) -> Any:
        """The response's JSON, after checking it against the route's documented response."""
        response = await self.user.http_client.request(method, path, **kwargs)
        documented = self.schema["paths"][route][method.lower()]["responses"]
        assert str(response.status_code) in documented, (route, response.status_code, response.text[:300])
        ref = documented[str(response.status_code)]["content"]["application/json"]["schema"]
        errors = list(Draft202012Validator({**ref, "components": self.schema["components"]})
                      .iter_errors(response.json()))
        assert not errors, (route, [f"{list(e.absolute_path)}: {e.message}" for e in errors[:5]])
        self.checked.add((method.lower(), route, response.status_code))
        return response.json()


async def test_every_documented_json_answer_matches_its_schema(user: User) -> None:
    schema = (await user.http_client.get("/openapi.json")).json()
    check = Checker(user, schema)
    await check.call("GET", "/health", "/health")
    await check.call("GET", "/api/models", "/api/models")
    reply = await check.call("POST", "/api/chat", "/api/chat",
                             json={"messages": [{"role": "user", "content": "Hi"}], "model": "scripted/echo"})
    failed = await check.call("POST", "/api/chat", "/api/chat",
                              json={"messages": [{"role": "user", "content": "Hi"}], "model": "scripted/broken"})
    assert failed["status"] == "failed" and failed["error"]["type"]
    await check.call("GET", "/api/conversations?q=hi", "/api/conversations")
    await check.call("GET", f"/api/conversations/{reply['conversation_id']}", "/api/conversations/{conversation_id}")
    started = await check.call("POST", "/api/runs", "/api/runs",
                               json={"kind": "duet", "topic": "tea", "turns": 2, "agents": AGENTS})
    run_id = started["run_id"]
    await check.call("PATCH", f"/api/runs/{run_id}/agents/1", "/api/runs/{run_id}/agents/{index}",
                     json={"temperature": 1.1})
    await check.call("GET", f"/api/runs/{run_id}", "/api/runs/{run_id}")  # running: no result yet
    await asyncio.sleep(0.3)
    await check.call("POST", f"/api/runs/{run_id}/stop", "/api/runs/{run_id}/stop")
    await user.http_client.get(f"/api/runs/{run_id}/events")  # until its end
    await check.call("GET", f"/api/runs/{run_id}", "/api/runs/{run_id}")
    await check.call("GET", f"/api/runs/{failed['run_id']}", "/api/runs/{run_id}")  # with its error
    await check.call("GET", "/api/runs?limit=5", "/api/runs")
    await check.call("GET", "/api/deliverables/modules", "/api/deliverables/modules")
    envelope = await check.call("POST", "/api/deliverables/generate", "/api/deliverables/generate",
                                json={"module": "campaign", "model": "scripted/studio_ok", "brief": BRIEF})
    item = envelope["deliverables"][0]["id"]
    route = "/api/deliverables/{deliverable_id}"
    await check.call("GET", f"/api/deliverables/{item}", route)
    await check.call("PATCH", f"/api/deliverables/{item}", route, json={"content_markdown": "Shorter."})
    await check.call("POST", f"/api/deliverables/{item}/approve", route + "/approve")
    documented = {(method, path) for path, ops in schema["paths"].items() if path.startswith(("/api/", "/health"))
                  for method, op in ops.items()
                  if any("application/json" in r.get("content", {}) and "$ref" in r["content"]["application/json"]
                         .get("schema", {}) and not r["content"]["application/json"]["schema"]["$ref"]
                         .endswith("HTTPValidationError") for r in op["responses"].values())}
    assert documented == {(method, route) for method, route, _status in check.checked}  # none left unchecked
