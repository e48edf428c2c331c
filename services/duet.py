"""Duet: two configured bots talk for N turns, live; steerable mid-run, stoppable, continuable."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from services.errors import BadInput, Conflict, LanternError, NotFound
from services.events import Event, TextDelta, TurnFinished, Usage
from services.providers.base import ChatMessage, ChatRequest, estimate_tokens
from services.providers.registry import Registry
from services.runs import ActiveRun, RunManager
from storage import runs as run_repo
from storage.engine import Database
from storage.models import Run, utcnow

STEERABLE = ("system_prompt", "temperature", "model")


@dataclass(kw_only=True, slots=True)
class AgentConfig:
    """One bot: who it is and how it speaks."""

    name: str
    model: str
    system_prompt: str = ""
    temperature: float = 0.7
    max_tokens: int | None = None


@dataclass(kw_only=True, slots=True)
class Limits:
    """Per-run caps from the settings."""

    max_turns: int = 40
    max_total_tokens: int = 40_000
    default_max_tokens: int = 256


class DuetService:
    """Starts duets as runs, steers them, continues them."""

    def __init__(self, *, db: Database, registry: Registry, runs: RunManager, limits: Limits | None = None) -> None:
        self.db = db
        self.registry = registry
        self.runs = runs
        self.limits = limits or Limits()

    async def start(self, *, user_id: str, topic: str, turns: int, agents: list[dict[str, Any]],
                    continue_from: str | None = None) -> ActiveRun:
        """Validate everything first (nothing is stored on error), then start the run."""
        configs = self._validate(topic, turns, agents)
        history: list[dict[str, Any]] = []
        if continue_from:
            previous = await self.db.call(run_repo.get_run, run_id=continue_from, user_id=user_id)
            if previous is None or previous.kind != "duet":
                raise NotFound(f"No duet {continue_from}")
            if previous.status == "running":
                raise BadInput("that duet is still running: stop it or let it finish before continuing")
            history = [t for t in previous.result.get("turns", []) if t.get("content")]
            topic = previous.config.get("topic", topic)
        run = Run(user_id=user_id, kind="duet", config={
            "topic": topic, "turns": turns, "agents": [asdict(a) for a in configs],
            **({"continue_from": continue_from} if continue_from else {})})
        body = DuetBody(registry=self.registry, topic=topic, turns=turns, agents=configs, history=history)
        self.runs.admit(user_id)
        return await self.runs.start(run, body)

    async def update_agent(self, *, user_id: str, run_id: str, index: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Steer a running duet: the change applies from that bot's next turn and is recorded."""
        run = await self.db.call(run_repo.get_run, run_id=run_id, user_id=user_id)
        if run is None or run.kind != "duet":
            raise NotFound(f"No duet {run_id}")
        if index not in (0, 1):
            raise NotFound(f"A duet has agents 0 and 1, not {index}")
        active = self.runs.active.get(run_id)
        if active is None or not isinstance(active.body, DuetBody):
            raise Conflict(f"Duet {run_id} is {run.status}: only a running duet can be changed")
        changes = {k: v for k, v in changes.items() if v is not None}
        unknown = set(changes) - set(STEERABLE)
        if unknown or not changes:
            raise BadInput(f"change one of {', '.join(STEERABLE)}")
        if "temperature" in changes and not 0 <= float(changes["temperature"]) <= 2:
            raise BadInput("temperature must be between 0 and 2")
        if "model" in changes:
            provider, name = self.registry.resolve(changes["model"])
            changes["model"] = f"{provider.name}/{name}"
        if "system_prompt" in changes and len(changes["system_prompt"]) > 20_000:
            raise BadInput("system_prompt is longer than 20000 characters")
        active.body.steer(index, changes)
        return asdict(active.body.agents[index])

    def _validate(self, topic: str, turns: int, agents: list[dict[str, Any]]) -> list[AgentConfig]:
        """Refuse configs that cannot run, or that exceed the caps, saying why."""
        if not topic or not topic.strip():
            raise BadInput("topic is empty: give the bots something to talk about")
        if not isinstance(turns, int) or turns < 1:
            raise BadInput("turns must be at least 1")
        if turns > self.limits.max_turns:
            raise BadInput(f"turns is above this server's cap of {self.limits.max_turns}")
        if len(agents) != 2:
            raise BadInput("a duet needs exactly two agents")
        configs = []
        for i, raw in enumerate(agents):
            try:
                config = AgentConfig(**raw)
            except TypeError as exc:
                raise BadInput(f"agents[{i}]: {exc}") from exc
            if not config.name.strip():
                raise BadInput(f"agents[{i}].name is empty")
            if not 0 <= config.temperature <= 2:
                raise BadInput(f"agents[{i}].temperature must be between 0 and 2")
            provider, model = self.registry.resolve(config.model)
            config.model = f"{provider.name}/{model}"
            config.max_tokens = config.max_tokens or self.limits.default_max_tokens
            configs.append(config)
        if configs[0].name.strip() == configs[1].name.strip():
            raise BadInput("the two agents need different names")
        budget = sum(configs[t % 2].max_tokens or 0 for t in range(turns))
        if budget > self.limits.max_total_tokens:
            raise BadInput(f"{turns} turns at these max_tokens could use {budget} tokens, above this "
                           f"server's cap of {self.limits.max_total_tokens}: lower turns or max_tokens")
        return configs


@dataclass(kw_only=True, slots=True)
class Turn:
    """One bot's turn in the transcript."""

    turn: int
    agent_index: int
    agent: str
    model: str
    content: str = ""
    status: str = "running"
    seconds: float = 0.0
    input_tokens: int = 0
    output_tokens: int = 0
    cost_usd: float = 0.0
    started_at: str = field(default_factory=lambda: utcnow().isoformat())


class DuetBody:
    """The run body: alternate turns, each bot seeing the transcript from its own side."""

    def __init__(self, *, registry: Registry, topic: str, turns: int, agents: list[AgentConfig],
                 history: list[dict[str, Any]]) -> None:
        self.registry = registry
        self.topic = topic
        self.turns = turns
        self.agents = agents
        self.pending: dict[int, dict[str, Any]] = {}
        self.changes: list[dict[str, Any]] = []
        self.history = history
        self.transcript: list[Turn] = []
        self._turn_started = time.monotonic()

    def steer(self, index: int, changes: dict[str, Any]) -> None:
        """Queue a change for the bot's next turn (the one running, if any, is not altered)."""
        self.pending.setdefault(index, {}).update(changes)
        self.agents[index] = replace(self.agents[index], **changes)

    async def events(self) -> AsyncIterator[Event]:
        """Each turn: text deltas labelled with the bot, usage, then `turn.finished`."""
        first = len(self.history)
        for n in range(first, first + self.turns):
            index = n % 2
            agent = self.agents[index]
            if index in self.pending:
                self.changes.append({"before_turn": n, "agent_index": index, "agent": agent.name,
                                     "changes": self.pending.pop(index), "at": utcnow().isoformat()})
            turn = Turn(turn=n, agent_index=index, agent=agent.name, model=agent.model)
            self.transcript.append(turn)
            started = self._turn_started = time.monotonic()
            provider, model = self.registry.resolve(agent.model)
            request = ChatRequest(model=model, messages=self._view(index), system=self._system(agent),
                                  temperature=agent.temperature, max_tokens=agent.max_tokens)
            async for event in provider.stream(request):
                if isinstance(event, TextDelta):
                    turn.content += event.delta
                    yield replace(event, agent=agent.name)
                elif isinstance(event, Usage):
                    turn.input_tokens, turn.output_tokens = event.input_tokens, event.output_tokens
                    turn.cost_usd = event.cost_usd
                    yield event
            turn.status = "completed"
            turn.seconds = round(time.monotonic() - started, 3)
            yield TurnFinished(turn=n, agent=agent.name, content=turn.content)

    async def finish(self, status: str, error: LanternError | None) -> dict[str, Any]:
        """The transcript (with a partial last turn on stop or failure) and every change made."""
        for turn in self.transcript:
            if turn.status == "running":  # cut short: keep its time and what it wrote (tokens estimated)
                turn.status = status
                turn.seconds = round(time.monotonic() - self._turn_started, 3)
                if not turn.output_tokens and turn.content:
                    turn.output_tokens = estimate_tokens(turn.content)
        return {"topic": self.topic, "agents": [asdict(a) for a in self.agents],
                "turns": [*self.history, *(asdict(t) for t in self.transcript)], "changes": self.changes,
                **({"error": {"type": error.kind, "message": str(error)}} if error else {})}

    def _all_turns(self) -> list[tuple[int, str]]:
        """(agent index, content) of every turn so far, earlier runs included."""
        earlier = [(t["agent_index"], t["content"]) for t in self.history]
        return earlier + [(t.agent_index, t.content) for t in self.transcript if t.status == "completed"]

    def _view(self, index: int) -> list[ChatMessage]:
        """The transcript from one bot's side: its own turns as assistant, the other's as user."""
        messages = [ChatMessage(role="user", content=f"Topic: {self.topic}")]
        for speaker, content in self._all_turns():
            role = "assistant" if speaker == index else "user"
            if messages[-1].role == role:  # keep roles alternating: join a bot's consecutive turns
                messages[-1] = ChatMessage(role=role, content=messages[-1].content + "\n\n" + content)
            else:
                messages.append(ChatMessage(role=role, content=content))
        return messages

    def _system(self, agent: AgentConfig) -> str:
        """The bot's own prompt, plus who it is talking to."""
        other = next(a.name for a in self.agents if a is not agent)
        base = agent.system_prompt.strip() or f"You are {agent.name}."
        return f"{base}\nYou are in a conversation with {other}. Reply with your next turn only."
