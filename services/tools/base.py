"""The tool contract and the one safe way to call a tool with a model's arguments."""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from pydantic import BaseModel, ValidationError

MAX_OUTPUT_CHARS = 20_000
log = logging.getLogger(__name__)


class ToolError(Exception):
    """A failure the model should read and can recover from (bad SQL, division by zero...)."""


@dataclass(frozen=True, kw_only=True, slots=True)
class Tool:
    """A callable capability; `run` receives validated arguments and returns text for the model.

    A built-in tool validates with `args_model` and `run` gets the model instance. A remote tool
    (an MCP server's) has no model: it gives its server's JSON schema as `parameters`, `run` gets
    the arguments as a dict, and the server validates them (its refusal is an error the model reads).
    """

    name: str
    description: str
    args_model: type[BaseModel] | None = None
    parameters: dict[str, Any] | None = None
    run: Callable[[Any], Awaitable[str]]
    timeout_s: float = 15.0
    source: str = "built-in"  # or the MCP server the tool comes from

    def schema(self) -> dict[str, Any]:
        """The JSON schema of the arguments, as providers expect it."""
        if self.args_model is None:
            return dict(self.parameters or {"type": "object", "properties": {}})
        schema = self.args_model.model_json_schema()
        schema.pop("title", None)
        return schema


class ToolSource(Protocol):
    """Where a run's tools come from (services/tools/registry.py ToolCatalog): by name, for one user."""

    async def select(self, names: Iterable[str], *, user_id: str) -> dict[str, Tool]:
        """The named tools this user may use, or BadInput naming those that are not available."""
        ...


@dataclass(frozen=True, kw_only=True, slots=True)
class ToolResult:
    """What a call produced, as shown on the tool card and sent back to the model."""

    output: str
    is_error: bool
    seconds: float


async def call_tool(tools: dict[str, Tool], name: str, raw_args: dict[str, Any] | str) -> ToolResult:
    """Validate and run one call; every failure becomes an error result, never an exception."""
    started = time.monotonic()

    def result(output: str, is_error: bool) -> ToolResult:
        if len(output) > MAX_OUTPUT_CHARS:
            output = output[:MAX_OUTPUT_CHARS] + f"\n… (output cut at {MAX_OUTPUT_CHARS} characters)"
        return ToolResult(output=output, is_error=is_error, seconds=round(time.monotonic() - started, 3))

    tool = tools.get(name)
    if tool is None:
        return result(f"Unknown tool '{name}'. Available tools: {', '.join(sorted(tools)) or 'none'}.", True)
    try:
        args = json.loads(raw_args or "{}") if isinstance(raw_args, str) else raw_args
        if tool.args_model is None and not isinstance(args, dict):
            return result(f"Arguments for {name} must be a JSON object.", True)
        parsed = args if tool.args_model is None else tool.args_model.model_validate(args)
    except json.JSONDecodeError as exc:
        return result(f"Arguments for {name} are not valid JSON: {exc.msg}.", True)
    except RecursionError:  # json.loads raises this, not JSONDecodeError, on very deeply nested input
        return result(f"Arguments for {name} are nested too deeply; send a flat JSON object.", True)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'arguments'}: {e['msg']}"
                             for e in exc.errors())
        return result(f"Invalid arguments for {name}: {problems}.", True)
    try:
        return result(await asyncio.wait_for(tool.run(parsed), tool.timeout_s), False)
    except ToolError as exc:
        return result(str(exc), True)
    except TimeoutError:
        return result(f"{name} took longer than {tool.timeout_s:g} s and was stopped.", True)
    except Exception as exc:  # a bug in a tool must not end the conversation: the model reads an error
        log.exception("tool %s failed", name)
        return result(f"{name} failed unexpectedly ({type(exc).__name__}); try something else.", True)
