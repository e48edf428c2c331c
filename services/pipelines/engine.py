"""The pipeline engine: run a definition's steps in order, live, with retries, loops and early stops."""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from services.core.errors import BadInput, LanternError, NotFound, StepFailed
from services.core.events import Event, StepFinished, StepStarted, TextDelta, Usage
from services.core.runs import ActiveRun, RunManager
from services.pipelines.builtin import builtins
from services.pipelines.definition import PipelineDef, StepDef, check_fields, parse_definition, render, step_schema
from services.providers.base import ChatMessage, ChatRequest
from services.providers.registry import Registry
from storage import presets as preset_repo
from storage.engine import Database
from storage.models import Run

FENCE = re.compile(r"^```(?:json)?\s*|\s*```$", re.MULTILINE)


class PipelineService:
    """Starts pipeline runs; keeps people's own pipeline definitions."""

    def __init__(self, *, db: Database, registry: Registry, runs: RunManager) -> None:
        self.db = db
        self.registry = registry
        self.runs = runs

    async def start(self, *, user_id: str, topic: str, pipeline: str | None = "assessment",
                    definition: dict[str, Any] | str | None = None, model: str | None = None,
                    models: dict[str, str] | None = None, max_attempts: int | None = None) -> ActiveRun:
        """Validate (topic, definition, every role's model) before anything is stored, then run."""
        if not topic or not topic.strip():
            raise BadInput("topic is empty: say what the pipeline should work on")
        # Parsing text takes a moment of pure-Python YAML: a worker thread keeps every page responsive meanwhile.
        spec = await asyncio.to_thread(parse_definition, definition) if definition is not None \
            else await self.find(user_id, pipeline or "")
        if max_attempts is not None and not 1 <= max_attempts <= 10:
            raise BadInput("max_attempts must be between 1 and 10")
        unknown_roles = sorted(set(models or {}) - set(spec.roles))
        if unknown_roles:
            raise BadInput(f"unknown role(s) {', '.join(unknown_roles)}: {spec.name} has {', '.join(spec.roles)}")
        chosen = {}
        for role in spec.roles:
            provider, name = self.registry.resolve((models or {}).get(role) or model)
            chosen[role] = f"{provider.name}/{name}"
        attempts = max_attempts or spec.max_attempts
        run = Run(user_id=user_id, kind="pipeline", config={
            "pipeline": spec.name, "topic": topic, "models": chosen, "max_attempts": attempts,
            "definition": spec.model_dump(mode="json")})
        body = PipelineBody(registry=self.registry, spec=spec, topic=topic, models=chosen, max_attempts=attempts)
        self.runs.admit(user_id)
        return await self.runs.start(run, body)

    async def find(self, user_id: str, name: str) -> PipelineDef:
        """A built-in or saved pipeline by name."""
        if name in builtins():
            return builtins()[name]
        saved = {p.name: p.config for p in await self.db.call(preset_repo.list_presets, user_id=user_id,
                                                                  kind="pipeline")}
        if name not in saved:
            known = sorted({*builtins(), *saved})
            raise NotFound(f"No pipeline '{name}': known are {', '.join(known)}")
        return PipelineDef.model_validate(saved[name])

    async def save(self, *, user_id: str, source: str | dict[str, Any]) -> PipelineDef:
        """Validate and keep a person's pipeline under its name (built-in names are reserved)."""
        spec = await asyncio.to_thread(parse_definition, source)  # off the event loop, as in start()
        if spec.name in builtins():
            raise BadInput(f"'{spec.name}' is a built-in pipeline: choose another name")
        await self.db.call(preset_repo.save_preset, user_id=user_id, kind="pipeline", name=spec.name,
                           config=spec.model_dump(mode="json"))
        return spec

    async def names(self, user_id: str) -> list[str]:
        """Built-in and saved pipeline names."""
        saved = await self.db.call(preset_repo.list_presets, user_id=user_id, kind="pipeline")
        return [*builtins(), *(p.name for p in saved if p.name not in builtins())]


class PipelineBody:
    """Runs the steps; every executed step (retries and loops included) is its own numbered card."""

    def __init__(self, *, registry: Registry, spec: PipelineDef, topic: str, models: dict[str, str],
                 max_attempts: int, structured: bool = True) -> None:
        self.registry = registry
        # JSON steps send their schema for the provider to enforce; off only to measure without it (bench).
        self.structured = structured
        self.spec = spec
        self.topic = topic
        self.models = models
        self.max_attempts = max_attempts
        self.records: list[dict[str, Any]] = []
        self.outcome: dict[str, Any] = {}

    async def events(self) -> AsyncIterator[Event]:
        """Steps in order; a loop goes back to `repeat_from`; exhausted attempts stop early."""
        outputs: dict[str, Any] = {}
        attempts: dict[str, int] = {}
        position = 0
        while position < len(self.spec.steps):
            step = self.spec.steps[position]
            async for event in self._step(step, outputs, attempt=1 + sum(attempts.values())):
                yield event
            if step.until is not None and outputs[step.id].get(step.until.field) != step.until.equals:
                attempts[step.id] = attempts.get(step.id, 0) + 1
                if attempts[step.id] >= self.max_attempts:
                    self.outcome = {"ok": False, "reason": f"{step.title}: '{step.until.field}' was never "
                                    f"{json.dumps(step.until.equals)} in {self.max_attempts} attempts",
                                    "result": None}
                    return
                position = next(i for i, s in enumerate(self.spec.steps) if s.id == step.repeat_from)
                continue
            position += 1
        result_id = self.spec.result or self.spec.steps[-1].id
        self.outcome = {"ok": True, "reason": None, "result": outputs.get(result_id)}

    async def finish(self, status: str, error: LanternError | None) -> dict[str, Any]:
        """Every step so far (the failing one with its raw output) and the outcome."""
        for record in self.records:
            if record["status"] == "running":
                record["status"] = status
        return {"pipeline": self.spec.name, "topic": self.topic, "steps": self.records,
                "outcome": self.outcome or {"ok": False, "reason": str(error) if error else status, "result": None}}

    async def _step(self, step: StepDef, outputs: dict[str, Any], *, attempt: int) -> AsyncIterator[Event]:
        """One step with its retries; stores the parsed output in `outputs` or raises StepFailed."""
        prompt = render(step.prompt, topic=self.topic, outputs=outputs)
        if step.output == "json":
            prompt += ("\n\nReply with only a JSON object with these fields: "
                       + ", ".join(f'"{k}" ({v})' for k, v in step.fields.items()) + ".")
        model_id = self.models[step.role]
        provider, model = self.registry.resolve(model_id)
        problem = None
        for tries in range(step.retries + 1):
            asked = prompt if problem is None else f"{prompt}\n\nYour previous reply was invalid: {problem}. Try again."
            index = len(self.records)
            title = (step.title + (f" (attempt {attempt})" if attempt > 1 else "")
                     + (f" — retry {tries}" if tries else ""))
            record: dict[str, Any] = {"index": index, "step_id": step.id, "title": title, "role": step.role,
                                      "model": model_id, "prompt": asked, "response": "", "ok": False,
                                      "status": "running", "error": None, "seconds": 0.0, "input_tokens": 0,
                                      "output_tokens": 0, "cost_usd": 0.0, "parsed": None}
            self.records.append(record)
            yield StepStarted(index=index, title=title, model=model_id, prompt=asked)
            started = time.monotonic()
            request = ChatRequest(model=model, messages=[ChatMessage(role="user", content=asked)],
                                  max_tokens=step.max_tokens, temperature=0.7 if step.output == "text" else 0.2,
                                  response_schema=step_schema(step) if self.structured else None,
                                  schema_name=step.id)
            async for event in provider.stream(request):
                if isinstance(event, TextDelta):
                    record["response"] += event.delta
                elif isinstance(event, Usage):
                    record.update(input_tokens=event.input_tokens, output_tokens=event.output_tokens,
                                  cost_usd=event.cost_usd)
                yield event
            record["seconds"] = round(time.monotonic() - started, 3)
            value, problem = self._parse(step, record["response"])
            record.update(ok=problem is None, error=problem, parsed=value if step.output == "json" else None,
                          status="completed" if problem is None else "failed")
            usage = {k: record[k] for k in ("input_tokens", "output_tokens", "cost_usd")}
            yield StepFinished(index=index, ok=problem is None, response=record["response"],
                               seconds=record["seconds"], usage=usage, error=problem)
            if problem is None:
                outputs[step.id] = value
                return
        raise StepFailed(f"{step.title} failed after {step.retries + 1} tries: {problem}")

    @staticmethod
    def _parse(step: StepDef, response: str) -> tuple[Any, str | None]:
        """The step's value, or why the response is not acceptable."""
        if step.output == "text":
            return response, None if response.strip() else "the response is empty"
        text = FENCE.sub("", response.strip())
        start, end = text.find("{"), text.rfind("}")
        try:
            data = json.loads(text[start:end + 1] if start != -1 and end > start else text)
        except json.JSONDecodeError as exc:
            return None, f"not valid JSON ({exc.msg})"
        return data, check_fields(step, data)
