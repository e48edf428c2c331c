"""Rate limits: runs per user per minute (sliding window), failed logins (capped backoff).

Each limiter counts in this process; `on_change` tells whoever shares it (services/core/shared_limits.py, in
replica mode) what it counted, and `apply` takes in what other processes counted, at the wall-clock time
they counted it.
"""

from __future__ import annotations

import math
import time
from collections import deque
from collections.abc import Callable

from services.core.errors import RateLimited

Change = Callable[[str, str], None]  # (what happened: hit, clear, fail, forgive; the key)


class SlidingWindow:
    """At most `limit` events per `window` seconds for each key; 0 disables it."""

    def __init__(self, limit: int, window: float = 60.0, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._events: dict[str, deque[float]] = {}
        self.on_change: Change | None = None

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
            if self.on_change is not None:
                self.on_change("hit", key)

    def take(self, key: str, what: str) -> None:
        """Count an event, or raise RateLimited (without counting) when over the limit."""
        wait = self.retry_after(key)
        if wait > 0:
            raise RateLimited(f"Too many {what}: try again in {math.ceil(wait)} s.", retry_after=math.ceil(wait))
        self.hit(key)

    def clear(self, key: str) -> None:
        """Forget `key`'s events (e.g. after a successful login)."""
        self._events.pop(key, None)
        if self.on_change is not None:
            self.on_change("clear", key)

    def apply(self, change: str, key: str, ago: float) -> None:
        """Another process counted an event for `key` (or cleared it) `ago` seconds ago."""
        if change == "clear":
            self._events.pop(key, None)
        elif change == "hit" and self.limit > 0 and ago < self.window:
            events = self._recent(key)
            events.append(self.clock() - max(0.0, ago))
            if len(events) > 1 and events[-2] > events[-1]:  # notifications may arrive out of order
                self._events[key] = deque(sorted(events))

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


class Backoff:
    """Failures per key: the first `free` cost nothing, then each next try waits twice as long, up to `cap`.

    A lockout would let anyone lock a person out by guessing; a capped backoff slows guessing to about one
    try per `cap` seconds while the real person, at worst, waits `cap` once. Keys quiet for `forget` seconds
    start afresh.
    """

    def __init__(self, free: int, *, base: float = 1.0, cap: float = 60.0, forget: float = 900.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.free = free
        self.base = base
        self.cap = cap
        self.forget = forget
        self.clock = clock
        self._failures: dict[str, tuple[int, float]] = {}  # key -> (count, time of the last failure)
        self.on_change: Change | None = None

    def retry_after(self, key: str) -> float:
        """Seconds before `key` may try again; 0 when it may try now."""
        count, last = self._state(key)
        if count < self.free:
            return 0.0
        delay = min(self.cap, self.base * 2 ** (count - self.free))
        return max(0.0, last + delay - self.clock())

    def fail(self, key: str) -> None:
        """Count one failure for `key`."""
        count, _ = self._state(key)
        if len(self._failures) > 10_000:  # bound memory under many distinct keys
            now = self.clock()
            self._failures = {k: v for k, v in self._failures.items() if now - v[1] < self.forget}
        self._failures[key] = (count + 1, self.clock())
        if self.on_change is not None:
            self.on_change("fail", key)

    def clear(self, key: str) -> None:
        """Forget `key` (e.g. after a successful login)."""
        self._failures.pop(key, None)
        if self.on_change is not None:
            self.on_change("clear", key)

    def forgive(self, key: str) -> None:
        """Take back one failure of `key` (an attempt counted in advance that succeeded)."""
        self._take_back(key)
        if self.on_change is not None:
            self.on_change("forgive", key)

    def apply(self, change: str, key: str, ago: float) -> None:
        """Another process counted a failure of `key` (or forgave or cleared it) `ago` seconds ago."""
        if change == "clear":
            self._failures.pop(key, None)
        elif change == "forgive":
            self._take_back(key)
        elif change == "fail" and ago < self.forget:
            count, last = self._state(key)
            self._failures[key] = (count + 1, max(last, self.clock() - max(0.0, ago)))

    def _take_back(self, key: str) -> None:
        """One failure fewer."""
        count, last = self._state(key)
        if count > 1:
            self._failures[key] = (count - 1, last)
        else:
            self._failures.pop(key, None)

    def _state(self, key: str) -> tuple[int, float]:
        """The key's failures, or none once it has been quiet long enough."""
        count, last = self._failures.get(key, (0, 0.0))
        if count and self.clock() - last >= self.forget:
            self._failures.pop(key, None)
            return 0, 0.0
        return count, last
