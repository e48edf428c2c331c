"""The gateway: another client's chat request, run over Lantern's providers as a Lantern run.

Serves the OpenAI-compatible endpoint (app/api/openai_routes.py) without knowing its wire shapes. A call
names a model as `provider/model` or `chain/<name>` (a fallback chain from `LANTERN_CHAINS`); the client's
own function tools are offered to the model and its tool calls handed back, never executed here. A recorded
call is a chat run of the run manager (rate limit, token cap, stop) whose conversation holds the client's
messages and the reply; an unrecorded one passes the same admission and cap but stores nothing.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from typing import Any

from services.chat.reply import ReplyBody
from services.chat.service import fit_history, make_title
from services.core.errors import (
    BadField,
    LanternError,
    ProviderAuth,
    ProviderUnavailable,
    TokenCapReached,
    UnknownModel,
)
from services.core.events import Done, Error, Event, RunStatus, TextDelta, ToolCall, Usage
from services.core.runs import RunManager
from services.core.usage import UsageTally
from services.providers.base import ChatMessage, ChatRequest, Provider, tokens_for_chars
from services.providers.fallback import FallbackChain
from services.providers.registry import Registry
from storage import conversations as conv_repo
from storage.engine import Database
from storage.models import Run

log = logging.getLogger(__name__)

CHAIN_PREFIX = "chain/"
ROLES = ("user", "assistant", "tool")  # system prompts travel in GatewayRequest.system
DEFAULT_REPLY_TOKENS = 512


@dataclass(frozen=True, kw_only=True, slots=True)
class GatewayRequest(ChatRequest):
    """A client's chat request in Lantern's terms: `model` is `provider/model` or `chain/<name>`, and the reply
    is cut at the client's `stop` sequences here (providers never see them)."""

    stop: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True, slots=True)
class GatewayModel:
    """A model a client may name."""

    id: str
    owned_by: str


class GatewayCall:
    """A started call: its events in batches, ending with `Done`; `close()` stops it if it still runs."""

    run_id: str | None = None
    conversation_id: str | None = None

    async def next(self, timeout: float | None = None) -> list[Event] | None:
        """The events not read yet, `[]` when `timeout` passes quietly, None once all are read."""
        raise NotImplementedError

    async def close(self) -> None:
        """Stop the call (closing the upstream request) unless it has ended."""
        raise NotImplementedError


class Gateway:
    """Starts client calls as runs over the registry's providers and the named chains."""

    def __init__(self, *, db: Database, registry: Registry, runs: RunManager,
                 chains: dict[str, list[str]] | None = None, max_prompt_chars: int = 200_000) -> None:
        self.db = db
        self.registry = registry
        self.runs = runs
        self.chains = dict(chains or {})
        self.max_prompt_chars = max_prompt_chars

    async def models(self) -> list[GatewayModel]:
        """Every model available now (servers asked briefly), then the chains with a usable member."""
        infos = await self.registry.list_models_live()
        available = [GatewayModel(id=i.id, owned_by=i.provider) for i in infos if i.available]
        usable = {m.id for m in available}
        chains = [GatewayModel(id=CHAIN_PREFIX + name, owned_by="lantern")
                  for name, members in self.chains.items() if usable.intersection(members)]
        return available + chains

    async def model(self, model_id: str) -> GatewayModel:
        """One model a client may name, or UnknownModel."""
        found = next((m for m in await self.models() if m.id == model_id), None)
        if found is None:
            raise UnknownModel(f"The model '{model_id}' does not exist or is not available here: "
                               "GET /v1/models lists the models you can use")
        return found

    async def start(self, *, user_id: str, request: GatewayRequest, record: bool = True) -> GatewayCall:
        """Validate, admit and start the call; recorded calls store a conversation and a chat run."""
        self._validate(request)
        upstream, supports_tools, window = self._upstream(request.model)
        if request.tools and not supports_tools:
            raise BadField(f"{request.model} cannot call tools: leave out `tools` or pick a model that "
                           "supports them", "tools")
        messages = self._fit(request, window)
        chat = replace(request, model=request.model.partition("/")[2], messages=messages, extra=dict(request.extra))
        provider = Upstream(request.model, upstream, stops=request.stop, prompt_chars=_chars(request))
        self.runs.admit(user_id)  # after validation, before anything is stored or sent
        if not record:
            return DirectCall(provider.stream(chat), max_tokens=self.runs.max_run_tokens)
        return await self._recorded(user_id, request, chat, provider, dropped=len(request.messages) - len(messages))

    async def _recorded(self, user_id: str, request: GatewayRequest, chat: ChatRequest, provider: Upstream, *,
                        dropped: int) -> GatewayCall:
        """Store the conversation, start the chat run, follow it."""
        run = Run(user_id=user_id, kind="chat", config={
            "model": request.model, "temperature": request.temperature, "max_tokens": request.max_tokens,
            "tools": [], "client_tools": [t.name for t in request.tools], "source": "openai",
            "dropped_messages": dropped})
        conv_id, message_id = await self.db.call(
            _store_call, user_id=user_id, request=request, run_id=run.id)
        run.conversation_id = conv_id
        run.config["message_id"] = message_id
        body = ReplyBody(db=self.db, provider=provider, request=chat, message_id=message_id, dropped=dropped)
        active = await self.runs.start(run, body)
        return RecordedCall(self.runs, active.id, conv_id)

    def _upstream(self, model_id: str) -> tuple[Callable[[ChatRequest], AsyncIterator[Event]], bool, int | None]:
        """How to stream from the model or chain, whether it takes tools, and its context window if small."""
        if model_id.startswith(CHAIN_PREFIX):
            members = self.chains.get(model_id.removeprefix(CHAIN_PREFIX))
            if members is None:
                known = ", ".join(CHAIN_PREFIX + n for n in self.chains) or "none (set LANTERN_CHAINS)"
                raise UnknownModel(f"The model '{model_id}' does not exist; the configured chains: {known}")
            resolved = []
            for member in members:
                try:
                    resolved.append(self.registry.resolve(member)[0])
                except LanternError:  # the chain skips it too
                    continue
            if not resolved:
                raise UnknownModel(f"No model of the chain '{model_id}' is available: {', '.join(members)}")
            chain = FallbackChain(self.registry, members, retries=1, backoff_s=0.2)
            return chain.stream, all(p.supports_tools for p in resolved), None
        try:
            provider, name = self.registry.resolve(model_id)
        except ProviderAuth as exc:  # a provider without its key: to a client, a model this server does not have
            raise UnknownModel(f"{exc}. GET /v1/models lists the models you can use") from exc
        return provider.stream, provider.supports_tools, provider.context_tokens(name)

    def _validate(self, request: GatewayRequest) -> None:
        """Refuse requests that cannot make a sensible reply, naming the field."""
        if not request.model.strip():
            raise BadField("model is empty: name one of GET /v1/models", "model")
        if not request.messages:
            raise BadField("messages holds no user, assistant or tool message", "messages")
        calls: set[str] = set()
        for m in request.messages:
            if m.role not in ROLES:
                raise BadField(f"a message's role must be system, user, assistant or tool, not {m.role!r}", "messages")
            if m.role == "tool" and m.tool_call_id not in calls:
                raise BadField(f"a tool message answers tool call {m.tool_call_id!r}, which no earlier assistant "
                               "message made", "messages")
            calls.update(c.id for c in m.tool_calls)
        if not any(m.role == "user" for m in request.messages):
            raise BadField("messages needs at least one user message", "messages")
        if _chars(request) > self.max_prompt_chars:
            raise BadField(f"the prompt is longer than {self.max_prompt_chars} characters", "messages")
        if request.temperature is not None and not 0 <= request.temperature <= 2:
            raise BadField("temperature must be between 0 and 2", "temperature")
        if request.max_tokens is not None and request.max_tokens < 1:
            raise BadField("max_tokens must be at least 1", "max_tokens")

    @staticmethod
    def _fit(request: GatewayRequest, window: int | None) -> list[ChatMessage]:
        """The messages that fit a small context window (oldest dropped first, never a tool result first)."""
        if window is None:
            return request.messages
        newest = request.messages[-1]
        if tokens_for_chars(len(newest.content)) > window:
            raise BadField(f"the last message is about {tokens_for_chars(len(newest.content))} tokens, more than "
                           f"{request.model}'s context window of {window}", "messages")
        kept, _ = fit_history(request.messages, system=request.system, budget_tokens=window,
                              reply_tokens=request.max_tokens or DEFAULT_REPLY_TOKENS)
        while len(kept) > 1 and kept[0].role == "tool":  # a result without its call means nothing to a model
            kept.pop(0)
        return kept


class Upstream(Provider):
    """One model or a chain as the run's provider, cut at the client's stop sequences.

    An empty reply is refused here, naming the model the client asked for.
    """

    name = "gateway"

    def __init__(self, model_id: str, source: Callable[[ChatRequest], AsyncIterator[Event]], *,
                 stops: tuple[str, ...] = (), prompt_chars: int = 0) -> None:
        self.model_id = model_id
        self.source = source
        self.stops = tuple(s for s in stops if s)
        self.prompt_chars = prompt_chars

    def models(self) -> list[str]:
        """The one model it serves."""
        return [self.model_id.partition("/")[2]]

    async def stream(self, request: ChatRequest) -> AsyncIterator[Event]:
        """The source's events, ending early at a stop sequence."""
        produced = False
        events = self.source(request)
        cut = _cut_at_stops(events, self.stops, self.prompt_chars) if self.stops else events
        try:
            async for event in cut:
                produced = produced or isinstance(event, TextDelta | ToolCall)
                yield event
        finally:  # a stop sequence, the cap or a stop: the upstream request ends now, not when collected
            await _aclose(cut)
            await _aclose(events)
        if not produced:
            raise ProviderUnavailable(f"{self.model_id} returned an empty reply; try again or pick another model")


class RecordedCall(GatewayCall):
    """A call run by the run manager: followed like any run, stopped like any run."""

    def __init__(self, runs: RunManager, run_id: str, conversation_id: str) -> None:
        self.runs = runs
        self.run_id = run_id
        self.conversation_id = conversation_id
        self._follower = runs.follow(run_id)

    async def next(self, timeout: float | None = None) -> list[Event] | None:
        """The run's next batch of events."""
        batch = await self._follower.next(timeout)
        return None if batch is None else [event for _seq, event in batch]

    async def close(self) -> None:
        """Stop the run; its partial reply is kept as `stopped`."""
        assert self.run_id is not None
        await self.runs.stop(self.run_id)


class DirectCall(GatewayCall):
    """A call that stores nothing: the provider stream read by a task of its own, capped like a run."""

    def __init__(self, events: AsyncIterator[Event], *, max_tokens: int = 0) -> None:
        self.max_tokens = max_tokens
        self._events: list[Event] = []
        self._read = 0
        self._ended = False
        self._wake = asyncio.Event()
        self._task = asyncio.get_running_loop().create_task(self._drive(events), name="gateway-call")

    async def next(self, timeout: float | None = None) -> list[Event] | None:
        """What the task produced since the last call."""
        while True:
            if self._read < len(self._events):
                batch, self._read = self._events[self._read:], len(self._events)
                return batch
            if self._ended:
                return None
            try:
                async with asyncio.timeout(timeout):
                    await self._wake.wait()
            except TimeoutError:
                return []

    async def close(self) -> None:
        """Cancel the task, which closes the upstream request."""
        if not self._task.done():
            self._task.cancel()
            await asyncio.wait({self._task}, timeout=5)

    async def _drive(self, events: AsyncIterator[Event]) -> None:
        """Read the stream to its end, failure, cap or cancellation; always end with `Done`."""
        tally = UsageTally()
        status: RunStatus = "completed"
        try:
            try:
                async for event in events:
                    tally.add(event)
                    self._push(event)
                    if self.max_tokens and tally.total_tokens > self.max_tokens:
                        raise TokenCapReached(f"This call used {tally.total_tokens} tokens, above this server's "
                                              f"cap of {self.max_tokens} per run (LANTERN_MAX_RUN_TOKENS)")
            finally:
                await _aclose(events)
        except asyncio.CancelledError:
            status = "stopped"
        except LanternError as exc:
            status = "failed"
            self._push(Error(error_type=exc.kind, message=str(exc)))
        except Exception:  # a bug must not look like a hung stream to the client
            log.exception("gateway call failed")
            status = "failed"
            self._push(Error(error_type="internal", message="internal error; see the server log"))
        self._push(Done(status=status, run_id=""))
        self._ended = True
        self._wake.set()

    def _push(self, event: Event) -> None:
        """Keep one event and wake the reader."""
        self._events.append(event)
        wake, self._wake = self._wake, asyncio.Event()
        wake.set()


def _store_call(session: Any, *, user_id: str, request: GatewayRequest, run_id: str) -> tuple[str, str]:
    """A new conversation with the client's messages and the reply's placeholder, in one transaction.

    The client's tool results are folded into the assistant message that asked for them, as Lantern stores
    its own tool calls (cards with their output), so History shows the exchange as it happened.
    """
    conv_repo.ensure_user(session, user_id=user_id, name=user_id)
    first = next(m.content for m in request.messages if m.role == "user")
    conv = conv_repo.create_conversation(session, user_id=user_id, title=make_title(first or "API call"),
                                         model=request.model, system_prompt=request.system,
                                         temperature=request.temperature)
    results = {m.tool_call_id: m for m in request.messages if m.role == "tool"}
    for m in request.messages:
        if m.role == "tool":
            continue
        extra: dict[str, Any] = {}
        if m.tool_calls:
            text = [{"type": "text", "text": m.content}] if m.content.strip() else []
            extra["parts"] = text + [_tool_part(c, results.get(c.id)) for c in m.tool_calls]
        conv_repo.add_message(session, conversation_id=conv.id, role=m.role, content=m.content, extra=extra)
    placeholder = conv_repo.add_message(session, conversation_id=conv.id, role="assistant", content="",
                                        status="running", run_id=run_id, model=request.model,
                                        provider=request.model.partition("/")[0])
    return conv.id, placeholder.id


def _tool_part(call: ToolCall, result: ChatMessage | None) -> dict[str, Any]:
    """A tool card as stored: the call, and the client's result if it sent one."""
    return {"type": "tool", "id": call.id, "name": call.name, "args": call.args,
            "output": result.content if result else None, "is_error": bool(result and result.is_error),
            "seconds": None}


async def _cut_at_stops(events: AsyncIterator[Event], stops: tuple[str, ...], prompt_chars: int,
                        ) -> AsyncIterator[Event]:
    """Text up to the first stop sequence, then the end; holds back only what could begin one."""
    hold = max(len(s) for s in stops) - 1
    tail = ""  # text not passed on yet: at most `hold` characters plus one delta
    streamed = 0
    async for event in events:
        if not isinstance(event, TextDelta):
            if tail:
                yield TextDelta(delta=tail)
                streamed, tail = streamed + len(tail), ""
            yield event
            continue
        tail += event.delta
        cut = min((i for s in stops if (i := tail.find(s)) >= 0), default=-1)
        if cut >= 0:
            yield TextDelta(delta=tail[:cut])  # even empty: a reply that stops at once is a reply, not a failure
            # The upstream is closed before it reports usage: count what was sent and said, as an estimate.
            yield Usage(input_tokens=tokens_for_chars(prompt_chars), output_tokens=tokens_for_chars(streamed + cut),
                        stop_reason="end", estimated=True)
            return
        if len(tail) > hold:
            ready, tail = tail[:len(tail) - hold], tail[len(tail) - hold:]
            streamed += len(ready)
            yield TextDelta(delta=ready)
    if tail:
        yield TextDelta(delta=tail)


def _chars(request: GatewayRequest) -> int:
    """The prompt's size in characters."""
    return len(request.system or "") + sum(len(m.content) for m in request.messages)


async def _aclose(events: AsyncIterator[Event]) -> None:
    """Close an async generator (and the request behind it) if it is one."""
    close = getattr(events, "aclose", None)
    if close is not None:
        await close()
