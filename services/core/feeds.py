"""Runs another replica drives, read once for all their followers on this replica.

Each announcement of stored events used to cost one query per follower; at 50 followed streams that was 50
queries (and 50 parses of the same rows) every flush. A feed per followed run keeps the events read so far,
parsed once, and every announcement names runs that are read together in one query; followers take their
slices from the feed. A follower behind its feed's start reads the database itself, as before.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from bisect import bisect_right
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from services.core.events import Done, Event, from_wire
from storage import runs as run_repo
from storage.engine import Database

log = logging.getLogger(__name__)

IDLE_S = 30.0  # a feed nobody took from for this long is dropped (its followers left)
ENDED_S = 5.0  # a feed whose run ended is dropped this long after its last take


@dataclass(eq=False)
class Feed:
    """One followed run's events from `start` (exclusive) on, as read from the database."""

    start: int
    events: list[tuple[int, Event]] = field(default_factory=list)
    due: bool = False
    ended: bool = False
    used: float = field(default_factory=time.monotonic)

    @property
    def last(self) -> int:
        """The seq read up to."""
        return self.events[-1][0] if self.events else self.start


class Feeds:
    """This replica's feeds: `announced` schedules one shared read, `take` hands out what was read."""

    def __init__(self, db: Database, on_read: Callable[[str], None]) -> None:
        self.db = db
        self._on_read = on_read  # wakes the run's waiters once its new events are in the feed
        self._feeds: dict[str, Feed] = {}
        self._reader: asyncio.Task[None] | None = None

    def track(self, run_id: str, after: int) -> None:
        """Keep a feed of the run from `after` on (a feed already there keeps its own start)."""
        if run_id not in self._feeds:
            self._feeds[run_id] = Feed(start=after)

    def take(self, run_id: str, after: int) -> list[tuple[int, Event]] | None:
        """The feed's events after `after`; None when there is no feed or it starts later than that."""
        feed = self._feeds.get(run_id)
        if feed is None or after < feed.start:
            return None
        feed.used = time.monotonic()
        return feed.events[bisect_right(feed.events, after, key=lambda item: item[0]):]

    def announced(self, run_ids: Iterable[str]) -> list[str]:
        """Schedule a read of the followed runs among `run_ids`; the others are returned (nobody follows them
        through a feed here)."""
        others = []
        for run_id in run_ids:
            feed = self._feeds.get(run_id)
            if feed is None:
                others.append(run_id)
            elif not feed.ended:
                feed.due = True
        idle = self._reader is None or self._reader.done()
        if idle and any(feed.due for feed in self._feeds.values()):
            self._reader = asyncio.get_running_loop().create_task(self._read_due(), name="replica-feeds")
        return others

    def refresh_all(self) -> None:
        """Read every feed again (notifications may have been lost)."""
        self.announced(list(self._feeds))

    async def close(self) -> None:
        """Stop a read in progress (the replica is shutting down)."""
        if self._reader is not None and not self._reader.done():
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        self._feeds.clear()

    def sweep(self) -> None:
        """Drop feeds nobody follows any more."""
        now = time.monotonic()
        for run_id, feed in list(self._feeds.items()):
            if now - feed.used > (ENDED_S if feed.ended else IDLE_S):
                del self._feeds[run_id]

    async def _read_due(self) -> None:
        """One query for every due feed, repeated while announcements keep coming; then their waiters wake."""
        while due := {run_id: feed for run_id, feed in self._feeds.items() if feed.due}:
            for feed in due.values():
                feed.due = False
            try:
                found = await self.db.call(run_repo.load_events_many,
                                           afters={run_id: feed.last for run_id, feed in due.items()})
            except Exception:  # followers read the database themselves every POLL_S anyway
                log.warning("could not read followed runs", exc_info=True)
                found = {}
            for run_id, feed in due.items():
                after = feed.last
                new = [(w["seq"], from_wire(w["type"], w["data"])) for w in found.get(run_id, ()) if w["seq"] > after]
                feed.events.extend(new)
                feed.ended = feed.ended or any(isinstance(event, Done) for _seq, event in new)
                self._on_read(run_id)
