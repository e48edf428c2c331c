"""One usage tally: tokens and cost of a run or a reply, kept as events arrive, estimated where a stream
stopped before the provider could count it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.core.events import Event, TextDelta, Usage
from services.providers.base import tokens_for_chars


@dataclass
class UsageTally:
    """Sums Usage events; text streamed since the last one is counted as an estimate, so a stopped or failed
    run keeps what it used instead of 0."""

    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    unbilled_chars: int = 0  # text streamed since the last Usage event
    estimated: bool = False  # some of the counts are Lantern's estimate, not the provider's

    def add(self, event: Event) -> None:
        """Fold one event in (other events are ignored)."""
        if isinstance(event, TextDelta):
            self.unbilled_chars += len(event.delta)
        elif isinstance(event, Usage):
            self.input_tokens += event.input_tokens
            self.output_tokens += event.output_tokens
            self.cost_usd += event.cost_usd
            self.estimated = self.estimated or bool(event.estimated)
            self.unbilled_chars = 0

    @property
    def total_tokens(self) -> int:
        """Tokens so far, counting unbilled text as an estimate."""
        return self.input_tokens + self.output_tokens + tokens_for_chars(self.unbilled_chars)

    def settle(self) -> None:
        """At the end: unbilled text becomes estimated output tokens."""
        if self.unbilled_chars:
            self.output_tokens += tokens_for_chars(self.unbilled_chars)
            self.unbilled_chars = 0
            self.estimated = True

    def fields(self) -> dict[str, Any]:
        """The columns runs and messages store."""
        return {"input_tokens": self.input_tokens, "output_tokens": self.output_tokens, "cost_usd": self.cost_usd}


def usage_text(input_tokens: int, output_tokens: int, cost_usd: float, *, estimated: bool = False,
               seconds: float | None = None) -> str:
    """How a person reads usage, everywhere: '12 in / 340 out tokens · 1.2 s · $0.0004' (≈ when estimated)."""
    mark = "≈" if estimated else ""
    took = f" · {seconds:.1f} s" if seconds is not None else ""
    return f"{mark}{input_tokens} in / {mark}{output_tokens} out tokens{took} · {money(cost_usd)}"


def money(cost: float) -> str:
    """Dollars with enough decimals (up to six) to show sub-cent costs: `$0.0123`, `$0.50`, `$12.00`."""
    if cost >= 1:
        return f"${cost:,.2f}"
    whole, _, fraction = f"{cost:.6f}".rstrip("0").partition(".")
    return f"${whole}.{fraction.ljust(2, '0')}"
