"""Structured output on the embedded model: valid-JSON replies, completed pipelines, valid Studio envelopes.

Run from the repository root: `.venv/bin/python -m bench.structured [--quick] [--only before|after]`.
Over 10 fixed topics (3 with --quick) SmolLM2-135M runs the built-in assessment pipeline (one attempt, so
a judge who finds no difference ends the run without a loop) and Studio's `campaign` through the run manager,
as the app does, twice: *before*, the JSON steps and deliverables without a schema (the prompt alone asks for
JSON, as before issue #17); *after*, with the schema sent and enforced by a llama.cpp grammar.
A reply is valid JSON when the whole reply parses and matches its schema; a step counts as accepted when the
step's own validation took it. Results: bench/results/structured.json.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.common import publish  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "structured.json"
MODEL = "local/smollm2"
# (pipeline topic, Studio brief): fixed so before and after see the same work.
TOPICS: list[tuple[str, dict[str, str]]] = [
    ("Python list comprehensions", {"brand": "Lumen", "product": "solar camping lantern", "audience": "campers",
                                    "goal": "pre-orders"}),
    ("SQL joins", {"brand": "Brewly", "product": "cold brew coffee kit", "audience": "students", "goal": "sign-ups"}),
    ("JavaScript promises", {"brand": "Pedal", "product": "folding e-bike", "audience": "commuters",
                             "goal": "test rides"}),
    ("Binary search", {"brand": "Leaf", "product": "indoor herb garden", "audience": "city flat owners",
                       "goal": "first orders"}),
    ("Rust ownership", {"brand": "Nimbus", "product": "weather app", "audience": "hikers", "goal": "downloads"}),
    ("Go goroutines", {"brand": "Stitch", "product": "sewing class", "audience": "beginners", "goal": "bookings"}),
    ("Bash scripting", {"brand": "Crisp", "product": "apple chips", "audience": "parents", "goal": "store visits"}),
    ("Java generics", {"brand": "Orbit", "product": "smart telescope", "audience": "amateur astronomers",
                       "goal": "pre-orders"}),
    ("C pointers", {"brand": "Tide", "product": "surf lessons", "audience": "tourists", "goal": "bookings"}),
    ("Regular expressions", {"brand": "Quill", "product": "note-taking app", "audience": "lawyers",
                             "goal": "trials"}),
]


async def measure(topics: list[tuple[str, dict[str, str]]], modes: list[str]) -> dict[str, Any]:
    """Run both workloads per topic and mode through a throwaway Lantern; tally per mode."""
    from app.context import Lantern
    from app.settings import Settings

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["LANTERN_DATA_DIR"] = tmp
        lantern = Lantern.create(Settings(DATABASE_URL=f"sqlite:///{tmp}/bench.db"))
        await lantern.startup()
        try:
            out: dict[str, Any] = {}
            for mode in modes:
                runs = []
                for topic, brief in topics:
                    pipeline = await run_pipeline(lantern, topic, structured=mode == "after")
                    studio = await run_studio(lantern, brief, structured=mode == "after")
                    runs.append({"topic": topic, "pipeline": pipeline, "studio": studio})
                    print(f"{mode:6} {topic:28} pipeline {pipeline['status']:9} json {pipeline['valid']}/"
                          f"{pipeline['json_replies']}  studio {studio['status']:8} json {studio['valid']}/"
                          f"{studio['replies']}  ({pipeline['seconds'] + studio['seconds']:.0f} s)", flush=True)
                out[mode] = {"runs": runs, "summary": summarise(runs)}
            return out
        finally:
            await lantern.shutdown()


async def run_pipeline(lantern: Any, topic: str, *, structured: bool) -> dict[str, Any]:
    """The built-in assessment pipeline, one attempt, every role on the embedded model."""
    from services.core.events import StepFinished, StepStarted
    from services.core.json_schema import problem
    from services.pipelines.builtin import builtins
    from services.pipelines.definition import step_schema
    from services.pipelines.engine import PipelineBody
    from storage.models import Run

    spec = builtins()["assessment"]
    models = dict.fromkeys(spec.roles, MODEL)
    body = PipelineBody(registry=lantern.registry, spec=spec, topic=topic, models=models, max_attempts=1,
                        structured=structured)
    run = Run(user_id="local", kind="pipeline", config={"pipeline": spec.name, "topic": topic, "bench": True})
    started = time.monotonic()
    await lantern.runs.start(run, body)
    steps = {s.title: s for s in spec.steps}
    titles: dict[int, str] = {}
    json_replies = valid = accepted = 0
    async for _, event in lantern.runs.subscribe(run.id):
        if isinstance(event, StepStarted):
            titles[event.index] = event.title.split(" (attempt")[0].split(" — retry")[0]
        elif isinstance(event, StepFinished):
            step = steps[titles[event.index]]
            if step.output == "json":
                json_replies += 1
                accepted += event.ok
                valid += _valid(event.response, step_schema(step), problem)
    status = await lantern.runs.wait(run.id)
    return {"status": status, "json_replies": json_replies, "valid": valid, "accepted": accepted,
            "completed": status == "completed", "outcome_ok": bool(body.outcome.get("ok")),
            "seconds": round(time.monotonic() - started, 1)}


async def run_studio(lantern: Any, brief: dict[str, str], *, structured: bool) -> dict[str, Any]:
    """Studio's campaign (four deliverables) on the embedded model."""
    from services.core.events import StepFinished, Usage
    from services.core.json_schema import problem
    from services.studio.envelope import Envelope
    from services.studio.modules import KINDS, MODULES, deliverable_schema
    from services.studio.service import StudioBody
    from storage import runs as run_repo
    from storage.models import Run

    run = Run(user_id="local", kind="deliverables", config={"module": "campaign", "brief": brief, "bench": True})
    body = StudioBody(db=lantern.db, registry=lantern.registry, run=run, module="campaign", brief=brief,
                      chain=[MODEL], structured=structured)
    started = time.monotonic()
    await lantern.runs.start(run, body)
    kinds = MODULES["campaign"]
    replies = valid = calls = 0
    async for _, event in lantern.runs.subscribe(run.id):
        calls += isinstance(event, Usage)  # one per model call, retries included
        if isinstance(event, StepFinished):
            replies += 1  # the last reply per deliverable (a retry's first reply is not reported)
            valid += _valid(event.response, deliverable_schema(KINDS[kinds[event.index]]), problem)
    await lantern.runs.wait(run.id)
    envelope = (await lantern.db.call(run_repo.get_run, run_id=run.id)).result
    try:
        Envelope.model_validate(envelope)
        envelope_valid = envelope["status"] != "FAILED"
    except ValueError:
        envelope_valid = False
    return {"status": envelope.get("status"), "replies": replies, "valid": valid, "calls": calls,
            "envelope_valid": envelope_valid,
            "deliverables": len(envelope.get("deliverables") or []),
            "warnings": (envelope.get("meta") or {}).get("warnings", []),
            "seconds": round(time.monotonic() - started, 1)}


def _valid(response: str, schema: dict[str, Any] | None, problem: Any) -> bool:
    """The whole reply is JSON matching the schema."""
    try:
        data = json.loads(response)
    except ValueError:
        return False
    return schema is None or problem(data, schema) is None


def summarise(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Shares over the topics."""
    p = [r["pipeline"] for r in runs]
    s = [r["studio"] for r in runs]
    json_replies = sum(x["json_replies"] for x in p)
    studio_replies = sum(x["replies"] for x in s)
    return {
        "topics": len(runs),
        "pipeline_json_valid": sum(x["valid"] for x in p), "pipeline_json_replies": json_replies,
        "pipeline_json_accepted": sum(x["accepted"] for x in p),
        "pipelines_completed": sum(x["completed"] for x in p),
        "pipelines_differentiating": sum(x["outcome_ok"] for x in p),
        "studio_json_valid": sum(x["valid"] for x in s), "studio_replies": studio_replies,
        "studio_calls": sum(x["calls"] for x in s),
        "envelopes_valid": sum(x["envelope_valid"] for x in s),
        "envelopes_success": sum(x["status"] == "SUCCESS" for x in s),
        "envelopes_partial": sum(x["status"] == "PARTIAL" for x in s),
        "envelopes_complete": sum(x["deliverables"] == 4 for x in s),
        "seconds": round(sum(x["seconds"] for x in p + s), 1),
    }


def table(result: dict[str, Any]) -> str:
    """The before → after figures as Markdown."""
    rows = ["| | " + " | ".join(result) + " |", "|---|" + "---:|" * len(result)]

    def row(label: str, fn: Any) -> None:
        rows.append(f"| {label} | " + " | ".join(fn(m["summary"]) for m in result.values()) + " |")

    row("pipeline JSON replies valid (parse + schema)", lambda s: _share(s["pipeline_json_valid"],
                                                                          s["pipeline_json_replies"]))
    row("pipeline JSON replies accepted by the step", lambda s: _share(s["pipeline_json_accepted"],
                                                                        s["pipeline_json_replies"]))
    row("pipelines completed (every step)", lambda s: _share(s["pipelines_completed"], s["topics"]))
    row("… of which the judge saw a difference", lambda s: _share(s["pipelines_differentiating"], s["topics"]))
    row("Studio replies valid (parse + schema)", lambda s: _share(s["studio_json_valid"], s["studio_replies"]))
    row("Studio model calls for 4 deliverables × topics (retries included)", lambda s: str(s["studio_calls"]))
    row("campaign envelopes valid (not FAILED)", lambda s: _share(s["envelopes_valid"], s["topics"]))
    row("… with all 4 deliverables", lambda s: _share(s["envelopes_complete"], s["topics"]))
    row("… SUCCESS / PARTIAL", lambda s: f"{s['envelopes_success']} / {s['envelopes_partial']}")
    row("model time", lambda s: f"{s['seconds']:.0f} s")
    return "\n".join(rows)


def _share(n: int, total: int) -> str:
    """n/total (percent)."""
    return f"{n}/{total} ({100 * n / total:.0f} %)" if total else "–"


def main() -> None:
    """Parse flags, measure, publish."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="3 topics instead of 10")
    parser.add_argument("--only", choices=["before", "after"], help="one mode only")
    args = parser.parse_args()
    topics = TOPICS[:3] if args.quick else TOPICS
    modes = [args.only] if args.only else ["before", "after"]
    started = time.monotonic()
    result = asyncio.run(measure(topics, modes))
    publish({"quick": args.quick, "cores": os.cpu_count(), "wall_seconds": round(time.monotonic() - started, 1),
             **result}, table(result), RESULTS)


if __name__ == "__main__":
    main()
