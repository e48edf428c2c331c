"""Benchmark 4: history at scale — search, the sidebar's first page and opening a long conversation.

Run from the repository root:
`.venv/bin/python -m bench.history_scale [--messages 1000000] [--backends sqlite,postgres] [--quick]`.
A seeded generator bulk-loads `--messages` messages (100 per conversation on average, one conversation of
1,000) into SQLite and PostgreSQL; then the repository functions the pages use are timed in-process,
and the same reads over HTTP against a real app subprocess. Reusable on its own:
`python -m bench.history_scale --generate-only --db URL --messages N`.
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import text
from sqlalchemy.engine import Engine, make_url

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import publish  # noqa: E402
from storage import conversations as conv_repo  # noqa: E402
from storage.engine import Database, make_engine  # noqa: E402
from storage.migrations import migrate, rebuild_conversation_search  # noqa: E402
from tests.conftest import AppProcess  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "history_scale.json"
SQLITE_DIR = Path(tempfile.gettempdir()) / "lantern-bench-history"
PG_SERVER = "postgresql://postgres@127.0.0.1:55432/"
PG_DB = "lantern_bench"
TARGET_SEARCH_P95_MS = 100.0
USER = "local"
BATCH = 20_000
SYLLABLES = ["ka", "lo", "mi", "ne", "ru", "ta", "vo", "si", "pe", "du", "ga", "fi", "zo", "be", "hu", "ri"]
VOCAB = ["".join(SYLLABLES[(i >> s) % 16] for s in (0, 4, 8, 12) if s == 0 or i >> s) + "n" for i in range(5000)]
CUM = list(itertools.accumulate(1 / (r + 1) for r in range(len(VOCAB))))  # Zipf: word r is 1/(r+1) as frequent
# (label, query): from a word in most messages down to a word in almost none, a pair, a prefix, a miss.
QUERIES = [("common word", VOCAB[0]), ("frequent word", VOCAB[20]), ("medium word", VOCAB[300]),
           ("rare word", VOCAB[4000]), ("two words", f"{VOCAB[20]} {VOCAB[300]}"),
           ("prefix", VOCAB[700][:5]), ("no match", "lanternzzq")]
M_COLS = ("id", "conversation_id", "position", "parent_id", "role", "content", "run_id", "status", "provider",
          "model", "input_tokens", "output_tokens", "cost_usd", "extra", "created_at")
C_COLS = ("id", "user_id", "title", "model", "system_prompt", "temperature", "leaf_id", "created_at",
          "updated_at")


@dataclass(frozen=True)
class Spec:
    """The size of the generated history."""

    messages: int
    seed: int = 7

    @property
    def conversations(self) -> int:
        """100 messages per conversation on average."""
        return max(10, self.messages // 100)

    @property
    def big(self) -> int:
        """Messages in the one long conversation."""
        return min(1000, self.messages // 10)


# ---- generation ------------------------------------------------------------------------------------

def generate(url: str, spec: Spec) -> dict[str, Any]:
    """Create the schema and bulk-load the history (skipped when the database already holds it)."""
    engine = make_engine(url)
    try:
        migrate(engine)
        with engine.connect() as conn:
            have = conn.execute(text("SELECT (SELECT count(*) FROM message), "
                                     "(SELECT count(*) FROM conversation)")).one()
        if tuple(have) == (spec.messages, spec.conversations):
            return {"reused": True, "seconds": 0.0}
        if any(have):
            raise SystemExit(f"{url} holds other data ({have[0]} messages); use an empty database")
        t0 = time.perf_counter()
        load = _load_sqlite if engine.dialect.name == "sqlite" else _load_postgres
        load(engine, spec)
        with engine.begin() as conn:  # the conversation search index, as the v2→v3 migration builds it
            rebuild_conversation_search(conn)
            if engine.dialect.name == "postgresql":
                conn.execute(text("ANALYZE conversation"))
        return {"reused": False, "seconds": time.perf_counter() - t0}
    finally:
        engine.dispose()


def batches(spec: Spec) -> Iterator[tuple[list[tuple[Any, ...]], list[tuple[Any, ...]]]]:
    """(conversation rows, message rows) in batches of about BATCH messages; deterministic for a seed."""
    rng = random.Random(spec.seed)
    pool = rng.choices(VOCAB, cum_weights=CUM, k=1_000_003)  # word stream; messages are random slices of it
    epoch = datetime(2025, 1, 1)
    convs: list[tuple[Any, ...]] = []
    msgs: list[tuple[Any, ...]] = []
    for ci, n in enumerate(_lengths(spec, rng)):
        conv_id, start = _id(rng), epoch + timedelta(seconds=rng.randrange(365 * 86400))
        parent, title = None, ""
        for pos in range(n):
            role = "user" if pos % 2 == 0 else "assistant"
            k = rng.randint(6, 24) if role == "user" else rng.randint(20, 60)
            o = rng.randrange(len(pool) - k)
            content = " ".join(pool[o:o + k]).capitalize() + "."
            title = title or content[:60]
            mid, at = _id(rng), _ts(start + timedelta(seconds=30 * pos))
            msgs.append((mid, conv_id, pos, parent, role, content, None, "completed",
                         None if role == "user" else "local", None if role == "user" else "local/smollm2",
                         0, k if role == "assistant" else 0, 0.0, "{}", at))
            parent = mid
        end = _ts(start + timedelta(seconds=30 * n))
        convs.append((conv_id, USER, title if ci else "The long one: " + title, "local/smollm2", None, None,
                      parent, _ts(start), end))
        if len(msgs) >= BATCH:
            yield convs, msgs
            convs, msgs = [], []
    if convs:
        yield convs, msgs


def _lengths(spec: Spec, rng: random.Random) -> list[int]:
    """Messages per conversation: the long one first, the rest varied around the mean, summing exactly."""
    rest, k = spec.messages - spec.big, spec.conversations - 1
    lengths = [rest // k + (1 if i < rest % k else 0) for i in range(k)]
    for i in range(0, k - 1, 2):  # move a random share between neighbours: varied lengths, same total
        d = rng.randint(0, lengths[i] - 2)
        lengths[i] -= d
        lengths[i + 1] += d
    return [spec.big, *lengths]


def _id(rng: random.Random) -> str:
    """A uuid4-like hex id, reproducible from the seed."""
    return f"{rng.getrandbits(128):032x}"


def _ts(at: datetime) -> str:
    """A timestamp as SQLAlchemy stores DateTime on SQLite, and PostgreSQL's COPY reads."""
    return at.strftime("%Y-%m-%d %H:%M:%S.%f")


def _load_sqlite(engine: Engine, spec: Spec) -> None:
    """executemany in one transaction, with indexes and FTS triggers dropped, then rebuilt."""
    raw: Any = engine.raw_connection()
    try:
        cur = raw.cursor()
        saved = cur.execute("SELECT type, name, sql FROM sqlite_master WHERE tbl_name IN ('message', 'conversation')"
                            " AND type IN ('index', 'trigger') AND sql IS NOT NULL").fetchall()
        for kind, name, _sql in saved:
            cur.execute(f"DROP {kind.upper()} {name}")
        cur.execute("PRAGMA synchronous=OFF")
        _user(cur, "INSERT OR IGNORE INTO user (id, name, role, created_at) VALUES (?, ?, 'admin', ?)")
        for convs, msgs in batches(spec):
            cur.executemany(f"INSERT INTO conversation ({', '.join(C_COLS)}) VALUES ({', '.join('?' * len(C_COLS))})",
                            convs)
            cur.executemany(f"INSERT INTO message ({', '.join(M_COLS)}) VALUES ({', '.join('?' * len(M_COLS))})",
                            msgs)
        for _kind, _name, sql in sorted(saved, key=lambda s: s[0]):  # indexes, then triggers
            cur.execute(sql)
        cur.execute("INSERT INTO message_fts(message_fts) VALUES ('rebuild')")
        raw.commit()
    finally:
        raw.close()


def _load_postgres(engine: Engine, spec: Spec) -> None:
    """COPY with secondary indexes dropped and FK triggers off, then indexes rebuilt and ANALYZE."""
    raw: Any = engine.raw_connection()
    try:
        cur = raw.cursor()
        saved = cur.execute("SELECT indexname, indexdef FROM pg_indexes WHERE tablename IN ('message', 'conversation')"
                            " AND indexname NOT LIKE '%%_pkey'").fetchall()
        for name, _sql in saved:
            cur.execute(f"DROP INDEX {name}")
        cur.execute("SET session_replication_role = replica")  # skip FK checks during the load
        cur.execute("SET maintenance_work_mem = '256MB'")
        _user(cur, "INSERT INTO \"user\" (id, name, role, created_at) VALUES (%s, %s, 'admin', %s) "
                   "ON CONFLICT DO NOTHING")
        for convs, msgs in batches(spec):
            with cur.copy(f"COPY conversation ({', '.join(C_COLS)}) FROM STDIN") as copy:
                for row in convs:
                    copy.write_row(row)
            with cur.copy(f"COPY message ({', '.join(M_COLS)}) FROM STDIN") as copy:
                for row in msgs:
                    copy.write_row(row)
        cur.execute("SET session_replication_role = DEFAULT")
        for _name, sql in saved:
            cur.execute(sql)
        raw.commit()
        raw.driver_connection.autocommit = True
        cur.execute("VACUUM ANALYZE message")  # what autovacuum would do soon after a load this size
        cur.execute("VACUUM ANALYZE conversation")
    finally:
        raw.close()


def _user(cur: Any, sql: str) -> None:
    """The local user the conversations belong to."""
    cur.execute(sql, (USER, USER, _ts(datetime(2025, 1, 1))))


# ---- measurement ------------------------------------------------------------------------------------

def measure(url: str, spec: Spec, reps: int) -> dict[str, Any]:
    """Repository calls as the pages make them, each timed `reps` times after a warm-up."""
    db = Database(url)
    try:
        big = db.session_call(_big_id)
        search: dict[str, list[float]] = {label: [] for label, _q in QUERIES}
        hits: dict[str, int] = {}
        first: list[float] = []
        opened: list[float] = []
        for rep in range(reps + 1):
            for label, q in QUERIES:
                ms, (_items, total) = _timed(db, conv_repo.list_conversations, user_id=USER, q=q, limit=100)
                hits[label] = total
                if rep:
                    search[label].append(ms)
            ms, _ = _timed(db, conv_repo.list_conversations, user_id=USER, q="", limit=100)
            if rep:
                first.append(ms)
            ms, path = _timed(db, conv_repo.current_path, conversation_id=big)
            if rep:
                opened.append(ms)
        all_search = [ms for values in search.values() for ms in values]
        return {"search": _stats(all_search), "sidebar_first_page": _stats(first),
                "open_1000": _stats(opened), "open_1000_messages": len(path),
                "queries": {label: {"q": q, "hits": hits[label], **_stats(search[label])} for label, q in QUERIES}}
    finally:
        db.close()


def measure_http(url: str, reps: int) -> dict[str, Any]:
    """The same reads over HTTP from a real app subprocess (API routes and the chat page's HTML)."""
    with tempfile.TemporaryDirectory(prefix="lantern-bench-hist-") as tmp:
        app = AppProcess(Path(tmp) / "data", {"DATABASE_URL": url})
        try:
            app.wait_ready(timeout=120)
            db = Database(url)
            big = db.session_call(_big_id)
            db.close()
            calls = {"api search": [f"/api/conversations?q={q}&limit=100" for _label, q in QUERIES],
                     "api first page": ["/api/conversations?limit=50"],
                     "api open 1000": [f"/api/conversations/{big}"],
                     "page / (sidebar)": ["/"], "page open 1000": [f"/chat/{big}"]}
            out: dict[str, Any] = {}
            with httpx.Client(base_url=app.url, timeout=60) as client:
                for name, paths in calls.items():
                    times = []
                    for rep in range(reps + 1):
                        for p in paths:
                            t0 = time.perf_counter()
                            client.get(p).raise_for_status()
                            if rep:
                                times.append((time.perf_counter() - t0) * 1000)
                    out[name] = _stats(times)
            return out
        finally:
            app.stop()


def _big_id(session: Any) -> str:
    """The long conversation's id."""
    return str(session.execute(text("SELECT id FROM conversation WHERE title LIKE 'The long one:%'")).scalar_one())


def _timed(db: Database, fn: Callable[..., Any], **kwargs: Any) -> tuple[float, Any]:
    """Milliseconds for one repository call in its own session and transaction, and its result."""
    t0 = time.perf_counter()
    result = db.session_call(fn, **kwargs)
    return (time.perf_counter() - t0) * 1000, result


def _stats(ms: list[float]) -> dict[str, float]:
    """p50 / p95 / max in milliseconds."""
    ordered = sorted(ms)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"p50_ms": statistics.median(ordered), "p95_ms": p95, "max_ms": ordered[-1], "n": len(ordered)}


# ---- orchestration ----------------------------------------------------------------------------------

def run_backend(backend: str, spec: Spec, reps: int, keep: bool, http: bool) -> dict[str, Any]:
    """Generate (or reuse), measure in-process and over HTTP, and clean up what was created."""
    if backend == "sqlite":
        SQLITE_DIR.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{SQLITE_DIR / f'history-{spec.messages}-{spec.seed}.db'}"
    else:
        url = _pg_create(f"{PG_DB}_{spec.messages}")
    try:
        gen = generate(url, spec)
        print(f"{backend}: " + ("reused" if gen["reused"] else f"generated in {gen['seconds']:.1f} s"), file=sys.stderr)
        result = {"backend": backend, "messages": spec.messages, "conversations": spec.conversations,
                  "generate": gen, **measure(url, spec, reps)}
        if http:
            result["http"] = measure_http(url, max(3, reps // 2))
        return result
    finally:
        if backend == "postgres" and not keep:
            _pg_drop(f"{PG_DB}_{spec.messages}")


def _pg_create(name: str) -> str:
    """A benchmark database on the test server (kept from a previous --keep run if there)."""
    import psycopg

    with psycopg.connect(PG_SERVER + "postgres", autocommit=True) as conn:
        if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone() is None:
            conn.execute(f"CREATE DATABASE {name}")
    return PG_SERVER + name


def _pg_drop(name: str) -> None:
    """Drop a benchmark database."""
    import psycopg

    with psycopg.connect(PG_SERVER + "postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def table(results: list[dict[str, Any]]) -> str:
    """Results as Markdown tables: summary per backend, then each query."""
    lines = ["| backend | messages | search p50 ms | search p95 ms | sidebar first page p50 ms "
             "| open 1,000 msgs p50 ms | HTTP search p95 ms | HTTP open page p50 ms | target met |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in results:
        h = r.get("http", {})
        hs = f"{h['api search']['p95_ms']:.0f}" if h else "–"
        ho = f"{h['page open 1000']['p50_ms']:.0f}" if h else "–"
        lines.append(f"| {r['backend']} | {r['messages']:,} | {r['search']['p50_ms']:.1f} "
                     f"| {r['search']['p95_ms']:.1f} "
                     f"| {r['sidebar_first_page']['p50_ms']:.1f} | {r['open_1000']['p50_ms']:.1f} | {hs} | {ho} "
                     f"| {r['search']['p95_ms'] <= TARGET_SEARCH_P95_MS} |")
    lines += ["", "| backend | query | hits | p50 ms | p95 ms |", "|---|---|---:|---:|---:|"]
    for r in results:
        for label, q in r["queries"].items():
            lines.append(f"| {r['backend']} | {label} (`{q['q']}`) | {q['hits']} | {q['p50_ms']:.1f} "
                         f"| {q['p95_ms']:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    """Parse flags, run, print the tables and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--messages", type=int, default=1_000_000)
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--reps", type=int, default=10, help="timed repetitions of every read")
    parser.add_argument("--quick", action="store_true", help="100,000 messages, 3 repetitions")
    parser.add_argument("--no-http", action="store_true", help="skip the app-subprocess part")
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL database for the next run")
    parser.add_argument("--generate-only", action="store_true", help="just load --db with --messages")
    parser.add_argument("--db", help="database URL for --generate-only")
    args = parser.parse_args(argv)
    spec = Spec(messages=100_000 if args.quick else args.messages)
    if args.generate_only:
        print(json.dumps(generate(args.db, spec)))
        return []
    if make_url(PG_SERVER).host != "127.0.0.1":
        raise SystemExit("the PostgreSQL server must be local")
    results = [run_backend(b.strip(), spec, 3 if args.quick else args.reps, args.keep, not args.no_http)
               for b in args.backends.split(",") if b.strip()]
    publish(results, table(results), RESULTS)
    return results


if __name__ == "__main__":
    main()
