"""The app's services, built once from the settings and handed to pages and routes."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from app.settings import Settings
from services import pricing
from services.accounts import Accounts
from services.chat import ChatService
from services.duet import DuetService, Limits
from services.pipeline import PipelineService
from services.providers.registry import Registry
from services.recovery import recover_interrupted
from services.runs import RunManager
from services.studio import StudioService
from services.tools.base import Tool
from storage.engine import Database


@dataclass(eq=False)
class Lantern:
    """Everything a page or route needs, passed explicitly (no ambient globals)."""

    settings: Settings
    db: Database
    registry: Registry
    runs: RunManager
    chat: ChatService
    tools: Callable[[], dict[str, Tool]]
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
        runs = RunManager(db, runs_per_minute=settings.runs_per_minute if settings.shared else 0,
                          max_run_tokens=settings.max_run_tokens)
        accounts = Accounts(db, session_hours=settings.session_hours,
                            attempts_per_minute=settings.login_attempts_per_minute)
        tools = _lazy_tools(settings.data_dir)
        chat = ChatService(db=db, registry=registry, runs=runs, tools=tools,
                           max_prompt_chars=settings.max_prompt_chars)
        duet = DuetService(db=db, registry=registry, runs=runs, limits=Limits(
            max_turns=settings.duet_max_turns, max_total_tokens=settings.duet_max_total_tokens))
        pipelines = PipelineService(db=db, registry=registry, runs=runs)
        studio = StudioService(db=db, registry=registry, runs=runs, chain=settings.studio_chain)
        return cls(settings=settings, db=db, registry=registry, runs=runs, chat=chat, tools=tools, duet=duet,
                   pipelines=pipelines, studio=studio, accounts=accounts)

    async def startup(self) -> None:
        """Recover what a crash left running."""
        await self.db.call(recover_interrupted)

    async def shutdown(self) -> None:
        """Stop running work cleanly, then release the database."""
        await self.runs.shutdown()
        self.db.close()


def _lazy_tools(data_dir: Path) -> Callable[[], dict[str, Tool]]:
    """The built-in tools, built on first use (that creates the sample database once)."""
    built: dict[str, Tool] = {}
    lock = threading.Lock()

    def get() -> dict[str, Tool]:
        with lock:
            if not built:
                from services.tools.registry import build_tools

                built.update(build_tools(data_dir))
            return built

    return get
