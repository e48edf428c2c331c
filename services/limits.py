"""Sliding-window rate limits: runs per user per minute, failed logins per name and address."""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from services.errors import RateLimited


class SlidingWindow:
    """At most `limit` events per `window` seconds for each key; 0 disables it."""

    def __init__(self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._events: dict[str, deque[float]] = {}

    def retry_after(self, key: str) -> float:
        """Seconds until `key` may act again; 0 when it may act now."""
        if self.limit <= 0:
            return 0.0
        events = self._recent(key)
        if len(events) < self.limit:
            return 0.0
        return max(0.0, events[0] + self.window - self.clock())

    def hit(self, key: str) -> None:
        """Count one event for `key`."""
        if self.limit > 0:
            self._recent(key).append(self.clock())

    def take(self, key: str, what: str) -> None:
        """Count an event, or raise RateLimited (without counting) when over the limit."""
        wait = self.retry_after(key)
        if wait > 0:
            raise RateLimited(f"Too many {what}: try again in {math.ceil(wait)} s.", retry_after=math.ceil(wait))
        self.hit(key)

    def clear(self, key: str) -> None:
        """Forget `key`'s events (e.g. after a successful login)."""
        self._events.pop(key, None)

    def _recent(self, key: str) -> deque[float]:
        """The key's events inside the window (older ones dropped)."""
        events = self._events.setdefault(key, deque())
        horizon = self.clock() - self.window
        while events and events[0] <= horizon:
            events.popleft()
        if not events and len(self._events) > 10_000:  # bound memory under many distinct keys
            self._events = {k: v for k, v in self._events.items() if v}
            self._events[key] = events
        return events
