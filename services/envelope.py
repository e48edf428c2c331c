"""The deliverables envelope exactly as ../shared/API.md describes it, with its validation rules."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, model_validator


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
    """SUCCESS: ≥1 deliverable, all with content. PARTIAL: some failed (listed in warnings). FAILED: error set."""

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
        if self.status == "PARTIAL" and not self.meta.warnings:
            raise ValueError("PARTIAL must list each failed deliverable in meta.warnings")
        if self.status == "FAILED" and self.error is None:
            raise ValueError("FAILED must carry an error with a trace id")
        return self
