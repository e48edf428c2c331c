"""Rate limits and the per-run token cap."""

from __future__ import annotations

from typing import Any

import pytest

from services.core.errors import RateLimited
from services.core.events import Error
from services.core.limits import SlidingWindow
from storage import runs as run_repo
from tests.api.test_runs_api import duet_body


def test_sliding_window_refuses_then_lets_through_as_events_age() -> None:
    now = [0.0]
    window = SlidingWindow(3, window=60, clock=lambda: now[0])
    for _ in range(3):
        window.take("ann", "runs")
    with pytest.raises(RateLimited) as refused:
        window.take("ann", "runs")
    assert refused.value.retry_after == 60 and "try again in 60 s" in str(refused.value)
    window.take("ben", "runs")  # per key
    now[0] = 59.0
    assert window.retry_after("ann") == pytest.approx(1.0)
    now[0] = 60.5
    window.take("ann", "runs")  # the first event left the window
    assert SlidingWindow(0).retry_after("anyone") == 0  # 0 disables


async def test_a_run_past_the_token_cap_fails_with_a_clear_error(lantern: Any) -> None:
    lantern.runs.max_run_tokens = 30  # each scripted duet turn reports a few dozen tokens
    body = duet_body(turns=6)
    active = await lantern.duet.start(user_id="local", topic=body["topic"], turns=6, agents=body["agents"])
    assert await lantern.runs.wait(active.id) == "failed"
    events = [e for _, e in active.events]
    errors = [e for e in events if isinstance(e, Error)]
    assert errors and errors[0].error_type == "token_cap" and "LANTERN_MAX_RUN_TOKENS" in errors[0].message
    run = await lantern.db.call(run_repo.get_run, run_id=active.id)
    assert run.status == "failed" and len(run.result["turns"]) < 6  # stopped early, what it wrote is kept
