"""The run manager: generations as background tasks that outlive any tab.

A run's events get consecutive sequence numbers from 1. Subscribers first replay what is
there (memory while the run is active, the database after), then follow live. Events are
persisted in batches at boundaries (usage, step, turn, tool output) and at most every
`flush_interval` seconds, never per token, by one writer task for all runs: a run never waits
for the database while it streams, and 50 streaming runs cost one commit a second, not 50
(issue #9: each run awaiting its own flush stalled its stream for the queue of the others').
A run's end waits for its events to be stored. Stop cancels the task; the body's upstream
stream is closed by that cancellation and the partial output is kept as `stopped`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from services.core.errors import LanternError, RunUnreachable, TokenCapReached
from services.core.events import Done, Error, Event, StepFinished, ToolOutput, TurnFinished, Usage, from_wire
from services.core.limits import SlidingWindow
from services.core.replicas import EVENTS, FLUSH_S, LEASE_S, POLL_S, RENEW_S
from services.core.usage import UsageTally
from storage import runs as run_repo
from storage.engine import Database
from storage.models import Run

if TYPE_CHECKING:
    from services.core.replicas import Replica

log = logging.getLogger(__name__)

BOUNDARIES = (Usage, StepFinished, TurnFinished, ToolOutput)
FINAL_STATUSES = ("completed", "stopped", "failed", "interrupted")


class RunBody(Protocol):
    """What a run executes: an event stream, then a chance to persist its result."""

    def events(self) -> AsyncIterator[Event]:
        """The run's events (without `done`: the manager adds it)."""
        ...

    async def finish(self, status: str, error: LanternError | None) -> dict[str, Any]:
        """Persist the outcome (also after stop or failure); returns the run's result."""
        ...


@dataclass(eq=False)
class ActiveRun:
    """A run in this process: its events so far and a wake-up for subscribers."""

    run: Run
    body: RunBody
    events: list[tuple[int, Event]] = field(default_factory=list)
    status: str = "running"
    stop_requested: bool = False
    task: asyncio.Task[None] | None = None
    flushed: int = 0
    finishing: bool = False  # its last events are stored with its end, not by the writer
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    tally: UsageTally = field(default_factory=UsageTally)  # unbilled text counts, so the cap holds mid-stream
    begun: bool = False  # the task has started: cancelling it now runs its clean-up (before, it would not)

    @property
    def usage(self) -> dict[str, Any]:
        """Tokens and cost so far, as stored."""
        return self.tally.fields()

    @property
    def id(self) -> str:
        """The run id."""
        return self.run.id


class RunManager:
    """Starts, tracks, replays and stops runs."""

    def __init__(self, db: Database, *, flush_interval: float = 1.0, runs_per_minute: int = 0,
                 max_run_tokens: int = 0, replica: Replica | None = None) -> None:
        self.db = db
        self.replica = replica  # replica mode: leases, events announced to and stops taken from other processes
        # Other replicas' followers read events from the database: store them often enough to look live there.
        self.flush_interval = min(flush_interval, FLUSH_S) if replica is not None else flush_interval
        self._announce = EVENTS if replica is not None else ""  # the channel stores notify other replicas on
        self.admission = SlidingWindow(runs_per_minute)
        self.max_run_tokens = max_run_tokens
        self.active: dict[str, ActiveRun] = {}
        self._listeners: list[Callable[[ActiveRun], Awaitable[None]]] = []
        self._writer: asyncio.Task[None] | None = None
        self._write_now = asyncio.Event()
        self._write_lock = asyncio.Lock()

    def admit(self, user_id: str) -> None:
        """Count a new run for the user, or raise RateLimited; call before storing anything."""
        self.admission.take(user_id, "runs this minute")

    async def start(self, run: Run, body: RunBody) -> ActiveRun:
        """Store the run and execute its body in the background."""
        run.status = "running"
        if self.replica is not None:
            run.owner, run.lease_until = self.replica.name, self.replica.lease_until()
        await self.db.call(run_repo.create_run, run=run)
        active = ActiveRun(run=run, body=body)
        self.active[run.id] = active
        loop = asyncio.get_running_loop()
        active.task = loop.create_task(self._drive(active), name=f"run-{run.id}")
        if self._writer is None or self._writer.done():  # it ends when no run is left; made on this loop
            self._write_now = asyncio.Event()
            self._write_lock = asyncio.Lock()
            self._writer = loop.create_task(self._write_behind(), name="run-events-writer")
        return active

    async def stop(self, run_id: str) -> bool:
        """Cancel a running run at once; False if it is not running (here, or on any replica in replica mode)."""
        active = self.active.get(run_id)
        if active is None and self.replica is not None:
            return await self._stop_elsewhere(run_id)
        if active is None or active.task is None or active.task.done():
            return False
        if not active.stop_requested:  # a second cancel would interrupt the clean-up of the first
            active.stop_requested = True
            if active.begun:  # a task cancelled before it starts never runs `_drive`: it stops itself there
                active.task.cancel()
        await asyncio.wait({active.task}, timeout=5)
        return True

    async def _stop_elsewhere(self, run_id: str, timeout: float = 5.0) -> bool:
        """Ask the replica driving the run to stop it, and wait (up to `timeout`) until it has; RunUnreachable
        when it does not (that replica died: the run is marked interrupted once its lease runs out)."""
        assert self.replica is not None
        if await self.db.call(run_repo.run_status, run_id=run_id) != "running":
            return False
        wake = self.replica.waiter(run_id)
        try:
            await self.replica.request_stop(run_id)
            async with asyncio.timeout(timeout):
                while await self.db.call(run_repo.run_status, run_id=run_id) == "running":
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(0.2):
                            await wake.wait()
                    wake.clear()
        except TimeoutError:
            await self.replica.reap()  # its lease may have run out meanwhile
            log.warning("run %s did not stop within %.0f s of asking its replica", run_id, timeout)
            raise RunUnreachable(f"Run {run_id} runs on a replica that does not answer; it will be marked "
                                 f"interrupted within {LEASE_S + RENEW_S:.0f} s, its partial output kept.") from None
        finally:
            self.replica.forget(run_id, wake)
        return True

    async def wait(self, run_id: str) -> str:
        """Wait for a run to end; returns its final status."""
        active = self.active.get(run_id)
        if active is not None and active.task is not None:
            await asyncio.shield(active.task)
            return active.status
        run = await self.db.call(run_repo.get_run, run_id=run_id)
        return run.status if run else "failed"

    async def subscribe(self, run_id: str, after: int = 0) -> AsyncIterator[tuple[int, Event]]:
        """Every event after `after` in order: replay, then live until `done`."""
        follower = self.follow(run_id, after)
        while (batch := await follower.next()) is not None:
            for item in batch:
                yield item

    def follow(self, run_id: str, after: int = 0) -> Follower:
        """A reader of the run's events after `after`, taken in batches (see `Follower`)."""
        return Follower(self, run_id, after)

    async def shutdown(self) -> None:
        """Graceful exit: cancel active runs; each keeps its partial output as `interrupted`."""
        for run_id in list(self.active):
            active = self.active[run_id]
            if active.task is not None and not active.task.done():
                active.task.cancel()
        tasks = [a.task for a in self.active.values() if a.task is not None]
        if tasks:
            await asyncio.wait(tasks, timeout=10)
        if self._writer is not None and not self._writer.done():
            self._writer.cancel()

    async def _drive(self, active: ActiveRun) -> None:
        """Run the body, translate its end into a status, persist everything."""
        error: LanternError | None = None
        active.begun = True
        events = active.body.events()
        try:
            if active.stop_requested:  # stopped before it began: end as stopped, through the same clean-up
                raise asyncio.CancelledError
            async with _closing(events):  # an early exit (token cap) closes the upstream at once
                async for event in events:
                    await self._emit(active, event)
                    self._check_cap(active)
            status = "completed"
        except asyncio.CancelledError:
            status = "stopped" if active.stop_requested else "interrupted"
        except LanternError as exc:
            error, status = exc, "failed"
            await self._emit(active, Error(error_type=exc.kind, message=str(exc)))
        except Exception as exc:  # a bug must not kill the run silently: record and show it
            log.exception("run %s failed", active.id)
            error, status = LanternError("internal error; see the server log"), "failed"
            await self._emit(active, Error(error_type="internal", message=str(error)))
            del exc
        # Shielded: a further cancel (a second stop, shutdown) must not lose the partial output.
        await asyncio.shield(self._finish(active, status, error))

    def _check_cap(self, active: ActiveRun) -> None:
        """Fail the run once its tokens pass this server's per-run cap, during the stream: text not yet
        counted by a Usage event is estimated, so a runaway reply stops at the cap, not at its end."""
        used = active.tally.total_tokens
        if self.max_run_tokens and used > self.max_run_tokens:
            raise TokenCapReached(f"This run used {used} tokens, above this server's cap of "
                                  f"{self.max_run_tokens} per run (LANTERN_MAX_RUN_TOKENS); it was stopped.")

    async def _finish(self, active: ActiveRun, status: str, error: LanternError | None) -> None:
        """Persist the result and final events, then wake subscribers for the last time."""
        try:
            result = await active.body.finish(status, error)
        except Exception:
            log.exception("run %s could not store its result", active.id)
            result, status = {}, "failed"
        active.tally.settle()  # a stopped or failed run keeps what it streamed, estimated
        active.events.append((len(active.events) + 1, Done(status=status, run_id=active.id)))  # type: ignore[arg-type]
        async with self._write_lock:  # a store of this run in progress completes first; later ones leave it out
            active.finishing = True
        # The events left and the end in one transaction: 50 runs ending together cost 50 commits, not 100.
        await self.db.call(run_repo.finish_run, run_id=active.id, status=status, result=result,
                           events=_wires(active, active.flushed, len(active.events)), announce=self._announce,
                           error=str(error) if error else None, error_type=error.kind if error else None,
                           **active.usage)
        active.flushed = len(active.events)
        active.status = status
        self._wake(active)
        self.active.pop(active.id, None)

    async def _emit(self, active: ActiveRun, event: Event) -> None:
        """Number, keep and announce one event; at a boundary, ask the writer to store at once."""
        active.events.append((len(active.events) + 1, event))
        active.tally.add(event)
        self._wake(active)
        if isinstance(event, BOUNDARIES):
            self._write_now.set()

    async def _write_behind(self) -> None:
        """Store every run's new events at boundaries and every `flush_interval`; ends when no run is left."""
        loop = asyncio.get_running_loop()
        due = loop.time() + self.flush_interval
        while self.active:
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout_at(due):
                    await self._write_now.wait()
            self._write_now.clear()
            due = loop.time() + self.flush_interval  # from the start of this store: a slow one is not added on
            try:
                await self._store(list(self.active.values()))
            except Exception:  # the next round (or the run's end) tries again; the stream goes on
                log.exception("could not store run events")

    async def _store(self, runs: list[ActiveRun]) -> None:
        """Write the given runs' unstored events in one transaction; on failure they stay unstored."""
        async with self._write_lock:
            marks = [(active, active.flushed, len(active.events)) for active in runs if not active.finishing]
            batches = [(active.id, _wires(active, start, end)) for active, start, end in marks if end > start]
            if not batches:
                return
            await self.db.call(run_repo.append_event_batches, batches=batches, announce=self._announce)
            for active, _start, end in marks:
                active.flushed = end

    @staticmethod
    def _wake(active: ActiveRun) -> None:
        """Release everyone waiting for new events."""
        wake, active.wake = active.wake, asyncio.Event()
        wake.set()


class Follower:
    """One reader's place in a run: `next()` returns everything new at once, so a busy reader handles one
    batch per wake-up instead of one event at a time, and a timed wait never disturbs the run.

    A run driven by another replica is read from the database: after the replay, whenever that replica
    announces new events (or every POLL_S, in case a notification was lost), until its `done`.
    """

    def __init__(self, manager: RunManager, run_id: str, after: int) -> None:
        self._manager = manager
        self._run_id = run_id
        self._index = after
        self._active = manager.active.get(run_id)  # kept even if the run ends: its events stay readable
        self._replay_pending = self._active is None  # not running here: the database has it
        self._elsewhere = False  # running on another replica: follow through the database
        self._ended = False

    async def next(self, timeout: float | None = None) -> list[tuple[int, Event]] | None:
        """The events not read yet, waiting up to `timeout` for some (then `[]`); None once all are read."""
        if self._replay_pending:
            self._replay_pending = False
            if self._manager.replica is None:
                return await self._read_stored()
            # Status first, events after, in one call: a run that ends between the two has its `done` read here.
            status, wires = await self._manager.db.call(run_repo.status_and_events, run_id=self._run_id,
                                                        after_seq=self._index)
            batch = self._read(wires)
            self._elsewhere = status == "running" and not self._ended
            return batch
        if self._elsewhere:
            return await self._next_elsewhere(timeout)
        active = self._active
        if active is None:
            return None
        while True:
            if self._index < len(active.events):
                batch = active.events[self._index:]
                self._index = len(active.events)
                return batch
            if active.status != "running":
                return None
            try:
                async with asyncio.timeout(timeout):
                    await active.wake.wait()
            except TimeoutError:
                return []

    async def _read_stored(self) -> list[tuple[int, Event]]:
        """The stored events after the last one read."""
        return self._read(await self._manager.db.call(run_repo.load_events, run_id=self._run_id,
                                                      after_seq=self._index))

    def _read(self, wires: list[dict[str, Any]]) -> list[tuple[int, Event]]:
        """Stored events as read: their place noted, and whether the run's `done` is among them."""
        batch = [(w["seq"], from_wire(w["type"], w["data"])) for w in wires]
        if batch:
            self._index = batch[-1][0]
            self._ended = self._ended or isinstance(batch[-1][1], Done)
        return batch

    async def _next_elsewhere(self, timeout: float | None) -> list[tuple[int, Event]] | None:
        """New events of a run another replica drives: from this replica's feed of it when announced, from the
        database itself when behind the feed or after POLL_S without an announcement (one may be lost)."""
        replica = self._manager.replica
        assert replica is not None
        if self._ended:
            return None
        wake = replica.waiter(self._run_id)
        replica.feeds.track(self._run_id, self._index)
        polled = False
        try:
            deadline = None if timeout is None else asyncio.get_running_loop().time() + timeout
            while True:
                wake.clear()
                batch = None if polled else replica.feeds.take(self._run_id, self._index)
                if batch is None:
                    batch = await self._read_stored()
                elif batch:
                    self._index = batch[-1][0]
                    self._ended = isinstance(batch[-1][1], Done)
                if batch:
                    return batch
                left = POLL_S if deadline is None else min(POLL_S, deadline - asyncio.get_running_loop().time())
                if left <= 0:
                    return []
                try:
                    async with asyncio.timeout(left):
                        await wake.wait()
                    polled = False
                except TimeoutError:
                    polled = True
        finally:
            replica.forget(self._run_id, wake)


def _wires(active: ActiveRun, start: int, end: int) -> list[dict[str, Any]]:
    """A run's events [start, end) as stored."""
    return [{"seq": seq, "type": event.type, "data": event.to_data()} for seq, event in active.events[start:end]]


@asynccontextmanager
async def _closing(events: AsyncIterator[Event]) -> AsyncIterator[None]:
    """Close an async generator on exit, whatever ends the loop."""
    try:
        yield
    finally:
        close = getattr(events, "aclose", None)
        if close is not None:
            await close()
