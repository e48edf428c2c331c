"""The built-in tools, keyed by name, over the bundled sample database."""

from __future__ import annotations

import threading
from pathlib import Path

from services.tools.base import Tool
from services.tools.calculator import calculator_tool
from services.tools.sample_data import ensure_sample_database
from services.tools.sql import sql_tools

TOOL_NAMES = ("sql_query", "describe_data", "calculator")
SAMPLE_DB_NAME = "sample_business.db"

# Two first requests at once must not both build; the file rename keeps other processes safe too.
_build_lock = threading.Lock()


def build_tools(data_dir: Path) -> dict[str, Tool]:
    """Every built-in tool by name; creates the sample database on first use."""
    db_path = data_dir / SAMPLE_DB_NAME
    with _build_lock:
        ensure_sample_database(db_path)
    tools = {tool.name: tool for tool in [*sql_tools(db_path), calculator_tool()]}
    assert tuple(tools) == TOOL_NAMES, "TOOL_NAMES must list every built-in tool in order"
    return tools
