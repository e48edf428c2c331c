"""Replica mode: several Lantern processes on one PostgreSQL, any of them able to follow, stop or reopen any run.

The process that starts a run drives it (its upstream connection lives there) and owns it under a lease it
renews every RENEW_S; its events are stored within FLUSH_S and each store is announced on the database's
LISTEN/NOTIFY bus (`run id:last seq`), so a follower on another replica reads exactly the new events from the
database, in order, once. A stop asked on another replica is a notification to the owner, which cancels the
run and so closes its upstream. Every replica reaps runs whose lease ran out (their owner died): they become
`interrupted` with their partial output, as start-up recovery does for a single process.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import secrets
import socket
from collections.abc import Awaitable, Callable, Iterable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from services.core.errors import Conflict, LanternError, error_of_kind
from services.core.feeds import Feeds
from services.core.recovery import recover_expired
from services.core.shared_limits import LimitSync
from storage import runs as run_repo
from storage.bus import PgBus, packed
from storage.engine import Database, DatabaseUnavailable
from storage.models import utcnow

if TYPE_CHECKING:
    from services.core.kinds import Registry
    from services.core.runs import ActiveRun, RunManager

Handler = Callable[["ActiveRun", dict[str, Any]], Awaitable[Any]]

log = logging.getLogger(__name__)

EVENTS = "lantern_run_events"  # payload: "run id:last stored seq", comma-separated
STOP = "lantern_run_stop"  # payload: a run id
ASK = "lantern_run_ask"  # payload: JSON {id, run, action, args}: a request for the replica driving the run
ANSWER = "lantern_run_answer"  # payload: JSON {id, ok, value | error}: its answer, or {id, part, parts, text} pieces
PIECE_CHARS = 3000  # a long answer travels in pieces of this much JSON text (escaped, it stays under MAX_PAYLOAD)
ASK_TIMEOUT_S = 5.0
LEASE_S = 10.0  # how long a run's owner may go silent before others call the run interrupted
RENEW_S = 2.0  # how often the owner renews its leases and every replica looks for expired ones
FLUSH_S = 0.05  # events reach the database (and other replicas) at least this often while a run streams
POLL_S = 1.0  # a follower re-reads the database this often even without a notification (one may be lost)
SQLITE_REFUSAL = ("Replica mode needs PostgreSQL: several processes share their runs through it. Set "
                  "DATABASE_URL=postgresql://user:password@host/db for every replica, or run one process "
                  "without LANTERN_REPLICA_MODE on SQLite.")


class ReplicaModeRefused(DatabaseUnavailable):
    """Replica mode was asked for on a database that cannot carry it (SQLite)."""


class Replica:
    """This process as one replica: its name, its leases, and the bus to the others."""

    def __init__(self, db: Database, kinds: Registry, *, name: str | None = None) -> None:
        if db.is_sqlite:
            raise ReplicaModeRefused(SQLITE_REFUSAL)
        self.db = db
        self.kinds = kinds
        self.name = name or f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"
        self.bus = PgBus(db.url)
        self.limits = LimitSync(db, self.bus, self.name)  # rate limits and login throttles, counted by all
        self.manager: RunManager | None = None
        self._waiters: dict[str, set[asyncio.Event]] = {}
        self.feeds = Feeds(db, self._wake)  # followed runs, read once per announcement for all their followers
        self._keeper: asyncio.Task[None] | None = None
        self._handlers: dict[str, Handler] = {}
        self._asked: dict[str, asyncio.Future[Any]] = {}
        self._pieces: dict[str, dict[int, str]] = {}  # pieces of long answers received so far, by request id
        self.bus.subscribe(EVENTS, self._on_events)
        self.bus.subscribe(STOP, self._on_stop)
        self.bus.subscribe(ASK, self._on_ask)
        self.bus.subscribe(ANSWER, self._on_answer)
        self.bus.on_reconnect.append(self._wake_all)

    async def start(self, manager: RunManager) -> None:
        """Join the others: listen, reap what dead replicas left, then keep leases in the background."""
        self.manager = manager
        await self.bus.start()
        await self.limits.load()
        await self.reap()
        self._keeper = asyncio.get_running_loop().create_task(self._keep_leases(), name="replica-leases")

    async def close(self) -> None:
        """Stop renewing and listening (runs still here are ended by the run manager's shutdown first)."""
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
        await self.limits.wait()
        await self.feeds.close()
        await self.bus.close()

    @staticmethod
    def lease_until() -> datetime:
        """When a lease taken or renewed now runs out."""
        return utcnow() + timedelta(seconds=LEASE_S)

    async def announce(self, stored: Iterable[tuple[str, int]]) -> None:
        """Tell every replica which runs have new events stored, up to which seq (a run's own event stores
        announce themselves in their transaction: `append_event_batches(announce=EVENTS)`)."""
        for payload in packed(f"{run_id}:{seq}" for run_id, seq in stored):
            try:
                await self.bus.notify(EVENTS, payload)
            except Exception:  # followers poll too: a lost notification delays them by POLL_S at most
                log.warning("could not announce stored run events", exc_info=True)
                return

    async def request_stop(self, run_id: str) -> None:
        """Ask the replica driving `run_id` to stop it."""
        await self.bus.notify(STOP, run_id)

    def handle(self, action: str, handler: Handler) -> None:
        """Answer `action` requests for runs driven here: `await handler(active run, args)` → a JSON value."""
        self._handlers[action] = handler

    async def ask_owner(self, run_id: str, action: str, args: dict[str, Any]) -> Any:
        """Have the replica driving `run_id` do `action`; its answer, or its error raised here again."""
        request_id = secrets.token_hex(8)
        answer = asyncio.get_running_loop().create_future()
        self._asked[request_id] = answer
        try:
            await self.bus.notify(ASK, json.dumps({"id": request_id, "run": run_id, "action": action, "args": args}))
            async with asyncio.timeout(ASK_TIMEOUT_S):
                return await answer
        except TimeoutError:
            raise Conflict(f"Run {run_id} is not running on any replica that answers") from None
        finally:
            self._asked.pop(request_id, None)
            self._pieces.pop(request_id, None)

    def waiter(self, run_id: str) -> asyncio.Event:
        """An event set whenever `run_id` has new events stored (release it with `forget`)."""
        wake = asyncio.Event()
        self._waiters.setdefault(run_id, set()).add(wake)
        return wake

    def forget(self, run_id: str, wake: asyncio.Event) -> None:
        """Stop waking this follower."""
        found = self._waiters.get(run_id)
        if found is not None:
            found.discard(wake)
            if not found:
                del self._waiters[run_id]

    async def reap(self) -> None:
        """Runs whose owner stopped renewing become interrupted (each by one replica), and their followers learn."""
        try:
            done = await self.db.call(recover_expired, kinds=self.kinds, now=utcnow())
        except Exception:
            log.warning("could not look for runs of dead replicas", exc_info=True)
            return
        if done:
            log.info("marked %d run(s) of a replica that stopped interrupted", len(done))
            await self.announce(done)

    async def _keep_leases(self) -> None:
        """Renew this replica's leases and reap others' expired ones, every RENEW_S."""
        while True:
            await asyncio.sleep(RENEW_S)
            assert self.manager is not None
            try:
                await self.db.call(run_repo.renew_leases, owner=self.name, run_ids=list(self.manager.active),
                                   until=self.lease_until())
            except Exception:  # the next round tries again; a lease lasts several rounds
                log.warning("could not renew run leases", exc_info=True)
            await self.reap()
            self.feeds.sweep()

    def _on_events(self, payload: str) -> None:
        """Read the followed runs named into their feeds (waking their followers after); wake the other waiters."""
        for run_id in self.feeds.announced(item.partition(":")[0] for item in payload.split(",")):
            self._wake(run_id)

    def _wake(self, run_id: str) -> None:
        """Wake everyone waiting for the run's new events."""
        for wake in self._waiters.get(run_id, ()):
            wake.set()

    def _on_stop(self, run_id: str) -> None:
        """Stop the run if it is driven here."""
        if self.manager is not None and run_id in self.manager.active:
            asyncio.get_running_loop().create_task(self.manager.stop(run_id), name=f"remote-stop-{run_id}")

    def _on_ask(self, payload: str) -> None:
        """Answer a request for a run driven here (other replicas stay silent)."""
        request = json.loads(payload)
        active = self.manager.active.get(request.get("run")) if self.manager is not None else None
        handler = self._handlers.get(request.get("action"))
        if active is not None and handler is not None:
            asyncio.get_running_loop().create_task(self._answer(request["id"], handler, active, request["args"]))

    async def _answer(self, request_id: str, handler: Handler, active: ActiveRun, args: dict[str, Any]) -> None:
        """Run the handler and send its answer (an error as its kind and message)."""
        try:
            reply = {"id": request_id, "ok": True, "value": await handler(active, args)}
        except LanternError as exc:
            reply = {"id": request_id, "ok": False, "kind": exc.kind, "error": str(exc)}
        except Exception:
            log.exception("answering %s failed", request_id)
            reply = {"id": request_id, "ok": False, "kind": "error", "error": "internal error; see the server log"}
        text = json.dumps(reply)
        if len(text) <= PIECE_CHARS:
            await self.bus.notify(ANSWER, text)
            return
        pieces = [text[i:i + PIECE_CHARS] for i in range(0, len(text), PIECE_CHARS)]
        for index, piece in enumerate(pieces):  # one sending connection: they arrive in this order
            await self.bus.notify(ANSWER, json.dumps({"id": request_id, "part": index, "parts": len(pieces),
                                                      "text": piece}))

    def _on_answer(self, payload: str) -> None:
        """Hand an answer to the request waiting for it here (a long one once all its pieces are in)."""
        reply = json.loads(payload)
        answer = self._asked.get(reply.get("id"))
        if answer is None or answer.done():
            return
        if "parts" in reply:
            got = self._pieces.setdefault(reply["id"], {})
            got[int(reply["part"])] = str(reply["text"])
            if len(got) < int(reply["parts"]):
                return
            reply = json.loads("".join(got[i] for i in range(len(got))))
            del self._pieces[reply["id"]]
        if reply.get("ok"):
            answer.set_result(reply.get("value"))
        else:
            answer.set_exception(error_of_kind(str(reply.get("kind")), str(reply.get("error"))))

    async def _wake_all(self) -> None:
        """After the bus was down: every follower re-reads, as notifications may have been lost."""
        self.feeds.refresh_all()
        for wakes in self._waiters.values():
            for wake in wakes:
                wake.set()
