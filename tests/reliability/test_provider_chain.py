"""Provider faults through the fallback chain over real HTTP (two fake upstreams), and what a person
sees: retryable faults are retried with a bounded backoff, then handed over with a visible
`provider.fallback`; 401/400 are not retried and say what to fix; a reply cut mid-stream keeps its
text, marked failed, and can be retried."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from services.core.errors import ProviderAuth, ProviderBadRequest, ProviderRateLimited, ProviderUnavailable
from services.core.events import Done, Error, ProviderFallback, TextDelta
from services.providers.base import ChatMessage, ChatRequest
from services.providers.fallback import FallbackChain
from services.providers.openai_compat import OpenAICompatProvider
from services.providers.registry import Registry
from storage import conversations as conv_repo
from tests.fakes.openai_server import FakeOpenAI, Reply

REQUEST = ChatRequest(model="", messages=[ChatMessage(role="user", content="Hi")])
BACKUP_TEXT = "The backup answered."


@pytest.fixture
def backup() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(replies=[Reply(text=BACKUP_TEXT)]) as server:
        yield server


def registry(primary_url: str, backup: FakeOpenAI) -> Registry:
    return Registry([OpenAICompatProvider(name="primary", api_key=None, base_url=primary_url, key_required=False,
                                          timeout_s=1),
                     OpenAICompatProvider(name="backup", api_key=None, base_url=backup.base_url, key_required=False,
                                          timeout_s=5)], default_model="backup/m")


async def run_chain(reg: Registry, *, retries: int = 2, backoff_s: float = 0.05,
                    max_backoff_s: float = 0.3) -> tuple[list[Any], float, FallbackChain]:
    chain = FallbackChain(reg, ["primary/m", "backup/m"], retries=retries, backoff_s=backoff_s,
                          max_backoff_s=max_backoff_s)
    started = time.monotonic()
    events = [e async for e in chain.stream(REQUEST)]
    return events, time.monotonic() - started, chain


@pytest.mark.parametrize("reply", [
    Reply(status=500), Reply(status=502), Reply(status=503),
    Reply(status=429, retry_after="30"),  # asks for 30 s: the wait is capped, not obeyed blindly
    Reply(text="never", hang_before=True),  # a hang until the client's timeout
], ids=["500", "502", "503", "429-retry-after", "hang"])
async def test_retryable_faults_are_retried_then_handed_over_visibly(backup: FakeOpenAI, reply: Reply) -> None:
    with FakeOpenAI(replies=[reply]) as primary:
        events, took, chain = await run_chain(registry(primary.base_url, backup))
        tries = len(primary.requests)
    assert tries == 3  # the first try and two retries, on the wire
    notice = events[0]
    assert isinstance(notice, ProviderFallback) and (notice.from_, notice.to) == ("primary/m", "backup/m")
    assert notice.reason and "Traceback" not in notice.reason
    assert "".join(e.delta for e in events if isinstance(e, TextDelta)) == BACKUP_TEXT
    assert chain.answered_by == "backup/m"
    assert took < (3 * 1 + 1.5 if reply.hang_before else 1.5)  # bounded waits (a 1 s timeout per try when hanging)


async def test_connection_refused_is_retried_then_handed_over(backup: FakeOpenAI) -> None:
    events, took, chain = await run_chain(registry("http://127.0.0.1:9/v1", backup))
    assert isinstance(events[0], ProviderFallback) and "cannot reach primary" in events[0].reason
    assert chain.answered_by == "backup/m" and took < 3


async def test_backoff_has_jitter_and_a_ceiling(backup: FakeOpenAI) -> None:
    chain = FallbackChain(registry("http://127.0.0.1:9/v1", backup), ["primary/m"], backoff_s=0.2, max_backoff_s=1.0)

    delays = [chain._delay(attempt, ProviderUnavailable("x")) for attempt in (0, 0, 0, 0, 5, 5, 5, 5)]
    assert len(set(delays)) == len(delays)  # jittered: no two clients retry in lock-step
    assert all(0.1 <= d <= 0.2 for d in delays[:4]) and all(0.5 <= d <= 1.0 for d in delays[4:])
    assert chain._delay(0, ProviderRateLimited("x", retry_after=600)) == 1.0


@pytest.mark.parametrize(("status", "error", "says"), [
    (401, ProviderAuth, "rejected the API key: check the key setting for primary"),
    (400, ProviderBadRequest, "refused the request (HTTP 400)"),
])
async def test_non_retryable_faults_are_not_retried(backup: FakeOpenAI, status: int, error: type, says: str) -> None:
    with FakeOpenAI(replies=[Reply(status=status)]) as primary:
        events, took, _ = await run_chain(registry(primary.base_url, backup), backoff_s=2)
        assert len(primary.requests) == 1  # once, on the wire: no retry would help
        assert isinstance(events[0], ProviderFallback) and says in events[0].reason
        assert took < 1.5  # no backoff was slept
        only_primary = FallbackChain(registry(primary.base_url, backup), ["primary/m"], backoff_s=2)
        started = time.monotonic()
        with pytest.raises(error, match=re.escape(says)):
            _ = [e async for e in only_primary.stream(REQUEST)]
        assert time.monotonic() - started < 1.5  # fails at once


async def test_a_reply_cut_mid_stream_is_kept_failed_and_can_be_retried(lantern: Any, backup: FakeOpenAI) -> None:
    with FakeOpenAI(replies=[Reply(text="one two three four five", chunk=4, drop_after=2),
                             Reply(text="A whole answer.")]) as flaky:
        lantern.registry.providers["flaky"] = OpenAICompatProvider(
            name="flaky", api_key=None, base_url=flaky.base_url, key_required=False, timeout_s=5)
        start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Go"}],
                                         model="flaky/m")
        events = [e async for _, e in lantern.runs.subscribe(start.run.id)]
        assert isinstance(events[-2], Error) and events[-1] == Done(status="failed", run_id=start.run.id)
        failed = (await lantern.db.call(conv_repo.list_messages, conversation_id=start.conversation_id))[-1]
        assert (failed.status, failed.content) == ("failed", "one two ")
        again = await lantern.chat.regenerate(user_id="local", conversation_id=start.conversation_id,
                                              model="flaky/m")
        _ = [e async for e in lantern.runs.subscribe(again.run.id)]
    path = await lantern.db.call(conv_repo.current_path, conversation_id=start.conversation_id)
    assert [(e.message.role, e.message.content, e.message.status) for e in path] == [
        ("user", "Go", "completed"), ("assistant", "A whole answer.", "completed")]
    assert len(path[-1].siblings) == 2  # the failed, partial reply is still there, one click away
