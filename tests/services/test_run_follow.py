"""Reading runs in batches, and storing their events without ever holding up the stream."""

from __future__ import annotations

import asyncio
import itertools
import time
from typing import Any

from services.core.events import Done, TextDelta
from storage import runs as run_repo
from storage.engine import Database


async def test_a_follower_gets_what_is_new_in_one_batch_and_quiet_waits_return_empty(lantern: Any) -> None:
    lantern.registry.scripted.add_script("paced", ["one two three four five six"], delay=0.05, chunk=4)
    start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Go"}],
                                     model="scripted/paced")
    follower = lantern.runs.follow(start.run.id)
    assert await follower.next(timeout=0.001) == []  # nothing yet: a quiet wait, not the end
    await asyncio.sleep(0.3)  # several deltas arrive meanwhile
    batch = await follower.next(timeout=1)
    assert batch is not None and len(batch) > 1
    seen = list(batch)
    while (batch := await follower.next(timeout=1)) is not None:
        seen += batch
    assert [seq for seq, _ in seen] == list(range(1, len(seen) + 1))
    assert "".join(e.delta for _, e in seen if isinstance(e, TextDelta)) == "one two three four five six"
    assert seen[-1][1] == Done(status="completed", run_id=start.run.id)
    # After the end, a new follower replays everything from the database at once.
    replay = lantern.runs.follow(start.run.id, after=2)
    assert await replay.next() == seen[2:]
    assert await replay.next() is None


class SlowWrites(Database):
    """A database whose event writes take `delay` seconds (a busy disk or a distant PostgreSQL)."""

    delay = 0.6

    async def call(self, fn: Any, /, **kwargs: Any) -> Any:
        if fn is run_repo.append_event_batches:
            await asyncio.sleep(self.delay)
        return await super().call(fn, **kwargs)


async def test_a_slow_database_does_not_stall_the_stream(lantern: Any) -> None:
    lantern.db.__class__ = SlowWrites
    lantern.runs.flush_interval = 0.1  # a write round starts every 0.1 s and takes 0.6 s
    lantern.registry.scripted.add_script("steady", ["x" * 120], delay=0.02, chunk=1)
    start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Go"}],
                                     model="scripted/steady")
    stamps, seen = [], []
    async for seq, event in lantern.runs.subscribe(start.run.id):
        stamps.append(time.monotonic())
        seen.append((seq, event))
    deltas = [b - a for a, b in itertools.pairwise(stamps[:-2])]  # until the text ends (the end waits to be stored)
    assert max(deltas) < SlowWrites.delay / 2, f"the stream waited for the database: {max(deltas):.2f} s"
    # The run's end waits for its events to be stored: a late reader gets all of them from the database.
    stored = await lantern.db.call(run_repo.load_events, run_id=start.run.id)
    assert [w["seq"] for w in stored] == [seq for seq, _ in seen]
    assert "".join(w["data"].get("delta", "") for w in stored if w["type"] == "text.delta") == "x" * 120
