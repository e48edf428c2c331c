"""Issue #17 item 7: a configured default model that no list names is kept on the pages, not replaced."""

from __future__ import annotations

import json

import pytest
from nicegui.testing import User


@pytest.fixture
def unlisted_default(monkeypatch: pytest.MonkeyPatch) -> None:
    """A compatible server nobody can reach, and a default model on it that no built-in list names."""
    monkeypatch.setenv("LANTERN_OPENAI_COMPAT", json.dumps({"lab": {"base_url": "http://127.0.0.1:9/v1"}}))
    monkeypatch.setenv("LANTERN_DEFAULT_MODEL", "lab/qwen3-8b")


@pytest.mark.parametrize("path", ["/", "/tools"])
async def test_chat_and_tools_keep_an_unlisted_default(unlisted_default: None, user: User, path: str) -> None:
    await user.open(path)
    [picker] = user.find(marker="model").elements
    assert picker.value == "lab/qwen3-8b"  # before: silently local/smollm2


async def test_the_api_lists_the_default(unlisted_default: None, user: User) -> None:
    listed = (await user.http_client.get("/api/models")).json()
    assert "lab/qwen3-8b" in [m["id"] for m in listed["models"]]
