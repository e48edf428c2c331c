"""Client faults over real HTTP: an SSE client that keeps dropping and reconnecting with Last-Event-ID
gets every event of a live run exactly once, in order; a client that leaves does not stop the run."""

from __future__ import annotations

import random
from typing import Any

import httpx
import pytest

from tests.conftest import AppProcess
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.reliability.conftest import SSEReader, parse_sse

REPLY = "".join(f"w{i} " for i in range(300))  # 1,490 characters


def read_some(response: httpx.Response, count: int, into: list[dict[str, Any]]) -> bool:
    """Read up to `count` frames into `into`, then hang up; True once `done` arrived."""
    for n, frame in enumerate(SSEReader(response), start=1):
        into.append(frame)
        if frame["event"] == "done":
            return True
        if n >= count:
            return False
    return False


def start_chat_stream(app: AppProcess, seen: list[dict[str, Any]]) -> str:
    body = {"messages": [{"role": "user", "content": "Count"}], "model": "fake/m"}
    with httpx.stream("POST", f"{app.url}/api/chat/stream", json=body, timeout=10) as response:
        assert response.status_code == 200
        read_some(response, 3, seen)
        return response.headers["x-run-id"]


def start_duet(app: AppProcess, seen: list[dict[str, Any]]) -> str:
    agents = [{"name": name, "model": "fake/m", "temperature": 0.5} for name in ("Ann", "Bob")]
    created = httpx.post(f"{app.url}/api/runs", json={"kind": "duet", "topic": "tea", "turns": 2, "agents": agents},
                         timeout=10)
    assert created.status_code == 201, created.text
    return str(created.json()["run_id"])


@pytest.mark.parametrize("start", [start_chat_stream, start_duet], ids=["chat", "duet"])
def test_reconnecting_with_last_event_id_gets_every_event_once_in_order(
        app: AppProcess, fake: FakeOpenAI, start: Any) -> None:
    fake.replies = [Reply(text=REPLY, chunk=5, delay=0.005)]  # 300 chunks, about 1.5 s a reply
    rng = random.Random(7)
    seen: list[dict[str, Any]] = []
    run_id = start(app, seen)
    reconnects = 0
    done = bool(seen) and seen[-1]["event"] == "done"
    while not done:
        headers = {"Last-Event-ID": str(seen[-1]["id"])} if seen else {}
        with httpx.stream("GET", f"{app.url}/api/runs/{run_id}/events", headers=headers, timeout=10) as response:
            assert response.status_code == 200
            done = read_some(response, rng.randint(1, 40), seen)
        reconnects += 1
        assert reconnects < 2000
    assert reconnects >= 5, "the run ended before the client could drop and reconnect a few times"
    assert [f["id"] for f in seen] == list(range(1, len(seen) + 1)), "a gap or a duplicate"
    assert seen[-1]["data"] == {"status": "completed", "run_id": run_id}
    # The pieces put together are exactly the whole run, as a fresh client replays it from storage.
    full = parse_sse(httpx.get(f"{app.url}/api/runs/{run_id}/events", timeout=10).text)
    assert seen == full
    turns = 2 if start is start_duet else 1
    assert "".join(f["data"]["delta"] for f in seen if f["event"] == "text.delta") == REPLY * turns
    # Resuming a finished run from the middle replays the tail only.
    middle = len(full) // 2
    tail = httpx.get(f"{app.url}/api/runs/{run_id}/events", headers={"Last-Event-ID": str(middle)}, timeout=10)
    assert parse_sse(tail.text) == full[middle:]
