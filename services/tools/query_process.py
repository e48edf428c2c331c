"""Query processes: `sql_query` runs in a child process that ends at the query's deadline, whatever SQLite is doing.

SQLite looks at the clock (the progress handler) only between steps of its program, and one step (printf's
`%.*c`, instr, replace or GLOB over large values) can run for many seconds despite SQLITE_LIMIT_LENGTH; a
thread cannot be stopped, a process can. Up to MAX_IDLE processes are kept ready between queries; none
outlives the app (stdin closes when it ends, and atexit stops the idle ones).
"""

from __future__ import annotations

import atexit
import contextlib
import json
import logging
import math
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from services.tools.base import ToolError

ROOT = Path(__file__).resolve().parents[2]
START_ALLOWANCE_S = 5.0  # a new query process imports the SQL tool (~0.3 s here) before it reads a query
GRACE_S = 0.2  # past the deadline, how long SQLite gets to stop by itself before its process is ended
MEMORY_BYTES = 1 << 30  # a query process's address space: values are capped at 1 MB, so this is plenty
QUERY_PROCESS = ("import sys; sys.path.insert(0, sys.argv[1]); "
                 "from services.tools.query_process import query_process; query_process()")
OUT_OF_CPU = {-signal.SIGXCPU} if hasattr(signal, "SIGXCPU") else set()  # how RLIMIT_CPU ends a query process
log = logging.getLogger(__name__)


def run_isolated(job: dict[str, Any], timeout_s: float) -> str:
    """Run one job (db, query, max_rows, timeout_s, and `late`: what to say when it runs out of time)."""
    with _idle_lock:
        worker = _idle.pop() if _idle else None
    if worker is None or worker.proc.poll() is not None:
        worker = _QueryProcess()
    reply = worker.ask(job, timeout=timeout_s + GRACE_S + START_ALLOWANCE_S)
    kept = False
    if reply is not None and not reply.get("ended"):
        with _idle_lock:
            kept = len(_idle) < MAX_IDLE
            if kept:
                _idle.append(worker)
    if not kept:
        worker.stop()
    if reply is None and not worker.timed_out and worker.proc.returncode not in OUT_OF_CPU:
        log.warning("a SQL query process ended without an answer (exit code %s)", worker.proc.returncode)
        raise ToolError("The query could not be run: its process ended unexpectedly. Try a simpler query.")
    if reply is None:
        raise ToolError(str(job["late"]))
    if "error" in reply:
        raise ToolError(str(reply["error"]))
    return str(reply["text"])


class _QueryProcess:
    """A child that runs queries one at a time and ends itself at a query's deadline (it is then replaced)."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-I", "-c", QUERY_PROCESS, str(ROOT)],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        self.replies: queue.SimpleQueue[bytes] = queue.SimpleQueue()
        self.timed_out = False
        threading.Thread(target=self._read, name="sql-replies", daemon=True).start()

    def _read(self) -> None:
        """Pass on each reply line; an empty one when the process has ended."""
        assert self.proc.stdout is not None
        with self.proc.stdout:
            for line in self.proc.stdout:
                self.replies.put(line)
        self.replies.put(b"")

    def ask(self, job: dict[str, Any], timeout: float) -> dict[str, Any] | None:
        """The reply to one job, or None when the process died or said nothing in time."""
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(job).encode() + b"\n")
            self.proc.stdin.flush()
            line = self.replies.get(timeout=timeout)
        except queue.Empty:
            self.timed_out = True
            return None
        except OSError:  # it has ended
            return None
        if not line:
            return None
        reply: dict[str, Any] = json.loads(line)
        return reply

    def stop(self) -> None:
        """End the process at once and reap it."""
        self.proc.kill()
        self.proc.wait()
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()


MAX_IDLE = 2  # query processes kept ready between queries (each ~35 MB, ~0.3 s of CPU to start)
_idle: list[_QueryProcess] = []
_idle_lock = threading.Lock()


@atexit.register
def _stop_idle() -> None:
    """No query process outlives the app."""
    with _idle_lock:
        while _idle:
            _idle.pop().stop()


def query_process() -> None:
    """A query process's main loop: one JSON job per line on stdin, one JSON reply per line on stdout."""
    _limit_memory()
    for line in sys.stdin.buffer:
        _serve(json.loads(line))


def _serve(job: dict[str, Any]) -> None:
    """Answer one job, or, once its deadline has passed, answer for it and end this process."""
    from services.tools.sql import run_query  # the query process imports the SQL tool only here (no cycle)

    timeout_s = float(job["timeout_s"])
    replied = threading.Lock()

    def deadline() -> None:
        # sqlite3 lets go of the GIL while a statement runs, so this fires even inside one long C call.
        if replied.acquire(blocking=False):
            _reply({"error": job["late"], "ended": True})
            os._exit(0)

    timer = threading.Timer(timeout_s + GRACE_S, deadline)
    timer.daemon = True
    timer.start()
    _limit_cpu(timeout_s)
    try:
        result = {"text": run_query(Path(job["db"]), job["query"], int(job["max_rows"]), timeout_s)}
    except ToolError as exc:
        result = {"error": str(exc)}
    timer.cancel()
    if not replied.acquire(blocking=False):
        threading.Event().wait()  # the deadline has answered and is ending the process
    _reply(result)


def _reply(message: dict[str, Any]) -> None:
    """One line to the app."""
    sys.stdout.buffer.write(json.dumps(message).encode() + b"\n")
    sys.stdout.buffer.flush()


def _limit_cpu(timeout_s: float) -> None:
    """Have the kernel end this process too, should the deadline timer ever not get to run (POSIX)."""
    try:
        import resource
    except ImportError:  # Windows: the timer and the app's own timeout remain
        return
    usage = resource.getrusage(resource.RUSAGE_SELF)
    soft = math.ceil(usage.ru_utime + usage.ru_stime + timeout_s + GRACE_S) + 2
    resource.setrlimit(resource.RLIMIT_CPU, (soft, resource.getrlimit(resource.RLIMIT_CPU)[1]))


def _limit_memory() -> None:
    """Cap the process's memory, so no query can take the machine's (POSIX)."""
    try:
        import resource
    except ImportError:
        return
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_BYTES, resource.getrlimit(resource.RLIMIT_AS)[1]))
