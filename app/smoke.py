"""`lantern smoke`: check a running instance end to end; the exit code says which part failed.

0 ok · 1 generation failed or the envelope broke its rules · 2 unreachable or unhealthy · 3 the API
answered outside its contract.
"""

from __future__ import annotations

import argparse
import sys

import httpx
from pydantic import ValidationError

from services.studio.envelope import Envelope

OK, GENERATION, UNREACHABLE, CONTRACT = 0, 1, 2, 3
BRIEF = {"brand": "Lantern", "product": "smoke test", "audience": "operators", "goal": "a green check"}


def main(argv: list[str] | None = None) -> None:
    """Run the checks and exit with the class of the first failure."""
    parser = argparse.ArgumentParser(prog="lantern smoke", description="Check a running Lantern end to end.")
    parser.add_argument("--url", default="http://127.0.0.1:8080", help="the instance (default %(default)s)")
    parser.add_argument("--model", help="model for the generation check (default: the server's default)")
    parser.add_argument("--module", default="campaign", help="deliverables module (default %(default)s)")
    parser.add_argument("--timeout", type=float, default=300, help="seconds for the generation (default %(default)s)")
    args = parser.parse_args(argv)
    code, message = check(args.url.rstrip("/"), model=args.model, module=args.module, timeout=args.timeout)
    print(f"lantern smoke: {message}", file=sys.stdout if code == OK else sys.stderr)
    sys.exit(code)


def check(url: str, *, model: str | None, module: str, timeout: float) -> tuple[int, str]:
    """(exit code, one-line reason)."""
    try:
        health = httpx.get(f"{url}/health", timeout=5)
    except httpx.HTTPError as exc:
        return UNREACHABLE, f"cannot reach {url} ({type(exc).__name__})"
    if health.status_code != 200 or health.json().get("status") != "ok":
        return UNREACHABLE, f"{url}/health says {health.status_code} {health.text[:120]}"
    try:
        models = httpx.get(f"{url}/api/models", timeout=10).json()
        available = [m["id"] for m in models["models"] if m["available"]]
    except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
        return CONTRACT, f"/api/models answered outside the contract ({type(exc).__name__})"
    if not available:
        return CONTRACT, "/api/models lists no available model"
    body = {"module": module, "brief": BRIEF, **({"model": model} if model else {})}
    try:
        response = httpx.post(f"{url}/api/deliverables/generate", json=body, timeout=timeout)
    except httpx.HTTPError as exc:
        return UNREACHABLE, f"generation request failed ({type(exc).__name__})"
    if response.status_code != 200:
        return CONTRACT, f"generate answered {response.status_code}: {response.text[:160]}"
    try:
        envelope = Envelope.model_validate(response.json())
    except (ValidationError, ValueError) as exc:
        return GENERATION, f"the envelope breaks its rules: {str(exc).splitlines()[0]}"
    if envelope.status == "FAILED":
        error = envelope.error.message if envelope.error else "no reason given"
        return GENERATION, f"generation FAILED: {error} (trace {envelope.meta.trace_id})"
    return OK, (f"ok — health, {len(available)} models, {envelope.status} with {len(envelope.deliverables)} "
                f"deliverables from {envelope.meta.provider}/{envelope.meta.model}")
