"""Replicas on one PostgreSQL (issue #20): how far behind a follower on another replica is, what a stop across
replicas costs, and the concurrency load against one replica and against two.

Run from the repository root: `.venv/bin/python -m bench.replicas [--quick] [--server URL] [--only lag,stop,load]`.
Needs PostgreSQL (database `lantern_replicas_bench`, created on TEST_DATABASE_URL's server, else on
127.0.0.1:55432, and emptied first) and nginx for the nginx configuration. The fake upstream is bench/concurrency's
(its own process, a markdown reply in 4-character tokens at `--pace-ms` each). Replicas run as in
docs/DEPLOY.md section 4 (replica mode, login required, root path /lantern), each pinned to a core of its own
(`sched_setaffinity`, what `taskset` does) when there are enough cores.

- lag: `--streams` replies started together on replica A (`POST /api/chat/stream`, A's own stream), each
  also followed on replica B (`GET /api/runs/{id}/events`); per event, arrival on B minus arrival on A.
- stop: replies started on A one after another, each stopped through B after 0.3 s; the stop request's
  round trip, and until A's stream says `done: stopped`.
- load: `--clients` SSE clients each asking `--rounds` replies in turn, against one replica, two replicas
  (the clients split evenly), two replicas behind nginx (the documented config), and one process without
  replica mode (the cost of the mode); replies/s, tokens/s, errors, read gaps, CPU per process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import CLK_TCK, publish  # noqa: E402
from bench.concurrency import _pct, _py_spy  # noqa: E402
from bench.startup import AppProcess as CheckoutProcess  # noqa: E402
from bench.stream_browser import make_reply  # noqa: E402
from tests.conftest import AppProcess  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "replicas.json"
TARGET_LAG_P95_MS = 250.0
TIMEOUT_S = 300.0
PREFIX = "/lantern"
USER, PASSWORD = "bench", "bench replicas password"
DB_NAME = "lantern_replicas_bench"
PG_SERVER = "postgresql://postgres@127.0.0.1:55432/postgres"
PROMPT = "Write a long markdown document about lanterns."
AUTH: dict[str, str] = {}  # the bench account's API token, once made


@dataclass
class Seen:
    """What one SSE client read: when each event arrived, by seq."""

    arrivals: dict[int, float] = field(default_factory=dict)  # seq -> perf_counter at the read that carried it
    reads: list[float] = field(default_factory=list)  # perf_counter of each read that carried text
    chars: int = 0
    status: str = ""
    error: str = ""


async def read_sse(response: httpx.Response, seen: Seen) -> None:
    """Read an SSE response to its end, noting each event's arrival."""
    if response.status_code != 200:
        raise RuntimeError(f"HTTP {response.status_code}: {(await response.aread())[:200].decode(errors='replace')}")
    buffer = b""
    async for chunk in response.aiter_bytes():
        now = time.perf_counter()
        buffer += chunk
        *frames, buffer = buffer.split(b"\n\n")
        text = False
        for frame in frames:
            seq, kind = None, b""
            for line in frame.split(b"\n"):
                if line.startswith(b"id: "):
                    seq = int(line[4:])
                elif line.startswith(b"event: "):
                    kind = line[7:]
                elif line.startswith(b"data: ") and kind == b"text.delta":
                    seen.chars += len(json.loads(line[6:])["delta"])
                    text = True
                elif line.startswith(b"data: ") and kind == b"done":
                    seen.status = json.loads(line[6:])["status"]
            if seq is not None:
                seen.arrivals[seq] = now
        if text:
            seen.reads.append(now)


# ---- phases -------------------------------------------------------------------------------------------

async def lag_phase(a: AppProcess, b: AppProcess, streams: int, body: dict[str, Any], chars: int,
                    profile: Path | None = None, follow_every: int = 1) -> dict[str, Any]:
    """`streams` replies started at once on A, each read on A and (every `follow_every`-th) followed on B; B's lag
    per event."""
    start = asyncio.Event()
    spies = [_spy(app.proc.pid, profile / f"{name}.txt") for name, app in (("a", a), ("b", b))] if profile else []
    async with _client(a.url, streams) as on_a_client, _client(b.url, streams) as on_b_client:

        async def one(followed: bool) -> tuple[Seen, Seen]:
            on_a, on_b = Seen(), Seen()
            await start.wait()
            try:
                async with on_a_client.stream("POST", "/api/chat/stream", json=body) as response:
                    run_id = response.headers.get("x-run-id", "")
                    follower = asyncio.create_task(_follow(on_b_client, run_id, on_b) if followed else _skip())
                    await read_sse(response, on_a)
                await asyncio.wait_for(follower, TIMEOUT_S)
                if not followed:
                    return on_a, Seen()
                for seen, where in ((on_a, "A"), (on_b, "B")):
                    if seen.status != "completed" or seen.chars != chars:
                        raise RuntimeError(f"{where}: {seen.status or 'no done'}, {seen.chars} of {chars} characters")
                if sorted(on_a.arrivals) != list(range(1, len(on_a.arrivals) + 1)) or on_b.arrivals.keys() != \
                        on_a.arrivals.keys():
                    raise RuntimeError("B's events differ from A's")
            except Exception as exc:  # a benchmark counts failures instead of stopping
                on_a.error = on_a.error or f"{type(exc).__name__}: {exc}"
            return on_a, on_b

        tasks = [asyncio.create_task(one(i % follow_every == 0)) for i in range(streams)]
        cpu0, busy0, t0 = _cpus({"A": a.proc.pid, "B": b.proc.pid}), _machine_busy(), time.perf_counter()
        start.set()
        pairs = await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT_S)
        wall, cpu = time.perf_counter() - t0, _cpus({"A": a.proc.pid, "B": b.proc.pid})
        busy = _machine_busy() - busy0
    for spy in spies:
        spy.send_signal(signal.SIGINT)  # py-spy writes its profile on SIGINT
        spy.wait(timeout=60)
    lags = sorted((on_b.arrivals[s] - on_a.arrivals[s]) * 1000 for on_a, on_b in pairs for s in on_a.arrivals
                  if s in on_b.arrivals)
    first = sorted((on_b.arrivals[1] - on_a.arrivals[1]) * 1000 for on_a, on_b in pairs
                   if 1 in on_a.arrivals and 1 in on_b.arrivals)
    settled = sorted((on_b.arrivals[s] - on_a.arrivals[s]) * 1000 for on_a, on_b in pairs for s in on_a.arrivals
                     if s in on_b.arrivals and on_a.arrivals[s] - min(on_a.arrivals.values()) > 0.5)
    errors = [on_a.error for on_a, _ in pairs if on_a.error]
    # When the lag happens: by half second since the start (a backlog grows; a stall is one bucket).
    by_time: dict[float, list[float]] = {}
    for on_a, on_b in pairs:
        for s in on_a.arrivals.keys() & on_b.arrivals.keys():
            lag = (on_b.arrivals[s] - on_a.arrivals[s]) * 1000
            by_time.setdefault(round((on_a.arrivals[s] - t0) * 2) / 2, []).append(lag)
    return {"lag_p95_by_half_second_ms": {t: round(_pct(sorted(v), 0.95)) for t, v in sorted(by_time.items())},
            "streams": streams, "events_compared": len(lags), "errors": errors, "wall_s": wall,
            "lag_p50_ms": _pct(lags, 0.5), "lag_p95_ms": _pct(lags, 0.95), "lag_p99_ms": _pct(lags, 0.99),
            "lag_max_ms": lags[-1] if lags else 0.0, "lag_min_ms": lags[0] if lags else 0.0,
            "settled_lag_p95_ms": _pct(settled, 0.95), "first_event_lag_p50_ms": _pct(first, 0.5),
            "first_event_lag_max_ms": first[-1] if first else 0.0,
            "cpu_s": {k: cpu[k] - cpu0[k] for k in cpu}, "target_p95_ms": TARGET_LAG_P95_MS,
            "machine_busy_cpu_s": busy, "machine_cpu_available_s": wall * (os.cpu_count() or 1),
            "met": not errors and bool(lags) and _pct(lags, 0.95) <= TARGET_LAG_P95_MS}


async def _skip() -> None:
    """A stream not followed on B (`--follow-every`)."""


async def _follow(http: httpx.AsyncClient, run_id: str, seen: Seen) -> None:
    """Follow a run from its first event."""
    async with http.stream("GET", f"/api/runs/{run_id}/events") as response:
        await read_sse(response, seen)


async def stop_phase(a: AppProcess, b: AppProcess, runs: int, body: dict[str, Any]) -> dict[str, Any]:
    """Replies started on A one at a time, each stopped through B after 0.3 s."""
    answered, ended, errors = [], [], []
    async with _client(a.url, 4) as on_a, _client(b.url, 4) as on_b:
        for _ in range(runs):
            seen = Seen()
            try:
                async with on_a.stream("POST", "/api/chat/stream", json=body) as response:
                    reader = asyncio.create_task(read_sse(response, seen))
                    await asyncio.sleep(0.3)
                    asked = time.perf_counter()
                    stop = await on_b.post(f"/api/runs/{response.headers['x-run-id']}/stop")
                    answered.append((time.perf_counter() - asked) * 1000)
                    await asyncio.wait_for(reader, 30)
                    ended.append((max(seen.arrivals.values()) - asked) * 1000)
                if stop.status_code != 200 or seen.status != "stopped":
                    raise RuntimeError(f"stop HTTP {stop.status_code}, run {seen.status}")
            except Exception as exc:  # counted, not fatal
                errors.append(f"{type(exc).__name__}: {exc}")
    answered.sort()
    ended.sort()
    return {"runs": runs, "errors": errors, "stop_answer_p50_ms": _pct(answered, 0.5),
            "stop_answer_max_ms": answered[-1] if answered else 0.0, "done_on_a_p50_ms": _pct(ended, 0.5),
            "done_on_a_max_ms": ended[-1] if ended else 0.0}


async def load_phase(urls: list[str], clients: int, rounds: int, body: dict[str, Any], chars: int,
                     pids: dict[str, int]) -> dict[str, Any]:
    """`clients` SSE clients, client i on `urls[i % len(urls)]`, each asking `rounds` replies in turn."""
    start = asyncio.Event()
    async with contextlib.AsyncExitStack() as stack:
        opened = [await stack.enter_async_context(_client(url, clients)) for url in urls]

        async def one(http: httpx.AsyncClient) -> list[Seen]:
            await start.wait()
            done = []
            for _ in range(rounds):
                seen = Seen()
                try:
                    async with http.stream("POST", "/api/chat/stream", json=body) as response:
                        await read_sse(response, seen)
                    if seen.status != "completed" or seen.chars != chars:
                        raise RuntimeError(f"{seen.status or 'no done'}, {seen.chars} of {chars} characters")
                except Exception as exc:  # counted, not fatal
                    seen.error = f"{type(exc).__name__}: {exc}"
                done.append(seen)
            return done

        tasks = [asyncio.create_task(one(opened[i % len(opened)])) for i in range(clients)]
        cpu0, busy0, t0 = _cpus(pids), _machine_busy(), time.perf_counter()
        start.set()
        seen = [s for result in await asyncio.wait_for(asyncio.gather(*tasks), TIMEOUT_S) for s in result]
        wall, cpu, busy = time.perf_counter() - t0, _cpus(pids), _machine_busy() - busy0
    ok = [s for s in seen if not s.error]
    gaps = sorted((b - a) * 1000 for s in ok for a, b in itertools.pairwise(s.reads))
    return {"replies": len(seen), "completed": len(ok), "errors": sorted({s.error for s in seen if s.error}),
            "error_count": len(seen) - len(ok), "wall_s": wall, "replies_per_s": len(ok) / wall,
            "tokens_per_s": sum(s.chars for s in ok) / 4 / wall, "read_gap_p50_ms": _pct(gaps, 0.5),
            "read_gap_p95_ms": _pct(gaps, 0.95), "read_gap_max_ms": gaps[-1] if gaps else 0.0,
            "cpu_s": {k: cpu[k] - cpu0[k] for k in cpu}, "machine_busy_cpu_s": busy,
            "machine_cpu_available_s": wall * (os.cpu_count() or 1)}


def _client(url: str, connections: int) -> httpx.AsyncClient:
    """An API client of one replica (or of nginx) with enough connections and the bench account."""
    limits = httpx.Limits(max_connections=2 * connections + 10, max_keepalive_connections=2 * connections + 10)
    return httpx.AsyncClient(base_url=url, headers=AUTH, timeout=TIMEOUT_S, limits=limits)


def _spy(pid: int, out: Path) -> subprocess.Popen[bytes]:
    """py-spy recording a process's threads (collapsed stacks, thread names) until SIGINT."""
    out.parent.mkdir(parents=True, exist_ok=True)
    return subprocess.Popen([_py_spy(), "record", "--format", "raw", "-r", "200", "--nonblocking", "--threads",
                             "-o", str(out), "-p", str(pid)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _cpus(pids: dict[str, int]) -> dict[str, float]:
    """CPU seconds so far of the named processes, and of this one (the clients)."""
    found = {"clients (this process)": sum(os.times()[:2])}
    stats = _all_stats()
    for name, pid in pids.items():
        # nginx's master does no work: its workers, its children, do.
        found[name] = sum(cpu for p, (ppid, cpu, _) in stats.items() if p == pid or (name == "nginx" and ppid == pid))
    found["postgres (all backends)"] = sum(cpu for _, cpu, command in stats.values() if command == "postgres")
    return found


def _all_stats() -> dict[int, tuple[int, float, str]]:
    """Every process: pid -> (parent pid, CPU seconds, command name)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        head, _, tail = text.rpartition(")")
        fields = tail.split()
        found[int(stat.parent.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLK_TCK,
                                        head.partition("(")[2])
    return found


def _machine_busy() -> float:
    """CPU seconds the whole machine has been busy (all but idle and iowait)."""
    busy = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    return (sum(busy) - busy[3] - busy[4]) / CLK_TCK


# ---- set-up -------------------------------------------------------------------------------------------

class Bench:
    """The shared database, the fake upstream and the replicas' environment; starts and stops replicas."""

    def __init__(self, tmp: Path, db: str, base_url: str, root: Path | None = None) -> None:
        self.tmp = tmp
        self.root = root  # another checkout to run the replicas from (a patch's before/after)
        self.db = db
        compat = json.dumps({"fake": {"base_url": base_url, "models": ["bench"]}})
        self.env = {"DATABASE_URL": db, "LANTERN_REPLICA_MODE": "1", "LANTERN_STORAGE_SECRET": "bench-secret",
                    "LANTERN_REQUIRE_LOGIN": "1", "LANTERN_ROOT_PATH": PREFIX, "LANTERN_RUNS_PER_MINUTE": "0",
                    "LANTERN_OPENAI_COMPAT": compat, "LANTERN_DEFAULT_MODEL": "fake/bench", "OPENAI_API_KEY": ""}
        self.started = 0

    def replicas(self, n: int, *, replica_mode: bool = True) -> list[AppProcess]:
        """`n` replicas started together, each pinned to a core of its own when there are enough."""
        env = dict(self.env) if replica_mode else {k: v for k, v in self.env.items() if k != "LANTERN_REPLICA_MODE"}
        cpus = sorted(os.sched_getaffinity(0))
        apps = []
        for i in range(n):
            self.started += 1
            data = self.tmp / f"replica-{self.started}" / "data"
            app = AppProcess(data, env) if self.root is None else CheckoutProcess(data, env, self.root)
            if len(cpus) >= n:
                os.sched_setaffinity(app.proc.pid, {cpus[i]})  # before it starts threads: they inherit it
            apps.append(app)
        for app in apps:
            app.wait_ready()
        return apps


def prepare_database(server: str, name: str, tmp: Path) -> tuple[str, str]:
    """Database `name` on the server of URL `server`, created if missing, emptied, with the bench account; its URL
    and an API token of the account."""
    from tests.e2e.test_replicas_e2e import child_env, empty_database

    url = empty_database(server, name)
    added = subprocess.run([sys.executable, "-m", "app", "users", "add", USER, "--password-stdin"], cwd=ROOT,
                           env=child_env({"DATABASE_URL": url, "LANTERN_DATA_DIR": str(tmp / "cli")}),
                           input=PASSWORD + "\n", capture_output=True, text=True, timeout=120)
    if added.returncode:
        raise SystemExit(f"could not create the bench account: {added.stderr}")
    return url, asyncio.run(_api_token(url))


async def _api_token(url: str) -> str:
    """A personal API token of the bench account, as Settings makes one.

    A token, not HTTP Basic: fifty first requests with a password at once meet the login throttle by design (each
    counts as a failed attempt until its hash check passes), and a replica's credential cache is dropped whenever
    the auth epoch moves.
    """
    from services.accounts.service import Accounts
    from storage.engine import Database
    from storage.users import find_user

    db = Database(url)
    try:
        user = db.session_call(find_user, name=USER)
        assert user is not None
        _token, secret = await Accounts(db).create_token(user.id, "bench")
        return secret
    finally:
        db.close()


def machine(db: str) -> dict[str, Any]:
    """Cores, CPU model, load, versions."""
    import psycopg

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    with psycopg.connect(db) as conn:
        row = conn.execute("SELECT version()").fetchone()
    nginx = _nginx()
    version = subprocess.run([nginx, "-v"], capture_output=True, text=True).stderr.strip() if nginx else "absent"
    memory = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                  if line.startswith("MemTotal"))
    return {"cpus": os.cpu_count(), "cpu_model": model, "memory_gib": round(memory / 2**20, 1),
            "load_average": os.getloadavg(), "python": platform.python_version(), "kernel": platform.release(),
            "postgresql": row[0].split(" on ")[0] if row else "?", "nginx": version}


def _nginx() -> str | None:
    """The nginx binary, if installed."""
    from tests.e2e.test_reverse_proxy import NGINX

    return str(NGINX) if NGINX else None


# ---- main ---------------------------------------------------------------------------------------------

async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    """Fake upstream, database, then each phase on freshly started replicas."""
    from tests.e2e.test_replicas_e2e import ReplicaNginx

    text = make_reply(args.tokens)
    body = {"messages": [{"role": "user", "content": PROMPT}]}
    only = set(args.only.split(","))
    with tempfile.TemporaryDirectory(prefix="lantern-bench-replicas-") as tmp_dir:
        tmp = Path(tmp_dir)
        db, token = await asyncio.to_thread(prepare_database, args.server, args.database, tmp)
        AUTH["Authorization"] = f"Bearer {token}"
        result: dict[str, Any] = {"machine": machine(db), "tokens": args.tokens, "pace_ms": args.pace_ms,
                                  "chunks": -(-len(text) // 4)}
        (tmp / "reply.md").write_text(text)
        fake = subprocess.Popen([sys.executable, "-m", "bench.concurrency", "--serve-fake", str(tmp / "reply.md"),
                                 "--pace-ms", str(args.pace_ms)], cwd=ROOT, stdin=subprocess.PIPE,
                                stdout=subprocess.PIPE, text=True)
        try:
            assert fake.stdout is not None
            bench = Bench(tmp, db, fake.stdout.readline().strip(), args.root)
            if only & {"lag", "stop"}:
                a, b = bench.replicas(2)
                try:
                    await lag_phase(a, b, 2, body, len(text))  # warm-up: imports, connections, caches
                    if "lag" in only:
                        result["lag"] = await lag_phase(a, b, args.streams, body, len(text), args.profile,
                                                        args.follow_every)
                        result["lag"]["followed_on_b"] = len(range(0, args.streams, args.follow_every))
                        _say("lag", result["lag"])
                    if "stop" in only:
                        result["stop"] = await stop_phase(a, b, args.stops, body)
                        _say("stop", result["stop"])
                finally:
                    for app in (a, b):
                        app.stop()
            if "load" in only:
                result["load"] = []
                configs: list[tuple[str, Callable[[], tuple[list[AppProcess], list[str], Any]]]] = [
                    ("1 replica", lambda: _direct(bench.replicas(1))),
                    ("2 replicas, clients split", lambda: _direct(bench.replicas(2))),
                    ("2 replicas behind nginx", lambda: _proxied(bench.replicas(2), tmp, ReplicaNginx)),
                    ("1 process, replica mode off", lambda: _direct(bench.replicas(1, replica_mode=False)))]
                for name, make in configs:
                    if name.endswith("nginx") and _nginx() is None:
                        continue
                    for repeat in range(args.repeats):
                        apps, urls, proxy = make()
                        try:
                            pids = {f"replica {i + 1}": app.proc.pid for i, app in enumerate(apps)}
                            pids["fake upstream"] = fake.pid
                            if proxy is not None:
                                pids["nginx"] = proxy.proc.pid
                            await load_phase(urls, 2, 1, body, len(text), pids)  # warm-up
                            row = await load_phase(urls, args.clients, args.rounds, body, len(text), pids)
                            row.update({"config": name, "repeat": repeat + 1, "clients": args.clients,
                                        "rounds": args.rounds})
                            result["load"].append(row)
                            _say(name, row)
                        finally:
                            if proxy is not None:
                                proxy.stop()
                            for app in apps:
                                app.stop()
        finally:
            if fake.stdin is not None:
                fake.stdin.close()  # the fake server exits when its stdin closes
            fake.wait(timeout=15)
    return result


def _direct(apps: list[AppProcess]) -> tuple[list[AppProcess], list[str], None]:
    """Clients go straight to the replicas."""
    return apps, [app.url for app in apps], None


def _proxied(apps: list[AppProcess], tmp: Path, nginx: Any) -> tuple[list[AppProcess], list[str], Any]:
    """Clients go through nginx, configured as docs/DEPLOY.md section 4."""
    proxy = nginx(tmp / f"nginx-{apps[0].port}", (apps[0].port, apps[1].port))
    return apps, [proxy.url + PREFIX], proxy


def _say(name: str, row: dict[str, Any]) -> None:
    """One line of progress."""
    shown = {k: round(v, 1) if isinstance(v, float) else v for k, v in row.items()
             if not isinstance(v, dict | list) or k == "errors"}
    print(f"{name}: {shown}", flush=True)


def table(result: dict[str, Any]) -> str:
    """The figures as Markdown."""
    m = result["machine"]
    lines = [f"Machine: {m['cpus']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, load {m['load_average']}, "
             f"Python {m['python']}, {m['postgresql']}, {m['nginx']}; reply {result['chunks']} chunks at "
             f"{result['pace_ms']:g} ms each", ""]
    if lag := result.get("lag"):
        lines += ["| follow on B vs A | streams | errors | lag p50 / p95 / p99 / max ms | first event p50 / max ms "
                  "| p95 after 0.5 s | CPU s (A, B, postgres, clients) | met (p95 ≤ 250 ms) |",
                  "|---|---:|---:|---|---|---:|---|---|",
                  f"| {lag['events_compared']} events | {lag['streams']} | {len(lag['errors'])} | "
                  f"{lag['lag_p50_ms']:.0f} / {lag['lag_p95_ms']:.0f} / {lag['lag_p99_ms']:.0f} / "
                  f"{lag['lag_max_ms']:.0f} | {lag['first_event_lag_p50_ms']:.0f} / "
                  f"{lag['first_event_lag_max_ms']:.0f} "
                  f"| {lag['settled_lag_p95_ms']:.0f} | {_cpu_cell(lag['cpu_s'])} | {lag['met']} |", ""]
    if stop := result.get("stop"):
        lines += [f"Stop through B of a run on A ({stop['runs']} runs, {len(stop['errors'])} errors): answered "
                  f"p50 {stop['stop_answer_p50_ms']:.0f} ms (max {stop['stop_answer_max_ms']:.0f}); `done: stopped` "
                  f"on A's stream p50 {stop['done_on_a_p50_ms']:.0f} ms (max {stop['done_on_a_max_ms']:.0f}) after "
                  "the stop request", ""]
    if load := result.get("load"):
        lines += ["| load | clients × rounds | errors | wall s | replies/s | tokens/s | read gap p50 / p95 / max ms "
                  "| CPU s per process | machine busy / available CPU s |", "|---|---|---:|---:|---:|---:|---|---|---|"]
        for r in load:
            lines.append(f"| {r['config']} (#{r['repeat']}) | {r['clients']} × {r['rounds']} | {r['error_count']} | "
                         f"{r['wall_s']:.1f} | {r['replies_per_s']:.1f} | {r['tokens_per_s']:.0f} | "
                         f"{r['read_gap_p50_ms']:.0f} / {r['read_gap_p95_ms']:.0f} / {r['read_gap_max_ms']:.0f} | "
                         f"{_cpu_cell(r['cpu_s'])} | {r['machine_busy_cpu_s']:.1f} / "
                         f"{r['machine_cpu_available_s']:.1f} |")
        errors = sorted({e for r in load for e in r["errors"]})
        if errors:
            lines.append("errors: " + "; ".join(errors)[:600])
    return "\n".join(lines)


def _cpu_cell(cpu: dict[str, float]) -> str:
    """CPU seconds per process, compactly."""
    return ", ".join(f"{k} {v:.1f}" for k, v in cpu.items())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse flags, run, print the table and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--server", default=os.environ.get("TEST_DATABASE_URL") or PG_SERVER,
                        help="URL of any database on the PostgreSQL server to use (default: TEST_DATABASE_URL, else "
                             f"{PG_SERVER})")
    parser.add_argument("--database", default=DB_NAME, help="the database to create there and empty")
    parser.add_argument("--streams", type=int, default=50, help="replies followed on both replicas at once")
    parser.add_argument("--follow-every", type=int, default=1, metavar="K",
                        help="follow only every K-th of the lag phase's streams on B (diagnosis: B's load)")
    parser.add_argument("--stops", type=int, default=10, help="replies stopped across replicas")
    parser.add_argument("--clients", type=int, default=50, help="SSE clients of the load phase")
    parser.add_argument("--rounds", type=int, default=3, help="replies each load client asks in turn")
    parser.add_argument("--repeats", type=int, default=1, help="runs of each load configuration")
    parser.add_argument("--tokens", type=int, default=300, help="reply length in 4-character tokens")
    parser.add_argument("--pace-ms", type=float, default=5.0, help="upstream delay per token")
    parser.add_argument("--only", default="lag,stop,load", help="comma-separated phases: lag, stop, load")
    parser.add_argument("--root", type=Path, metavar="DIR", help="run the replicas from this checkout instead")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy (on PATH) records replicas A and B during the lag phase into DIR/a.txt, b.txt")
    parser.add_argument("--quick", action="store_true", help="10 streams, 3 stops, 10 clients × 1, 150 tokens")
    args = parser.parse_args(argv)
    if args.quick:
        args.streams, args.stops, args.clients, args.rounds, args.tokens = 10, 3, 10, 1, 150
    result = asyncio.run(main_async(args))
    publish(result, table(result), RESULTS)
    return result


if __name__ == "__main__":
    main()
