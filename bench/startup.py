"""Benchmark 5: process start → first page served, and proof that the local model loads lazily.

Run from the repository root: `.venv/bin/python -m bench.startup [--runs 5]`.
Each run starts `python -m app` as a subprocess and polls `/` every 10 ms until the Chat page's HTML
arrives; "cold" runs use a fresh data directory (new database), "warm" runs restart on the same one.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import peak_rss_mb, publish  # noqa: E402
from tests.conftest import AppProcess as _AppProcess  # noqa: E402
from tests.conftest import free_port  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "startup.json"
TARGET_S = 3.0
TIMEOUT_S = 60.0


class AppProcess(_AppProcess):
    """The test suite's app subprocess, started from checkout `cwd` (to compare before/after a patch)."""

    def __init__(self, data_dir: Path, extra_env: dict[str, str], cwd: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTEST_", "NICEGUI_"))}
        env.update({"LANTERN_DATA_DIR": str(data_dir), **extra_env})
        self.log = data_dir.parent / f"app-{self.port}.log"
        data_dir.mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([sys.executable, "-m", "app", "--no-browser", "--port", str(self.port)],
                                     cwd=cwd, env=env, stdout=self.log.open("wb"), stderr=subprocess.STDOUT)


@dataclass
class Start:
    """One measured start-up."""

    kind: str  # cold (new data dir) or warm (existing database)
    first_page_s: float = 0.0
    health_s: float = 0.0
    rss_mb: float = 0.0
    model_mapped: bool = False  # the GGUF weights are mmapped: the model was loaded eagerly
    llama_imported: bool = False  # libllama is loaded (import only, no weights)
    error: str = ""


def measure(data: Path, kind: str, root: Path) -> Start:
    """Start the app (from checkout `root`) on `data`, time the first page, inspect the process, stop it."""
    result = Start(kind=kind)
    t0 = time.monotonic()
    app = AppProcess(data, {"DATABASE_URL": f"sqlite:///{data / 'lantern.db'}"}, cwd=root)
    try:
        with httpx.Client(timeout=5) as client:
            result.first_page_s = _poll(client, app, "/", t0)
            result.health_s = _poll(client, app, "/health", t0)
        maps = Path(f"/proc/{app.proc.pid}/maps").read_text()
        result.model_mapped = ".gguf" in maps
        result.llama_imported = "libllama" in maps
        result.rss_mb = peak_rss_mb(app.proc.pid)
    except Exception as exc:  # a benchmark reports failures instead of stopping
        result.error = f"{type(exc).__name__}: {exc}"
    finally:
        app.stop()
    return result


def _poll(client: httpx.Client, app: AppProcess, path: str, t0: float) -> float:
    """Seconds from `t0` until `path` answers 200 with a body (polled every 10 ms)."""
    while time.monotonic() - t0 < TIMEOUT_S:
        if app.proc.poll() is not None:
            raise RuntimeError(f"app exited: {app.log.read_text(errors='replace')[-800:]}")
        try:
            response = client.get(app.url + path)
            if response.status_code == 200 and response.content:
                return time.monotonic() - t0
        except httpx.TransportError:
            pass
        time.sleep(0.01)
    raise TimeoutError(f"{path} not served within {TIMEOUT_S:.0f} s")


def run(runs: int, root: Path = ROOT) -> dict[str, object]:
    """`runs` cold and `runs` warm starts, alternating; medians and the lazy-loading check."""
    starts: list[Start] = []
    with tempfile.TemporaryDirectory(prefix="lantern-bench-start-") as tmp:
        for i in range(runs):
            data = Path(tmp) / f"data{i}"
            starts.append(measure(data, "cold", root))
            starts.append(measure(data, "warm", root))
    ok = [s for s in starts if not s.error]
    summary: dict[str, object] = {"runs": runs, "target_s": TARGET_S, "errors": len(starts) - len(ok)}
    for kind in ("cold", "warm"):
        times = [s.first_page_s for s in ok if s.kind == kind]
        summary[f"{kind}_first_page_median_s"] = statistics.median(times) if times else None
        summary[f"{kind}_first_page_max_s"] = max(times) if times else None
    summary["model_loaded_at_start"] = any(s.model_mapped for s in ok)
    summary["llama_imported_at_start"] = any(s.llama_imported for s in ok)
    summary["rss_mb_median"] = statistics.median(s.rss_mb for s in ok) if ok else None
    medians = [v for k, v in summary.items() if k.endswith("median_s") and isinstance(v, float)]
    summary["met"] = bool(ok) and len(ok) == len(starts) and max(medians) <= TARGET_S \
        and not summary["model_loaded_at_start"]
    return {"summary": summary, "starts": [asdict(s) for s in starts]}


def table(result: dict[str, object]) -> str:
    """The summary as a Markdown table."""
    s = result["summary"]
    assert isinstance(s, dict)
    return "\n".join([
        "| start | first page median s | max s | target s |", "|---|---:|---:|---:|",
        f"| cold (new data dir) | {s['cold_first_page_median_s']:.2f} | {s['cold_first_page_max_s']:.2f} "
        f"| {TARGET_S:g} |",
        f"| warm (existing db) | {s['warm_first_page_median_s']:.2f} | {s['warm_first_page_max_s']:.2f} "
        f"| {TARGET_S:g} |",
        "", f"model weights mapped at start: {s['model_loaded_at_start']}; "
            f"llama.cpp imported: {s['llama_imported_at_start']}; RSS {s['rss_mb_median']:.0f} MiB; "
            f"errors {s['errors']}; target met: {s['met']}"])


def main(argv: list[str] | None = None) -> dict[str, object]:
    """Parse flags, run, print the table and write the JSON results."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5, help="cold and warm starts each")
    parser.add_argument("--quick", action="store_true", help="2 runs")
    parser.add_argument("--root", type=Path, default=ROOT, help="another checkout to start (before/after a patch)")
    args = parser.parse_args(argv)
    result = run(2 if args.quick else args.runs, args.root.resolve())
    publish(result, table(result), RESULTS)
    return result


if __name__ == "__main__":
    main()
