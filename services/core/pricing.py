"""Prices per million tokens (USD) for cost figures; unknown or local models cost 0."""

from __future__ import annotations

# (input, output) USD per 1M tokens, public list prices.
PRICES: dict[str, tuple[float, float]] = {
    "openai/gpt-4o-mini": (0.15, 0.60),
    "openai/gpt-4o": (2.50, 10.00),
    "openai/gpt-4.1-mini": (0.40, 1.60),
    "openai/gpt-4.1": (2.00, 8.00),
    "anthropic/claude-3-5-haiku-latest": (0.80, 4.00),
    "anthropic/claude-sonnet-4-0": (3.00, 15.00),
}


def cost_usd(provider: str, model: str, input_tokens: int, output_tokens: int,
             prices: dict[str, tuple[float, float]] | None = None) -> float:
    """Cost of one call from the price table."""
    table = prices if prices is not None else PRICES
    pin, pout = table.get(f"{provider}/{model}", (0.0, 0.0))
    return round((input_tokens * pin + output_tokens * pout) / 1_000_000, 8)
