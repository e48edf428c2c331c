"""Micro-benchmark: client CPU per streamed chunk in the OpenAI-compatible provider (issue #9).

Run from the repository root: `.venv/bin/python -m bench.openai_chunks [--chunks 20000] [--rounds 3]`.
The fake OpenAI-compatible server runs in a child process, so this process's CPU time is the provider's
own work (HTTP client, SSE parsing, events); the figure is the best round's CPU µs per chunk.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from services.core.events import TextDelta  # noqa: E402
from services.providers.base import ChatMessage, ChatRequest  # noqa: E402
from services.providers.openai_compat import OpenAICompatProvider  # noqa: E402

SERVER = """
import sys
from tests.fakes.openai_server import FakeOpenAI, Reply
with FakeOpenAI(replies=[Reply(text="x" * int(sys.argv[1]), chunk=1)]) as fake:
    print(fake.base_url, flush=True)
    sys.stdin.read()
"""


async def one_round(base_url: str, chunks: int) -> tuple[float, float]:
    """Stream one reply; return (CPU µs, wall µs) per chunk."""
    provider = OpenAICompatProvider(name="bench", api_key=None, base_url=base_url, models=["m"],
                                    key_required=False, timeout_s=60)
    request = ChatRequest(model="m", messages=[ChatMessage(role="user", content="Go")])
    cpu, wall = time.process_time(), time.perf_counter()
    got = sum([isinstance(e, TextDelta) async for e in provider.stream(request)])
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    await provider.client().close()  # before this round's event loop ends
    assert got == chunks, got
    return cpu / chunks * 1e6, wall / chunks * 1e6


def main(argv: list[str] | None = None) -> None:
    """Start the fake server in a child process and time a few rounds against it."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--chunks", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    server = subprocess.Popen([sys.executable, "-c", SERVER, str(args.chunks)], cwd=ROOT,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        results = [asyncio.run(one_round(base_url, args.chunks)) for _ in range(args.rounds)]
    finally:
        assert server.stdin is not None
        server.stdin.close()
        server.wait(timeout=15)
    for n, (cpu, wall) in enumerate(results, 1):
        print(f"round {n}: {cpu:6.1f} µs CPU/chunk, {wall:6.1f} µs wall/chunk")
    print(f"best: {min(c for c, _ in results):.1f} µs CPU per chunk ({args.chunks} chunks)")


if __name__ == "__main__":
    main()
