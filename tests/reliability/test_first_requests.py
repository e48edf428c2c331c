"""The first requests on a fresh database arrive together (a page and API clients at start-up):
each must succeed, not trip over another creating the same local user (found by `make soak`)."""

from __future__ import annotations

import asyncio
from typing import Any

from storage import conversations as conv_repo


async def test_many_first_requests_at_once_all_succeed(lantern: Any) -> None:
    starts = await asyncio.gather(*(
        lantern.chat.start(user_id="local", messages=[{"role": "user", "content": f"Hi {i}"}], model="scripted/echo")
        for i in range(12)))
    for start in starts:
        assert await lantern.runs.wait(start.run.id) == "completed"
    _items, total = await lantern.db.call(conv_repo.list_conversations, user_id="local")
    assert total == 12
