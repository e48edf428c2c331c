"""Every tool Lantern offers: the built-ins over the sample database, and the tools of MCP servers.

Pages, the API and chat all choose tools through `ToolCatalog`, so an MCP server's tools appear
wherever the built-ins do, named `server__tool` (what OpenAI, Anthropic and Bedrock accept), and
only for users the server's allow list admits. `McpServers` holds the servers: those from the
settings (read-only here) and those an admin adds at run time (saved as presets of the local user).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from services.core.errors import BadInput, Forbidden, NotFound
from services.tools import mcp_config as cfg
from services.tools.base import Tool
from services.tools.mcp_config import McpUnavailable
from services.tools.sources import parse_sources, source_tools
from storage.engine import Database

if TYPE_CHECKING:  # the SDK and the SQL tools load on first use: about 0.6 s and 0.3 s of start-up otherwise
    from services.tools.mcp_adapter import McpConnection

TOOL_NAMES = ("sql_query", "describe_data", "calculator")
SAMPLE_DB_NAME = "sample_business.db"
log = logging.getLogger(__name__)

# Two first requests at once must not both build; the file rename keeps other processes safe too.
_build_lock = threading.Lock()


def build_tools(data_dir: Path) -> dict[str, Tool]:
    """Every built-in tool by name; creates the sample database on first use."""
    from services.tools.calculator import calculator_tool
    from services.tools.sample_data import ensure_sample_database
    from services.tools.sql import sql_tools

    db_path = data_dir / SAMPLE_DB_NAME
    with _build_lock:
        ensure_sample_database(db_path)
    tools = {tool.name: tool for tool in [*sql_tools(db_path), calculator_tool()]}
    assert tuple(tools) == TOOL_NAMES, "TOOL_NAMES must list every built-in tool in order"
    return tools


@dataclass(frozen=True, kw_only=True, slots=True)
class McpToolInfo:
    """One tool of a server: its name as offered to models, as its server calls it, and what it does."""

    name: str
    remote_name: str
    description: str


@dataclass(frozen=True, kw_only=True, slots=True)
class McpServerInfo:
    """A server as the Settings page shows it; `config` has its secrets masked."""

    name: str
    source: str  # "settings" (LANTERN_MCP_SERVERS / LANTERN_MCP_FILE: read-only here) or "admin" (added at run time)
    transport: str  # "stdio" or "http" ("" when the configuration is invalid)
    status: str  # "connected" or "failed" after a listing; also "idle", "connecting", "disconnected"
    reason: str | None
    tools: tuple[McpToolInfo, ...]
    config: dict[str, Any]
    users: tuple[str, ...] | None  # user ids allowed to use it; None: everyone


class ToolCatalog:
    """The tools a user may have offered: built-ins plus the tools of the MCP servers they may use."""

    def __init__(self, data_dir: Path, mcp: McpServers, *, sql_sources: Mapping[str, Any] | None = None) -> None:
        self.data_dir = data_dir
        self.mcp = mcp
        self.sources = parse_sources(sql_sources or {})  # LANTERN_SQL_SOURCES; bad entries carry their problem
        self._builtins: dict[str, Tool] = {}

    async def builtins(self) -> dict[str, Tool]:
        """The built-in tools, then those of the SQL sources; the first call creates the sample database."""
        if not self._builtins:
            tools = await asyncio.to_thread(build_tools, self.data_dir)
            for source in self.sources:
                tools.update({tool.name: tool for tool in source_tools(source)})
            self._builtins = tools
        return self._builtins

    async def available(self, user_id: str, *, start: bool = True) -> dict[str, Tool]:
        """Every tool this user may use, built-ins first; starts MCP servers not started yet (unless `start` is
        False: then only the tools of servers already connected, at once, e.g. while a page is being drawn)."""
        return {**await self.builtins(), **await self.mcp.tools_for(user_id, start=start)}

    async def select(self, names: Iterable[str], *, user_id: str) -> dict[str, Tool]:
        """The named tools, starting only the servers they come from; BadInput for names not available."""
        names = list(dict.fromkeys(names))
        servers = {s for s in map(cfg.server_of, names) if s is not None}
        found = {**await self.builtins(), **(await self.mcp.tools_for(user_id, servers=servers) if servers else {})}
        unknown = [n for n in names if n not in found]
        if unknown:
            available = await self.available(user_id, start=False)  # an error should not wait for every server
            why = [self.mcp.unavailable_reason(s) for s in sorted(servers) if self.mcp.may_use(s, user_id)]
            raise BadInput(f"unknown tool(s) {', '.join(unknown)}: available are {', '.join(sorted(available))}"
                           + "".join(f"; {w}" for w in why if w))
        return {n: found[n] for n in names}


class McpServers:
    """The configured MCP servers: listing with status, admin changes, per-user access, their tools."""

    def __init__(self, db: Database, configured: dict[str, Any], *, problems: Iterable[str] = ()) -> None:
        self.db = db
        self.problems = list(problems)  # e.g. an unreadable LANTERN_MCP_FILE, for the Settings page
        self._settings: dict[str, cfg.McpServerConfig] = {}
        self._added: dict[str, cfg.McpServerConfig] = {}
        self._invalid: dict[str, tuple[str, str]] = {}  # name -> (source, reason)
        self._access: dict[str, list[str] | None] = {}  # admin's allow lists for servers from the settings
        self._connections: dict[str, McpConnection] = {}
        self._loaded = False
        self._closed = False
        self._load_lock = asyncio.Lock()
        for name, raw in configured.items():
            self._accept(name, raw, self._settings, "settings")

    async def servers(self, *, check: bool = True) -> list[McpServerInfo]:
        """Every server with its status and tools; starts those not started yet and pings the rest."""
        await self._load()
        if check:
            await asyncio.gather(*(self._probe(c) for c in self._live()))
        return [self._info(name) for name in sorted({*self._settings, *self._added, *self._invalid})]

    async def get(self, name: str) -> McpServerInfo:
        """One server, started if it was not; NotFound if there is none by that name."""
        await self._load()
        if name not in self._invalid:
            await self._probe(self._connection(name))
        return self._info(name)

    async def add(self, name: str, config: dict[str, Any], *, admin: bool) -> McpServerInfo:
        """Add (or replace) a server at run time, save it, and start it: the answer says connected or failed.

        Replacing, a value left masked (`***`, as the listing shows it) keeps the saved secret.
        """
        self._require_admin(admin)
        await self._load()
        if name in self._added:
            config = cfg.unmask(config, self._added[name])
        try:
            parsed = cfg.parse_config(name, config)
        except ValueError as exc:
            raise BadInput(str(exc)) from None
        if name in self._settings or self._invalid.get(name, ("",))[0] == "settings":
            raise BadInput(f"MCP server {name} comes from the settings (LANTERN_MCP_SERVERS or LANTERN_MCP_FILE): "
                           "change it there, or pick another name")
        await self.db.call(cfg.save_server, name=name, config=parsed.model_dump(exclude_none=True))
        await self._drop_connection(name)
        self._invalid.pop(name, None)
        self._added[name] = parsed
        log.info("MCP server %s added (%s)", name, parsed.transport)
        return await self.get(name)

    async def remove(self, name: str, *, admin: bool) -> None:
        """Remove a server added at run time; its process is stopped."""
        self._require_admin(admin)
        await self._load()
        if name in self._settings:
            raise BadInput(f"MCP server {name} comes from the settings: remove it there")
        if name not in self._added and name not in self._invalid:
            raise NotFound(f"No MCP server {name}")
        await self.db.call(cfg.delete_saved, name=name)
        await self._drop_connection(name)
        self._added.pop(name, None)
        self._invalid.pop(name, None)
        log.info("MCP server %s removed", name)

    async def set_users(self, name: str, users: Iterable[str] | None, *, admin: bool) -> McpServerInfo:
        """Who may use a server: these user ids, or everyone (None)."""
        self._require_admin(admin)
        await self._load()
        allowed = sorted(set(users)) if users is not None else None
        if name in self._added:
            self._added[name] = self._added[name].model_copy(update={"users": allowed})
            await self.db.call(cfg.save_server, name=name, config=self._added[name].model_dump(exclude_none=True))
        elif name in self._settings:
            self._access[name] = allowed
            await self.db.call(cfg.save_access, name=name, users=allowed)
        else:
            raise NotFound(f"No MCP server {name}")
        return self._info(name)

    async def retry(self, name: str, *, admin: bool) -> McpServerInfo:
        """Start a failed or disconnected server again now, instead of on its next use."""
        self._require_admin(admin)
        await self._load()
        if name not in self._invalid:
            with contextlib.suppress(McpUnavailable):  # the status and reason say why
                await self._connection(name).list_tools(retry=True)
        return self._info(name)

    def may_use(self, name: str, user_id: str) -> bool:
        """Whether the server's allow list admits this user (no list: everyone)."""
        config = self._settings.get(name) or self._added.get(name)
        if config is None:
            return False
        users = self._access[name] if name in self._settings and name in self._access else config.users
        return users is None or user_id in users

    def unavailable_reason(self, name: str) -> str | None:
        """Why a server offers no tools now, if it is known to have failed."""
        if name in self._invalid:
            return f"MCP server {name} is not available: {self._invalid[name][1]}"
        conn = self._connections.get(name)
        if conn is not None and conn.status in ("failed", "disconnected"):
            return f"MCP server {name} is not available: {conn.reason}"
        return None

    async def tools_for(self, user_id: str, *, servers: Iterable[str] | None = None,
                        start: bool = True) -> dict[str, Tool]:
        """The tools of the servers this user may use (of `servers` only, if given), starting them lazily
        (or, with `start` False, only those of servers already connected)."""
        await self._load()
        wanted = set(servers) if servers is not None else None
        names = [n for n in sorted({*self._settings, *self._added})
                 if self.may_use(n, user_id) and (wanted is None or n in wanted)
                 and (start or self._connection(n).status == "connected")]
        found: dict[str, Tool] = {}
        for tools in await asyncio.gather(*(self._tools_of(n) for n in names)):
            found.update(tools)
        return found

    async def shutdown(self) -> None:
        """Stop every server (stdio children are terminated and reaped) and refuse to start them again."""
        self._closed = True
        connections, self._connections = list(self._connections.values()), {}
        await asyncio.gather(*(c.close() for c in connections))

    # ---- helpers -----------------------------------------------------------------------------------------

    async def _tools_of(self, name: str) -> dict[str, Tool]:
        """One server's tools as Tool objects, or none if it cannot start (its status says why)."""
        conn = self._connection(name)
        try:
            remote = await conn.list_tools()
        except McpUnavailable:
            return {}
        return {info.name: _tool(conn, info, tool.input_schema) for info, tool in zip(_tool_infos(name, remote), remote,
                                                                                        strict=True)}

    async def _probe(self, conn: McpConnection) -> None:
        """Start a server not started yet, or ping a started one, so its status is current."""
        if conn.status == "connected":
            await conn.check()
        if conn.status != "connected":
            with contextlib.suppress(McpUnavailable):  # the status and reason say why
                await conn.list_tools()

    def _info(self, name: str) -> McpServerInfo:
        """The listing entry of a server."""
        if name in self._invalid:
            source, reason = self._invalid[name]
            return McpServerInfo(name=name, source=source, transport="", status="failed", reason=reason,
                                 tools=(), config={}, users=None)
        if name not in self._settings and name not in self._added:
            raise NotFound(f"No MCP server {name}")
        config = self._settings.get(name) or self._added[name]
        conn = self._connections.get(name)
        users = self._access[name] if name in self._settings and name in self._access else config.users
        connected = conn is not None and conn.status == "connected"
        return McpServerInfo(
            name=name, source="settings" if name in self._settings else "admin", transport=config.transport,
            status=conn.status if conn else "idle", reason=conn.reason if conn else None,
            tools=tuple(_tool_infos(name, conn.tools)) if connected and conn else (),
            config=cfg.public(config), users=tuple(users) if users is not None else None)

    def _connection(self, name: str) -> McpConnection:
        """The server's connection, made on first use (it starts only when something needs it)."""
        conn = self._connections.get(name)
        if conn is None:
            config = self._settings.get(name) or self._added.get(name)
            if config is None:
                raise NotFound(f"No MCP server {name}")
            from services.tools.mcp_adapter import McpConnection

            conn = McpConnection(name, config)
            if self._closed:  # a listing that arrives during shutdown must not start a process nobody stops
                conn.closed = True
                return conn
            self._connections[name] = conn
        return conn

    def _live(self) -> list[McpConnection]:
        """A connection for every valid server."""
        return [self._connection(n) for n in sorted({*self._settings, *self._added})]

    async def _drop_connection(self, name: str) -> None:
        """Stop a server's connection (its configuration changed or went away)."""
        conn = self._connections.pop(name, None)
        if conn is not None:
            await conn.close()

    async def _load(self) -> None:
        """Read the servers and allow lists admins saved, once."""
        if self._loaded:
            return
        async with self._load_lock:
            if self._loaded:
                return
            added, access = await self.db.call(cfg.load_saved)
            for name, raw in added.items():
                if name not in self._settings:
                    self._accept(name, raw, self._added, "admin")
            self._access.update({k: v for k, v in access.items() if k in self._settings})
            self._loaded = True

    def _accept(self, name: str, raw: Any, into: dict[str, cfg.McpServerConfig], source: str) -> None:
        """Keep a valid configuration, or remember why it is not (the listing shows it as failed)."""
        try:
            into[name] = cfg.parse_config(name, raw)
        except ValueError as exc:
            self._invalid[name] = (source, str(exc))
            log.warning("%s", exc)

    @staticmethod
    def _require_admin(admin: bool) -> None:
        """Only admins configure servers."""
        if not admin:
            raise Forbidden("only an admin can configure MCP servers")


def _tool_infos(server: str, remote: Iterable[Any]) -> list[McpToolInfo]:
    """A server's tools with their namespaced names, stable in the server's order."""
    taken: set[str] = set()
    infos = []
    for tool in remote:
        name = cfg.tool_name(server, tool.name, taken)
        taken.add(name)
        infos.append(McpToolInfo(name=name, remote_name=tool.name, description=tool.description))
    return infos


def _tool(conn: McpConnection, info: McpToolInfo, schema: dict[str, Any]) -> Tool:
    """A Tool that calls `info` on its server, with the server's timeout and JSON schema."""
    schema = {"type": "object", "properties": {}, **schema}  # providers refuse a schema without them

    async def run(args: dict[str, Any]) -> str:
        return await conn.call(info.remote_name, args)

    return Tool(name=info.name, description=f"{info.description} (MCP server {conn.name})", parameters=schema,
                run=run, timeout_s=conn.config.timeout_s, source=conn.name)
