"""The OpenAI-compatible provider through the real `openai` SDK against servers that behave as real ones do.

Issue #17: what llama-cpp-python's own server showed (glued tool names, no usage, cut-off replies, error
bodies thrown away, base URLs without /v1, hard-coded model lists, structured output).
"""

from __future__ import annotations

import asyncio
import json
import socket
import time
from typing import Any

import pytest

from services.core.errors import ProviderAuth, ProviderBadRequest, ProviderUnavailable
from services.core.events import Event, TextDelta, ToolCall, Usage
from services.providers.base import ChatMessage, ChatRequest, ToolSpec, estimate_tokens
from services.providers.openai_compat import OpenAICompatProvider
from services.providers.registry import Registry, ollama_nearby
from services.providers.scripted import ScriptedProvider
from storage import conversations as conv_repo
from storage import runs as run_repo
from tests.fakes.openai_server import FakeOpenAI, Reply

KEY = "sk-lantern-test-wire-0123456789abcdef"
QUESTION = "How many customers placed an order last month?"
REQUEST = ChatRequest(model="m", messages=[ChatMessage(role="user", content=QUESTION)], system="Be brief")
SQL = ToolSpec(name="sql_query", description="Run a read-only SQL query",
               parameters={"type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]})
SCHEMA: dict[str, Any] = {"type": "object", "properties": {"colour": {"type": "string", "maxLength": 20}},
                          "required": ["colour"], "additionalProperties": False}


def compat(fake: FakeOpenAI, *, name: str = "vllm", base_url: str | None = None, api_key: str | None = None,
           models: list[str] | None = None) -> OpenAICompatProvider:
    return OpenAICompatProvider(name=name, api_key=api_key, base_url=base_url or fake.base_url, models=models,
                                key_required=False, timeout_s=5)


async def collect(provider: OpenAICompatProvider, request: ChatRequest = REQUEST) -> list[Event]:
    return [e async for e in provider.stream(request)]


def text_of(events: list[Event]) -> str:
    return "".join(e.delta for e in events if isinstance(e, TextDelta))


def final_usage(events: list[Event]) -> Usage:
    """The one Usage, which ends the stream."""
    usages = [e for e in events if isinstance(e, Usage)]
    assert len(usages) == 1 and events[-1] is usages[0], events
    return usages[0]


# ---- 2. tool names ---------------------------------------------------------------------------------


async def test_a_tool_name_repeated_in_every_fragment_is_set_once() -> None:
    call = {"name": "sql_query", "args": {"query": "SELECT COUNT(*) FROM customers"}}
    reply = Reply(text="", tool_calls=[call], repeat_name=True, usage=False)
    with FakeOpenAI(replies=[reply]) as fake:
        events = await collect(compat(fake), ChatRequest(model="m", messages=REQUEST.messages, tools=(SQL,)))
    calls = [e for e in events if isinstance(e, ToolCall)]
    assert [(c.name, c.args) for c in calls] == [("sql_query", call["args"])]
    assert final_usage(events).stop_reason == "tool_calls"


async def test_two_calls_named_in_every_fragment_stay_apart() -> None:
    calls = [{"name": "sql_query", "args": {"query": "SELECT 1"}},
             {"name": "calculator", "args": {"expression": "2*3"}}]
    with FakeOpenAI(replies=[Reply(text="Let me check.", tool_calls=calls, repeat_name=True)]) as fake:
        events = await collect(compat(fake))
    assert [(e.name, e.args) for e in events if isinstance(e, ToolCall)] == [(c["name"], c["args"]) for c in calls]


# ---- 4. usage when the server reports none ---------------------------------------------------------


async def test_usage_is_counted_when_the_server_reports_none() -> None:
    text = "Forty-two customers placed an order last month, up from thirty."
    with FakeOpenAI(replies=[Reply(text=text, usage=False)]) as fake:
        events = await collect(compat(fake))
    usage = final_usage(events)
    assert usage.estimated is True
    assert usage.output_tokens == estimate_tokens(text)
    assert usage.input_tokens >= estimate_tokens("Be brief") + estimate_tokens(QUESTION)


async def test_tool_calls_count_as_output_when_the_server_reports_none() -> None:
    call = {"name": "sql_query", "args": {"query": "SELECT region, SUM(total) FROM orders GROUP BY region"}}
    with FakeOpenAI(replies=[Reply(text="", tool_calls=[call], usage=False, repeat_name=True)]) as fake:
        usage = final_usage(await collect(compat(fake)))
    assert usage.estimated and usage.output_tokens >= estimate_tokens(json.dumps(call["args"]))


async def test_usage_the_server_reports_is_kept_and_not_marked_estimated() -> None:
    with FakeOpenAI(replies=[Reply(text="one two three")]) as fake:
        usage = final_usage(await collect(compat(fake)))
    assert (usage.input_tokens, usage.output_tokens, usage.estimated, usage.stop_reason) == (7, 3, None, "end")


async def test_a_run_against_a_server_without_usage_records_tokens(lantern: Any) -> None:
    text = "The lighthouse stood on the rock for a hundred years. " * 4
    with FakeOpenAI(replies=[Reply(text=text, usage=False)]) as fake:
        lantern.registry.providers["vllm"] = compat(fake)
        start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Go"}],
                                         model="vllm/m")
        events = [e async for _, e in lantern.runs.subscribe(start.run.id)]
    assert events[-1].status == "completed"
    run = await lantern.db.call(run_repo.get_run, run_id=start.run.id)
    assert run.output_tokens == estimate_tokens(text) and run.input_tokens > 0


async def test_the_token_cap_stops_a_reply_from_a_server_without_usage_mid_stream(lantern: Any) -> None:
    text = "word " * 2000  # ~2,500 tokens; the cap is 200
    with FakeOpenAI(replies=[Reply(text=text, chunk=20, delay=0.002, usage=False)]) as fake:
        lantern.runs.max_run_tokens = 200
        lantern.registry.providers["vllm"] = compat(fake)
        start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Go"}],
                                         model="vllm/m")
        events = [e async for _, e in lantern.runs.subscribe(start.run.id)]
    assert events[-1].status == "failed"
    assert 0 < len(text_of(events)) < len(text) // 4  # stopped near the cap, not at the reply's end


# ---- 5. cut-off replies ----------------------------------------------------------------------------


@pytest.mark.parametrize(("finish", "stop_reason"), [
    ("stop", "end"), ("length", "length"), ("tool_calls", "tool_calls"), ("function_call", "tool_calls"),
    ("content_filter", "content_filter")])
async def test_finish_reason_becomes_the_stop_reason(finish: str, stop_reason: str) -> None:
    with FakeOpenAI(replies=[Reply(text="The lighthouse keeper climbed the", finish=finish)]) as fake:
        events = await collect(compat(fake))
    assert text_of(events) == "The lighthouse keeper climbed the"
    assert final_usage(events).stop_reason == stop_reason


async def test_a_stream_ending_without_done_or_finish_reason_is_interrupted() -> None:
    with FakeOpenAI(replies=[Reply(text="The lighthouse keeper", finish=None, done=False, usage=False)]) as fake:
        events = await collect(compat(fake))
    assert text_of(events) == "The lighthouse keeper"
    assert final_usage(events).stop_reason == "interrupted"


async def test_a_finish_reason_without_done_is_still_believed() -> None:
    with FakeOpenAI(replies=[Reply(text="The lighthouse", finish="length", done=False)]) as fake:
        assert final_usage(await collect(compat(fake))).stop_reason == "length"


async def test_a_cut_connection_is_still_an_error() -> None:
    with FakeOpenAI(replies=[Reply(text="one two three four", chunk=4, drop_after=2)]) as fake, \
            pytest.raises(ProviderUnavailable):
        await collect(compat(fake))


async def test_a_connection_the_server_dropped_after_an_interrupted_reply_does_not_fail_the_next() -> None:
    # llama-cpp-python, asked for tool_choice "auto" while streaming: an empty 200 reply, then the kept-alive
    # connection is closed under the client's feet; the next request on it got "Server disconnected".
    replies = [Reply(text="", finish=None, done=False, usage=False, drop_connection_after=0.2),
               Reply(text="Second answer.")]
    with FakeOpenAI(replies=replies) as fake:
        provider = compat(fake)
        first = await collect(provider)
        second = await collect(provider)
    assert final_usage(first).stop_reason == "interrupted"
    assert text_of(second) == "Second answer." and final_usage(second).stop_reason == "end"


async def test_a_reply_stopped_at_the_length_limit_is_marked_on_the_message(lantern: Any) -> None:
    with FakeOpenAI(replies=[Reply(text="The lighthouse keeper climbed the", finish="length", usage=False)]) as fake:
        lantern.registry.providers["vllm"] = compat(fake)
        start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Go"}],
                                         model="vllm/m")
        _ = [e async for _, e in lantern.runs.subscribe(start.run.id)]
    reply = (await lantern.db.call(conv_repo.list_messages, conversation_id=start.conversation_id))[-1]
    assert reply.content == "The lighthouse keeper climbed the" and reply.extra.get("stop_reason") == "length"


# ---- 6. the server's explanation -------------------------------------------------------------------


async def test_the_servers_own_message_is_kept() -> None:
    body = {"error": {"message": "'temperature' must be ≤ 2", "type": "invalid_request_error"}}
    with FakeOpenAI(replies=[Reply(status=400, body=body)]) as fake, pytest.raises(ProviderBadRequest) as info:
        await collect(compat(fake, name="openai"))
    assert str(info.value) == "openai refused the request (HTTP 400): 'temperature' must be ≤ 2"


async def test_a_plain_text_explanation_is_kept() -> None:
    with FakeOpenAI(replies=[Reply(status=422, body="max_tokens is too large for this model")]) as fake, \
            pytest.raises(ProviderBadRequest) as info:
        await collect(compat(fake))
    assert str(info.value) == "vllm refused the request (HTTP 422): max_tokens is too large for this model"


async def test_secrets_in_the_servers_message_are_removed() -> None:
    body = {"error": {"message": f"Bad header Authorization: Bearer {KEY}; also tried sk-proj-abcdef0123456789"}}
    with FakeOpenAI(replies=[Reply(status=400, body=body)]) as fake, pytest.raises(ProviderBadRequest) as info:
        await collect(compat(fake, api_key=KEY))
    message = str(info.value)
    assert "refused the request (HTTP 400): Bad header" in message
    assert KEY not in message and KEY[-12:] not in message and "sk-proj-abc" not in message


async def test_a_key_quoted_by_a_refusal_is_not_repeated() -> None:
    with FakeOpenAI(replies=[Reply(status=401, echo_key=True)]) as fake, pytest.raises(ProviderAuth) as info:
        await collect(compat(fake, api_key=KEY))
    assert "rejected the API key" in str(info.value) and KEY[-12:] not in str(info.value)


async def test_a_404_naming_the_model_says_the_model_is_unknown() -> None:
    body = {"error": {"message": "The model `m` does not exist or you do not have access to it.",
                      "type": "invalid_request_error", "code": "model_not_found"}}
    with FakeOpenAI(replies=[Reply(status=404, body=body)]) as fake, pytest.raises(ProviderBadRequest) as info:
        await collect(compat(fake))
    assert "vllm does not know the model 'm'" in str(info.value)
    assert "does not exist or you do not have access to it" in str(info.value)


@pytest.mark.parametrize("not_found", ["json", "html", "text"])
async def test_a_base_url_without_v1_is_diagnosed(not_found: str) -> None:
    with FakeOpenAI(not_found=not_found) as fake, pytest.raises(ProviderBadRequest) as info:
        await collect(compat(fake, name="openai", base_url=fake.origin))
    assert str(info.value).startswith(f"the server at {fake.origin} has no /chat/completions — "
                                      "does OPENAI_BASE_URL end in /v1?")
    assert "<html" not in str(info.value)


async def test_a_compatible_endpoint_without_v1_names_its_own_setting() -> None:
    with FakeOpenAI() as fake, pytest.raises(ProviderBadRequest, match="LANTERN_OPENAI_COMPAT") as info:
        await collect(compat(fake, name="vllm", base_url=fake.origin + "/"))
    assert f"{fake.origin}/v1" in str(info.value)  # where the API really is


# ---- 7. model lists --------------------------------------------------------------------------------


async def test_the_provider_lists_the_servers_models() -> None:
    with FakeOpenAI(models=["qwen3:8b", "llama3.2"]) as fake:
        assert await compat(fake).list_models() == ["llama3.2", "qwen3:8b"]


async def test_the_registry_lists_live_models_caches_them_and_falls_back() -> None:
    with FakeOpenAI(models=["qwen3:8b", "llama3.2", "text-embedding-3-small"]) as fake:
        registry = Registry([compat(fake, models=["built-in"]), ScriptedProvider({})], "vllm/qwen3:8b",
                            list_ttl_s=0.5)
        assert "vllm/built-in" in {m.id for m in registry.list_models()}  # nothing asked yet
        live = [m.id for m in await registry.list_models_live() if m.provider == "vllm"]
        assert live == ["vllm/built-in", "vllm/llama3.2", "vllm/qwen3:8b"]  # configured ones, then chat models only
        assert [m.id for m in registry.list_models() if m.provider == "vllm"] == live  # the sync view: the cache
        fake.models = ["phi4"]
        assert [m.id for m in await registry.list_models_live() if m.provider == "vllm"] == live  # within the TTL
        await asyncio.sleep(0.6)
        assert [m.id for m in await registry.list_models_live() if m.provider == "vllm"] == [
            "vllm/built-in", "vllm/phi4", "vllm/qwen3:8b"]
        fake.models = None  # /v1/models now answers 404
        await asyncio.sleep(0.6)
        after = [m.id for m in await registry.list_models_live() if m.provider == "vllm"]
    assert after == ["vllm/built-in", "vllm/qwen3:8b"]  # the built-in names, and always the default


async def test_a_hanging_listing_falls_back_quickly() -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        provider = OpenAICompatProvider(name="vllm", api_key=None, models=["built-in"], key_required=False,
                                        base_url=f"http://127.0.0.1:{silent.getsockname()[1]}/v1", timeout_s=30)
        registry = Registry([provider], "vllm/built-in", list_timeout_s=0.5)
        started = time.monotonic()
        ids = [m.id for m in await registry.list_models_live()]
        assert time.monotonic() - started < 2
    assert ids == ["vllm/built-in"]


def test_the_configured_default_is_listed_even_when_the_server_does_not_say_so(
        monkeypatch: pytest.MonkeyPatch) -> None:
    from app.settings import Settings

    monkeypatch.setenv("LANTERN_OPENAI_COMPAT", '{"vllm": {"base_url": "http://127.0.0.1:9/v1", "models": ["a"]}}')
    monkeypatch.setenv("LANTERN_DEFAULT_MODEL", "vllm/qwen3:30b")
    models = {m.id: m for m in Registry.from_settings(Settings()).list_models()}
    assert models["vllm/qwen3:30b"].available and models["vllm/a"].available


async def test_an_ollama_on_its_usual_port_is_offered() -> None:
    with FakeOpenAI(models=["llama3.2:1b"], replies=[Reply(text="Hi from Ollama.")]) as fake:
        registry = Registry([ScriptedProvider({})], "scripted/echo", detect=[ollama_nearby(5, fake.base_url)])
        ids = [m.id for m in await registry.list_models_live()]
        assert "ollama/llama3.2:1b" in ids
        provider, model = registry.resolve("ollama/llama3.2:1b")
        events = [e async for e in provider.stream(ChatRequest(model=model, messages=REQUEST.messages))]
    assert text_of(events) == "Hi from Ollama."


async def test_no_ollama_no_listing_and_no_delay() -> None:
    registry = Registry([ScriptedProvider({})], "scripted/echo", detect=[ollama_nearby(5, "http://127.0.0.1:9/v1")])
    started = time.monotonic()
    ids = [m.id for m in await registry.list_models_live()]
    assert time.monotonic() - started < 2 and not [i for i in ids if i.startswith("ollama/")]


# ---- structured output -----------------------------------------------------------------------------


def structured(**kw: Any) -> ChatRequest:
    return ChatRequest(model="m", messages=[ChatMessage(role="user", content="A colour?")],
                       response_schema=SCHEMA, schema_name="colour", **kw)


async def test_a_schema_is_sent_as_a_strict_json_schema() -> None:
    with FakeOpenAI(replies=[Reply(text='{"colour": "teal"}')]) as fake:
        events = await collect(compat(fake), structured())
    assert json.loads(text_of(events)) == {"colour": "teal"}
    assert fake.requests[0]["response_format"] == {"type": "json_schema", "json_schema": {
        "name": "colour", "schema": SCHEMA, "strict": True}}


@pytest.mark.parametrize("status", [400, 500])  # 500: llama-cpp-python's answer to a body it cannot validate
async def test_a_server_refusing_json_schema_gets_json_object_and_it_is_remembered(status: int) -> None:
    with FakeOpenAI(refuse_json_schema=status, replies=[Reply(text='{"colour": "red"}')]) as fake:
        provider = compat(fake)
        first = await collect(provider, structured())
        second = await collect(provider, structured())
    assert json.loads(text_of(first)) == json.loads(text_of(second)) == {"colour": "red"}
    sent = [r["response_format"]["type"] for r in fake.requests]
    assert sent == ["json_schema", "json_object", "json_object"]  # refused once, then not offered again
    assert fake.requests[1]["response_format"].get("schema") == SCHEMA  # llama.cpp builds a grammar from it


async def test_a_500_not_about_the_schema_is_not_retried_as_json_object() -> None:
    with FakeOpenAI(replies=[Reply(status=500)]) as fake, pytest.raises(ProviderUnavailable):
        await collect(compat(fake), structured())
    assert [r["response_format"]["type"] for r in fake.requests] == ["json_schema"]
