"""What every run kind's page shares: the route pair, the owned run, the not-found state, and following a run.

A page (duet, pipelines, studio) keeps only its own drawing and its own `match` cases: `follow` replays then
streams the run's events into them, stops quietly when the tab goes away (the run goes on), shows errors
unless the page draws them itself, and calls the page back once with the final status.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Protocol

from nicegui import background_tasks, ui

from app.auth import current_user_id
from app.context import Lantern
from app.pages.frame import frame
from services.core.events import Done, Error, Event
from services.core.kinds import RunKind
from storage import runs as run_repo
from storage.models import Run

OnEvent = Callable[[Event], Awaitable[None]]
OnEnd = Callable[[str | None], Awaitable[None]]  # the final status, None when the events ended without `done`


class RunPage(Protocol):
    """A page for one run of a kind, new (`run_id` None) or stored."""

    async def build(self) -> None:
        """Draw the page."""
        ...


def register_pair(lantern: Lantern, kind: RunKind, page: Callable[[Lantern, str | None], RunPage]) -> None:
    """`/<page>` for a new run and `/<page>/{run_id}` for a stored one."""

    @ui.page(kind.page)
    async def new_run() -> None:
        await page(lantern, None).build()

    @ui.page(kind.page + "/{run_id}")
    async def stored_run(run_id: str) -> None:
        await page(lantern, run_id).build()


async def owned_run(lantern: Lantern, kind: RunKind, run_id: str | None) -> Run | None:
    """The current user's run of this kind, or None (missing, someone else's, or another kind's)."""
    if not run_id:
        return None
    run = await lantern.db.call(run_repo.get_run, run_id=run_id, user_id=current_user_id())
    return run if run is not None and run.kind == kind.name else None


async def draw_page(lantern: Lantern, kind: RunKind, run_id: str | None,
                    draw: Callable[[Run | None], Awaitable[None]]) -> Run | None:
    """The page in the frame: `draw(run)` for a new run (None) or the user's stored one, else the not-found
    state; returns the stored run it drew, for the page to show or follow."""
    run = await owned_run(lantern, kind, run_id)
    await lantern.registry.list_models_live()  # the servers' own lists (cached), for the pickers
    with frame(kind.title):
        if run_id and run is None:
            not_found(kind)
            return None
        await draw(run)
    return run


def not_found(kind: RunKind) -> None:
    """The state of a page asked for a run it cannot show: say so, and offer a new one."""
    ui.label(f"This {kind.noun} does not exist.").classes("text-lg").mark("not-found")
    ui.link(f"Start a new {kind.noun}", kind.page)


def follow(lantern: Lantern, run_id: str, on_event: OnEvent, *, container: ui.element, on_end: OnEnd | None = None,
           show_errors: bool = True, wanted: Callable[[], bool] | None = None, name: str = "") -> asyncio.Task[None]:
    """Replay then follow the run in the background, handing each event to the page while `container` is shown.

    The tab going away (`container` deleted) ends the following quietly; the page no longer `wanted` the events
    (a replay ended early) ends it too, and `on_end` still runs.
    """

    async def consume() -> None:
        status: str | None = None
        async for _seq, event in lantern.runs.subscribe(run_id):
            if container.is_deleted:
                return  # the tab went away; the run does not
            if wanted is not None and not wanted():
                break
            if isinstance(event, Error) and show_errors:
                with container:  # a background task has no slot of its own to show a notification in
                    ui.notify(event.message, type="negative", multi_line=True)
            if isinstance(event, Done):
                status = event.status
            await on_event(event)
        if on_end is not None and not container.is_deleted:
            await on_end(status)

    return background_tasks.create(consume(), name=name or f"follow-{run_id}")
