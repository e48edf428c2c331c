"""Anthropic through the real `anthropic` SDK against a wire-level fake: text, temperature, tools, usage and stop
reasons, errors with the server's own words, structured output, model listing, and stop."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from services.chat.agent import run_agent
from services.core.errors import (
    ProviderAuth,
    ProviderBadRequest,
    ProviderError,
    ProviderRateLimited,
    ProviderUnavailable,
)
from services.core.events import TextDelta, ToolCall, ToolOutput, Usage
from services.providers.anthropic_provider import AnthropicProvider
from services.providers.base import ChatMessage, ChatRequest, ToolSpec, estimate_tokens
from services.tools.registry import build_tools
from tests.fakes.anthropic_server import FakeAnthropic, Reply

KEY = "sk-lantern-test-anthropic-0123456789abcdef"  # the log-secret scan (LEAK_PATTERNS) knows this shape
MODEL = "claude-fake-1"
REQUEST = ChatRequest(model=MODEL, messages=[ChatMessage(role="user", content="Hi")], system="Be brief.",
                      temperature=0.3, max_tokens=64)
SQL_TOOL = ToolSpec(name="sql_query", description="Run SQL", parameters={
    "type": "object", "properties": {"query": {"type": "string"}}, "required": ["query"]})
FRUIT = {"type": "object", "required": ["name", "ripe"],
         "properties": {"name": {"type": "string", "maxLength": 40}, "ripe": {"type": "boolean"}}}


@pytest.fixture(autouse=True)
def no_anthropic_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing from this machine's Anthropic settings: the SDK reads these itself."""
    for var in ("ANTHROPIC_BASE_URL", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_CUSTOM_HEADERS", "ANTHROPIC_PROFILE"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def fake() -> Iterator[FakeAnthropic]:
    """A started fake Anthropic; tests script its replies."""
    with FakeAnthropic() as server:
        yield server


def provider(fake: FakeAnthropic, timeout_s: float = 5, base_url: str | None = None) -> AnthropicProvider:
    return AnthropicProvider(api_key=KEY, base_url=base_url or fake.base_url, timeout_s=timeout_s)


async def collect(p: AnthropicProvider, request: ChatRequest = REQUEST) -> list[Any]:
    return [e async for e in p.stream(request)]


def text_of(events: list[Any]) -> str:
    return "".join(e.delta for e in events if isinstance(e, TextDelta))


def usage_of(events: list[Any]) -> Usage:
    assert isinstance(events[-1], Usage)
    return events[-1]


# --- text and temperature --------------------------------------------------------------------------------

async def test_text_streams_with_the_temperature_sent(fake: FakeAnthropic) -> None:
    events = await collect(provider(fake))
    assert text_of(events) == "Hello from the fake Anthropic."
    sent = fake.requests[0]
    assert sent["temperature"] == 0.3 and sent["stream"] is True
    assert sent["system"] == "Be brief." and sent["max_tokens"] == 64 and sent["model"] == MODEL
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "Hi"}]}]
    usage = usage_of(events)
    assert (usage.input_tokens, usage.output_tokens, usage.stop_reason, usage.estimated) == (11, 9, "end", None)
    assert (usage.provider, usage.model) == ("anthropic", MODEL)


async def test_a_temperature_beyond_anthropics_range_is_clamped(fake: FakeAnthropic) -> None:
    await collect(provider(fake), ChatRequest(model=MODEL, messages=REQUEST.messages, temperature=1.6))
    assert fake.requests[0]["temperature"] == 1.0


async def test_no_temperature_is_sent_when_none_is_set(fake: FakeAnthropic) -> None:
    await collect(provider(fake), ChatRequest(model=MODEL, messages=REQUEST.messages))
    assert "temperature" not in fake.requests[0]


async def test_a_server_refusing_temperature_is_asked_again_without_it(fake: FakeAnthropic) -> None:
    fake.replies = [Reply(refuse_temperature=True)]
    p = provider(fake)
    assert text_of(await collect(p)) == "Hello from the fake Anthropic."
    assert text_of(await collect(p)) == "Hello from the fake Anthropic."
    # Refused once, asked again without it, and never offered it again for that model.
    assert ["temperature" in r for r in fake.requests] == [True, False, False]


# --- tools -----------------------------------------------------------------------------------------------

async def test_tool_arguments_split_over_deltas_become_one_call(fake: FakeAnthropic) -> None:
    args = {"query": "SELECT region, SUM(total) FROM orders GROUP BY region"}
    fake.replies = [Reply(text="Let me look.", tool_calls=[{"name": "sql_query", "args": args}], json_pieces=4)]
    request = ChatRequest(model=MODEL, messages=REQUEST.messages, tools=(SQL_TOOL,))
    events = await collect(provider(fake), request)
    assert text_of(events) == "Let me look."
    assert [(c.id, c.name, c.args) for c in events if isinstance(c, ToolCall)] == [("toolu_fake_0", "sql_query", args)]
    assert usage_of(events).stop_reason == "tool_calls"
    assert fake.requests[0]["tools"] == [{"name": "sql_query", "description": "Run SQL",
                                          "input_schema": SQL_TOOL.parameters}]
    assert "tool_choice" not in fake.requests[0]


async def test_bad_tool_json_is_a_recoverable_call_not_an_internal_error(fake: FakeAnthropic) -> None:
    fake.replies = [Reply(text="", tool_calls=[{"name": "sql_query", "json": '{"query": "SELECT 1'}])]
    request = ChatRequest(model=MODEL, messages=REQUEST.messages, tools=(SQL_TOOL,))
    calls = [e for e in await collect(provider(fake), request) if isinstance(e, ToolCall)]
    assert [(c.name, c.args) for c in calls] == [("sql_query", {"_raw": '{"query": "SELECT 1'})]


async def test_the_model_reads_the_bad_json_error_and_recovers(fake: FakeAnthropic, tmp_path: Path) -> None:
    fake.replies = [Reply(text="", tool_calls=[{"name": "calculator", "json": '{"expression": "2+'}]),
                    Reply(text="", tool_calls=[{"name": "calculator", "args": {"expression": "2+2"}}]),
                    Reply(text="It is 4.")]
    request = ChatRequest(model=MODEL, messages=[ChatMessage(role="user", content="2+2?")])
    events = [e async for e in run_agent(provider(fake), request, build_tools(tmp_path))]
    outputs = [e for e in events if isinstance(e, ToolOutput)]
    assert [o.is_error for o in outputs] == [True, False]
    assert "not valid JSON" in outputs[0].output and outputs[1].output.strip().startswith("4")
    assert text_of(events) == "It is 4."
    # The model was shown the refusal as a tool_result error, in Anthropic's shape.
    result = fake.requests[1]["messages"][-1]["content"][0]
    assert result["type"] == "tool_result" and result["is_error"] is True and "not valid JSON" in result["content"]


# --- usage and stop reasons ------------------------------------------------------------------------------

@pytest.mark.parametrize(("theirs", "ours"), [
    ("end_turn", "end"), ("stop_sequence", "end"), ("max_tokens", "length"), ("refusal", "content_filter")])
async def test_stop_reasons_are_ours(fake: FakeAnthropic, theirs: str, ours: str) -> None:
    fake.replies = [Reply(stop_reason=theirs)]
    assert usage_of(await collect(provider(fake))).stop_reason == ours


async def test_a_stream_that_ends_early_is_interrupted_and_its_output_estimated(fake: FakeAnthropic) -> None:
    fake.replies = [Reply(text="Cut off in the mid", end_early=True)]
    events = await collect(provider(fake))
    assert text_of(events) == "Cut off in the mid"
    usage = usage_of(events)
    assert usage.stop_reason == "interrupted" and usage.estimated is True
    assert usage.input_tokens == 11  # reported in message_start
    assert usage.output_tokens == estimate_tokens("Cut off in the mid")


async def test_a_server_that_reports_no_usage_gets_an_estimate(fake: FakeAnthropic) -> None:
    fake.replies = [Reply(text="word " * 40, usage=False)]
    usage = usage_of(await collect(provider(fake)))
    assert usage.estimated is True and usage.stop_reason == "end"
    assert usage.output_tokens == estimate_tokens("word " * 40) and usage.input_tokens > 0


# --- errors ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("reply", "error", "says"), [
    (Reply(status=400, error_type="invalid_request_error", error_message="max_tokens: must be ≤ 8192"),
     ProviderBadRequest, "Anthropic refused the request (HTTP 400): max_tokens: must be ≤ 8192"),
    (Reply(status=401, error_type="authentication_error", error_message="invalid x-api-key"),
     ProviderAuth, "Anthropic rejected the API key (HTTP 401): invalid x-api-key. Check ANTHROPIC_API_KEY"),
    (Reply(status=404, error_type="not_found_error", error_message="model: claude-nope"),
     ProviderBadRequest, "Anthropic does not know that model (HTTP 404): model: claude-nope"),
    (Reply(status=404, raw_error="<html><body><h1>404 Not Found</h1> nginx</body></html>"),
     ProviderBadRequest, "Anthropic answered not found (HTTP 404): 404 Not Found nginx; check the base URL"),
    (Reply(status=413, error_type="request_too_large", error_message="Request exceeds the maximum size"),
     ProviderBadRequest, "Anthropic refused the request (HTTP 413): Request exceeds the maximum size"),
    (Reply(status=500, error_type="api_error", error_message="Internal server error"),
     ProviderUnavailable, "Anthropic failed on its side (HTTP 500): Internal server error"),
    (Reply(status=529, error_type="overloaded_error", error_message="Overloaded"),
     ProviderUnavailable, "Anthropic is overloaded (HTTP 529): Overloaded; try again shortly"),
], ids=["400", "401", "404-model", "404-other", "413", "500", "529"])
async def test_http_errors_keep_the_servers_explanation(fake: FakeAnthropic, reply: Reply,
                                                        error: type[ProviderError], says: str) -> None:
    fake.replies = [reply]
    with pytest.raises(error) as info:
        await collect(provider(fake))
    assert str(info.value) == says
    assert isinstance(info.value.__cause__, Exception) and type(info.value.__cause__).__module__.startswith("anthropic")


async def test_a_not_found_under_a_base_url_ending_in_v1_says_so(fake: FakeAnthropic) -> None:
    with pytest.raises(ProviderBadRequest, match="should not end in /v1"):
        await collect(provider(fake, base_url=fake.base_url + "/v1"))  # the SDK adds /v1/messages itself


async def test_a_web_page_at_the_base_url_is_diagnosed(fake: FakeAnthropic) -> None:
    fake.replies = [Reply(raw_error="<html><body>Welcome to the proxy dashboard</body></html>")]
    with pytest.raises(ProviderBadRequest, match=r"answered with text/plain.*check the base URL"):
        await collect(provider(fake))


async def test_429_carries_retry_after(fake: FakeAnthropic) -> None:
    fake.replies = [Reply(status=429, error_type="rate_limit_error", error_message="Number of requests exceeded",
                          retry_after="7")]
    with pytest.raises(ProviderRateLimited, match="Number of requests exceeded") as info:
        await collect(provider(fake))
    assert info.value.retry_after == 7.0 and info.value.retryable


async def test_a_key_echoed_by_the_server_is_never_repeated(fake: FakeAnthropic) -> None:
    fake.replies = [Reply(status=400, error_type="invalid_request_error", error_message="bad request",
                          echo_key=True)]
    with pytest.raises(ProviderBadRequest) as info:
        await collect(provider(fake))
    assert "bad request" in str(info.value) and "[redacted]" in str(info.value)
    assert KEY not in str(info.value) and "sk-" not in str(info.value)


async def test_a_key_quoted_in_part_is_not_repeated_either(fake: FakeAnthropic) -> None:
    fake.replies = [Reply(status=401, error_type="authentication_error",
                          error_message=f"key {KEY[:8]}…{KEY[-8:]} was revoked")]
    with pytest.raises(ProviderAuth) as info:
        await collect(provider(fake))
    assert "was revoked" in str(info.value) and KEY[:8] not in str(info.value) and KEY[-8:] not in str(info.value)


async def test_an_error_event_mid_stream_keeps_the_text_so_far(fake: FakeAnthropic) -> None:
    fake.replies = [Reply(text="Partial answer", stream_error={"type": "overloaded_error", "message": "Overloaded"})]
    events: list[Any] = []
    with pytest.raises(ProviderUnavailable, match="overloaded mid-reply: Overloaded"):
        async for event in provider(fake).stream(REQUEST):
            events.append(event)
    assert text_of(events) == "Partial answer"


async def test_a_dropped_connection_is_unavailable_and_keeps_the_text_so_far(fake: FakeAnthropic) -> None:
    fake.replies = [Reply(text="Partial answer", drop=True)]
    events: list[Any] = []
    with pytest.raises(ProviderUnavailable, match="cannot reach Anthropic"):
        async for event in provider(fake).stream(REQUEST):
            events.append(event)
    assert text_of(events) == "Partial answer"


async def test_an_unreachable_server_is_unavailable(fake: FakeAnthropic) -> None:
    with pytest.raises(ProviderUnavailable, match="cannot reach Anthropic"):
        await collect(provider(fake, timeout_s=2, base_url="http://127.0.0.1:9"))


async def test_no_key_is_an_auth_error_before_any_request(fake: FakeAnthropic) -> None:
    with pytest.raises(ProviderAuth, match="ANTHROPIC_API_KEY"):
        await collect(AnthropicProvider(api_key=None, base_url=fake.base_url))
    assert fake.requests == []


# --- structured output -----------------------------------------------------------------------------------

async def test_a_schema_is_a_forced_tool_and_the_reply_text_is_its_json(fake: FakeAnthropic) -> None:
    answer = {"name": "Mango", "ripe": True}
    fake.replies = [Reply(text="", tool_calls=[{"name": "fruit", "args": answer}], json_pieces=5)]
    request = ChatRequest(model=MODEL, messages=REQUEST.messages, tools=(SQL_TOOL,), response_schema=FRUIT,
                          schema_name="fruit")
    events = await collect(provider(fake), request)
    assert json.loads(text_of(events)) == answer
    assert len([e for e in events if isinstance(e, TextDelta)]) > 1  # streamed live, not at the end
    assert not [e for e in events if isinstance(e, ToolCall)]
    assert usage_of(events).stop_reason == "end"
    sent = fake.requests[0]
    assert [(t["name"], t["input_schema"]) for t in sent["tools"]] == [("fruit", FRUIT)]  # the schema wins
    assert sent["tool_choice"] == {"type": "tool", "name": "fruit"}


async def test_a_server_ignoring_the_forced_tool_still_gives_its_text(fake: FakeAnthropic) -> None:
    fake.replies = [Reply(text='{"name": "Kiwi", "ripe": false}')]
    request = ChatRequest(model=MODEL, messages=REQUEST.messages, response_schema=FRUIT, schema_name="fruit")
    assert json.loads(text_of(await collect(provider(fake), request))) == {"name": "Kiwi", "ripe": False}


# --- listing ---------------------------------------------------------------------------------------------

async def test_models_are_listed_from_the_server_across_pages(fake: FakeAnthropic) -> None:
    fake.models = ["claude-a", "claude-b", "claude-c", "claude-d", "claude-e"]
    assert await provider(fake).list_models() == fake.models


async def test_a_failed_listing_raises_for_the_registry_to_fall_back(fake: FakeAnthropic) -> None:
    fake.models_status = 503
    with pytest.raises(ProviderUnavailable, match="model listing is down"):
        await provider(fake).list_models()


# --- stop ------------------------------------------------------------------------------------------------

async def test_cancelling_closes_the_upstream_connection_at_once(fake: FakeAnthropic) -> None:
    fake.replies = [Reply(text="Thinking about it...", stall=True)]  # then only pings, forever
    first = asyncio.Event()

    async def consume() -> None:
        async for _ in provider(fake).stream(REQUEST):
            first.set()

    task = asyncio.create_task(consume())  # as the run manager runs a reply; stop cancels the task
    deadline = time.monotonic() + 5
    while not first.is_set() and not task.done() and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert first.is_set() and fake.open_streams == 1
    stopped = time.monotonic()
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    await closed_within(fake, stopped, 0.5)


async def test_closing_the_stream_closes_the_upstream_connection_at_once(fake: FakeAnthropic) -> None:
    fake.replies = [Reply(text="Thinking about it...", stall=True)]
    stream = provider(fake).stream(REQUEST)
    assert isinstance(await asyncio.wait_for(anext(stream), 5), TextDelta)
    stopped = time.monotonic()
    await stream.aclose()  # as the run manager does at the token cap
    await closed_within(fake, stopped, 0.5)


async def closed_within(fake: FakeAnthropic, since: float, seconds: float) -> None:
    while fake.open_streams and time.monotonic() - since < 2:
        await asyncio.sleep(0.01)
    assert fake.open_streams == 0
    assert fake.closed_at is not None and fake.closed_at - since < seconds
