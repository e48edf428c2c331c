"""Providers over their real wire: the fake OpenAI-compatible server, and the embedded model."""

from __future__ import annotations

import asyncio
import time

import pytest

from app.settings import Settings
from services.core.errors import ProviderAuth, ProviderBadRequest, ProviderUnavailable
from services.core.events import TextDelta, ToolCall, Usage
from services.providers.base import ChatMessage, ChatRequest
from services.providers.local import LocalProvider
from services.providers.openai_compat import OpenAICompatProvider
from services.providers.registry import Registry
from services.providers.sse import SSEDataDecoder
from tests.fakes.openai_server import FakeOpenAI, Reply

REQUEST = ChatRequest(model="llama3", messages=[ChatMessage(role="user", content="Hi")], system="Be brief")


def compat(fake: FakeOpenAI) -> OpenAICompatProvider:
    return OpenAICompatProvider(name="ollama", api_key=None, base_url=fake.base_url, models=["llama3"],
                                key_required=False, timeout_s=5)


async def test_openai_compatible_stream_over_http() -> None:
    with FakeOpenAI(replies=[Reply(text="Streaming works fine.", chunk=4)]) as fake:
        events = [e async for e in compat(fake).stream(REQUEST)]
    assert "".join(e.delta for e in events if isinstance(e, TextDelta)) == "Streaming works fine."
    assert len([e for e in events if isinstance(e, TextDelta)]) == 6
    assert events[-1] == Usage(input_tokens=7, output_tokens=3, cost_usd=0.0, provider="ollama", model="llama3",
                               stop_reason="end")
    sent = fake.requests[0]
    assert sent["stream"] is True and sent["messages"][0] == {"role": "system", "content": "Be brief"}


async def test_keep_alives_crlf_and_frames_cut_anywhere_still_stream() -> None:
    text = "Zoë says \u2028 \u0085 🙂 done."  # raw in the JSON: line separators to splitlines(), not to SSE
    reply = Reply(text=text, chunk=3, awkward=True, tool_calls=[{"name": "add", "args": {"a": "½"}}])
    with FakeOpenAI(replies=[reply]) as fake:
        events = [e async for e in compat(fake).stream(REQUEST)]
    assert "".join(e.delta for e in events if isinstance(e, TextDelta)) == text
    assert [e for e in events if isinstance(e, ToolCall)] == [ToolCall(id="call_0", name="add", args={"a": "½"})]
    assert events[-1] == Usage(input_tokens=7, output_tokens=len(text.split()), cost_usd=0.0, provider="ollama",
                               model="llama3", stop_reason="tool_calls")


@pytest.mark.parametrize("piece", [1, 2, 1000])
def test_sse_events_are_whole_however_the_bytes_arrive(piece: int) -> None:
    wire = b': ping\r\rdata: {"a":\ndata:1}\r\n\r\nevent: x\nid: 3\n\ndata: [DONE]\r\n\r\ndata: cut off'
    decoder = SSEDataDecoder()
    got = [data for i in range(0, len(wire), piece) for data in decoder.feed(wire[i:i + piece])]
    assert got == [b'{"a":\n1}', b"[DONE]"]


@pytest.mark.parametrize(("status", "error", "says"), [
    (500, ProviderUnavailable, "HTTP 500"),
    (401, ProviderAuth, "rejected the API key"),
    (400, ProviderBadRequest, "HTTP 400"),
])
async def test_http_errors_become_our_errors(status: int, error: type[Exception], says: str) -> None:
    with FakeOpenAI(replies=[Reply(status=status)]) as fake, pytest.raises(error, match=says) as info:
        _ = [e async for e in compat(fake).stream(REQUEST)]
    assert info.value.__cause__ is not None  # raised from the SDK's error


async def test_unreachable_server_is_unavailable() -> None:
    provider = OpenAICompatProvider(name="vllm", api_key=None, base_url="http://127.0.0.1:9/v1",
                                    key_required=False, timeout_s=2)
    with pytest.raises(ProviderUnavailable, match="cannot reach vllm"):
        _ = [e async for e in provider.stream(REQUEST)]


async def test_cancelling_closes_the_upstream_stream() -> None:
    with FakeOpenAI(replies=[Reply(text="x" * 2000, chunk=1, delay=0.01)]) as fake:

        async def consume() -> None:
            async for _ in compat(fake).stream(REQUEST):
                pass

        task = asyncio.create_task(consume())
        while fake.open_streams == 0:
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.1)
        stopped = time.monotonic()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        while fake.open_streams and time.monotonic() - stopped < 2:
            await asyncio.sleep(0.01)
        assert fake.open_streams == 0
        assert fake.closed_at is not None and fake.closed_at - stopped < 0.2


def test_registry_lists_local_available_and_says_why_others_are_not() -> None:
    models = {m.id: m for m in Registry.from_settings(Settings()).list_models()}
    assert models["local/smollm2"].available, models["local/smollm2"].reason
    assert models["openai/gpt-4o-mini"].reason == "set OPENAI_API_KEY to use OpenAI models"
    assert "ANTHROPIC_API_KEY" in (models["anthropic/claude-3-5-haiku-latest"].reason or "")


def test_named_compatible_endpoints_come_from_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANTERN_OPENAI_COMPAT", '{"ollama": {"base_url": "http://127.0.0.1:11434/v1", '
                                                '"models": ["llama3"]}}')
    registry = Registry.from_settings(Settings())
    provider, model = registry.resolve("ollama/llama3")
    assert provider.name == "ollama" and model == "llama3"
    assert any(m.id == "ollama/llama3" and m.available for m in registry.list_models())


def local_or_skip() -> LocalProvider:
    provider = LocalProvider()
    if (reason := provider.unavailable_reason()) is not None:
        pytest.skip(f"embedded model unavailable: {reason}")
    return provider


async def test_local_model_streams_tokens() -> None:
    provider = local_or_skip()
    request = ChatRequest(model="smollm2", messages=[ChatMessage(role="user", content="Name a colour.")],
                          max_tokens=24, temperature=0)
    events = [e async for e in provider.stream(request)]
    deltas = [e for e in events if isinstance(e, TextDelta)]
    assert len(deltas) >= 3 and "".join(d.delta for d in deltas).strip()
    assert isinstance(events[-1], Usage) and events[-1].output_tokens == len(deltas)


async def test_local_model_stops_between_tokens() -> None:
    provider = local_or_skip()
    request = ChatRequest(model="smollm2", messages=[ChatMessage(role="user", content="Count to 500.")],
                          max_tokens=400, temperature=0)
    got = 0
    stream = provider.stream(request)
    async for event in stream:
        got += isinstance(event, TextDelta)
        if got == 3:
            break
    await stream.aclose()
    # The lock is released once the worker notices the flag: a new request runs promptly.
    started = time.monotonic()
    short = ChatRequest(model="smollm2", messages=[ChatMessage(role="user", content="Hi")], max_tokens=2)
    _ = [e async for e in provider.stream(short)]
    assert time.monotonic() - started < 5
