"""Chat: a user turn in, an assistant reply out, as a run that persists its message."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from services.chat.reply import ReplyBody
from services.core.errors import BadInput, NotFound
from services.core.runs import ActiveRun, RunManager
from services.providers.base import ChatMessage, ChatRequest
from services.providers.registry import Registry
from services.tools.base import Tool, ToolSource
from storage import conversations as conv_repo
from storage.conversations import LEAF
from storage.engine import Database
from storage.models import Conversation, Message, Run

ROLES = ("user", "assistant", "system")
TITLE_CHARS = 60
DEFAULT_REPLY_TOKENS = 512


@dataclass(frozen=True, kw_only=True, slots=True)
class ChatStart:
    """What starting a reply created."""

    conversation_id: str
    run: ActiveRun
    provider: str
    model: str
    message_id: str
    dropped: int = 0


class ChatService:
    """Starts replies as runs and stores conversations."""

    def __init__(self, *, db: Database, registry: Registry, runs: RunManager,
                 tools: ToolSource | None = None, max_prompt_chars: int = 200_000) -> None:
        self.db = db
        self.tools = tools
        self.registry = registry
        self.runs = runs
        self.max_prompt_chars = max_prompt_chars

    async def start(self, *, user_id: str, messages: list[dict[str, str]], model: str | None = None,
                    conversation_id: str | None = None, system: str | None = None,
                    temperature: float | None = None, max_tokens: int | None = None,
                    tools: list[str] | None = None) -> ChatStart:
        """Validate, store the new message(s), and start the reply run; nothing is stored on error."""
        self._validate(messages, temperature, max_tokens)
        return await self._begin(user_id=user_id, messages=messages, model=model, parent=LEAF,
                                 conversation_id=conversation_id, system=system, temperature=temperature,
                                 max_tokens=max_tokens, tools=tools)

    async def regenerate(self, *, user_id: str, conversation_id: str, model: str | None = None,
                         tools: list[str] | None = None) -> ChatStart:
        """A new reply to the last user message; the previous reply stays as a sibling branch."""
        conv, path = await self._path(user_id, conversation_id)
        anchor = next((e.message for e in reversed(path) if e.message.role == "user"), None)
        if anchor is None:
            raise BadInput("there is no user message to answer yet")
        return await self._begin(user_id=user_id, messages=[], model=model or conv.model, parent=anchor.id,
                                 conversation_id=conversation_id, tools=tools)

    async def edit(self, *, user_id: str, conversation_id: str, message_id: str, content: str,
                   model: str | None = None, tools: list[str] | None = None) -> ChatStart:
        """Replace an earlier user message with `content` and answer it; the old branch is kept."""
        self._validate([{"role": "user", "content": content}], None, None)
        conv, path = await self._path(user_id, conversation_id)
        edited = next((e.message for e in path if e.message.id == message_id), None)
        if edited is None or edited.role != "user":
            raise NotFound(f"No user message {message_id} in this conversation")
        return await self._begin(user_id=user_id, messages=[{"role": "user", "content": content}],
                                 model=model or conv.model, parent=edited.parent_id,
                                 conversation_id=conversation_id, tools=tools)

    async def _path(self, user_id: str, conversation_id: str) -> tuple[Conversation, list[conv_repo.PathEntry]]:
        """A user's conversation and its current branch."""
        conv = await self.db.call(conv_repo.get_conversation, conversation_id=conversation_id, user_id=user_id)
        if conv is None:
            raise NotFound(f"No conversation {conversation_id}")
        return conv, await self.db.call(conv_repo.current_path, conversation_id=conversation_id)

    async def _begin(self, *, user_id: str, messages: list[dict[str, str]], model: str | None,
                     parent: str | conv_repo.Leaf | None, conversation_id: str | None,
                     system: str | None = None, temperature: float | None = None,
                     max_tokens: int | None = None, tools: list[str] | None = None) -> ChatStart:
        """Store the turn under `parent` and start the reply run."""
        provider, model_name = self.registry.resolve((model or "").strip() or None)
        model_id = f"{provider.name}/{model_name}"
        # Per model where the provider knows (a scripted model calls tools only if its script does).
        supported = next((m.supports_tools for m in provider.info() if m.id == model_id), provider.supports_tools)
        chosen = await self._tools(tools, model_id, supported, user_id)
        window = provider.context_tokens(model_name)
        if window is not None and messages and _estimate(messages[-1]["content"]) > window:
            # Older turns can be left out (fit_history), the new message cannot: refuse before storing anything.
            raise BadInput(f"the message is about {_estimate(messages[-1]['content'])} tokens, more than "
                           f"{model_id}'s context window of {window}: shorten it or pick a model with a larger one")
        run = Run(user_id=user_id, kind="chat", config={"model": model_id, "temperature": temperature,
                                                        "max_tokens": max_tokens, "tools": sorted(chosen)})
        self.runs.admit(user_id)
        stored = await self.db.call(
            _store_turn, user_id=user_id, conversation_id=conversation_id, messages=messages,
            model=model_id, system=system, temperature=temperature, run_id=run.id, parent=parent)
        if stored is None:
            raise NotFound(f"No conversation {conversation_id}")
        conv_id, message_id, history, system, temperature = stored
        budget = provider.context_tokens(model_name)
        history, dropped = fit_history(history, system=system, budget_tokens=budget,
                                       reply_tokens=max_tokens or DEFAULT_REPLY_TOKENS)
        run.conversation_id = conv_id
        run.config.update(message_id=message_id, dropped_messages=dropped)
        request = ChatRequest(model=model_name, messages=history, system=system,
                              temperature=temperature, max_tokens=max_tokens)
        body = ReplyBody(db=self.db, provider=provider, request=request, message_id=message_id,
                         dropped=dropped, tools=chosen)
        active = await self.runs.start(run, body)
        return ChatStart(conversation_id=conv_id, run=active, provider=provider.name,
                         model=model_id, message_id=message_id, dropped=dropped)

    async def _tools(self, names: list[str] | None, model_id: str, supported: bool,
                     user_id: str) -> dict[str, Tool]:
        """The requested tools this user may use, or a clear refusal (unknown tool, model without tool support)."""
        if not names:
            return {}
        if self.tools is None:
            raise BadInput("no tools are available here")
        # Built-ins, plus only the MCP servers these names come from (started on first use), per allow list.
        chosen = await self.tools.select(names, user_id=user_id)
        if not supported:
            raise BadInput(f"{model_id} cannot call tools: pick a model that supports them, or turn tools off")
        return chosen

    def _validate(self, messages: list[dict[str, str]], temperature: float | None,
                  max_tokens: int | None) -> None:
        """Refuse requests that cannot make a sensible reply."""
        if not messages:
            raise BadInput("messages is empty: send at least one user message")
        for i, m in enumerate(messages):
            if m.get("role") not in ROLES:
                raise BadInput(f"messages[{i}].role must be one of {', '.join(ROLES)}")
        if messages[-1]["role"] != "user" or not messages[-1].get("content", "").strip():
            raise BadInput("the last message must be a non-empty user message")
        if sum(len(m.get("content", "")) for m in messages) > self.max_prompt_chars:
            raise BadInput(f"the prompt is longer than {self.max_prompt_chars} characters")
        if temperature is not None and not 0 <= temperature <= 2:
            raise BadInput("temperature must be between 0 and 2")
        if max_tokens is not None and max_tokens < 1:
            raise BadInput("max_tokens must be at least 1")


def _store_turn(session: Any, *, user_id: str, conversation_id: str | None,
                messages: list[dict[str, str]], model: str, system: str | None,
                temperature: float | None, run_id: str, parent: str | conv_repo.Leaf | None,
                ) -> tuple[str, str, list[ChatMessage], str | None, float | None] | None:
    """Create or extend the conversation and add the reply's placeholder, in one transaction.

    Returns the conversation id, the placeholder's id, the model's history and settings.
    """
    conv_repo.ensure_user(session, user_id=user_id, name=user_id)
    if conversation_id:
        conv = conv_repo.get_conversation(session, conversation_id=conversation_id, user_id=user_id)
        if conv is None:
            return None
    else:
        first = next(m["content"] for m in messages if m["role"] == "user")
        conv = conv_repo.create_conversation(session, user_id=user_id, title=make_title(first),
                                             model=model, system_prompt=system, temperature=temperature)
    conv.model = model
    if system is not None:
        conv.system_prompt = system
    if temperature is not None:
        conv.temperature = temperature
    if not isinstance(parent, conv_repo.Leaf):
        conv.leaf_id = parent  # the new turn hangs below `parent`: a new branch
    session.add(conv)
    session.flush()
    for m in messages:
        conv_repo.add_message(session, conversation_id=conv.id, role=m["role"], content=m["content"])
    history = [ChatMessage(role=e.message.role, content=e.message.content)
               for e in conv_repo.current_path(session, conversation_id=conv.id)
               if _in_history(e.message)]
    placeholder = conv_repo.add_message(session, conversation_id=conv.id, role="assistant", content="",
                                        status="running", run_id=run_id, model=model,
                                        provider=model.partition("/")[0])
    return conv.id, placeholder.id, history, conv.system_prompt, conv.temperature


def _in_history(message: Message) -> bool:
    """Messages the model should see: non-empty, not system (sent separately)."""
    return bool(message.content.strip()) and message.role in ("user", "assistant")


def fit_history(history: list[ChatMessage], *, system: str | None, budget_tokens: int | None,
                reply_tokens: int) -> tuple[list[ChatMessage], int]:
    """Drop the oldest messages until the prompt fits the context window; returns how many went."""
    if budget_tokens is None:
        return history, 0
    budget = budget_tokens - reply_tokens
    kept = list(history)
    total = _estimate(system or "") + sum(_estimate(m.content) for m in kept)
    dropped = 0
    # Keep at least the newest message, and never start the history on an assistant turn.
    while len(kept) > 1 and (total > budget or kept[0].role == "assistant"):
        total -= _estimate(kept.pop(0).content)
        dropped += 1
    return kept, dropped


def _estimate(text: str) -> int:
    """A cautious token estimate (about 3 characters a token, plus framing)."""
    return len(text) // 3 + 4


def make_title(text: str) -> str:
    """A conversation title from its first message."""
    line = " ".join(text.split())
    return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"
