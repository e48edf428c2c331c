"""Bad input over real HTTP, on SQLite and PostgreSQL: oversized bodies, invalid UTF-8, broken JSON, huge
prompts, unknown fields and wrong types each get a clear 4xx in the API's error shape, and not one row
is written to any table."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import inspect, text
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from app.body_limit import BodyLimit
from app.settings import Settings
from storage.engine import make_engine
from tests.conftest import AppProcess
from tests.reliability.conftest import DATABASES, fresh_database, start_app

MIB = 1024 * 1024
USER = {"role": "user", "content": "Hi"}
AGENTS = [{"name": n, "model": "scripted/echo"} for n in ("Ann", "Bob")]
BRIEF = {"brand": "Lumen", "product": "coffee", "audience": "night owls", "goal": "launch"}


@pytest.fixture(scope="module", params=DATABASES)
def served(request: pytest.FixtureRequest,
           tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[AppProcess, str]]:
    """An app on a fresh database of each kind, with one good conversation already stored."""
    data = tmp_path_factory.mktemp(f"bad-{request.param}") / "data"
    with fresh_database(request.param, data) as url:
        app = start_app(data, {"DATABASE_URL": url, "LANTERN_DEFAULT_MODEL": "scripted/echo"})
        try:
            assert httpx.post(f"{app.url}/api/chat", json={"messages": [USER]}, timeout=20).status_code == 200
            yield app, url
        finally:
            app.stop()


def row_counts(url: str) -> dict[str, int]:
    """Rows in every table."""
    engine = make_engine(url)
    try:
        with engine.connect() as conn:
            return {t: int(conn.execute(text(f'SELECT count(*) FROM "{t}"')).scalar() or 0)
                    for t in inspect(conn).get_table_names()}
    finally:
        engine.dispose()


def chunks(data: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """A body sent chunked, with no Content-Length to refuse it by."""
    for i in range(0, len(data), size):
        yield data[i:i + size]


def big_chat(chars: int) -> bytes:
    return json.dumps({"messages": [{"role": "user", "content": "x" * chars}]}).encode()


JSON = {"content-type": "application/json"}
CASES: dict[str, tuple[str, str, dict[str, Any], int, str]] = {
    # name: (method, path, httpx kwargs, status, error type)
    "oversized body": ("POST", "/api/chat", {"content": big_chat(2 * MIB), "headers": JSON}, 413, "too_large"),
    "oversized chunked body": ("POST", "/api/chat/stream", {"content": chunks(big_chat(3 * MIB)), "headers": JSON},
                               413, "too_large"),
    "oversized run": ("POST", "/api/runs", {"json": {"kind": "duet", "topic": "t" * (2 * MIB), "turns": 2,
                                                     "agents": AGENTS}}, 413, "too_large"),
    "invalid UTF-8": ("POST", "/api/chat", {"content": b'{"messages": [{"role": "user", "content": "\xff\xfe"}]}',
                                            "headers": JSON}, 400, "bad_request"),
    "broken JSON": ("POST", "/api/chat", {"content": b'{"messages": [', "headers": JSON}, 422, "validation"),
    "JSON nested too deep": ("POST", "/api/runs", {"content": b'{"kind": "pipeline", "topic": "t", "definition": '
                                                   + b"[" * 100_000 + b"]" * 100_000 + b"}", "headers": JSON},
                             400, "bad_request"),
    "lone surrogate": ("POST", "/api/chat", {"content": b'{"messages": [{"role": "user", "content": "\\ud800"}]}',
                                             "headers": JSON}, 422, "validation"),
    "huge message": ("POST", "/api/chat", {"json": {"messages": [{"role": "user", "content": "y" * 250_000}]}},
                     422, "validation"),
    "huge prompt": ("POST", "/api/chat", {"json": {"messages": [{"role": "user", "content": "y" * 120_000}] * 2}},
                    400, "bad_input"),
    "unknown field": ("POST", "/api/chat", {"json": {"messages": [USER], "colour": "red"}}, 422, "validation"),
    "unknown agent field": ("POST", "/api/runs", {"json": {"kind": "duet", "topic": "t", "turns": 2,
                                                           "agents": [{**AGENTS[0], "mood": "x"}, AGENTS[1]]}},
                            422, "validation"),
    "unknown brief field": ("POST", "/api/deliverables/generate",
                            {"json": {"module": "campaign", "brief": {**BRIEF, "budget": 5}}}, 422, "validation"),
    "wrong types": ("POST", "/api/chat", {"json": {"messages": [{"role": "user", "content": 5}],
                                                   "temperature": "hot"}}, 422, "validation"),
    "messages not a list": ("POST", "/api/chat/stream", {"json": {"messages": "hi"}}, 422, "validation"),
    "wrong run types": ("POST", "/api/runs", {"json": {"kind": "duet", "topic": "t", "turns": "many", "agents": 3}},
                        422, "validation"),
    "unknown run kind": ("POST", "/api/runs", {"json": {"kind": "poetry"}}, 422, "validation"),
    "body is not an object": ("POST", "/api/runs", {"json": [1, 2, 3]}, 422, "validation"),
    "no body": ("POST", "/api/chat", {}, 422, "validation"),
    "out of range": ("POST", "/api/chat", {"json": {"messages": [USER], "max_tokens": -1}}, 422, "validation"),
    # Past SQLite's 64-bit integers the driver raised OverflowError (found by `make soak`'s fuzzing).
    "huge offset": ("GET", "/api/runs", {"params": {"offset": 30066003929036828442624}}, 422, "validation"),
    "huge page": ("GET", "/api/conversations", {"params": {"offset": 10**30}}, 422, "validation"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_gets_a_clear_4xx_and_writes_nothing(served: tuple[AppProcess, str], case: str) -> None:
    app, url = served
    method, path, kwargs, status, error_type = CASES[case]
    if "content" in kwargs and not isinstance(kwargs["content"], bytes):  # a generator is spent once
        kwargs = {**kwargs, "content": chunks(big_chat(3 * MIB))}
    before = row_counts(url)
    response = httpx.request(method, f"{app.url}{path}", timeout=30, **kwargs)
    assert response.status_code == status, response.text[:500]
    error = response.json()["error"]
    assert error["type"] == error_type and len(error["message"]) > 10, error
    assert row_counts(url) == before
    assert httpx.get(f"{app.url}/health", timeout=10).status_code == 200  # and the server is fine


@pytest.mark.parametrize("last_id", [b"99999999999999999999999999", b"\xb2", b"-1", b"abc"])
def test_odd_last_event_ids_replay_sensibly(served: tuple[AppProcess, str], last_id: bytes) -> None:
    app, _url = served
    run_id = httpx.get(f"{app.url}/api/runs", timeout=10).json()["items"][-1]["id"]
    response = httpx.get(f"{app.url}/api/runs/{run_id}/events", headers={"Last-Event-ID": last_id}, timeout=10)
    assert response.status_code == 200
    frames = [line for line in response.text.splitlines() if line.startswith("id: ")]
    assert (frames == []) if last_id.isdigit() else frames[0] == "id: 1"  # past the end, or from the start


def test_a_prompt_longer_than_the_local_models_window_is_refused_before_anything_is_stored(
        served: tuple[AppProcess, str]) -> None:
    from services.providers.local import LocalProvider

    if (reason := LocalProvider().unavailable_reason()) is not None:
        pytest.skip(f"embedded model unavailable: {reason}")
    app, url = served
    before = row_counts(url)
    response = httpx.post(f"{app.url}/api/chat", timeout=30, json={
        "messages": [{"role": "user", "content": "word " * 8_000}], "model": "local/smollm2"})
    assert response.status_code == 400, response.text[:300]
    assert "context window of 2048" in response.json()["error"]["message"]
    assert row_counts(url) == before


async def test_the_body_cap_is_a_setting_and_counts_streamed_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANTERN_MAX_BODY_BYTES", "2048")
    cap = Settings().max_body_bytes
    seen: list[int] = []

    async def echo_length(request: Request) -> JSONResponse:
        seen.append(len(await request.body()))
        return JSONResponse({"bytes": seen[-1]})

    inner = Starlette(routes=[Route("/", echo_length, methods=["POST"])])
    transport = httpx.ASGITransport(app=BodyLimit(inner, max_bytes=cap))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        assert (await client.post("/", content=b"x" * 2048)).json() == {"bytes": 2048}

        async def trickle() -> AsyncIterator[bytes]:
            for _ in range(5):
                yield b"x" * 1000

        for body in (b"x" * 2049, trickle()):
            refused = await client.post("/", content=body)
            assert refused.status_code == 413
            assert "(2 KiB, LANTERN_MAX_BODY_BYTES)" in refused.json()["error"]["message"]
    assert seen == [2048]  # the route never ran on a body over the cap
