"""Two replicas on one PostgreSQL, in one process: a run started on A is followed, stopped and recovered on B.

The end-to-end version (two real processes behind nginx, `kill -9`) is tests/e2e/test_replicas_e2e.py.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from app.api.service_routes import build_service_router
from app.context import Lantern
from app.settings import Settings
from services.core.events import Done, TextDelta
from services.core.replicas import PIECE_CHARS, SQLITE_REFUSAL, ReplicaModeRefused
from storage import runs as run_repo
from storage.engine import make_engine
from storage.models import SQLModel, utcnow

PG = os.environ.get("TEST_DATABASE_URL")
needs_pg = pytest.mark.skipif(not PG, reason="TEST_DATABASE_URL is not set: replica mode needs PostgreSQL")


@pytest.fixture
async def pair() -> AsyncIterator[tuple[Lantern, Lantern]]:
    """Replicas A and B on a wiped test database."""
    assert PG is not None
    engine = make_engine(PG)
    with engine.begin() as conn:
        SQLModel.metadata.drop_all(conn)
    engine.dispose()
    made: list[Lantern] = []
    for _ in range(2):
        instance = Lantern.create(Settings(DATABASE_URL=PG, LANTERN_REPLICA_MODE=True))  # type: ignore[call-arg]
        await instance.startup()
        made.append(instance)
    yield made[0], made[1]
    for instance in made:
        await instance.shutdown()


async def start_slow(lantern: Lantern) -> str:
    """A reply of 400 words, 5 a chunk every 20 ms (about 1.6 s), started on this replica."""
    start = await lantern.chat.start(user_id="local", messages=[{"role": "user", "content": "Go"}],
                                     model="scripted/slow")
    return start.run.id


async def collect(lantern: Lantern, run_id: str, after: int = 0) -> list[tuple[int, Any]]:
    """Every event a follower on this replica gets."""
    return [item async for item in lantern.runs.subscribe(run_id, after=after)]


def test_replica_mode_is_refused_on_sqlite(tmp_path: Any) -> None:
    with pytest.raises(ReplicaModeRefused) as refused:
        Lantern.create(Settings(DATABASE_URL=f"sqlite:///{tmp_path / 'x.db'}",  # type: ignore[call-arg]
                                LANTERN_REPLICA_MODE=True))
    assert str(refused.value) == SQLITE_REFUSAL and "PostgreSQL" in SQLITE_REFUSAL


@needs_pg
async def test_a_run_on_a_is_followed_on_b_with_every_event_once(pair: tuple[Lantern, Lantern]) -> None:
    a, b = pair
    run_id = await start_slow(a)
    assert run_id in a.runs.active and run_id not in b.runs.active
    on_a, on_b = await asyncio.gather(collect(a, run_id), collect(b, run_id))
    assert [seq for seq, _ in on_b] == list(range(1, len(on_b) + 1))  # in order, none twice, none missing
    assert [(seq, e.type) for seq, e in on_b] == [(seq, e.type) for seq, e in on_a]
    assert "".join(e.delta for _, e in on_b if isinstance(e, TextDelta)) == "word " * 400
    assert isinstance(on_b[-1][1], Done) and on_b[-1][1].status == "completed"
    resumed = await collect(b, run_id, after=len(on_b) // 2)  # Last-Event-ID on the other replica
    assert [seq for seq, _ in resumed] == list(range(len(on_b) // 2 + 1, len(on_b) + 1))


@needs_pg
async def test_followers_on_b_share_one_read_and_each_get_every_event_once(pair: tuple[Lantern, Lantern],
                                                                           monkeypatch: Any) -> None:
    """Five followers on B, joining at different points (one resuming mid-run): each gets its events once and
    in order, while B reads the database about once per announcement, not once per follower."""
    a, b = pair
    reads, stores, own = [], [], []
    many, store, one = run_repo.load_events_many, run_repo.append_event_batches, run_repo.load_events

    def counted_read(session: Any, *, afters: dict[str, int]) -> Any:
        reads.append(len(afters))
        return many(session, afters=afters)

    def counted_store(session: Any, **kwargs: Any) -> Any:
        stores.append(1)
        return store(session, **kwargs)

    def counted_own(session: Any, **kwargs: Any) -> Any:
        own.append(1)
        return one(session, **kwargs)

    monkeypatch.setattr(run_repo, "load_events_many", counted_read)
    monkeypatch.setattr(run_repo, "load_events", counted_own)
    monkeypatch.setattr(run_repo, "append_event_batches", counted_store)
    run_id = await start_slow(a)
    early = [asyncio.create_task(collect(b, run_id)) for _ in range(3)]
    await asyncio.sleep(0.6)
    late = asyncio.create_task(collect(b, run_id))
    resumed = asyncio.create_task(collect(b, run_id, after=5))  # behind the feed: reads the database itself
    on_a = await collect(a, run_id)
    total = len(on_a)
    for task in [*early, late]:
        got = await task
        assert [seq for seq, _ in got] == list(range(1, total + 1))
        assert "".join(e.delta for _, e in got if isinstance(e, TextDelta)) == "word " * 400
    assert [seq for seq, _ in await resumed] == list(range(6, total + 1))
    # One shared read per announcement (each store, and the run's end); five followers alone read five times as often.
    assert 10 < len(reads) <= len(stores) + 1, (len(reads), len(stores))
    assert len(own) <= 5 + 5, len(own)  # a follower reads for itself to replay, and when behind or polling


@needs_pg
async def test_a_run_on_a_is_stopped_from_b(pair: tuple[Lantern, Lantern]) -> None:
    a, b = pair
    run_id = await start_slow(a)
    follower = asyncio.create_task(collect(b, run_id))
    await asyncio.sleep(0.4)
    asked = time.monotonic()
    assert await b.runs.stop(run_id) is True
    took = time.monotonic() - asked
    events = await asyncio.wait_for(follower, 5)
    assert isinstance(events[-1][1], Done) and events[-1][1].status == "stopped"
    run = await b.db.call(run_repo.get_run, run_id=run_id)
    assert run is not None and run.status == "stopped"
    assert 0 < len("".join(e.delta for _, e in events if isinstance(e, TextDelta))) < len("word " * 400)
    assert took < 2.0, took  # stop is a notification, then the owner cancels (bench/replicas.py measures it)
    assert await b.runs.stop(run_id) is False  # not running any more


async def health(lantern: Lantern) -> httpx.Response:
    """`GET /health` of this replica, over HTTP in process."""
    app = FastAPI()
    app.include_router(build_service_router(lantern))
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
        return await client.get("/health")


@needs_pg
async def test_a_replica_that_lost_the_bus_listens_again_and_says_so_on_health(pair: tuple[Lantern, Lantern]) -> None:
    """The server drops every LISTEN connection (a restart, a network cut): /health says `bus: down` while a replica
    is deaf, both listen again on their own, and a stop asked through B reaches the run on A afterwards."""
    a, b = pair
    assert a.runs.replica is not None
    first = await health(a)
    assert first.status_code == 200 and first.json()["bus"] == "ok" and first.json()["status"] == "ok"

    def drop_listeners(session: Any) -> int:
        found = session.exec(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                  "WHERE query LIKE 'LISTEN %' AND pid <> pg_backend_pid()")).all()
        return len(found)

    assert b.runs.replica is not None
    again = {a.runs.replica.name: asyncio.Event(), b.runs.replica.name: asyncio.Event()}
    for replica in (a.runs.replica, b.runs.replica):

        async def heard(event: asyncio.Event = again[replica.name]) -> None:
            event.set()

        replica.bus.on_reconnect.append(heard)
    assert await a.db.call(drop_listeners) >= 2
    async with asyncio.timeout(10):  # both noticed, and listened again (their followers re-read then)
        await asyncio.gather(*(event.wait() for event in again.values()))
    assert (await health(a)).json()["bus"] == "ok"
    run_id = await start_slow(a)
    follower = asyncio.create_task(collect(b, run_id))
    await asyncio.sleep(0.3)
    assert await b.runs.stop(run_id) is True
    events = await asyncio.wait_for(follower, 5)
    assert isinstance(events[-1][1], Done) and events[-1][1].status == "stopped"
    await a.runs.replica.bus.close()  # deaf for good: the load balancer should take it out
    deaf = await health(a)
    assert deaf.status_code == 503 and deaf.json()["bus"] == "down" and deaf.json()["status"] == "degraded"


@needs_pg
async def test_runs_of_a_replica_that_stops_renewing_become_interrupted(pair: tuple[Lantern, Lantern]) -> None:
    a, b = pair
    assert a.runs.replica is not None and b.runs.replica is not None
    run_id = await start_slow(a)
    await asyncio.sleep(0.4)
    # A is cut off from the database, as far as the others can tell dead: it stores nothing more, renews
    # nothing, and its lease is in the past.
    keeper = a.runs.replica._keeper
    assert keeper is not None
    keeper.cancel()

    async def cut_off(runs: Any) -> None:
        return None

    a.runs._store = cut_off  # type: ignore[method-assign]
    await a.db.call(_expire, run_id=run_id)
    follower = asyncio.create_task(collect(b, run_id))
    await b.runs.replica.reap()
    events = await asyncio.wait_for(follower, 5)
    assert isinstance(events[-1][1], Done) and events[-1][1].status == "interrupted"
    run = await b.db.call(run_repo.get_run, run_id=run_id)
    assert run is not None and run.status == "interrupted"
    assert run.result["message"]["content"].startswith("word ")  # the partial output is kept
    assert await a.runs.wait(run_id) == "completed"  # A, cut off, finished it on its own...
    again = await b.db.call(run_repo.get_run, run_id=run_id)
    assert again is not None and again.status == "interrupted"  # ...but does not overwrite what B decided


def _expire(session: Any, *, run_id: str) -> None:
    """Put a run's lease in the past."""
    from storage.models import Run

    run = session.get(Run, run_id)
    run.lease_until = utcnow() - timedelta(seconds=1)
    session.add(run)


@needs_pg
async def test_start_up_of_a_replica_leaves_live_runs_of_others_alone(pair: tuple[Lantern, Lantern]) -> None:
    a, _b = pair
    run_id = await start_slow(a)
    third = Lantern.create(Settings(DATABASE_URL=PG, LANTERN_REPLICA_MODE=True))  # type: ignore[call-arg]
    await third.startup()  # a replica joining must not call A's running run interrupted
    try:
        assert await third.db.call(run_repo.run_status, run_id=run_id) == "running"
    finally:
        await third.shutdown()
    assert await a.runs.wait(run_id) == "completed"




@needs_pg
async def test_rate_limits_and_login_throttles_hold_across_replicas(pair: tuple[Lantern, Lantern]) -> None:
    from services.core.errors import RateLimited

    a, b = pair
    assert a.runs.replica is not None and b.runs.replica is not None
    a.runs.admission.limit = b.runs.admission.limit = 3  # runs per user per minute, as LANTERN_RUNS_PER_MINUTE
    a.runs.admit("ada")
    a.runs.admit("ada")
    b.runs.admit("ada")
    await a.runs.replica.limits.wait()
    await b.runs.replica.limits.wait()
    await asyncio.sleep(0.2)  # the notifications arrive
    for replica in (a, b):
        with pytest.raises(RateLimited):
            replica.runs.admit("ada")
    b.runs.admit("bob")  # per user
    for _ in range(8):  # wrong passwords for one name, through A
        a.accounts.failures.fail("ada")
    await a.runs.replica.limits.wait()
    await asyncio.sleep(0.2)
    assert b.accounts.failures.retry_after("ada") > 0  # B makes the next guess wait too
    late = Lantern.create(Settings(DATABASE_URL=PG, LANTERN_REPLICA_MODE=True))  # type: ignore[call-arg]
    await late.startup()  # a replica started later reads the recent counts
    try:
        assert late.accounts.failures.retry_after("ada") > 0
    finally:
        await late.shutdown()


@needs_pg
async def test_a_duet_on_a_is_steered_from_b(pair: tuple[Lantern, Lantern]) -> None:
    from services.core.errors import BadInput, Conflict

    a, b = pair
    agents = [{"name": "Ann", "model": "scripted/slow", "system_prompt": "Tabs"},
              {"name": "Ben", "model": "scripted/slow", "system_prompt": "Spaces"}]
    active = await a.duet.start(user_id="local", topic="Tabs or spaces", turns=2, agents=agents)
    run_id = active.run.id
    agent = await b.duet.update_agent(user_id="local", run_id=run_id, index=1, changes={"temperature": 1.3})
    assert agent["name"] == "Ben" and agent["temperature"] == 1.3  # the answer of the replica driving it
    assert active.body.agents[1].temperature == 1.3  # type: ignore[attr-defined]
    with pytest.raises(BadInput):  # checked where it was asked, before anything is sent
        await b.duet.update_agent(user_id="local", run_id=run_id, index=0, changes={"temperature": 9})
    await b.runs.stop(run_id)
    with pytest.raises(Conflict):
        await b.duet.update_agent(user_id="local", run_id=run_id, index=0, changes={"temperature": 1.0})


@needs_pg
async def test_a_live_duet_exported_through_b_has_the_turns_a_is_writing(pair: tuple[Lantern, Lantern]) -> None:
    """Behind a load balancer an export may reach the replica that does not drive the run: it gets the
    document from the one that does (here longer than one notification carries), turns and partial turn included."""
    from services.export.live import run_document

    a, b = pair
    agents = [{"name": "Ann", "model": "scripted/slow", "system_prompt": "Tabs"},
              {"name": "Ben", "model": "scripted/slow", "system_prompt": "Spaces"}]
    active = await a.duet.start(user_id="local", topic="Tabs or spaces", turns=4, agents=agents)
    run_id = active.run.id
    async with asyncio.timeout(20):  # until the first turn (400 words, ~8 s) is done and the second under way
        while len(active.body.live_result()["turns"]) < 2:  # type: ignore[attr-defined]
            await asyncio.sleep(0.2)
    stored = await b.db.call(run_repo.get_run, run_id=run_id)
    assert stored is not None and stored.status == "running" and run_id not in b.runs.active
    on_b = await run_document(b.runs, stored)
    on_a = await run_document(a.runs, stored)
    assert on_b["status"] == "running" and len(on_b["turns"]) >= 2, on_b["turns"]
    assert on_b["turns"][0]["content"] == on_a["turns"][0]["content"] == "word " * 400
    assert len(json.dumps(on_b)) > PIECE_CHARS  # it came in pieces
    await b.runs.stop(run_id)
    await a.runs.wait(run_id)
    ended = await b.db.call(run_repo.get_run, run_id=run_id)
    assert ended is not None
    after = await run_document(b.runs, ended)  # ended: as stored, no question to A
    assert after["status"] == "stopped" and after["turns"][0]["content"] == on_b["turns"][0]["content"]


@needs_pg
async def test_a_follower_on_b_that_hears_no_announcements_still_gets_every_event(pair: tuple[Lantern, Lantern],
                                                                                 monkeypatch: Any) -> None:
    """Notifications can be lost (a dropped LISTEN connection): a follower then reads the database itself every
    POLL_S, and still gets every event once, in order, up to the `done`."""
    a, b = pair
    assert b.runs.replica is not None
    monkeypatch.setattr(b.runs.replica.feeds, "announced", lambda run_ids: [])  # B hears nothing any more
    run_id = await start_slow(a)
    on_a, on_b = await asyncio.gather(collect(a, run_id), collect(b, run_id))
    assert [seq for seq, _ in on_b] == [seq for seq, _ in on_a] == list(range(1, len(on_a) + 1))
    assert isinstance(on_b[-1][1], Done) and on_b[-1][1].status == "completed"
