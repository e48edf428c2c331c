"""Structured output on the embedded model: schema grammars, the pipeline and Studio on SmolLM2, tool calls."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from services.chat.agent import run_agent
from services.core.errors import BadInput, ProviderBadRequest
from services.core.events import Done, StepFinished, StepStarted, TextDelta, ToolCall, ToolOutput, Usage
from services.core.json_schema import problem
from services.pipelines.builtin import builtins
from services.pipelines.definition import parse_definition, step_schema
from services.providers.base import ChatMessage, ChatRequest
from services.providers.local import LocalProvider
from services.studio.modules import KINDS, MODULES, deliverable_schema
from services.tools.registry import build_tools
from storage import runs as run_repo

BRIEF = {"brand": "Lumen", "product": "Solar lantern", "audience": "campers", "goal": "pre-orders"}
FRUIT = {"type": "object", "additionalProperties": False, "required": ["name", "colours", "ripe"], "properties": {
    "name": {"type": "string", "minLength": 1, "maxLength": 40},
    "colours": {"type": "array", "minItems": 1, "maxItems": 3,
                "items": {"type": "string", "minLength": 1, "maxLength": 20}},
    "ripe": {"type": "boolean"}}}


def local_or_skip() -> LocalProvider:
    provider = LocalProvider()
    if (reason := provider.unavailable_reason()) is not None:
        pytest.skip(f"embedded model unavailable: {reason}")
    return provider


async def test_embedded_reply_under_a_schema_parses_and_validates() -> None:
    provider = local_or_skip()
    request = ChatRequest(model="smollm2", messages=[ChatMessage(role="user", content="Describe a banana.")],
                          max_tokens=120, temperature=0, response_schema=FRUIT, schema_name="fruit")
    events = [e async for e in provider.stream(request)]
    text = "".join(e.delta for e in events if isinstance(e, TextDelta))
    assert problem(json.loads(text), FRUIT) is None, text
    assert list(json.loads(text)) == ["name", "colours", "ripe"]  # in the schema's order
    assert isinstance(events[-1], Usage) and events[-1].stop_reason == "end"


async def test_a_schema_the_grammar_cannot_express_is_refused_not_ignored() -> None:
    provider = local_or_skip()
    schema = {"type": "object", "properties": {"answer": {"type": "string", "pattern": "^(yes|no)$"}}}
    request = ChatRequest(model="smollm2", messages=[ChatMessage(role="user", content="Yes or no?")],
                          max_tokens=10, response_schema=schema)
    with pytest.raises(ProviderBadRequest, match="cannot follow this schema: pattern"):
        _ = [e async for e in provider.stream(request)]


async def test_assessment_pipeline_completes_with_valid_json_on_the_embedded_model(lantern: Any) -> None:
    local_or_skip()
    active = await lantern.pipelines.start(user_id="local", topic="Python list comprehensions",
                                           model="local/smollm2", max_attempts=1)
    events = [e async for _, e in lantern.runs.subscribe(active.run.id)]
    started = [e for e in events if isinstance(e, StepStarted)]
    finished = [e for e in events if isinstance(e, StepFinished)]
    assert events[-1] == Done(status="completed", run_id=active.run.id), [f.error for f in finished]
    steps = builtins()["assessment"].steps
    assert [s.title for s in started] == [s.title for s in steps]  # every step once: no retry was needed
    for step, done in zip(steps, finished, strict=True):
        assert done.ok, (step.title, done.error, done.response[:300])
        if (schema := step_schema(step)) is not None:
            assert problem(json.loads(done.response), schema) is None, (step.title, done.response)


async def test_studio_campaign_on_the_embedded_model_returns_a_valid_envelope(lantern: Any) -> None:
    local_or_skip()
    active = await lantern.studio.start(user_id="local", module="campaign", brief=BRIEF, model="local/smollm2")
    events = [e async for _, e in lantern.runs.subscribe(active.run.id)]
    run = await lantern.db.call(run_repo.get_run, run_id=active.run.id)
    envelope = run.result
    assert envelope["status"] in ("SUCCESS", "PARTIAL"), envelope
    assert [d["kind"] for d in envelope["deliverables"]] == ["campaign_brief", "linkedin_post", "x_post", "email_copy"]
    for done in (e for e in events if isinstance(e, StepFinished)):
        kind = KINDS[MODULES["campaign"][done.index]]
        assert problem(json.loads(done.response), deliverable_schema(kind)) is None, done.response  # JSON, no prose
    if envelope["status"] == "PARTIAL":
        assert envelope["meta"]["warnings"]


async def test_degenerate_content_makes_the_envelope_partial_with_a_warning(lantern: Any) -> None:
    def reply(content: str, hashtags: list[str]) -> str:
        return json.dumps({"title": "T", "content_markdown": content, "hashtags": hashtags})

    looping = reply("\n".join(["Buy Lumen now!"] * 12), ["lumen"])
    emoji = reply("🔥🔥🔥🔥🔥🔥\n🌟🌟🌟🌟🌟\n🔥🔥🔥🔥🔥🔥🔥", ["go"])
    empty_tags = reply("Dear camper, light your nights with Lumen.", ["", "#", " "])
    # Each degenerate reply comes twice: the first is retried with the reason, the second is kept with a warning.
    lantern.registry.scripted.add_script("studio_loop", [
        reply("A solar lantern for campers who want light.", ["camping"]),
        looping, looping, emoji, emoji, empty_tags, empty_tags])
    active = await lantern.studio.start(user_id="local", module="campaign", brief=BRIEF, model="scripted/studio_loop")
    _ = [e async for e in lantern.runs.subscribe(active.run.id)]
    envelope = (await lantern.db.call(run_repo.get_run, run_id=active.run.id)).result
    assert envelope["status"] == "PARTIAL", envelope["status"]
    assert len(envelope["deliverables"]) == 4  # kept as drafts to amend
    warnings = envelope["meta"]["warnings"]
    assert [w.split(":")[0] for w in warnings] == ["LinkedIn post", "X/Twitter post", "Email copy"], warnings
    assert "repeated 12 times" in warnings[0] and "emoji" in warnings[1] and "empty hashtag" in warnings[2]
    retry = lantern.registry.scripted.requests[2].messages[-1].content
    assert "Your previous reply was invalid: one line is repeated 12 times" in retry


async def test_embedded_model_calls_a_tool_with_arguments_matching_its_schema(tmp_path: Path) -> None:
    provider = local_or_skip()
    tools = build_tools(tmp_path)  # the Tools page's set, and a question it suggests
    question = ChatMessage(role="user", content="How many customers do we have?")
    request = ChatRequest(model="smollm2", messages=[question], max_tokens=60, temperature=0)
    events = [e async for e in run_agent(provider, request, tools, max_steps=1)]
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert calls and calls[0].name in tools, events
    assert problem(calls[0].args, tools[calls[0].name].schema()) is None, calls[0].args
    output = next(e for e in events if isinstance(e, ToolOutput))
    assert output.id == calls[0].id and output.output
    answer = "".join(e.delta for e in events[events.index(output):] if isinstance(e, TextDelta))
    assert answer.strip()  # then it answers in plain text


async def test_scripted_echo_is_not_offered_as_tool_capable(lantern: Any) -> None:
    models = {m.id: m for m in lantern.registry.list_models()}
    assert not models["scripted/echo"].supports_tools
    assert models["scripted/analyst"].supports_tools  # its script calls tools
    assert models["local/smollm2"].supports_tools


def test_a_json_step_sends_its_own_schema_or_one_derived_from_its_fields() -> None:
    question = next(s for s in builtins()["assessment"].steps if s.id == "question")
    assert step_schema(question)["properties"]["code"]["maxLength"] == 900  # bounded in assessment.yaml
    spec = parse_definition({"name": "p", "roles": ["r"], "steps": [
        {"id": "a", "title": "A", "role": "r", "prompt": "x", "output": "json", "fields": {"n": "int", "s": "str"}}]})
    derived = step_schema(spec.steps[0])
    assert derived["required"] == ["n", "s"] and derived["properties"]["s"]["maxLength"] == 1000
    with pytest.raises(BadInput, match="output_schema: must list and require s"):
        parse_definition({"name": "p", "roles": ["r"], "steps": [
            {"id": "a", "title": "A", "role": "r", "prompt": "x", "output": "json", "fields": {"n": "int", "s": "str"},
             "output_schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"]}}]})
