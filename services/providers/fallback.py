"""A fallback chain: try each model in order; retry retryable failures with backoff, then move on."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from dataclasses import replace

from services.core.errors import LanternError, ProviderError, ProviderRateLimited
from services.core.events import Event, ProviderFallback, TextDelta
from services.providers.base import ChatRequest
from services.providers.registry import Registry


class FallbackChain:
    """Streams from the first model that answers, emitting a visible notice at every hand-over."""

    def __init__(self, registry: Registry, model_ids: list[str], *, retries: int = 1,
                 backoff_s: float = 0.5, max_backoff_s: float = 8.0) -> None:
        if not model_ids:
            raise ValueError("a fallback chain needs at least one model")
        self.registry = registry
        self.model_ids = model_ids
        self.retries = retries
        self.backoff_s = backoff_s
        self.max_backoff_s = max_backoff_s
        self.answered_by: str | None = None

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        """Events of the first model that succeeds; the last failure is raised if none does.

        Once a model has produced text, a failure is raised rather than handed over: a second
        model would start the reply again and the reader would see it twice.
        """
        last: LanternError | None = None
        for i, model_id in enumerate(self.model_ids):
            try:
                provider, model = self.registry.resolve(model_id)
            except LanternError as exc:
                last = exc
                if i + 1 < len(self.model_ids):
                    yield ProviderFallback(from_=model_id, to=self.model_ids[i + 1], reason=str(exc))
                continue
            for attempt in range(self.retries + 1):
                produced = False
                try:
                    async for event in provider.stream(replace(request, model=model)):
                        produced = produced or isinstance(event, TextDelta)
                        yield event
                    self.answered_by = model_id
                    return
                except ProviderError as exc:
                    if produced:
                        raise
                    last = exc
                    if not exc.retryable:
                        break
                    if attempt < self.retries:
                        await asyncio.sleep(self._delay(attempt, exc))
            if i + 1 < len(self.model_ids):
                yield ProviderFallback(from_=model_id, to=self.model_ids[i + 1], reason=str(last))
        assert last is not None
        raise last

    def _delay(self, attempt: int, exc: ProviderError) -> float:
        """Exponential backoff with jitter, or the provider's Retry-After, bounded."""
        if isinstance(exc, ProviderRateLimited) and exc.retry_after is not None:
            return min(exc.retry_after, self.max_backoff_s)
        base = min(self.backoff_s * 2 ** attempt, self.max_backoff_s)
        return base / 2 + random.uniform(0, base / 2)
