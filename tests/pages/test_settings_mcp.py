"""Settings, for admins: add an MCP server, see it connected with its tools, remove it; bad input says why."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from nicegui.testing import User

from tests.pages.actions import press_icon

SERVER = Path(__file__).resolve().parent.parent / "fakes" / "mcp_servers" / "tools_server.py"


async def test_an_admin_adds_sees_and_removes_an_mcp_server(user: User) -> None:
    await user.open("/settings")
    await user.should_see(marker="mcp-empty")
    user.find(marker="mcp-add").click()
    user.find(marker="mcp-name").type("fake")
    user.find(marker="mcp-config").type("{not json")
    user.find(marker="mcp-save").click()
    await user.should_see("The configuration is not JSON")
    config = {"command": sys.executable, "args": [str(SERVER)], "env": {"TEST_TOKEN": "sk-lantern-test-mcp-page"}}
    user.find(marker="mcp-config").clear().type(json.dumps(config))
    user.find(marker="mcp-save").click()
    await user.should_see("MCP server fake added.", retries=100)
    await user.should_see("stdio · connected", retries=100)
    await user.should_see("fake__", retries=50)  # its tools, namespaced
    await user.should_not_see("sk-lantern-test-mcp-page")  # the secret is never shown again
    press_icon(user, "mcp-remove-fake")
    await user.should_see("fake removed.", retries=50)
    await user.should_see(marker="mcp-empty")
