"""Bodies of the run routes (duet now; pipelines and deliverables join as their issues land)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.studio.modules import MODULES


class AgentIn(BaseModel):
    """One duet bot."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80)
    model: str
    system_prompt: str = Field("", max_length=20_000)
    temperature: float = Field(0.7, ge=0, le=2)
    max_tokens: int | None = Field(None, ge=1, le=32_000)


class DuetCreate(BaseModel):
    """`POST /api/runs` with `kind: "duet"`."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["duet"]
    topic: str = Field(max_length=20_000)
    turns: int
    agents: list[AgentIn] = Field(min_length=2, max_length=2)
    continue_from: str | None = None


class PipelineCreate(BaseModel):
    """`POST /api/runs` with `kind: "pipeline"`: a built-in or saved pipeline by name, or a definition."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["pipeline"]
    topic: str = Field(max_length=20_000)
    pipeline: str | None = "assessment"
    definition: dict[str, Any] | None = None
    model: str | None = None
    models: dict[str, str] | None = None
    max_attempts: int | None = None


class Brief(BaseModel):
    """What the deliverables are for."""

    model_config = ConfigDict(extra="forbid")

    brand: str = Field(max_length=2_000)
    product: str = Field(max_length=2_000)
    audience: str = Field(max_length=2_000)
    goal: str = Field(max_length=2_000)
    tone: str | None = Field(None, max_length=500)
    platforms: list[str] | None = None
    notes: str | None = Field(None, max_length=10_000)


class GenerateBody(BaseModel):
    """`POST /api/deliverables/generate`."""

    model_config = ConfigDict(extra="forbid")

    module: str
    brief: Brief
    model: str | None = None

    @field_validator("module")
    @classmethod
    def _known_module(cls, value: str) -> str:
        """An unknown module is a 422 that lists the known ones."""
        if value not in MODULES:
            raise ValueError(f"unknown module '{value}': known are {', '.join(MODULES)}")
        return value


class DeliverablesCreate(GenerateBody):
    """`POST /api/runs` with `kind: "deliverables"`."""

    kind: Literal["deliverables"]


class Amend(BaseModel):
    """`PATCH /api/deliverables/{id}`."""

    model_config = ConfigDict(extra="forbid")

    content_markdown: str = Field(max_length=100_000)


RunCreate = Annotated[DuetCreate | PipelineCreate | DeliverablesCreate, Field(discriminator="kind")]


class AgentPatch(BaseModel):
    """`PATCH /api/runs/{id}/agents/{index}`: any of these, from the bot's next turn."""

    model_config = ConfigDict(extra="forbid")

    system_prompt: str | None = Field(None, max_length=20_000)
    temperature: float | None = Field(None, ge=0, le=2)
    model: str | None = None
