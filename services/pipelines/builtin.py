"""The pipelines that ship with Lantern."""

from __future__ import annotations

from functools import cache
from pathlib import Path

from services.pipelines.definition import PipelineDef, parse_definition

HERE = Path(__file__).parent


@cache
def builtins() -> dict[str, PipelineDef]:
    """Built-in pipelines by name."""
    assessment = parse_definition((HERE / "assessment.yaml").read_text())
    return {assessment.name: assessment}
