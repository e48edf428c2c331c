"""Rate limits and login throttles that hold across replicas: every count is stored and announced.

Each process keeps its own limiters (fast, synchronous checks); what one counts is written to the database
and sent on the bus, and the others count it too, at the moment it happened. A replica that starts reads the
counts of the last LOOK_BACK_S, so a restart forgets nothing an attacker could use.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Protocol

from services.core.limits import Change
from storage import limit_events as repo
from storage.bus import PgBus
from storage.engine import Database

log = logging.getLogger(__name__)

CHANNEL = "lantern_limits"
LOOK_BACK_S = 900.0  # the longest any limiter remembers (a login backoff's `forget`)
MAX_KEY = 256  # longer keys (no real name or address is) are counted here only, so a payload stays small


class Limiter(Protocol):
    """A SlidingWindow or Backoff (services/core/limits.py)."""

    on_change: Change | None

    def apply(self, change: str, key: str, ago: float) -> None:
        """Count what another process counted."""
        ...


class LimitSync:
    """Shares the counts of named limiters with the other replicas."""

    def __init__(self, db: Database, bus: PgBus, replica: str) -> None:
        self.db = db
        self.bus = bus
        self.replica = replica
        self._limiters: dict[str, Limiter] = {}
        self._pending: set[asyncio.Task[None]] = set()
        bus.subscribe(CHANNEL, self._on_notify)

    def share(self, scope: str, limiter: Limiter) -> None:
        """Share this limiter's counts under `scope` (the same name on every replica)."""
        self._limiters[scope] = limiter
        limiter.on_change = lambda change, key: self._publish(scope, change, key)

    async def load(self) -> None:
        """Count what the other replicas counted recently (at start-up)."""
        now = time.time()
        for event in await self.db.call(repo.limit_events_since, since=now - LOOK_BACK_S):
            if (limiter := self._limiters.get(event.scope)) is not None:
                limiter.apply(event.kind, event.key, now - event.at)
        await self.db.call(repo.prune_limit_events, before=now - LOOK_BACK_S)

    async def wait(self) -> None:
        """Until every count made so far is stored and announced (tests, shutdown)."""
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    def _publish(self, scope: str, change: str, key: str) -> None:
        """Store and announce one count, in the background: the check that made it does not wait."""
        if len(key) > MAX_KEY:
            return
        task = asyncio.get_running_loop().create_task(self._send(scope, change, key, time.time()))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def _send(self, scope: str, change: str, key: str, at: float) -> None:
        """Write then notify; a failure is logged (the count still holds here)."""
        try:
            await self.db.call(repo.add_limit_event, scope=scope, key=key, kind=change, at=at)
            await self.bus.notify(CHANNEL, json.dumps({"r": self.replica, "s": scope, "c": change, "k": key,
                                                       "at": at}))
        except Exception:
            log.warning("could not share a %s count with the other replicas", scope, exc_info=True)

    def _on_notify(self, payload: str) -> None:
        """Count what another replica counted (our own notifications come back too: skipped)."""
        try:
            note = json.loads(payload)
        except ValueError:
            return
        if note.get("r") == self.replica or (limiter := self._limiters.get(note.get("s"))) is None:
            return
        limiter.apply(str(note.get("c")), str(note.get("k")), max(0.0, time.time() - float(note.get("at", 0))))
