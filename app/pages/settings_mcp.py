"""Settings, for admins: MCP tool servers — their status and tools, who may use them, add and remove."""

from __future__ import annotations

import json
from functools import partial

from nicegui import background_tasks, ui

from app import auth
from app.context import Lantern
from components.buttons import dialog_actions, icon_button
from services.core.errors import LanternError
from services.tools.registry import McpServerInfo

STATUS_ICON = {"connected": ("check_circle", "text-positive"), "failed": ("error", "text-negative")}
EXAMPLE = '{"command": "python", "args": ["-m", "my_server"], "env": {"API_KEY": "…"}}\nor\n' \
          '{"url": "https://tools.example/mcp", "headers": {"Authorization": "Bearer …"}}'


class McpSection:
    """A card listing the servers; every change re-checks the admin's login (auth.current_principal)."""

    def __init__(self, lantern: Lantern) -> None:
        self.lantern = lantern

    def build(self) -> None:
        """The card; servers are checked in the background (starting one can take a while)."""
        with ui.card().classes("w-full").mark("mcp-section"):
            with ui.row().classes("w-full items-center"):
                ui.label("MCP tool servers").classes("text-lg font-semibold")
                ui.space()
                ui.button("Add server", icon="add", on_click=self._add_dialog).props("flat").mark("mcp-add")
            ui.label("Their tools join the built-in ones on the Tools page and in Chat, named server__tool. "
                     "Secrets in env and headers are never shown again.").classes("text-sm opacity-70")
            self.rows = ui.column().classes("w-full gap-1")
            with self.rows:
                ui.label("Checking servers…").classes("opacity-60 text-sm")
        background_tasks.create(self.refresh(), name="mcp-status")

    async def refresh(self, *, check: bool = True) -> None:
        """Draw each server with its status, reason and tools."""
        servers = await self.lantern.mcp.servers(check=check)
        users = {u.id: u.name for u in await self.lantern.accounts.users()} if auth.shared() else {}
        if self.rows.is_deleted:
            return
        self.rows.clear()
        with self.rows:
            for problem in self.lantern.mcp.problems:
                ui.label(problem).classes("text-negative text-sm")
            if not servers:
                ui.label("No servers yet: add one here, or set LANTERN_MCP_SERVERS / LANTERN_MCP_FILE.") \
                    .classes("opacity-60 text-sm").mark("mcp-empty")
            for server in servers:
                self._row(server, users)

    def _row(self, server: McpServerInfo, users: dict[str, str]) -> None:
        """One server."""
        icon, color = STATUS_ICON.get(server.status, ("pending", "opacity-60"))
        with ui.column().classes("w-full gap-0").mark(f"mcp-{server.name}"):
            with ui.row().classes("w-full items-center gap-3 text-sm"):
                ui.icon(icon).classes(color)
                ui.label(server.name).classes("font-medium")
                ui.label(f"{server.transport or 'invalid'} · {server.status}").classes("opacity-70")
                ui.label(f"from {server.source}").classes("opacity-50")
                ui.space()
                icon_button("refresh", f"Reconnect {server.name}", partial(self._retry, server.name))
                if server.source == "admin":
                    icon_button("delete", f"Remove {server.name}", partial(self._remove, server.name),
                                marker=f"mcp-remove-{server.name}")
            if server.reason:
                ui.label(server.reason).classes("text-negative text-xs")
            if server.tools:
                ui.label(", ".join(t.name for t in server.tools)).classes("text-xs opacity-70 font-mono")
            if users:
                allowed = ui.select(users, multiple=True, value=list(server.users or []),
                                    label="Only these users (none chosen: everyone)") \
                    .props("dense outlined use-chips").classes("w-full")
                allowed.on_value_change(partial(self._set_users, server.name))

    async def _retry(self, name: str) -> None:
        await self._act(self.lantern.mcp.retry(name, admin=auth.current_principal().is_admin), f"{name} checked.")

    async def _remove(self, name: str) -> None:
        await self._act(self.lantern.mcp.remove(name, admin=auth.current_principal().is_admin), f"{name} removed.")

    async def _set_users(self, name: str, event: object) -> None:
        chosen = list(getattr(event, "value", None) or [])
        await self._act(self.lantern.mcp.set_users(name, chosen or None, admin=auth.current_principal().is_admin),
                        f"Who may use {name} is saved.", check=False)

    async def _act(self, change: object, done: str, *, check: bool = True) -> None:
        """Carry out a change, say how it went, redraw."""
        try:
            await change  # type: ignore[misc]
        except LanternError as exc:
            ui.notify(str(exc), type="warning", multi_line=True)
            return
        ui.notify(done)
        await self.refresh(check=check)

    def _add_dialog(self) -> None:
        """Ask for a name and the server's JSON configuration."""
        with ui.dialog() as dialog, ui.card().classes("w-[36rem]").mark("mcp-dialog"):
            ui.label("Add an MCP server").classes("text-lg font-semibold")
            name = ui.input("Name", placeholder="e.g. files").props("dense outlined").classes("w-full") \
                .mark("mcp-name")
            config = ui.textarea("Configuration (JSON)", placeholder=EXAMPLE).props("outlined autogrow") \
                .classes("w-full font-mono").mark("mcp-config")

            async def add() -> None:
                try:
                    parsed = json.loads(config.value or "")
                except json.JSONDecodeError as exc:
                    ui.notify(f"The configuration is not JSON: {exc.msg} (line {exc.lineno})", type="warning")
                    return
                if not isinstance(parsed, dict):
                    ui.notify("The configuration is a JSON object with command or url", type="warning")
                    return
                try:
                    await self.lantern.mcp.add((name.value or "").strip(), parsed,
                                               admin=auth.current_principal().is_admin)
                except LanternError as exc:
                    ui.notify(str(exc), type="warning", multi_line=True)
                    return
                added = name.value
                config.value = ""  # the secrets it held leave the page with it
                dialog.close()
                dialog.delete()
                ui.notify(f"MCP server {added} added.")
                await self.refresh()

            dialog_actions(dialog, "Add", add, marker="mcp-save")
        dialog.open()
