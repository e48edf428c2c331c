"""Studio: generate marketing deliverables through a provider chain, then amend, approve and export."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

from services.core.errors import BadInput, Conflict, GenerationFailed, LanternError, NotFound, ProviderError
from services.core.events import Event, ProviderFallback, StepFinished, StepStarted, TextDelta, Usage
from services.core.runs import ActiveRun, RunManager
from services.core.usage import UsageTally
from services.providers.base import ChatMessage, ChatRequest
from services.providers.fallback import FallbackChain
from services.providers.registry import Registry
from services.studio.envelope import DeliverableOut, Envelope, EnvelopeError, Meta, degenerate
from services.studio.modules import KINDS, MODULES, Kind, deliverable_schema
from storage import deliverables as repo
from storage.engine import Database
from storage.models import Deliverable, Run, utcnow

BRIEF_FIELDS = ("brand", "product", "audience", "goal")
MAX_TOKENS = 1000  # room for the longest content a deliverable's schema allows (modules.Kind.max_chars)
SHAPE = ('Reply with only a JSON object: {"title": str, "content_markdown": str, "hashtags": [str]} '
         '(hashtags are single words without "#").')


class RewriteStopped(LanternError):
    """A rewrite was stopped before it finished: the deliverable is unchanged."""

    kind = "stopped"
    status = 409


class StudioService:
    """Generation runs and the draft → amend → approve → export life of each deliverable."""

    def __init__(self, *, db: Database, registry: Registry, runs: RunManager, chain: list[str] | None = None) -> None:
        self.db = db
        self.registry = registry
        self.runs = runs
        self.chain = chain or []

    async def start(self, *, user_id: str, module: str, brief: dict[str, Any], model: str | None = None) -> ActiveRun:
        """Validate the module, brief and chain (nothing stored on error), then generate in the background."""
        if module not in MODULES:
            raise BadInput(f"unknown module '{module}': known are {', '.join(MODULES)}")
        missing = [f for f in BRIEF_FIELDS if not str(brief.get(f) or "").strip()]
        if missing:
            raise BadInput(f"the brief needs {', '.join(missing)}")
        chain = list(dict.fromkeys([m for m in [model, *self.chain] if m] or [self.registry.default_model]))
        for model_id in chain:
            self.registry.resolve(model_id, check_available=False)  # unknown names fail now, keys may come later
        run = Run(user_id=user_id, kind="deliverables", config={"module": module, "brief": brief, "chain": chain})
        body = StudioBody(db=self.db, registry=self.registry, run=run, module=module, brief=brief, chain=chain)
        self.runs.admit(user_id)
        return await self.runs.start(run, body)

    async def get(self, *, user_id: str, deliverable_id: str) -> dict[str, Any]:
        """A deliverable with every version."""
        found = await self.db.call(_with_versions, deliverable_id=deliverable_id, user_id=user_id)
        if found is None:
            raise NotFound(f"No deliverable {deliverable_id}")
        return found

    async def amend(self, *, user_id: str, deliverable_id: str, content: str, note: str = "amended") -> dict[str, Any]:
        """Save edited text as a new version (approved deliverables are locked)."""
        if not content.strip():
            raise BadInput("content_markdown is empty")
        current = await self.get(user_id=user_id, deliverable_id=deliverable_id)
        if current["status"] == "approved":
            raise Conflict("this deliverable is approved and locked")
        await self.db.call(repo.add_version, deliverable_id=deliverable_id, content=content, note=note)
        return await self.get(user_id=user_id, deliverable_id=deliverable_id)

    async def regenerate(self, *, user_id: str, deliverable_id: str, instruction: str) -> dict[str, Any]:
        """Rewrite one deliverable following an instruction and wait: the deliverable with its new version."""
        active = await self.start_regenerate(user_id=user_id, deliverable_id=deliverable_id, instruction=instruction)
        return await self.regenerated(user_id=user_id, active=active)

    async def start_regenerate(self, *, user_id: str, deliverable_id: str, instruction: str) -> ActiveRun:
        """Validate and admit a rewrite, then run it like any generation: rate-limited, counted, stoppable."""
        if not instruction.strip():
            raise BadInput("say how the deliverable should change")
        current = await self.get(user_id=user_id, deliverable_id=deliverable_id)
        if current["status"] == "approved":
            raise Conflict("this deliverable is approved and locked")
        source = await self.db.call(_run_config, run_id=current["run_id"])
        chain = source.get("chain") or [self.registry.default_model]
        # Stored as a `deliverables` run (the kind API.md names); `regenerate` in its config says which sub-kind.
        run = Run(user_id=user_id, kind="deliverables", config={
            "module": current["module"], "brief": source.get("brief") or {}, "chain": chain,
            "regenerate": {"deliverable_id": deliverable_id, "kind": current["kind"],
                           "instruction": instruction.strip(), "run_id": current["run_id"]}})
        body = RewriteBody(db=self.db, registry=self.registry, run=run, item=current, chain=chain)
        self.runs.admit(user_id)
        return await self.runs.start(run, body)

    async def regenerated(self, *, user_id: str, active: ActiveRun) -> dict[str, Any]:
        """Wait for a rewrite run: the deliverable with its new version, or why there is none."""
        status = await self.runs.wait(active.id)
        body = active.body
        assert isinstance(body, RewriteBody)
        if status == "stopped":
            raise RewriteStopped("Regeneration stopped: the deliverable is unchanged.")
        if status != "completed":
            raise body.error or GenerationFailed(f"the rewrite ended as {status}")
        return await self.get(user_id=user_id, deliverable_id=body.item["id"])

    async def approve(self, *, user_id: str, deliverable_id: str) -> dict[str, Any]:
        """Lock the latest version as the approved one."""
        await self.get(user_id=user_id, deliverable_id=deliverable_id)
        await self.db.call(_approve, deliverable_id=deliverable_id)
        return await self.get(user_id=user_id, deliverable_id=deliverable_id)

    async def export(self, *, user_id: str, deliverable_id: str, fmt: str) -> tuple[str, str]:
        """The approved version as Markdown or JSON, with a file name; refused until approved."""
        found = await self.get(user_id=user_id, deliverable_id=deliverable_id)
        if found["status"] != "approved":
            raise Conflict("only approved deliverables can be exported: approve it first")
        approved = next(v for v in found["versions"] if v["version"] == found["approved_version"])
        name = f"{found['kind']}-{found['id'][:8]}.{fmt}"
        if fmt == "json":
            doc = {k: found[k] for k in ("id", "kind", "platform", "title", "hashtags", "module", "run_id")}
            return json.dumps({**doc, "version": approved["version"], "content_markdown": approved["content_markdown"]},
                              indent=2, ensure_ascii=False), name
        tags = " ".join(f"#{t.lstrip('#')}" for t in found["hashtags"])
        body = f"# {found['title']}\n\n{approved['content_markdown'].rstrip()}\n"
        return body + (f"\n{tags}\n" if tags else ""), name


class StudioBody:
    """One model call per deliverable through the chain; invalid or degenerate output is retried once, then reported.

    Degenerate content (a line repeated, rows of emoji...) that is still degenerate on the retry is kept as a draft
    to amend, with a warning: the envelope is then PARTIAL, never SUCCESS.
    """

    def __init__(self, *, db: Database, registry: Registry, run: Run, module: str, brief: dict[str, Any],
                 chain: list[str], structured: bool = True) -> None:
        self.db = db
        # Each deliverable's schema goes with its request, for the provider to enforce; off only to measure (bench).
        self.structured = structured
        self.registry = registry
        self.run = run
        self.module = module
        self.brief = brief
        self.chain = chain
        self.made: list[DeliverableOut] = []
        self.warnings: list[str] = []
        self.answered_by: str | None = None
        self.usage = UsageTally()  # the envelope's figures; the run keeps its own tally of the same events

    async def events(self) -> AsyncIterator[Event]:
        """Progress per deliverable (step events), fallbacks and usage as they happen."""
        for index, kind_id in enumerate(MODULES[self.module]):
            kind = KINDS[kind_id]
            yield StepStarted(index=index, title=kind.title, model=self.chain[0], prompt=self._prompt(kind))
            started, problem, text, warning = time.monotonic(), None, "", None
            best: tuple[dict[str, Any], str | None, str | None] | None = None  # usable reply, who, degenerate?
            for attempt in range(2):
                chain = FallbackChain(self.registry, self.chain, retries=1, backoff_s=0.2)
                prompt = self._prompt(kind) + (f"\n\nYour previous reply was invalid: {problem or warning}."
                                               if attempt else "")
                text, problem = "", None
                request = ChatRequest(model="", messages=[ChatMessage(role="user", content=prompt)],
                                      max_tokens=MAX_TOKENS, schema_name="deliverable",
                                      response_schema=deliverable_schema(kind) if self.structured else None)
                try:
                    async for event in chain.stream(request):
                        if isinstance(event, TextDelta):
                            text += event.delta
                        elif isinstance(event, Usage):
                            self.usage.add(event)
                        if isinstance(event, ProviderFallback | Usage):
                            yield event
                except ProviderError as exc:
                    problem = f"every provider failed ({exc})"
                    break
                parsed, problem = parse_deliverable(text)
                if parsed is not None:
                    warning = degenerate(parsed["content_markdown"], parsed["hashtags"])
                    best = (parsed, chain.answered_by, warning)
                    if warning is None:
                        break
            if best is not None:  # a degenerate reply is still a draft to amend, kept with a warning
                parsed, self.answered_by, warning = best
                await self._store(kind, parsed, self.answered_by)
                problem = None
            if problem:
                self.warnings.append(f"{kind.title}: {problem}")
            elif warning:
                self.warnings.append(f"{kind.title}: the content looks degenerate ({warning}); amend or regenerate it")
            yield StepFinished(index=index, ok=problem is None, response=text,
                               seconds=round(time.monotonic() - started, 3), error=problem)
        if not self.made:
            raise GenerationFailed("no deliverable could be generated: " + "; ".join(self.warnings))

    async def finish(self, status: str, error: LanternError | None) -> dict[str, Any]:
        """The envelope, validated by its own rules before it is stored or returned."""
        return envelope(self.run, module=self.module, status=status, error=error, made=self.made,
                        warnings=self.warnings, usage=self.usage, answered_by=self.answered_by)

    def _prompt(self, kind: Kind) -> str:
        """What to write, for whom, in which shape."""
        brief = "\n".join(f"- {k}: {v}" for k, v in self.brief.items() if v)
        return f"Write a {kind.title} ({kind.guidance}) for this brief:\n{brief}\n\n{SHAPE}"

    async def _store(self, kind: Kind, parsed: dict[str, Any], answered_by: str | None) -> None:
        """Keep the deliverable (version 1) and add it to the envelope."""
        item = Deliverable(user_id=self.run.user_id, run_id=self.run.id, module=self.module, kind=kind.id,
                           platform=kind.platform, title=parsed.get("title") or kind.title,
                           hashtags=parsed.get("hashtags", []))
        await self.db.call(repo.add_deliverable, deliverable=item, content=parsed["content_markdown"])
        self.made.append(DeliverableOut(id=item.id, kind=kind.id, platform=kind.platform, title=item.title,
                                        content_markdown=parsed["content_markdown"], hashtags=item.hashtags,
                                        metadata={"model": answered_by, "version": 1}))


class RewriteBody:
    """One deliverable rewritten following an instruction; a usable reply becomes its next version."""

    def __init__(self, *, db: Database, registry: Registry, run: Run, item: dict[str, Any], chain: list[str]) -> None:
        self.db = db
        self.registry = registry
        self.run = run
        self.item = item
        self.chain = chain
        self.instruction: str = run.config["regenerate"]["instruction"]
        self.made: list[DeliverableOut] = []
        self.warnings: list[str] = []
        self.answered_by: str | None = None
        self.usage = UsageTally()
        self.error: LanternError | None = None

    async def events(self) -> AsyncIterator[Event]:
        """One step: the rewrite's text, fallbacks and usage as they happen, then the stored version."""
        kind = KINDS[self.item["kind"]]
        prompt = (f"Here is a {kind.title}:\n\n{self.item['versions'][-1]['content_markdown']}\n\n"
                  f"Rewrite it: {self.instruction}\n{SHAPE}")
        yield StepStarted(index=0, title=f"Rewrite: {kind.title}", model=self.chain[0], prompt=prompt)
        started, text = time.monotonic(), ""
        chain = FallbackChain(self.registry, self.chain, retries=1)
        request = ChatRequest(model="", messages=[ChatMessage(role="user", content=prompt)], max_tokens=MAX_TOKENS,
                              response_schema=deliverable_schema(kind), schema_name="deliverable")
        async for event in chain.stream(request):
            if isinstance(event, TextDelta):
                text += event.delta
            self.usage.add(event)
            yield event  # text too: the run's tally then keeps a stopped rewrite's tokens and its cap holds
        parsed, problem = parse_deliverable(text)
        seconds = round(time.monotonic() - started, 3)
        if parsed is None:
            yield StepFinished(index=0, ok=False, response=text, seconds=seconds, error=problem)
            raise GenerationFailed(f"the rewrite was not usable: {problem}")
        content = parsed["content_markdown"]
        stored = await self.db.call(_add_unless_approved, deliverable_id=self.item["id"], content=content,
                                    note=f"regenerated: {self.instruction[:200]}")
        if stored is None:  # approved while the model was writing: the lock wins
            raise Conflict("this deliverable was approved meanwhile and is locked")
        self.answered_by = chain.answered_by
        if warning := degenerate(content, self.item.get("hashtags")):
            self.warnings.append(f"{kind.title}: the content looks degenerate ({warning}); amend or regenerate it")
        self.made.append(DeliverableOut(id=self.item["id"], kind=kind.id, platform=self.item["platform"],
                                        title=self.item["title"], content_markdown=content,
                                        hashtags=self.item.get("hashtags") or [],
                                        metadata={"model": self.answered_by, "version": stored}))
        yield StepFinished(index=0, ok=True, response=text, seconds=seconds)

    async def finish(self, status: str, error: LanternError | None) -> dict[str, Any]:
        """An envelope with the rewritten deliverable; the error is kept for whoever awaits the rewrite."""
        self.error = error
        return envelope(self.run, module=self.item["module"], status=status, error=error, made=self.made,
                        warnings=self.warnings, usage=self.usage, answered_by=self.answered_by)


def envelope(run: Run, *, module: str, status: str, error: LanternError | None, made: list[DeliverableOut],
             warnings: list[str], usage: UsageTally, answered_by: str | None) -> dict[str, Any]:
    """A run's envelope as API.md shapes it, validated by its own rules."""
    provider, _, model = (answered_by or "").partition("/")
    meta = Meta(timestamp=utcnow().isoformat(), provider=provider or None, model=model or None,
                cost_usd=round(usage.cost_usd, 6), tokens_used=usage.input_tokens + usage.output_tokens,
                warnings=warnings, trace_id=run.trace_id)
    if error is not None or status != "completed" or not made:
        message = str(error) if error else f"generation {status}"
        return Envelope(status="FAILED", module=module, run_id=run.id, meta=meta, deliverables=[],
                        error=EnvelopeError(type=error.kind if error else status, message=message,
                                            trace_id=run.trace_id)).model_dump(mode="json")
    return Envelope(status="PARTIAL" if warnings else "SUCCESS", module=module, run_id=run.id, meta=meta,
                    deliverables=made).model_dump(mode="json")


def parse_deliverable(text: str) -> tuple[dict[str, Any] | None, str | None]:
    """JSON with non-empty `content_markdown`, or plain markdown; ids-without-content is invalid."""
    stripped = text.strip().removeprefix("```json").removeprefix("```").removesuffix("```").strip()
    if not stripped:
        return None, "the reply is empty"
    if stripped.startswith(("{", "[")):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as exc:
            return None, f"not valid JSON ({exc.msg})"
        if not isinstance(data, dict) or not str(data.get("content_markdown") or "").strip():
            return None, "no content_markdown (a manifest without content is not a deliverable)"
        tags = data.get("hashtags") or []
        return {"title": str(data.get("title") or ""), "content_markdown": str(data["content_markdown"]),
                "hashtags": [str(t) for t in tags] if isinstance(tags, list) else []}, None
    return {"title": "", "content_markdown": stripped, "hashtags": []}, None


def _with_versions(session: Any, *, deliverable_id: str, user_id: str) -> dict[str, Any] | None:
    """A deliverable and its versions as JSON-ready dicts."""
    found = repo.get_deliverable(session, deliverable_id=deliverable_id, user_id=user_id)
    if found is None:
        return None
    return {**found.model_dump(mode="json", exclude={"user_id"}),
            "versions": [v.model_dump(mode="json", exclude={"id", "deliverable_id"})
                         for v in repo.versions(session, deliverable_id=deliverable_id)]}


def _run_config(session: Any, *, run_id: str) -> dict[str, Any]:
    """The generation's config (its provider chain)."""
    run = session.get(Run, run_id)
    return run.config if run is not None else {}


def _add_unless_approved(session: Any, *, deliverable_id: str, content: str, note: str) -> int | None:
    """A new version's number, or None when the deliverable is approved (checked in the same transaction)."""
    item = session.get(Deliverable, deliverable_id)
    if item is None or item.status == "approved":
        return None
    return int(repo.add_version(session, deliverable_id=deliverable_id, content=content, note=note).version)


def _approve(session: Any, *, deliverable_id: str) -> None:
    """Approve the latest version."""
    item = session.get(Deliverable, deliverable_id)
    item.approved_version = repo.versions(session, deliverable_id=deliverable_id)[-1].version
    item.status = "approved"
    session.add(item)
