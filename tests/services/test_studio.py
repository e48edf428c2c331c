"""Studio: the envelope's rules, generation through the chain, and draft → amend → approve → export."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from services.core.errors import BadInput, Conflict, NotFound
from services.core.events import ProviderFallback
from services.studio.envelope import DeliverableOut, Envelope, EnvelopeError, Meta
from services.studio.service import parse_deliverable
from storage import runs as run_repo

BRIEF = {"brand": "Lumen", "product": "Solar lantern", "audience": "campers", "goal": "pre-orders"}


def item(n: int) -> str:
    return json.dumps({"title": f"Piece {n}", "content_markdown": f"**Body {n}**", "hashtags": ["camping"]})


MANIFEST = json.dumps({"id": "linkedin_post", "kind": "linkedin_post"})


def meta(**kw: Any) -> Meta:
    return Meta(timestamp="t", provider="p", model="m", cost_usd=0, tokens_used=0, trace_id="tr", **kw)


def out(content: str = "text") -> DeliverableOut:
    return DeliverableOut(id="d", kind="x_post", platform="x", title="T", content_markdown=content)


@pytest.mark.parametrize(("fields", "says"), [
    ({"status": "SUCCESS", "deliverables": []}, "at least one deliverable"),
    ({"status": "SUCCESS", "deliverables": [out("  ")]}, "without content"),
    ({"status": "PARTIAL", "deliverables": [out()]}, "meta.warnings"),
    ({"status": "FAILED", "deliverables": []}, "must carry an error"),
])
def test_envelope_rules(fields: dict[str, Any], says: str) -> None:
    with pytest.raises(ValidationError, match=says):
        Envelope(module="campaign", run_id="r", meta=meta(), **fields)
    assert Envelope(status="SUCCESS", module="m", run_id="r", meta=meta(), deliverables=[out()])
    assert Envelope(status="FAILED", module="m", run_id="r", meta=meta(), deliverables=[],
                    error=EnvelopeError(type="x", message="y", trace_id="tr"))


def test_parsing_refuses_manifests_and_empty_replies() -> None:
    assert parse_deliverable(item(1))[0] == {"title": "Piece 1", "content_markdown": "**Body 1**",
                                             "hashtags": ["camping"]}
    assert parse_deliverable(MANIFEST)[1] == "no content_markdown (a manifest without content is not a deliverable)"
    assert parse_deliverable("   ")[1] == "the reply is empty"
    assert parse_deliverable("{broken")[1].startswith("not valid JSON")
    assert parse_deliverable("Plain **markdown** copy.")[0]["content_markdown"] == "Plain **markdown** copy."


async def generate(lantern: Any, model: str, module: str = "campaign") -> tuple[Any, list[Any]]:
    active = await lantern.studio.start(user_id="local", module=module, brief=BRIEF, model=model)
    events = [e async for _, e in lantern.runs.subscribe(active.run.id)]
    return await lantern.db.call(run_repo.get_run, run_id=active.run.id), events


async def test_success_partial_and_failed(lantern: Any) -> None:
    scripted = lantern.registry.scripted
    scripted.add_script("studio_ok", [item(n) for n in range(1, 5)])
    scripted.add_script("studio_partial", [item(1), MANIFEST, MANIFEST, item(3), item(4)])
    scripted.add_script("down", [{"error": {"type": "unavailable", "message": "503"}}])
    run, _ = await generate(lantern, "scripted/studio_ok")
    envelope = run.result
    assert envelope["status"] == "SUCCESS" and len(envelope["deliverables"]) == 4
    assert [d["kind"] for d in envelope["deliverables"]] == ["campaign_brief", "linkedin_post", "x_post", "email_copy"]
    assert envelope["meta"]["provider"] == "scripted" and envelope["meta"]["trace_id"] == run.trace_id
    Envelope.model_validate(envelope)
    run, _ = await generate(lantern, "scripted/studio_partial")
    assert run.result["status"] == "PARTIAL" and len(run.result["deliverables"]) == 3
    assert run.result["meta"]["warnings"] == ["LinkedIn post: no content_markdown (a manifest without content "
                                              "is not a deliverable)"]
    run, _ = await generate(lantern, "scripted/down")
    assert run.status == "failed" and run.result["status"] == "FAILED" and run.result["deliverables"] == []
    assert run.result["error"]["trace_id"] == run.trace_id and "no deliverable" in run.result["error"]["message"]


async def test_fallback_from_a_failing_server_is_visible(lantern: Any) -> None:
    from services.providers.openai_compat import OpenAICompatProvider
    from tests.fakes.openai_server import FakeOpenAI, Reply

    lantern.registry.scripted.add_script("studio_ok", [item(n) for n in range(1, 6)])
    with FakeOpenAI(replies=[Reply(status=503)]) as fake:
        lantern.registry.providers["vllm"] = OpenAICompatProvider(name="vllm", api_key=None, base_url=fake.base_url,
                                                                  key_required=False)
        lantern.studio.chain = ["scripted/studio_ok"]
        run, events = await generate(lantern, "vllm/big", module="social_calendar")
    assert run.result["status"] == "SUCCESS" and run.result["meta"]["provider"] == "scripted"
    fallbacks = [e for e in events if isinstance(e, ProviderFallback)]
    assert fallbacks and fallbacks[0].from_ == "vllm/big" and fallbacks[0].to == "scripted/studio_ok"
    assert len(fake.requests) == 2 * 3  # one retry per deliverable before handing over


async def test_amend_version_history_approve_export(lantern: Any) -> None:
    lantern.registry.scripted.add_script("studio_ok", [item(n) for n in range(1, 5)])
    run, _ = await generate(lantern, "scripted/studio_ok")
    first = run.result["deliverables"][1]["id"]
    with pytest.raises(Conflict, match="approve it first"):
        await lantern.studio.export(user_id="local", deliverable_id=first, fmt="md")
    await lantern.studio.amend(user_id="local", deliverable_id=first, content="Second draft")
    amended = await lantern.studio.amend(user_id="local", deliverable_id=first, content="Final words")
    assert [(v["version"], v["note"], v["content_markdown"]) for v in amended["versions"]] == [
        (1, "generated", "**Body 2**"), (2, "amended", "Second draft"), (3, "amended", "Final words")]
    approved = await lantern.studio.approve(user_id="local", deliverable_id=first)
    assert approved["status"] == "approved" and approved["approved_version"] == 3
    with pytest.raises(Conflict, match="locked"):
        await lantern.studio.amend(user_id="local", deliverable_id=first, content="sneaky")
    text, name = await lantern.studio.export(user_id="local", deliverable_id=first, fmt="md")
    assert "Final words" in text and "Second draft" not in text and name.endswith(".md")
    doc = json.loads((await lantern.studio.export(user_id="local", deliverable_id=first, fmt="json"))[0])
    assert doc["content_markdown"] == "Final words" and doc["version"] == 3
    with pytest.raises(NotFound):
        await lantern.studio.get(user_id="someone", deliverable_id=first)
    with pytest.raises(BadInput):
        await lantern.studio.amend(user_id="local", deliverable_id=run.result["deliverables"][0]["id"], content=" ")


async def test_bad_requests_store_nothing(lantern: Any) -> None:
    with pytest.raises(BadInput, match="unknown module 'poster': known are campaign"):
        await lantern.studio.start(user_id="local", module="poster", brief=BRIEF)
    with pytest.raises(BadInput, match="the brief needs audience"):
        await lantern.studio.start(user_id="local", module="campaign", brief={**BRIEF, "audience": " "})
    assert await lantern.db.call(run_repo.list_runs, user_id="local") == []


async def test_regenerate_one_with_an_instruction_adds_a_version(lantern: Any) -> None:
    lantern.registry.scripted.add_script("studio_ok", [*(item(n) for n in range(1, 5)),
                                                       json.dumps({"title": "Short", "content_markdown": "Shorter."})])
    run, _ = await generate(lantern, "scripted/studio_ok")
    target = run.result["deliverables"][2]["id"]
    updated = await lantern.studio.regenerate(user_id="local", deliverable_id=target, instruction="make it shorter")
    assert [(v["version"], v["note"]) for v in updated["versions"]] == [(1, "generated"),
                                                                       (2, "regenerated: make it shorter")]
    assert updated["versions"][-1]["content_markdown"] == "Shorter."
    assert "make it shorter" in lantern.registry.scripted.requests[-1].messages[0].content
    with pytest.raises(BadInput):
        await lantern.studio.regenerate(user_id="local", deliverable_id=target, instruction=" ")
