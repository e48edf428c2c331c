"""Provider faults over real HTTP: each becomes our error, partial text is kept, nothing hangs."""

from __future__ import annotations

import time
from typing import Any

import pytest

from services.core.errors import ProviderRateLimited, ProviderUnavailable
from services.core.events import TextDelta
from services.providers.base import ChatMessage, ChatRequest
from services.providers.openai_compat import OpenAICompatProvider
from storage import conversations as conv_repo
from tests.fakes.openai_server import FakeOpenAI, Reply

REQUEST = ChatRequest(model="m", messages=[ChatMessage(role="user", content="Hi")])


def provider(fake: FakeOpenAI, timeout_s: float = 5) -> OpenAICompatProvider:
    return OpenAICompatProvider(name="vllm", api_key=None, base_url=fake.base_url, key_required=False,
                                timeout_s=timeout_s)


async def collect(p: OpenAICompatProvider) -> list[Any]:
    return [e async for e in p.stream(REQUEST)]


async def test_429_carries_retry_after() -> None:
    with FakeOpenAI(replies=[Reply(status=429, retry_after="7")]) as fake, \
            pytest.raises(ProviderRateLimited) as info:
        await collect(provider(fake))
    assert info.value.retry_after == 7.0 and info.value.retryable


async def test_a_hanging_server_times_out() -> None:
    with FakeOpenAI(replies=[Reply(hang_before=True)]) as fake:
        started = time.monotonic()
        with pytest.raises(ProviderUnavailable, match="timed out"):
            await collect(provider(fake, timeout_s=1))
        assert time.monotonic() - started < 5


async def test_a_stream_dropped_mid_reply_keeps_what_arrived(lantern: Any) -> None:
    with FakeOpenAI(replies=[Reply(text="one two three four five six", chunk=4, drop_after=3)]) as fake:
        lantern.registry.providers["vllm"] = provider(fake)
        start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Go"}],
                                         model="vllm/m")
        events = [e async for _, e in lantern.runs.subscribe(start.run.id)]
    assert "".join(e.delta for e in events if isinstance(e, TextDelta)) == "one two thre"
    assert events[-1].status == "failed"
    reply = (await lantern.db.call(conv_repo.list_messages, conversation_id=start.conversation_id))[-1]
    assert reply.status == "failed" and reply.content == "one two thre" and reply.extra["error"]["message"]


async def test_malformed_chunks_fail_cleanly() -> None:
    with FakeOpenAI(replies=[Reply(text="Hello there", malformed=True)]) as fake, \
            pytest.raises(ProviderUnavailable, match="malformed"):
        await collect(provider(fake))


async def test_an_empty_reply_is_a_failure_the_person_can_see(lantern: Any) -> None:
    with FakeOpenAI(replies=[Reply(text="")]) as fake:
        lantern.registry.providers["vllm"] = provider(fake)
        start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Go"}],
                                         model="vllm/m")
        events = [e async for _, e in lantern.runs.subscribe(start.run.id)]
    assert events[-1].status == "failed"
    reply = (await lantern.db.call(conv_repo.list_messages, conversation_id=start.conversation_id))[-1]
    assert "empty reply" in reply.extra["error"]["message"]
