"""The app's services, built once from the settings and handed to pages and routes."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from app.settings import Settings
from services.accounts.service import Accounts
from services.chat.service import ChatService
from services.core import pricing
from services.core.recovery import recover_interrupted
from services.core.replicas import Replica, ReplicaModeRefused
from services.core.runs import RunManager
from services.duet.service import DuetService, Limits
from services.export.live import answer_exports
from services.kinds import KINDS
from services.pipelines.engine import PipelineService
from services.providers.registry import Registry
from services.studio.service import StudioService
from services.tools.mcp_config import read_settings
from services.tools.registry import McpServers, ToolCatalog
from storage.engine import Database

log = logging.getLogger(__name__)


@dataclass(eq=False)
class Lantern:
    """Everything a page or route needs, passed explicitly (no ambient globals)."""

    settings: Settings
    db: Database
    registry: Registry
    runs: RunManager
    chat: ChatService
    tools: ToolCatalog  # built-ins and MCP servers' tools, per user: what pages, the API and chat offer
    mcp: McpServers  # the MCP servers: status, admin changes, allow lists (the Settings page)
    duet: DuetService
    pipelines: PipelineService
    studio: StudioService
    accounts: Accounts

    @classmethod
    def create(cls, settings: Settings) -> Lantern:
        """Open the database (raises DatabaseUnavailable naming the URL) and wire the services."""
        db = Database(settings.resolved_database_url)
        db.open()
        registry = Registry.from_settings(settings)
        pricing.PRICES.update(settings.prices)  # one price table for the process, as configured
        # Run admission is per user and only matters when several people share the host.
        try:
            replica = Replica(db, KINDS) if settings.replica_mode else None
        except ReplicaModeRefused:
            db.close()
            raise
        runs = RunManager(db, runs_per_minute=settings.runs_per_minute if settings.shared else 0,
                          max_run_tokens=settings.max_run_tokens, replica=replica)
        accounts = Accounts(db, session_hours=settings.session_hours,
                            attempts_per_minute=settings.login_attempts_per_minute)
        if replica is not None:  # the limits hold across replicas
            replica.limits.share("runs", runs.admission)
            replica.limits.share("login", accounts.failures)
            replica.limits.share("login-address", accounts.failures_by_address)
            answer_exports(replica)  # a live run exported through another replica gets its turns from here
        servers, problems = _mcp_settings(settings)
        mcp = McpServers(db, servers, problems=problems)
        tools = ToolCatalog(settings.data_dir, mcp, sql_sources=settings.sql_sources)
        chat = ChatService(db=db, registry=registry, runs=runs, tools=tools,
                           max_prompt_chars=settings.max_prompt_chars)
        duet = DuetService(db=db, registry=registry, runs=runs, limits=Limits(
            max_turns=settings.duet_max_turns, max_total_tokens=settings.duet_max_total_tokens))
        pipelines = PipelineService(db=db, registry=registry, runs=runs)
        studio = StudioService(db=db, registry=registry, runs=runs, chain=settings.studio_chain)
        return cls(settings=settings, db=db, registry=registry, runs=runs, chat=chat, tools=tools, mcp=mcp,
                   duet=duet, pipelines=pipelines, studio=studio, accounts=accounts)

    async def startup(self) -> None:
        """Recover what a crash left running: all of it alone; as a replica, what dead replicas left."""
        if self.runs.replica is not None:
            await self.runs.replica.start(self.runs)
        else:
            await self.db.call(recover_interrupted, kinds=KINDS)

    async def shutdown(self) -> None:
        """Stop running work (their MCP calls end with them), then the MCP servers, then release the database."""
        await self.runs.shutdown()
        if self.runs.replica is not None:
            await self.runs.replica.close()
        await self.mcp.shutdown()
        self.db.close()


def _mcp_settings(settings: Settings) -> tuple[dict[str, Any], list[str]]:
    """The MCP servers from LANTERN_MCP_FILE and LANTERN_MCP_SERVERS; an unreadable file is reported, not fatal."""
    try:
        return read_settings(settings.mcp_servers, settings.mcp_file), []
    except ValueError as exc:
        log.warning("%s", exc)
        return dict(settings.mcp_servers), [str(exc)]
