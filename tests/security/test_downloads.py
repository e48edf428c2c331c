"""Issue #16, item 8: a title or pipeline name can neither rewrite a download's header nor break it."""

from __future__ import annotations

import re
import unicodedata
from typing import Any
from urllib.parse import unquote

import pytest
from nicegui.testing import User

INJECTION = "p\"; filename*=UTF-8''evil.html; x=\""
# One parameter: a name, `=`, then a quoted string or a bare value up to the next `;`.
PARAM = re.compile(r';\s*([^\s=;]+)\s*=\s*("(?:[^"\\]|\\.)*"|[^;]*)')


def parameters(header: str) -> list[tuple[str, str]]:
    """A Content-Disposition's parameters in order, as a client splits them (quotes removed)."""
    assert header.startswith("attachment;"), header
    return [(name.lower(), value[1:-1] if value.startswith('"') else value.strip())
            for name, value in PARAM.findall(header)]


def saved_name(header: str) -> str:
    """The name a browser saves the file under: `filename*` (RFC 6266) if given, else `filename`."""
    params = dict(parameters(header))
    if "filename*" in params:
        charset, _, encoded = params["filename*"].partition("''")
        assert charset.upper() == "UTF-8"
        return unquote(encoded, errors="strict")
    return params["filename"]


def assert_safe(header: str, extension: str) -> str:
    """One filename (and at most one filename*), a plain fallback, and a saved name that is only a name."""
    names = [name for name, _ in parameters(header)]
    assert names in (["filename"], ["filename", "filename*"]), header
    fallback = dict(parameters(header))["filename"]
    assert re.fullmatch(r"[A-Za-z0-9._-]+", fallback) and fallback.endswith(extension), header
    saved = saved_name(header)
    assert saved.endswith(extension), (header, saved)
    assert not set(saved) & set('/\\";') and not saved.startswith("."), saved
    assert all(not unicodedata.category(c).startswith("C") for c in saved), saved
    return saved


async def run_pipeline(user: User, name: str) -> str:
    """A finished one-step pipeline run named `name`."""
    body = {"kind": "pipeline", "topic": "tides", "model": "scripted/echo", "definition": {
        "name": name, "roles": ["writer"],
        "steps": [{"id": "line", "title": "One line", "role": "writer", "prompt": "Write about {topic}."}]}}
    created = await user.http_client.post("/api/runs", json=body)
    assert created.status_code == 201, created.text
    run_id = str(created.json()["run_id"])
    await user.http_client.get(f"/api/runs/{run_id}/events")  # to the end
    return run_id


@pytest.mark.parametrize("fmt", ["md", "json"])
async def test_a_pipeline_name_cannot_add_header_parameters(user: User, fmt: str) -> None:
    run_id = await run_pipeline(user, INJECTION)
    response = await user.http_client.get(f"/api/runs/{run_id}/export", params={"format": fmt})
    assert response.status_code == 200
    saved = assert_safe(response.headers["content-disposition"], f".{fmt}")
    assert saved.startswith("pipeline-p") and saved.endswith(f"-{run_id[:8]}.{fmt}")


async def test_a_pipeline_named_in_chinese_and_emoji_downloads_under_that_name(user: User) -> None:
    run_id = await run_pipeline(user, "潮汐评估 🌊")
    response = await user.http_client.get(f"/api/runs/{run_id}/export", params={"format": "md"})
    assert response.status_code == 200
    header = response.headers["content-disposition"]
    assert saved_name(header) == assert_safe(header, ".md") == f"pipeline-潮汐评估 🌊-{run_id[:8]}.md"
    assert dict(parameters(header))["filename"] == f"pipeline-{run_id[:8]}.md"  # for clients without filename*


@pytest.mark.parametrize("title", [INJECTION, "潮汐 🌊 and more"])
async def test_a_conversation_title_cannot_break_its_download(user: User, title: str) -> None:
    chat = await user.http_client.post("/api/chat", json={"messages": [{"role": "user", "content": title}],
                                                          "model": "scripted/hello"})
    assert chat.status_code == 200
    conv_id = chat.json()["conversation_id"]
    for fmt in ("md", "json"):
        response = await user.http_client.get(f"/api/conversations/{conv_id}/export", params={"format": fmt})
        assert response.status_code == 200
        assert_safe(response.headers["content-disposition"], f".{fmt}")


async def test_a_duet_topic_cannot_break_its_download(user: User) -> None:
    body: dict[str, Any] = {"kind": "duet", "topic": INJECTION, "turns": 1, "agents": [
        {"name": "Ann", "model": "scripted/echo", "system_prompt": "Tabs", "temperature": 0.3},
        {"name": "Ben", "model": "scripted/hello", "system_prompt": "Spaces", "temperature": 0.8}]}
    run_id = (await user.http_client.post("/api/runs", json=body)).json()["run_id"]
    await user.http_client.get(f"/api/runs/{run_id}/events")
    response = await user.http_client.get(f"/api/runs/{run_id}/export", params={"format": "md"})
    assert response.status_code == 200
    assert_safe(response.headers["content-disposition"], ".md")
