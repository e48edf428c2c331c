"""Provider keys never reach responses, events, exports or logs, even when the provider quotes them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from nicegui.testing import User

from tests.fakes.openai_server import FakeOpenAI, Reply

KEY = "sk-lantern-test-DO-NOT-LEAK-0123456789"


@pytest.fixture
def leaky_provider(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    """OpenAI pointed at a fake server that refuses the key and quotes it back."""
    with FakeOpenAI(replies=[Reply(status=401, echo_key=True)]) as fake:
        monkeypatch.setenv("OPENAI_API_KEY", KEY)
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        yield fake


async def test_a_key_quoted_by_the_provider_is_never_passed_on(leaky_provider: FakeOpenAI, user: User,
                                                              caplog: pytest.LogCaptureFixture) -> None:
    client = user.http_client
    body = {"messages": [{"role": "user", "content": "hi"}], "model": "openai/gpt-4o-mini"}
    refused = await client.post("/api/chat", json=body)
    assert refused.json()["status"] == "failed" and "rejected the API key" in refused.json()["error"]["message"]
    assert leaky_provider.requests, "the fake provider was never called"
    streamed = await client.post("/api/chat/stream", json=body)
    assert "event: error" in streamed.text
    conversation = refused.json()["conversation_id"]
    seen = [refused.text, streamed.text, (await client.get("/api/models")).text,
            (await client.get("/api/runs")).text, (await client.get(f"/api/conversations/{conversation}")).text,
            (await client.get(f"/api/conversations/{conversation}/export", params={"format": "json"})).text,
            (await client.get(f"/api/conversations/{conversation}/export", params={"format": "md"})).text,
            caplog.text]
    for text in seen:
        assert KEY not in text and KEY[-12:] not in text
