"""Two real replicas on one PostgreSQL database, nginx in front configured as docs/DEPLOY.md shows (issue #20).

Replicas A and B are app subprocesses in replica mode on a database of their own (`lantern_replicas_e2e` on
TEST_DATABASE_URL's server, emptied at the start), in shared mode under `/lantern` as behind a proxy. Their
model is a wire-level fake OpenAI-compatible server in this process that streams slowly and records, per
request, when Lantern closed the connection. A third replica, C, outside nginx, is killed by the test of a stop
asked after its replica died. The `kill -9` test of A is last: it ends A for the rest of the module. The
in-process version of these checks is tests/services/test_replicas.py; bench/replicas.py reuses the helpers.

Two tests began as bugs found here: the Chat page reopened on a replica that does not drive its reply (it now
follows it), and a stop asked while the run's replica is dead (it now answers 503, not "stopped").

The replica blocks in DEPLOY.md are fenced as ```` ```nginx replicas ````: highlighted as nginx, and told
apart from section 3's two blocks, which tests/e2e/test_reverse_proxy.py runs.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy.engine import make_url

from services.core.replicas import LEASE_S, RENEW_S
from tests.conftest import ROOT, AppProcess, free_port
from tests.e2e.nginx_conf import NginxProcess, doc_blocks, wrap
from tests.e2e.test_reverse_proxy import NGINX, log_in
from tests.fakes.openai_server import FakeOpenAI, Reply

PG = os.environ.get("TEST_DATABASE_URL")
DB_NAME = "lantern_replicas_e2e"
PREFIX = "/lantern"
USER, PASSWORD = "ada", "lantern keeper phrase"  # the leak scan fails the run if the password reaches a log
LIMITED = "bob"  # only the shared-limit test starts runs as bob
RUNS_PER_MINUTE = 20  # per user; ada starts about 11 runs in this module, bob 20 in the limit test
DOC_PORTS = ("127.0.0.1:8081", "127.0.0.1:8082")  # the replicas' addresses as the doc writes them
STOP_CLOSES_WITHIN_S = 0.5


# ---- the fake model server ----------------------------------------------------------------------------

def words(n: int) -> str:
    """`n` distinct 6-character words, so any loss, repeat or reordering changes the text."""
    return "".join(f"w{i:04d} " for i in range(n))


# By a marker anywhere in the request: short replies finish in ~1.6 s, long ones are stopped or killed first.
REPLIES = {"[short]": Reply(text=words(80), chunk=6, delay=0.02),
           "[long]": Reply(text=words(3000), chunk=6, delay=0.02),
           "[tiny]": Reply(text="Hi.", chunk=6)}


@dataclass
class Upstream:
    """One streamed completion as the fake server saw it."""

    request: str  # the request body as JSON text
    opened: float  # time.monotonic() of this process
    closed: float | None = None  # when the stream ended: finished, or its connection closed by Lantern
    chunks: int = 0


@dataclass
class SlowUpstream(FakeOpenAI):
    """FakeOpenAI choosing its reply by the marker in the request, and keeping a record of every stream."""

    streams: list[Upstream] = field(default_factory=list)

    def _chunks(self, model: str, reply: Reply) -> AsyncIterator[str]:
        body = json.dumps(self.requests[-1])  # the request this reply answers (appended just before)
        reply = next((r for marker, r in REPLIES.items() if marker in body), REPLIES["[long]"])
        record = Upstream(request=body, opened=time.monotonic())
        self.streams.append(record)
        return self._recorded(record, super()._chunks(model, reply))

    @staticmethod
    async def _recorded(record: Upstream, chunks: AsyncIterator[str]) -> AsyncIterator[str]:
        try:
            async for chunk in chunks:
                record.chunks += 1
                yield chunk
        finally:  # also when Lantern hangs up: the next write fails, or the task is cancelled
            record.closed = time.monotonic()

    def stream_for(self, tag: str) -> Upstream:
        """The stream whose request carried `tag`."""
        found = [s for s in self.streams if tag in s.request]
        assert len(found) == 1, f"{len(found)} upstream streams for {tag}"
        return found[0]


# ---- the cluster --------------------------------------------------------------------------------------

@dataclass
class Cluster:
    """Replicas A and B, nginx in front of them, the fake upstream and the database they share; C, a third
    replica outside nginx, for the test that kills it."""

    a: AppProcess
    b: AppProcess
    c: AppProcess
    proxy: ReplicaNginx
    fake: SlowUpstream
    db_url: str


class ReplicaNginx(NginxProcess):
    """nginx around the doc's replica blocks, in front of two replicas."""

    def __init__(self, workdir: Path, ports: tuple[int, int]) -> None:
        assert NGINX is not None
        super().__init__(NGINX, workdir, lambda path, port: nginx_conf(path, port, ports))

    def upstreams(self, path_pattern: str) -> list[str]:
        """The replica (host:port) each logged request whose path matches served, in order."""
        lines = self.access.read_text().splitlines() if self.access.exists() else []
        return [line.split()[-1] for line in lines if re.search(path_pattern, line.split()[1])]


def nginx_conf(workdir: Path, listen_port: int, ports: tuple[int, int]) -> str:
    """A complete nginx.conf around the doc's two replica blocks, pointed at the test's replicas."""
    http_block, server_block = doc_blocks("nginx replicas")
    for documented, port in zip(DOC_PORTS, ports, strict=True):
        assert http_block.count(f"server {documented};") == 2, "the documented upstreams changed: update this test"
        http_block = http_block.replace(f"server {documented};", f"server 127.0.0.1:{port};")
    return wrap(workdir, listen_port, http_block, server_block, connections=512,
                log_format="$request_method $uri $status $upstream_addr")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    """The database emptied, two accounts, replicas A and B started together, then nginx; all stopped by pid."""
    if not PG:
        pytest.skip("TEST_DATABASE_URL is not set: replica mode needs a PostgreSQL server")
    if NGINX is None:
        pytest.skip("nginx is not installed (apt-get install nginx)")
    tmp = tmp_path_factory.mktemp("replicas")
    db_url = empty_database(PG, DB_NAME)
    for name in (USER, LIMITED):  # accounts are in the database: every replica knows them
        added = subprocess.run([sys.executable, "-m", "app", "users", "add", name, "--password-stdin"], cwd=ROOT,
                               env=child_env({"DATABASE_URL": db_url, "LANTERN_DATA_DIR": str(tmp / "cli")}),
                               input=PASSWORD + "\n", capture_output=True, text=True, timeout=60)
        assert added.returncode == 0, added.stderr
    with SlowUpstream() as fake:
        env = {"DATABASE_URL": db_url, "LANTERN_REPLICA_MODE": "1", "LANTERN_STORAGE_SECRET": "e2e-replicas-secret",
               "LANTERN_REQUIRE_LOGIN": "1", "LANTERN_ROOT_PATH": PREFIX,
               "LANTERN_OPENAI_COMPAT": json.dumps({"fake": {"base_url": fake.base_url, "models": ["slow"]}}),
               "LANTERN_DEFAULT_MODEL": "fake/slow", "LANTERN_RUNS_PER_MINUTE": str(RUNS_PER_MINUTE),
               "OPENAI_API_KEY": ""}
        replicas = [AppProcess(tmp / name / "data", env) for name in ("a", "b", "c")]  # starting together
        try:
            for replica in replicas:
                replica.wait_ready()
            a, b, c = replicas
            proxy = ReplicaNginx(tmp / "nginx", (a.port, b.port))
            try:
                yield Cluster(a=a, b=b, c=c, proxy=proxy, fake=fake, db_url=db_url)
            finally:
                proxy.stop()
        finally:
            for replica in replicas:
                replica.stop()


def child_env(extra: dict[str, str]) -> dict[str, str]:
    """This process's environment without pytest's and NiceGUI's variables, plus `extra`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
    env.update(extra)
    return env


def empty_database(server_url: str, name: str) -> str:
    """The URL of database `name` on the server of `server_url`: created if missing, its tables dropped."""
    import psycopg

    base = make_url(server_url).set(drivername="postgresql")
    with psycopg.connect(base.render_as_string(hide_password=False), autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f'CREATE DATABASE "{name}"')
    url = base.set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("DROP SCHEMA public CASCADE")
        conn.execute("CREATE SCHEMA public")
    return url


# ---- SSE clients --------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Frame:
    """One SSE event as a client reads it."""

    seq: int
    type: str
    data: dict[str, Any]


@asynccontextmanager
async def client(base_url: str, user: str = USER) -> AsyncIterator[httpx.AsyncClient]:
    """An API client of one replica (or of nginx), logged in with HTTP Basic."""
    async with httpx.AsyncClient(base_url=base_url, auth=(user, PASSWORD), timeout=30) as http:
        yield http


async def frames(response: httpx.Response) -> AsyncIterator[Frame]:
    """The events of an SSE response as they arrive (comments skipped)."""
    assert response.status_code == 200, response.text if response.is_closed else response.status_code
    buffer = ""
    async for text in response.aiter_text():
        buffer += text
        *complete, buffer = buffer.split("\n\n")
        for block in complete:
            fields = dict(line.split(": ", 1) for line in block.split("\n") if line and not line.startswith(":"))
            if "event" in fields:
                yield Frame(int(fields["id"]), fields["event"], json.loads(fields["data"]))


async def follow(http: httpx.AsyncClient, run_id: str, *, after: int | None = None,
                 until: int | None = None, seen: list[Frame] | None = None) -> list[Frame]:
    """`GET /api/runs/{id}/events` (after `Last-Event-ID`), to `done` or until `until` text deltas came."""
    seen = [] if seen is None else seen
    headers = {"Last-Event-ID": str(after)} if after is not None else {}
    async with http.stream("GET", f"/api/runs/{run_id}/events", headers=headers) as response:
        async for frame in frames(response):
            seen.append(frame)
            if until is not None and sum(f.type == "text.delta" for f in seen) >= until:
                break
    return seen


@asynccontextmanager
async def chat_stream(http: httpx.AsyncClient, prompt: str) -> AsyncIterator[tuple[str, str, httpx.Response]]:
    """`POST /api/chat/stream` on `http`: the run id, the conversation id and the open SSE response."""
    body = {"messages": [{"role": "user", "content": prompt}], "model": "fake/slow"}
    async with http.stream("POST", "/api/chat/stream", json=body) as response:
        assert response.status_code == 200, await response.aread()
        yield response.headers["x-run-id"], response.headers["x-conversation-id"], response


def text_of(seen: list[Frame]) -> str:
    """The reply's text as the events carry it."""
    return "".join(f.data["delta"] for f in seen if f.type == "text.delta")


def assert_whole(seen: list[Frame], status: str) -> None:
    """Numbered 1..n without gap or repeat, ending with one `done` of `status`."""
    assert [f.seq for f in seen] == list(range(1, len(seen) + 1)), [f.seq for f in seen]
    assert seen[-1].type == "done" and seen[-1].data["status"] == status, seen[-1]
    assert sum(f.type == "done" for f in seen) == 1


def stored_events(db_url: str, run_id: str) -> list[Frame]:
    """The run's events as stored in the shared database."""
    from sqlmodel import Session

    from storage import runs as run_repo
    from storage.engine import make_engine

    engine = make_engine(db_url)
    try:
        with Session(engine) as session:
            return [Frame(e["seq"], e["type"], e["data"]) for e in run_repo.load_events(session, run_id=run_id)]
    finally:
        engine.dispose()


def run_owner(db_url: str, run_id: str) -> str:
    """The name of the replica that owns the run (`host-pid-random`)."""
    import psycopg

    with psycopg.connect(db_url) as conn:
        row = conn.execute("SELECT owner FROM run WHERE id = %s", (run_id,)).fetchone()
    assert row is not None
    return str(row[0])


async def eventually(check: Any, timeout: float, every: float = 0.05) -> Any:
    """Poll `check()` (sync or async) until it returns something truthy; that value, or fail after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        value = await value if asyncio.iscoroutine(value) else value
        if value or time.monotonic() > deadline:
            assert value, f"not within {timeout} s"
            return value
        await asyncio.sleep(every)


def tag() -> str:
    """A unique word to find a run's upstream request by."""
    return uuid.uuid4().hex[:12]


# ---- tests --------------------------------------------------------------------------------------------

def test_replica_mode_on_sqlite_refuses_to_start(tmp_path: Path) -> None:
    env = child_env({"LANTERN_REPLICA_MODE": "1", "DATABASE_URL": f"sqlite:///{tmp_path / 'one.db'}",
                     "LANTERN_DATA_DIR": str(tmp_path / "data")})
    started = subprocess.run([sys.executable, "-m", "app", "--no-browser", "--port", str(free_port())], cwd=ROOT,
                             env=env, capture_output=True, text=True, timeout=60)
    assert started.returncode == 2, started.stdout + started.stderr
    assert started.stderr.startswith("lantern: Replica mode needs PostgreSQL"), started.stderr
    assert "DATABASE_URL=postgresql://" in started.stderr  # says how to fix it
    assert "Traceback" not in started.stderr


@pytest.mark.parametrize("kind", ["chat", "duet"])
async def test_a_run_on_a_is_followed_on_b_once_in_order_and_resumed(cluster: Cluster, kind: str) -> None:
    """A's own stream, B's follower, a follower on B that drops and resumes, and the database all agree."""
    marker = tag()
    async with client(cluster.a.url) as a, client(cluster.b.url) as b:
        if kind == "chat":
            async with chat_stream(a, f"[short] {marker}") as (run_id, _, response):
                on_b = asyncio.create_task(follow(b, run_id))
                dropped: list[Frame] = []
                resumed = asyncio.create_task(follow_then_resume(b, run_id, dropped))
                on_a = [f async for f in frames(response)]
        else:
            agent = {"model": "fake/slow", "system_prompt": f"[short] {marker}", "temperature": 0.5}
            started = await a.post("/api/runs", json={"kind": "duet", "topic": "lanterns", "turns": 2, "agents": [
                {"name": "Ann", **agent}, {"name": "Ben", **agent}]})
            assert started.status_code == 201, started.text
            run_id = started.json()["run_id"]
            on_b = asyncio.create_task(follow(b, run_id))
            dropped = []
            resumed = asyncio.create_task(follow_then_resume(b, run_id, dropped))
            on_a = await follow(a, run_id)
        assert f"-{cluster.a.proc.pid}-" in run_owner(cluster.db_url, run_id)  # A drives it
        seen_b = await asyncio.wait_for(on_b, 30)
        assert_whole(on_a, "completed")
        assert seen_b == on_a  # every event once, in order, the same data
        assert stored_events(cluster.db_url, run_id) == on_a
        expected = words(80) * (1 if kind == "chat" else 2)
        assert text_of(on_a) == expected
        assert await asyncio.wait_for(resumed, 30) == on_a  # the part before the drop + the part after
        assert dropped and dropped[-1].seq < len(on_a) - 10  # it dropped and resumed mid-run, live
        # Resuming on B after the end replays from the database exactly after the given id.
        half = len(on_a) // 2
        assert await follow(b, run_id, after=half) == on_a[half:]
        run = (await b.get(f"/api/runs/{run_id}")).json()
        assert run["status"] == "completed" and run["kind"] == kind


async def follow_then_resume(http: httpx.AsyncClient, run_id: str, dropped: list[Frame]) -> list[Frame]:
    """Follow until 5 text deltas came, hang up, then reconnect with `Last-Event-ID` and follow to the end."""
    await follow(http, run_id, until=5, seen=dropped)
    status = (await http.get(f"/api/runs/{run_id}")).json()["status"]
    assert status == "running", "the run ended before the follower could resume mid-run"
    return dropped + await follow(http, run_id, after=dropped[-1].seq)


async def test_a_run_on_a_is_stopped_through_b_and_its_upstream_closed_at_once(cluster: Cluster) -> None:
    marker = tag()
    async with client(cluster.a.url) as a, client(cluster.b.url) as b:
        async with chat_stream(a, f"[long] {marker}") as (run_id, _, response):
            on_a = asyncio.create_task(collect(response))
            on_b = await follow(b, run_id, until=5)  # B is following the run A drives
            rest_b = asyncio.create_task(follow(b, run_id, after=on_b[-1].seq))
            upstream = cluster.fake.stream_for(marker)
            assert upstream.closed is None
            asked = time.monotonic()
            stopped = await b.post(f"/api/runs/{run_id}/stop")
            answered = time.monotonic() - asked
            assert stopped.status_code == 200 and stopped.json() == {"status": "stopped"}, stopped.text
            await eventually(lambda: upstream.closed, timeout=5)
            assert upstream.closed is not None
            closed_after = upstream.closed - asked
            assert closed_after <= STOP_CLOSES_WITHIN_S, f"upstream closed {closed_after:.3f} s after the stop request"
            seen_a = await asyncio.wait_for(on_a, 10)
        seen_b = on_b + await asyncio.wait_for(rest_b, 10)
        assert_whole(seen_a, "stopped")
        assert seen_b == seen_a
        run = (await b.get(f"/api/runs/{run_id}")).json()
        assert run["status"] == "stopped"
        partial = run["result"]["message"]["content"]
        assert partial == text_of(seen_b) and 0 < len(partial) < len(words(3000))  # the partial output is kept
        again = await b.post(f"/api/runs/{run_id}/stop")
        assert again.status_code == 409 and again.json()["error"]["type"] == "not_running"
        print(f"stop through B: answered in {answered * 1000:.0f} ms, upstream closed {closed_after * 1000:.0f} ms "
              "after the request")


async def collect(response: httpx.Response) -> list[Frame]:
    """Every event of an open SSE response."""
    return [f async for f in frames(response)]


async def test_a_duet_on_a_is_steered_through_b(cluster: Cluster) -> None:
    """B passes the change to A, which drives the duet, and answers with the bot as A now has it."""
    agent = {"model": "fake/slow", "system_prompt": f"[long] {tag()}", "temperature": 0.5}
    async with client(cluster.a.url) as a, client(cluster.b.url) as b:
        started = await a.post("/api/runs", json={"kind": "duet", "topic": "lanterns", "turns": 4,
                                                  "agents": [{"name": "Ann", **agent}, {"name": "Ben", **agent}]})
        assert started.status_code == 201, started.text
        run_id = started.json()["run_id"]
        try:
            steered = await b.patch(f"/api/runs/{run_id}/agents/1", json={"temperature": 0.2})
            assert steered.status_code == 200, steered.text
            assert steered.json()["agent"]["name"] == "Ben" and steered.json()["agent"]["temperature"] == 0.2
            refused = await b.patch(f"/api/runs/{run_id}/agents/0", json={})  # nothing to change: B says so
            assert refused.status_code == 400 and refused.json()["error"]["type"] == "bad_input", refused.text
        finally:
            assert (await b.post(f"/api/runs/{run_id}/stop")).status_code == 200
        over = await b.patch(f"/api/runs/{run_id}/agents/1", json={"temperature": 0.3})
        assert over.status_code == 409 and over.json()["error"]["type"] == "conflict", over.text


async def test_run_limits_and_login_throttles_hold_across_replicas(cluster: Cluster) -> None:
    body = {"messages": [{"role": "user", "content": "[tiny]"}], "model": "fake/slow"}
    async with client(cluster.a.url, LIMITED) as a, client(cluster.b.url, LIMITED) as b:
        for http in (a, b) * (RUNS_PER_MINUTE // 2):
            assert (await http.post("/api/chat", json=body)).status_code == 200
        for http in (a, b):  # each replica counted only half of them itself
            refused = await eventually(lambda h=http: _refused(h, body), timeout=2)
            assert refused.status_code == 429 and int(refused.headers["retry-after"]) > 0
    wrong = httpx.BasicAuth("mallory", "not the password")
    async with httpx.AsyncClient(base_url=cluster.a.url, auth=wrong) as a, \
            httpx.AsyncClient(base_url=cluster.b.url, auth=wrong) as b:
        for _ in range(8):  # failed logins for one name from one address, all through A
            if (await a.get("/api/runs")).status_code == 429:
                break
        throttled = await eventually(lambda: _throttled(b), timeout=2)  # B makes the next guess wait too
        assert throttled.status_code == 429 and int(throttled.headers["retry-after"]) > 0


async def _refused(http: httpx.AsyncClient, body: dict[str, Any]) -> httpx.Response | None:
    """The refusal of one more run, or None if it was admitted."""
    response = await http.post("/api/chat", json=body)
    return response if response.status_code == 429 else None


async def _throttled(http: httpx.AsyncClient) -> httpx.Response | None:
    """The throttled answer to a login, or None if it was only refused."""
    response = await http.get("/api/runs")
    return response if response.status_code == 429 else None


def test_through_nginx_the_api_reaches_both_replicas_and_pages_one(cluster: Cluster) -> None:
    proxy, ports = cluster.proxy, {f"127.0.0.1:{cluster.a.port}", f"127.0.0.1:{cluster.b.port}"}
    with httpx.Client(base_url=proxy.url + PREFIX, auth=(USER, PASSWORD), timeout=10) as http:
        for path in ("/api/runs", "/v1/models"):
            for _ in range(4):
                assert http.get(path).status_code == 200
        for _ in range(4):
            assert http.get("/login", headers={"Accept": "text/html"}).status_code == 200
    assert set(proxy.upstreams(rf"^{PREFIX}/api/runs$")) == ports  # round robin
    assert set(proxy.upstreams(rf"^{PREFIX}/v1/models$")) == ports
    assert len(set(proxy.upstreams(rf"^{PREFIX}/login$"))) == 1  # one client address: one replica
    assert all(status == "200" for status in _statuses(proxy))


def _statuses(proxy: ReplicaNginx) -> list[str]:
    """The status of every request nginx logged."""
    return [line.split()[2] for line in proxy.access.read_text().splitlines() if "/nginx-alive" not in line]


async def test_a_run_started_through_nginx_is_followed_and_stopped_through_nginx(cluster: Cluster) -> None:
    marker = tag()
    async with client(cluster.proxy.url + PREFIX) as proxy:
        async with chat_stream(proxy, f"[long] {marker}") as (run_id, _, response):
            on_start = asyncio.create_task(collect(response))
            seen = await follow(proxy, run_id, until=5)
            rest = asyncio.create_task(follow(proxy, run_id, after=seen[-1].seq))
            asked = time.monotonic()
            stopped = await proxy.post(f"/api/runs/{run_id}/stop")
            assert stopped.status_code == 200, stopped.text
            upstream = cluster.fake.stream_for(marker)
            await eventually(lambda: upstream.closed, timeout=5)
            assert upstream.closed is not None and upstream.closed - asked <= STOP_CLOSES_WITHIN_S
            first = await asyncio.wait_for(on_start, 10)
        seen += await asyncio.wait_for(rest, 10)
        assert_whole(first, "stopped")
        assert seen == first
    # Round robin: the start, the follow and the stop did not all go to the replica that drives the run.
    served = cluster.proxy.upstreams(rf"^{PREFIX}/api/(chat/stream|runs/{run_id}/(events|stop))$")
    assert len(served) == 4 and len(set(served)) == 2, served


async def test_a_browser_through_nginx_logs_in_and_chats_on_one_replica(cluster: Cluster, page: Any) -> None:
    """The login, the page and its websocket all reach one replica (they share in-process state)."""
    proxy = cluster.proxy
    failed: list[str] = []
    page.on("response", lambda r: failed.append(f"{r.status} {r.url}") if r.status >= 400 else None)
    await page.goto(f"{proxy.url}{PREFIX}/")
    await log_in(page)  # the login page's socket hands a ticket to /login/complete: same process
    box = page.get_by_placeholder("Message Lantern…")
    await box.fill(f"[short] {tag()}")
    await box.press("Enter")  # over the websocket, through nginx's upgrade
    await page.get_by_text(re.compile(r"fake/slow · \d+ in / 80 out")).wait_for(timeout=20_000)
    assert " ".join((await page.locator(".lantern-md").last.inner_text()).split()) == words(80).strip()
    served = proxy.upstreams(rf"^{PREFIX}/(|login|login/complete|chat/.*|_nicegui_ws/.*)$")
    assert len(served) >= 4 and len(set(served)) == 1, served
    assert not failed, f"requests failed through nginx: {failed}"


async def test_a_duet_reopened_on_the_other_replica_shows_its_turns_live(cluster: Cluster, page: Any) -> None:
    """The Duet page on one replica follows, through the database, a duet the other replica drives."""
    proxy = cluster.proxy
    await page.goto(f"{proxy.url}{PREFIX}/duet")
    await log_in(page)
    await page.get_by_text("Duet").first.wait_for(timeout=20_000)
    here = set(proxy.upstreams(rf"^{PREFIX}/(duet|_nicegui_ws/.*)$"))
    assert len(here) == 1, here
    other = cluster.b if here.pop().endswith(f":{cluster.a.port}") else cluster.a
    agent = {"model": "fake/slow", "system_prompt": f"[short] {tag()}", "temperature": 0.5}
    async with client(other.url) as http:
        started = await http.post("/api/runs", json={"kind": "duet", "topic": "lanterns", "turns": 2,
                                                     "agents": [{"name": "Ann", **agent}, {"name": "Ben", **agent}]})
        assert started.status_code == 201, started.text
        run_id = started.json()["run_id"]
        await page.goto(f"{proxy.url}{PREFIX}/duet/{run_id}")  # while the other replica drives it
        assert (await http.get(f"/api/runs/{run_id}")).json()["status"] == "running"
        await page.get_by_text("2 turns · finished").wait_for(timeout=20_000)
    turns = [" ".join((await t.inner_text()).split()) for t in await page.locator(".lantern-md").all()]
    assert turns == [words(80).strip()] * 2


async def test_a_chat_reopened_on_the_other_replica_shows_its_reply_live(cluster: Cluster, page: Any) -> None:
    """The page is on one replica (sticky); the reply it shows is driven by the other one."""
    proxy = cluster.proxy
    await page.goto(f"{proxy.url}{PREFIX}/")
    await log_in(page)
    await page.get_by_placeholder("Message Lantern…").wait_for(timeout=20_000)
    here = set(proxy.upstreams(rf"^{PREFIX}/(|_nicegui_ws/.*)$"))
    assert len(here) == 1, here
    other = cluster.b if here.pop().endswith(f":{cluster.a.port}") else cluster.a
    async with client(other.url) as http, chat_stream(http, f"[short] {tag()}") as (run_id, conversation_id, response):
        await page.goto(f"{proxy.url}{PREFIX}/chat/{conversation_id}")  # while the other replica streams it
        on_owner = await collect(response)
    assert_whole(on_owner, "completed")
    assert f"-{other.proc.pid}-" in run_owner(cluster.db_url, run_id)
    await page.get_by_text(re.compile(r"fake/slow · \d+ in / 80 out")).wait_for(timeout=5_000)
    assert " ".join((await page.locator(".lantern-md").last.inner_text()).split()) == words(80).strip()


async def test_a_stop_asked_after_the_runs_replica_died_does_not_claim_stopped(cluster: Cluster) -> None:
    async with client(cluster.c.url) as c, client(cluster.b.url) as b:
        async with chat_stream(c, f"[long] {tag()}") as (run_id, _, _response):
            await follow(b, run_id, until=3)
            os.kill(cluster.c.proc.pid, signal.SIGKILL)  # C's pid only; its lease has not run out yet
            cluster.c.proc.wait(timeout=10)
        stop = await b.post(f"/api/runs/{run_id}/stop")
        status = (await b.get(f"/api/runs/{run_id}")).json()["status"]
        # Either the stop says it could not stop the run, or the run is stopped; not "stopped" and running.
        assert stop.status_code != 200 or status == "stopped", f"stop answered {stop.status_code} {stop.text}, " \
                                                               f"the run is {status}"


async def test_kill_9_of_a_leaves_its_run_interrupted_with_its_partial_output_on_b(cluster: Cluster) -> None:
    """Last in the module: A is gone afterwards."""
    marker = tag()
    async with client(cluster.a.url) as a, client(cluster.b.url) as b:
        async with chat_stream(a, f"[long] {marker}") as (run_id, conversation_id, _response):
            seen = await follow(b, run_id, until=10)  # stored and read on B
            rest = asyncio.create_task(follow(b, run_id, after=seen[-1].seq))
            os.kill(cluster.a.proc.pid, signal.SIGKILL)  # A's pid only
            killed = time.monotonic()
            cluster.a.proc.wait(timeout=10)

        async def interrupted() -> dict[str, Any] | None:
            run = (await b.get(f"/api/runs/{run_id}")).json()
            return run if run["status"] != "running" else None

        run = await eventually(interrupted, timeout=LEASE_S + RENEW_S + 5, every=0.2)
        took = time.monotonic() - killed
        assert run["status"] == "interrupted"
        assert LEASE_S - RENEW_S - 0.5 <= took <= LEASE_S + RENEW_S + 2, f"interrupted {took:.1f} s after kill -9"
        seen += await asyncio.wait_for(rest, 10)
        assert_whole(seen, "interrupted")
        partial = run["result"]["message"]["content"]
        assert partial == text_of(seen) and words(10) in partial and len(partial) < len(words(3000))
        conversation = (await b.get(f"/api/conversations/{conversation_id}")).json()
        assert conversation["messages"][-1]["content"] == partial
        upstream = cluster.fake.stream_for(marker)
        assert upstream.closed is not None and upstream.closed - killed < 1.0  # the socket died with A
        print(f"kill -9: interrupted on B after {took:.1f} s (LEASE_S {LEASE_S:g} + RENEW_S {RENEW_S:g})")
