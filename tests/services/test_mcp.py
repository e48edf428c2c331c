"""MCP tool servers against real servers written with the SDK's FastMCP, over stdio and streamable HTTP."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import Any

import pytest

from app.context import Lantern
from app.settings import Settings
from services.core.errors import BadInput, Forbidden
from services.core.events import ToolCall, ToolOutput
from services.export.conversation import conversation_document
from services.tools.base import call_tool
from services.tools.mcp_config import parse_config, public, read_settings, tool_name
from storage import conversations as conv_repo
from tests.conftest import free_port, stop_process

SERVER = Path(__file__).resolve().parent.parent / "fakes" / "mcp_servers" / "tools_server.py"
TOKEN = "sk-lantern-test-mcp-0123456789"  # the suite's log scan fails the run if this reaches any log
HEADER_TOKEN = "sk-lantern-test-mcp-header-42"
FAKE = {"command": sys.executable, "args": [str(SERVER)], "env": {"TEST_TOKEN": TOKEN}}
ASK = {"user_id": "local", "messages": [{"role": "user", "content": "Use the tool"}]}


@pytest.fixture(scope="module")
def http_server() -> Iterator[str]:
    """The same FastMCP server over streamable HTTP on a free loopback port, stopped at the end."""
    port = free_port()
    proc = subprocess.Popen([sys.executable, str(SERVER), "--http", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            break
        except OSError:
            time.sleep(0.1)
    else:
        stop_process(proc)
        raise RuntimeError("the MCP HTTP test server did not start")
    yield f"http://127.0.0.1:{port}/mcp"
    stop_process(proc)


@pytest.fixture
async def make(tmp_path: Path) -> AsyncIterator[Any]:
    """Build a Lantern with these MCP servers configured (LANTERN_MCP_SERVERS); all are shut down after."""
    made: list[Lantern] = []

    async def build(servers: dict[str, Any], db: str = "lantern.db") -> Lantern:
        settings = Settings(DATABASE_URL=f"sqlite:///{tmp_path / db}", LANTERN_MCP_SERVERS=json.dumps(servers))
        lantern = Lantern.create(settings)
        await lantern.startup()
        made.append(lantern)
        return lantern

    yield build
    for lantern in made:
        await lantern.shutdown()


@pytest.fixture
async def fake(make: Any) -> Lantern:
    """A Lantern with the fake server over stdio, named `fake`."""
    return await make({"fake": FAKE})


@pytest.mark.parametrize("transport", ["stdio", "http"])
async def test_tools_are_listed_namespaced_with_schemas_and_called(make: Any, http_server: str,
                                                                    transport: str) -> None:
    config = FAKE if transport == "stdio" else {"url": http_server,
                                                "headers": {"Authorization": f"Bearer {HEADER_TOKEN}"}}
    lantern = await make({"fake": config})
    tools = await lantern.tools.available("local")
    assert {"sql_query", "calculator", "fake__echo", "fake__add", "fake__odd_name_with_spaces"} <= set(tools)
    assert tools["fake__add"].schema()["required"] == ["a", "b"] and tools["fake__add"].source == "fake"
    # Text results come back as text, structured ones as pretty JSON; both are ordinary tool results.
    text = await call_tool(tools, "fake__echo", {"text": "lighthouse"})
    assert (text.output, text.is_error) == ("echo: lighthouse", False)
    structured = await call_tool(tools, "fake__add", '{"a": 2, "b": 40}')
    assert structured.output.startswith('```json\n{\n  "sum": 42,')  # pretty-printed, rendered as a code block
    assert json.loads(structured.output.strip("`").removeprefix("json")) == {"sum": 42, "a": 2, "b": 40}
    assert (await call_tool(tools, "fake__odd_name_with_spaces", {})).output == "odd ok"
    [server] = await lantern.mcp.servers()
    assert (server.name, server.status, server.transport) == ("fake", "connected", transport)
    assert "fake__echo" in {t.name for t in server.tools}


async def test_a_tool_error_is_an_error_card_the_model_reads(fake: Lantern) -> None:
    tools = await fake.tools.available("local")
    result = await call_tool(tools, "fake__fail", {"why": "the tide is out"})
    assert result.is_error and "cannot do that: the tide is out" in result.output
    bad_args = await call_tool(tools, "fake__add", {"a": "many"})
    assert bad_args.is_error and "validation error" in bad_args.output  # the server checks its own arguments
    assert not (await call_tool(tools, "fake__echo", {"text": "still here"})).is_error


async def test_a_slow_call_times_out_and_the_server_still_works(make: Any, tmp_path: Path) -> None:
    lantern = await make({"fake": {**FAKE, "timeout_s": 0.5}})
    tools = await lantern.tools.available("local")
    marker = tmp_path / "sleep.txt"
    started = time.monotonic()
    result = await call_tool(tools, "fake__sleep", {"seconds": 30, "marker": str(marker)})
    assert result.is_error and "took longer than 0.5 s" in result.output
    assert time.monotonic() - started < 5
    await _until(lambda: marker.read_text() == "cancelled")  # the server was told to stop, and did
    assert (await call_tool(tools, "fake__echo", {"text": "again"})).output == "echo: again"


async def test_a_server_that_dies_mid_call_is_an_error_and_restarts_on_next_use(fake: Lantern) -> None:
    tools = await fake.tools.available("local")
    first_pid = int((await call_tool(tools, "fake__pid", {})).output)
    crashed = await call_tool(tools, "fake__crash", {})
    assert crashed.is_error and "MCP server fake stopped during the call" in crashed.output
    again = await call_tool(tools, "fake__pid", {})  # the same Tool objects: the connection restarts the server
    assert not again.is_error and int(again.output) != first_pid
    assert [s.status for s in await fake.mcp.servers()] == ["connected"]


async def test_stopping_cancels_the_call_at_once_and_on_the_server(fake: Lantern, tmp_path: Path) -> None:
    tools = await fake.tools.available("local")
    marker = tmp_path / "sleep.txt"
    task = asyncio.create_task(call_tool(tools, "fake__sleep", {"seconds": 30, "marker": str(marker)}))
    await _until(lambda: marker.exists())
    stopped = time.monotonic()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert time.monotonic() - stopped < 1
    await _until(lambda: marker.read_text() == "cancelled")
    assert (await call_tool(tools, "fake__echo", {"text": "next"})).output == "echo: next"


async def test_stopping_a_run_stops_its_mcp_call(fake: Lantern, tmp_path: Path) -> None:
    marker = tmp_path / "sleep.txt"
    fake.registry.scripted.add_script("mcp_sleeper", [
        {"tool_calls": [{"name": "fake__sleep", "args": {"seconds": 30, "marker": str(marker)}}]}, "Rested."])
    start = await fake.chat.start(**ASK, model="scripted/mcp_sleeper", tools=["fake__sleep"])
    await _until(lambda: marker.exists())
    assert await fake.runs.stop(start.run.id)
    assert await fake.runs.wait(start.run.id) == "stopped"
    await _until(lambda: marker.read_text() == "cancelled")


async def test_a_failed_server_says_why_and_the_others_work(make: Any) -> None:
    lantern = await make({"fake": FAKE, "broken": {"command": "lantern-no-such-mcp-server", "env": {"K": TOKEN}},
                          "bad": {"command": "x", "url": "http://127.0.0.1:1/mcp"}})
    assert "fake__echo" not in await lantern.tools.available("local", start=False)  # lazy: nothing started yet
    servers = {s.name: s for s in await lantern.mcp.servers()}
    assert servers["broken"].status == "failed" and "command not found" in (servers["broken"].reason or "")
    assert servers["bad"].status == "failed" and "either command" in (servers["bad"].reason or "")
    assert servers["fake"].status == "connected"
    tools = await lantern.tools.available("local")
    assert "fake__echo" in tools and not any(n.startswith(("broken__", "bad__")) for n in tools)
    with pytest.raises(BadInput, match="MCP server broken is not available: command not found"):
        await lantern.chat.start(**ASK, model="scripted/echo", tools=["broken__anything"])
    retried = await lantern.mcp.retry("broken", admin=True)  # at once, not after the back-off
    assert retried.status == "failed" and "command not found" in (retried.reason or "")
    assert "fake__echo" in await lantern.tools.available("local", start=False)


async def test_secrets_never_leave_in_listings_errors_or_outputs(make: Any, http_server: str) -> None:
    lantern = await make({
        "fake": FAKE,
        "web": {"url": http_server + f"?key={TOKEN}", "headers": {"Authorization": f"Bearer {HEADER_TOKEN}"}},
        "dies": {"command": sys.executable, "env": {"TEST_TOKEN": TOKEN},
                 "args": ["-c", "import os, sys; print('cannot start with', os.environ['TEST_TOKEN'], "
                                "file=sys.stderr); sys.exit(2)"]}})
    servers = await lantern.mcp.servers()
    shown = json.dumps([asdict(s) for s in servers])
    assert TOKEN not in shown and HEADER_TOKEN not in shown
    by_name = {s.name: s for s in servers}
    assert by_name["fake"].config["env"] == {"TEST_TOKEN": "***"}
    assert by_name["web"].config["headers"] == {"Authorization": "***"} and "key=***" in by_name["web"].config["url"]
    assert by_name["dies"].status == "failed" and "cannot start with ***" in (by_name["dies"].reason or "")
    tools = await lantern.tools.available("local")
    stdio = await call_tool(tools, "fake__reveal", {})
    http = await call_tool(tools, "web__reveal", {})
    assert stdio.output == f"env token: *** ({len(TOKEN)} characters); header: "
    assert http.output == "env token:  (0 characters); header: ***"


async def test_no_server_process_outlives_shutdown(make: Any) -> None:
    lantern = await make({"fake": FAKE, "other": FAKE})
    tools = await lantern.tools.available("local")
    pids = [int((await call_tool(tools, name, {})).output) for name in ("fake__pid", "other__pid")]
    slow = asyncio.create_task(call_tool(tools, "fake__sleep", {"seconds": 30}))  # in flight at shutdown
    await asyncio.sleep(0.2)
    await lantern.shutdown()
    assert (await slow).is_error
    for pid in pids:
        with pytest.raises(ProcessLookupError):
            os.kill(pid, 0)
    assert await lantern.mcp.tools_for("local") == {}  # nothing starts again after shutdown


async def test_an_agent_run_calls_the_mcp_tool_and_stores_and_exports_its_card(fake: Lantern) -> None:
    fake.registry.scripted.add_script("mcp_agent", [
        {"text": "Let me ask the server.", "tool_calls": [{"name": "fake__echo", "args": {"text": "beacon"}}]},
        "The server said beacon."])
    start = await fake.chat.start(**ASK, model="scripted/mcp_agent", tools=["fake__echo"])
    events = [event async for _, event in fake.runs.subscribe(start.run.id)]
    call = next(e for e in events if isinstance(e, ToolCall))
    output = next(e for e in events if isinstance(e, ToolOutput))
    assert call.name == "fake__echo" and (output.output, output.is_error) == ("echo: beacon", False)
    reply = (await fake.db.call(conv_repo.list_messages, conversation_id=start.conversation_id))[-1]
    [card] = [p for p in reply.extra["parts"] if p["type"] == "tool"]
    assert card["name"] == "fake__echo" and card["output"] == "echo: beacon"
    doc = await fake.db.call(conversation_document, conversation_id=start.conversation_id, user_id="local")
    assert "echo: beacon" in json.dumps(doc)


async def test_admins_add_and_remove_servers_and_they_persist(make: Any, tmp_path: Path) -> None:
    lantern = await make({})
    with pytest.raises(Forbidden):
        await lantern.mcp.add("extra", FAKE, admin=False)
    with pytest.raises(BadInput, match="either command"):
        await lantern.mcp.add("extra", {"env": {"K": TOKEN}}, admin=True)
    with pytest.raises(BadInput, match="server name"):
        await lantern.mcp.add("two__parts", FAKE, admin=True)
    added = await lantern.mcp.add("extra", FAKE, admin=True)
    assert (added.status, added.source) == ("connected", "admin") and added.config["env"] == {"TEST_TOKEN": "***"}
    # Edited as the listing shows it (secrets masked), with a longer timeout: the saved secret is kept.
    edited = await lantern.mcp.add("extra", {**added.config, "timeout_s": 45}, admin=True)
    assert edited.config["timeout_s"] == 45 and edited.status == "connected"
    revealed = await call_tool(await lantern.tools.available("local"), "extra__reveal", {})
    assert f"({len(TOKEN)} characters)" in revealed.output
    await lantern.shutdown()
    again = await make({}, db="lantern.db")  # a restart reads what the admin saved
    assert "extra__echo" in await again.tools.available("local")
    await again.mcp.remove("extra", admin=True)
    assert await again.mcp.servers() == [] and "extra__echo" not in await again.tools.available("local")


async def test_allow_lists_choose_who_may_use_a_server(make: Any) -> None:
    lantern = await make({"fake": {**FAKE, "users": ["alice"]}})
    assert "fake__echo" in await lantern.tools.available("alice")
    assert "fake__echo" not in await lantern.tools.available("bob")
    with pytest.raises(BadInput, match="unknown tool"):
        await lantern.chat.start(**{**ASK, "user_id": "bob"}, model="scripted/echo", tools=["fake__echo"])
    with pytest.raises(Forbidden):
        await lantern.mcp.set_users("fake", None, admin=False)
    info = await lantern.mcp.set_users("fake", None, admin=True)  # everyone
    assert info.users is None and "fake__echo" in await lantern.tools.available("bob")
    with pytest.raises(BadInput, match="comes from the settings"):
        await lantern.mcp.remove("fake", admin=True)


def test_configs_read_from_a_file_and_names_fit_every_provider(tmp_path: Path) -> None:
    file = tmp_path / "mcp.json"
    file.write_text(json.dumps({"mcpServers": {"files": {"command": "npx", "args": ["-y", "server"]},
                                               "docs": {"url": "https://example.com/mcp"}}}))
    raw = read_settings({"docs": {"url": "https://override.example/mcp"}}, file)
    assert raw["files"]["command"] == "npx" and raw["docs"]["url"] == "https://override.example/mcp"
    with pytest.raises(ValueError, match="cannot be read"):
        read_settings({}, tmp_path / "missing.json")
    with pytest.raises(ValueError, match=r"env\.K: Input should be a valid string") as caught:
        parse_config("x", {"command": "run", "env": {"K": 12345678}})
    assert "12345678" not in str(caught.value)  # a refusal never echoes a value
    assert public(parse_config("x", {"url": "https://u:pw1234@h/mcp?token=abcd1234"}))["url"] == \
        "https://u:***@h/mcp?token=***"
    assert tool_name("srv", "a.b", set()) == "srv__a_b"
    assert tool_name("srv", "a/b", {"srv__a_b"}) == "srv__a_b_2"  # still unique after cleaning
    assert len(tool_name("srv", "x" * 80, set())) == 64


async def _until(check: Any, timeout: float = 10.0) -> None:
    """Wait until `check()` is true (files written by the server process)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if check():
                return
        except OSError:
            pass
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")
