"""A real MCP server, written with the SDK's own FastMCP, for the tests.

Run as `python tools_server.py` it serves stdio; with `--http PORT` it serves streamable HTTP on
127.0.0.1:PORT/mcp. Its tools answer text and structured results, fail, sleep (noting in a marker file
when they start and when they are cancelled), crash the process mid-call, and echo their secrets back.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

import anyio
from mcp.server.fastmcp import Context, FastMCP

server = FastMCP("lantern-test", log_level="WARNING")


@server.tool()
def echo(text: str) -> str:
    """Repeat the text back."""
    return f"echo: {text}"


@server.tool()
def add(a: int, b: int) -> dict[str, int]:
    """Add two whole numbers; the answer is structured."""
    return {"sum": a + b, "a": a, "b": b}


@server.tool()
def fail(why: str) -> str:
    """Always refuses, saying why."""
    raise ValueError(f"cannot do that: {why}")


@server.tool()
async def sleep(seconds: float, marker: str = "") -> str:
    """Sleep; the marker file says `started`, then `cancelled` if the client gave up."""
    if marker:
        Path(marker).write_text("started")
    try:
        await anyio.sleep(seconds)
    except anyio.get_cancelled_exc_class():
        if marker:
            Path(marker).write_text("cancelled")
        raise
    return f"slept {seconds} s"


@server.tool()
def crash() -> str:
    """Kill this server process in the middle of the call."""
    os._exit(3)


@server.tool()
def pid() -> int:
    """The server's process id."""
    return os.getpid()


@server.tool()
def reveal(ctx: Context[Any, Any, Any]) -> str:
    """Echo the secrets this server was given (its TEST_TOKEN env, its Authorization header)."""
    request = ctx.request_context.request
    header = request.headers.get("authorization", "") if request is not None else ""
    token = os.environ.get("TEST_TOKEN", "")
    return f"env token: {token} ({len(token)} characters); header: {header}"


@server.tool(name="odd.name/with spaces")
def odd() -> str:
    """A tool whose name providers would refuse as is."""
    return "odd ok"


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--http", type=int, help="serve streamable HTTP on this port instead of stdio")
    port = parser.parse_args().http
    if port:
        server.settings.port = port
        server.run(transport="streamable-http")
    else:
        server.run()
