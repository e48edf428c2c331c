"""Stop means stop: over the real API, the upstream stream is closed within 200 ms of the stop request,
for chat, duet and pipeline runs, and the partial output is kept as `stopped`."""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest

from tests.conftest import AppProcess
from tests.fakes.openai_server import FakeOpenAI, Reply
from tests.reliability.conftest import wait_for

LONG = "tick " * 2000  # 10,000 characters: 20 s at 5 characters per 10 ms, far longer than any test
STOP_BUDGET_S = 0.2


def start_chat(app: AppProcess) -> str:
    body = {"messages": [{"role": "user", "content": "Talk"}], "model": "fake/m"}
    with httpx.stream("POST", f"{app.url}/api/chat/stream", json=body, timeout=10) as response:
        assert response.status_code == 200, response.read()
        return response.headers["x-run-id"]  # hanging up does not stop the run (tested elsewhere)


def start_duet(app: AppProcess) -> str:
    agents = [{"name": name, "model": "fake/m", "system_prompt": "", "temperature": 0.5} for name in ("Ann", "Bob")]
    created = httpx.post(f"{app.url}/api/runs", json={"kind": "duet", "topic": "tea", "turns": 4, "agents": agents},
                         timeout=10)
    assert created.status_code == 201, created.text
    return str(created.json()["run_id"])


def start_pipeline(app: AppProcess) -> str:
    created = httpx.post(f"{app.url}/api/runs", json={"kind": "pipeline", "pipeline": "assessment",
                                                      "topic": "Python loops", "model": "fake/m"}, timeout=10)
    assert created.status_code == 201, created.text
    return str(created.json()["run_id"])


def partial_text(run: dict[str, Any]) -> str:
    """What the stopped run kept, wherever its kind keeps it."""
    if run["kind"] == "duet":
        return str(run["result"]["turns"][0]["content"])
    if run["kind"] == "pipeline":
        return str(run["result"]["steps"][0]["response"])
    return str(run["result"]["message"]["content"])


@pytest.mark.parametrize("start", [start_chat, start_duet, start_pipeline], ids=["chat", "duet", "pipeline"])
def test_stop_closes_the_upstream_stream_within_200_ms(app: AppProcess, fake: FakeOpenAI, start: Any) -> None:
    fake.replies = [Reply(text=LONG, chunk=5, delay=0.01)]
    assert fake.open_streams == 0
    run_id = start(app)
    wait_for(lambda: fake.open_streams == 1)
    time.sleep(0.3)  # tokens are flowing
    stopped_at = time.monotonic()
    response = httpx.post(f"{app.url}/api/runs/{run_id}/stop", timeout=10)
    assert response.status_code == 200 and response.json() == {"status": "stopped"}
    wait_for(lambda: fake.open_streams == 0, timeout=2)
    assert fake.closed_at is not None
    assert fake.closed_at - stopped_at < STOP_BUDGET_S, f"upstream closed {fake.closed_at - stopped_at:.3f}s after stop"
    run = httpx.get(f"{app.url}/api/runs/{run_id}", timeout=10).json()
    assert run["status"] == "stopped"
    kept = partial_text(run)
    assert kept and LONG.startswith(kept) and len(kept) < len(LONG)
    time.sleep(0.2)
    assert fake.open_streams == 0  # and nothing reopened it (no retry, no next turn or step)
