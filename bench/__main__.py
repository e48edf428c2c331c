"""Run every benchmark (`make bench`, or `python -m bench [--quick] [--only startup,history]`).

Each benchmark runs as its own process and writes `bench/results/<name>.json`; this collects the headline
figures into `bench/results/summary.json` and a Markdown table, `bench/results/SUMMARY.md`.
`--quick` shrinks every benchmark (a smoke run of a few minutes); the default is full scale.
Optional benchmarks (OPTIONAL) run only when named: `--only replicas` (it needs PostgreSQL and nginx).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"

# name: (module, full-scale flags, quick flags)
BENCHMARKS: dict[str, tuple[str, list[str], list[str]]] = {
    "startup": ("bench.startup", [], ["--quick"]),
    "local_overhead": ("bench.local_overhead", [], ["--quick"]),
    "history_scale": ("bench.history_scale", [], ["--quick"]),
    "concurrency": ("bench.concurrency", [], ["--quick"]),
    "concurrency_isolated": ("bench.concurrency", ["--isolate"], ["--quick", "--isolate"]),
    "stream_browser": ("bench.stream_browser", [], ["--sizes", "1000,4000"]),
    "structured": ("bench.structured", [], ["--quick"]),  # ~28 min in full on 2 cores
}
# Not in the default set: run with `--only replicas`. Replicas on PostgreSQL behind nginx (issue #20), ~2 min.
OPTIONAL: dict[str, tuple[str, list[str], list[str]]] = {
    "replicas": ("bench.replicas", [], ["--quick"]),
}


def main(argv: list[str] | None = None) -> None:
    """Run the chosen benchmarks one after another, then print and write the summary."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes and few repetitions")
    parser.add_argument("--only", default=",".join(BENCHMARKS),
                        help=f"comma-separated benchmark names (optional ones: {', '.join(OPTIONAL)})")
    parser.add_argument("--summary-only", action="store_true", help="rebuild the summary from existing results")
    args = parser.parse_args(argv)
    ran: dict[str, dict[str, Any]] = {}
    for name in [n.strip() for n in args.only.split(",") if n.strip()]:
        if args.summary_only:
            ran[name] = {"exit_code": None, "seconds": None}
            continue
        module, full, quick = {**BENCHMARKS, **OPTIONAL}[name]
        print(f"\n=== {name} ({'quick' if args.quick else 'full'})", flush=True)
        t0 = time.monotonic()
        code = subprocess.call([sys.executable, "-m", module, *(quick if args.quick else full)], cwd=ROOT)
        ran[name] = {"exit_code": code, "seconds": round(time.monotonic() - t0, 1)}
    rows = summary_rows(ran)
    table = "\n".join(["| # | benchmark | result | target | met |", "|---|---|---|---|---|",
                       *(f"| {r['n']} | {r['name']} | {r['result']} | {r['target']} | {r['met']} |" for r in rows)])
    print("\n" + table)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "summary.json").write_text(json.dumps({"quick": args.quick, "ran": ran, "rows": rows}, indent=2) + "\n")
    note = "Quick mode: small sizes, for smoke only. " if args.quick else ""
    (RESULTS / "SUMMARY.md").write_text(f"# Benchmark summary{' (quick)' if args.quick else ''}\n\n{note}"
                                        f"Machine, method and before/after: bench/RESULTS.md.\n\n{table}\n")
    print("\nwrote bench/results/summary.json and bench/results/SUMMARY.md")


def summary_rows(ran: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """One headline row per benchmark, read back from its JSON results."""
    rows = []
    for n, name, fn in ((1, "stream_browser", _streaming), (2, "concurrency", _concurrency),
                        (2, "concurrency_isolated", _concurrency), (3, "local_overhead", _local),
                        (4, "history_scale", _history), (5, "startup", _startup), ("#20", "replicas", _replicas)):
        if name not in ran:
            continue
        path = RESULTS / f"{name}.json"
        try:
            result, target, met = fn(json.loads(path.read_text()))
        except Exception as exc:  # a missing or older results file is reported, not fatal
            result, target, met = f"no results ({type(exc).__name__}; exit {ran[name]['exit_code']})", "", "–"
        rows.append({"n": n, "name": name, "result": result, "target": target, "met": met})
    return rows


def _streaming(data: Any) -> tuple[str, str, str]:
    """Benchmark 1 is reported in bench/STREAMING.md; here, bytes per character and status per size."""
    parts = [f"{r.get('tokens')} tokens: {r.get('bytes_per_char', 0):.2f} B/char, "
             f"{'ok' if r.get('ok') and r.get('complete') else r.get('error') or 'incomplete'}" for r in data]
    return "; ".join(parts), "O(n) bytes; see bench/STREAMING.md", "see STREAMING.md"


def _concurrency(data: Any) -> tuple[str, str, str]:
    """Gaps, errors and CPU ratio of the together phase."""
    s = data["summary"]
    where = "Lantern on its own core; " if s.get("isolated") else "all sharing 2 cores; "
    return (f"{where}{s['tabs']} tabs + {s['clients']} SSE: errors {s['errors']}, SSE token gap p50/p95 "
            f"{s['sse_gap_p50_ms']:.1f}/{s['sse_gap_p95_ms']:.1f} ms, SSE read gap p95 "
            f"{s['sse_read_gap_p95_ms']:.0f} ms, SSE first token p50 {s['sse_first_token_p50_s']:.1f} s, "
            f"tab update gap p50/p95 "
            f"{s['tab_gap_p50_ms']:.0f}/{s['tab_gap_p95_ms']:.0f} ms, CPU/reply together÷alone "
            f"{s['cpu_ratio_vs_alone']:.2f}", "0 errors, p95 ≤ 100 ms",
            f"all: {_yes(s['met'])}; SSE (the server's part): {_yes(s.get('sse_met', s['met']))}")


def _local(data: Any) -> tuple[str, str, str]:
    """Median ratio of decode rates."""
    s = data["summary"]
    return (f"{s['lantern_tps_median']:.1f} ÷ {s['direct_tps_median']:.1f} tok/s = {s['ratio_median']:.3f}",
            "≥ 0.95", _yes(s["met"]))


def _history(data: Any) -> tuple[str, str, str]:
    """Search p95 per backend, with the sidebar and the long conversation."""
    parts = [f"{r['backend']} {r['messages']:,} msgs: search p50/p95 {r['search']['p50_ms']:.0f}/"
             f"{r['search']['p95_ms']:.0f} ms, sidebar {r['sidebar_first_page']['p50_ms']:.0f} ms, "
             f"open 1,000 {r['open_1000']['p50_ms']:.0f} ms" for r in data]
    return "; ".join(parts), "search p95 ≤ 100 ms", _yes(all(r["search"]["p95_ms"] <= 100 for r in data))


def _startup(data: Any) -> tuple[str, str, str]:
    """Median seconds to the first page, cold and warm."""
    s = data["summary"]
    return (f"cold {s['cold_first_page_median_s']:.2f} s, warm {s['warm_first_page_median_s']:.2f} s; "
            f"model loaded at start: {s['model_loaded_at_start']}", "≤ 3 s, lazy model", _yes(s["met"]))


def _replicas(data: Any) -> tuple[str, str, str]:
    """Follow lag on another replica, stop across replicas, and the load on one replica vs two."""
    parts = []
    if lag := data.get("lag"):
        parts.append(f"{lag.get('followed_on_b', lag['streams'])} of {lag['streams']} streams on A followed on B: "
                     f"lag p50/p95/max {lag['lag_p50_ms']:.0f}/"
                     f"{lag['lag_p95_ms']:.0f}/{lag['lag_max_ms']:.0f} ms, errors {len(lag['errors'])}")
    if stop := data.get("stop"):
        parts.append(f"stop via B answered p50 {stop['stop_answer_p50_ms']:.0f} ms")
    for row in data.get("load", []):
        parts.append(f"{row['config']}: {row['replies_per_s']:.1f} replies/s, errors {row['error_count']}")
    lag = data.get("lag")
    return "; ".join(parts), "follow lag p95 ≤ 250 ms", _yes(lag["met"]) if lag else "–"


def _yes(ok: bool) -> str:
    """A table cell for a target."""
    return "yes" if ok else "**no**"


if __name__ == "__main__":
    main()
