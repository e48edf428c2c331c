"""Item 6: the SQL tool's time limit stops the work itself, not only the wait for it, and values stay small."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

import pytest

from services.tools.base import Tool, ToolResult, call_tool
from services.tools.registry import build_tools
from services.tools.sql import sql_tools

BIG_A = "printf('%.*c', 990000, 'a')"  # just under the 1,000,000-byte value cap
# Each of these is one SQLite call (or a few) that does not look at the clock while it runs; the seconds are what
# one took on the 2-core development machine before the fix.
RUNAWAYS = {
    "printf-width": "SELECT length(printf('%.*c', 2000000000, 'x'))",  # 9 s: a loop per character, past the cap
    "instr": f"SELECT instr({BIG_A}, printf('%.*c', 495000, 'a') || 'b')",  # 5.5 s: compares at every offset
    "replace": f"SELECT length(replace({BIG_A}, printf('%.*c', 495000, 'a') || 'b', 'c'))",  # 6 s: the same
    "glob-class": f"SELECT {BIG_A} GLOB '*[' || printf('%.*c', 5000, 'b') || ']b'",  # 9 s: the class per character
    "recursive-cte": ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 1000000000) "
                      "SELECT count(*) FROM c"),  # many steps: SQLite's progress handler stops this one
}
GROWN = "A value in the query grew past 1,000,000 bytes"
TOO_BIG = {  # what the query is, what the model reads
    "zeroblob": ("SELECT length(zeroblob(2000000000))", "the function zeroblob() is not allowed"),
    "randomblob": ("SELECT length(randomblob(2000000000))", "the function randomblob() is not allowed"),
    "replace-doubling": ("SELECT length(replace(replace(printf('%.*c', 300000, 'x'), 'x', 'xx'), 'x', 'xx'))", GROWN),
    "group-concat": ("WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 100000) "
                     "SELECT length(group_concat(printf('%.*c', 100, 'x'), '')) FROM c", GROWN),
    "concat": ("SELECT length(printf('%.*c', 600000, 'x') || printf('%.*c', 600000, 'y'))", GROWN),
}
CLOCK_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def cpu_seconds() -> float:
    """CPU used so far by this process, its finished children and every descendant still running."""
    times = os.times()
    total = times.user + times.system + times.children_user + times.children_system
    stats = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:  # gone meanwhile
                continue
            stats[int(entry.name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / CLOCK_TICK)
    ours = {os.getpid()}
    for _ in range(5):  # children, grandchildren...
        ours |= {pid for pid, (parent, _cpu) in stats.items() if parent in ours}
    return total + sum(stats[pid][1] for pid in ours - {os.getpid()} if pid in stats)


@pytest.fixture
def tools(tmp_path: Path) -> dict[str, Tool]:
    """sql_query over the sample database with a 1 s limit per query."""
    db = tmp_path / "sample_business.db"
    build_tools(tmp_path)
    return {t.name: t for t in sql_tools(db, timeout_s=1.0)}


async def query(tools: dict[str, Tool], sql: str) -> ToolResult:
    """Call the tool as the assistant does."""
    return await call_tool(tools, "sql_query", {"query": sql})


@pytest.mark.skipif(sys.platform != "linux", reason="reads the CPU of child processes from /proc")
@pytest.mark.parametrize("sql", list(RUNAWAYS.values()), ids=list(RUNAWAYS))
async def test_a_runaway_query_is_stopped_at_the_limit_and_uses_no_cpu_after(tools: dict[str, Tool], sql: str) -> None:
    result = await query(tools, sql)
    before = cpu_seconds()
    await asyncio.sleep(1.0)
    spent = cpu_seconds() - before
    seen = (f"answered after {result.seconds:.1f} s: {result.output!r}; then {spent:.2f} s of CPU in the next "
            "second (the query still running)")
    assert result.is_error and "The query was stopped after 1 s" in result.output, seen
    assert result.seconds < 2.5, seen
    assert spent < 0.3, seen
    assert (await query(tools, "SELECT count(*) AS n FROM regions")).output.startswith("| n |")


@pytest.mark.parametrize(("sql", "says"), list(TOO_BIG.values()), ids=list(TOO_BIG))
async def test_a_value_past_the_cap_is_refused_at_once(tools: dict[str, Tool], sql: str, says: str) -> None:
    result = await query(tools, sql)
    assert result.is_error and says in result.output, result.output
    assert result.seconds < 2.5, f"answered after {result.seconds:.1f} s"
