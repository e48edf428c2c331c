"""The deliverables envelope exactly as ../shared/API.md describes it, with its validation rules."""

from __future__ import annotations

import re
from collections import Counter
from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator

WORD = re.compile(r"\w+")


class DeliverableOut(BaseModel):
    """One generated deliverable."""

    id: str
    kind: str
    platform: str
    title: str
    content_markdown: str
    hashtags: list[str] = Field(default_factory=list)
    assets: dict[str, Any] = Field(default_factory=dict)
    metadata: dict[str, Any] = Field(default_factory=dict)


class Meta(BaseModel):
    """Who answered, what it cost, what went wrong along the way."""

    timestamp: str
    provider: str | None
    model: str | None
    cost_usd: float
    tokens_used: int
    warnings: list[str] = Field(default_factory=list)
    trace_id: str


class EnvelopeError(BaseModel):
    """Why a generation failed."""

    type: str
    message: str
    trace_id: str


class Envelope(BaseModel):
    """SUCCESS: ≥1 deliverable, all with usable content. PARTIAL: some failed or degenerate (listed in warnings).

    FAILED: error set.
    """

    status: Literal["SUCCESS", "FAILED", "PARTIAL"]
    module: str
    run_id: str
    meta: Meta
    deliverables: list[DeliverableOut]
    error: EnvelopeError | None = None

    @model_validator(mode="after")
    def _rules(self) -> Envelope:
        """A status must be backed by what the envelope carries."""
        empty = [d.id for d in self.deliverables if not d.content_markdown.strip()]
        if self.status in ("SUCCESS", "PARTIAL"):
            if not self.deliverables:
                raise ValueError(f"{self.status} needs at least one deliverable")
            if empty:
                raise ValueError(f"deliverables without content: {', '.join(empty)}")
            if self.error is not None:
                raise ValueError(f"{self.status} cannot carry an error")
        if self.status == "SUCCESS" and (bad := [d.id for d in self.deliverables
                                                 if degenerate(d.content_markdown, d.hashtags)]):
            raise ValueError(f"degenerate content in {', '.join(bad)}: the status is PARTIAL, with a warning")
        if self.status == "PARTIAL" and not self.meta.warnings:
            raise ValueError("PARTIAL must list each failed deliverable in meta.warnings")
        if self.status == "FAILED" and self.error is None:
            raise ValueError("FAILED must carry an error with a trace id")
        return self


def degenerate(content: str, hashtags: list[str] | None = None) -> str | None:
    """Why content is obviously unusable (a line repeated, rows of emoji, the same few words, empty hashtags)."""
    lines = [line.strip() for line in content.splitlines() if line.strip()]
    if len(lines) >= 3:
        line, count = Counter(lines).most_common(1)[0]
        if count >= 3 and count * 2 >= len(lines):
            return f"one line is repeated {count} times ({line[:40]!r})"
    visible = [c for c in content if not c.isspace()]
    text_chars = sum(c.isalnum() for c in visible)
    if visible and text_chars * 2 < len(visible):
        bare = sum(1 for line in lines if not any(c.isalnum() for c in line))
        return f"{bare} rows of emoji or symbols" if bare >= 2 else "it is mostly emoji or symbols, not text"
    words = WORD.findall(content.lower())
    # Fewer than 20 words is too short to judge by variety (a slogan may repeat itself).
    if len(words) >= 20 and len(set(words)) * 4 < len(words):
        return f"the same few words repeat ({len(set(words))} different words in {len(words)})"
    empty = [t for t in hashtags or [] if not any(c.isalnum() for c in t)]
    if empty:
        return f"{len(empty)} empty hashtag(s)"
    return None
