"""The fallback chain with scripted providers: retries, visible hand-over, no double text."""

from __future__ import annotations

import pytest

from app.settings import Settings
from services.core.errors import ProviderAuth, ProviderUnavailable
from services.core.events import ProviderFallback, TextDelta
from services.providers.base import ChatMessage, ChatRequest
from services.providers.fallback import FallbackChain
from services.providers.registry import Registry

REQUEST = ChatRequest(model="", messages=[ChatMessage(role="user", content="Hi")])


def registry() -> Registry:
    reg = Registry.from_settings(Settings())
    reg.scripted.add_script("down", [{"error": {"type": "unavailable", "message": "503 from upstream"}}])
    reg.scripted.add_script("flaky", [{"error": {"type": "rate_limited", "message": "slow down"}}, "Recovered."])
    reg.scripted.add_script("cut", [{"text": "Half", "error": {"type": "unavailable", "message": "dropped"}}])
    return reg


async def test_moves_on_after_retries_and_says_so() -> None:
    reg = registry()
    chain = FallbackChain(reg, ["scripted/down", "scripted/echo"], retries=1, backoff_s=0.01)
    events = [e async for e in chain.stream(REQUEST)]
    assert events[0] == ProviderFallback(from_="scripted/down", to="scripted/echo", reason="503 from upstream")
    assert "".join(e.delta for e in events if isinstance(e, TextDelta)) == "You said: Hi"
    assert reg.scripted.calls["down"] == 2 and chain.answered_by == "scripted/echo"


async def test_retry_succeeds_without_fallback() -> None:
    chain = FallbackChain(registry(), ["scripted/flaky", "scripted/echo"], retries=2, backoff_s=0.01)
    events = [e async for e in chain.stream(REQUEST)]
    assert not any(isinstance(e, ProviderFallback) for e in events)
    assert chain.answered_by == "scripted/flaky"


async def test_non_retryable_skips_retries_and_unavailable_models_fall_through() -> None:
    reg = registry()
    chain = FallbackChain(reg, ["openai/gpt-4o-mini", "scripted/echo"], retries=3, backoff_s=0.01)
    events = [e async for e in chain.stream(REQUEST)]
    assert isinstance(events[0], ProviderFallback) and "OPENAI_API_KEY" in events[0].reason
    assert chain.answered_by == "scripted/echo"


async def test_failure_after_text_is_raised_not_handed_over() -> None:
    chain = FallbackChain(registry(), ["scripted/cut", "scripted/echo"], retries=2, backoff_s=0.01)
    seen = []
    with pytest.raises(ProviderUnavailable, match="dropped"):
        async for event in chain.stream(REQUEST):
            seen.append(event)
    assert [e.delta for e in seen if isinstance(e, TextDelta)] == ["Half"]


async def test_exhausted_chain_raises_the_last_error() -> None:
    chain = FallbackChain(registry(), ["scripted/down", "openai/gpt-4o"], retries=0, backoff_s=0.01)
    with pytest.raises(ProviderAuth, match="OPENAI_API_KEY"):
        _ = [e async for e in chain.stream(REQUEST)]
