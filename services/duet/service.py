"""Duet: two configured bots talk for N turns, live; steerable mid-run, stoppable, continuable.

A continuation is a new run whose result carries the whole conversation (the earlier turns and changes);
its config's `conversation` says what it continues: the earlier runs, the bots as they started, the changes
made in them and their totals. A turn is kept once its bot has said something, or once it completed.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from services.core.errors import BadInput, Conflict, LanternError, NotFound
from services.core.events import Event, TextDelta, TurnFinished, Usage
from services.core.runs import ActiveRun, RunManager
from services.providers.base import ChatMessage, ChatRequest, estimate_tokens
from services.providers.registry import Registry
from storage import runs as run_repo
from storage.engine import Database
from storage.models import Run, utcnow

STEERABLE = ("system_prompt", "temperature", "model")
STEER = "duet.steer"  # what another replica asks the one driving a duet to do (services/core/replicas.py)
CARRIED = (*STEERABLE, "max_tokens")  # what a continuation may change about a bot, recorded like a steer


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
        if runs.replica is not None:  # steering a duet this process drives, asked on another replica
            runs.replica.handle(STEER, self._steer_here)

    async def start(self, *, user_id: str, topic: str, turns: int, agents: list[dict[str, Any]],
                    continue_from: str | None = None) -> ActiveRun:
        """Validate everything first (nothing is stored on error), then start the run."""
        configs = self._validate(topic, turns, agents)
        history: list[dict[str, Any]] = []
        conversation: dict[str, Any] = {}
        if continue_from:
            previous = await self.db.call(run_repo.get_run, run_id=continue_from, user_id=user_id)
            if previous is None or previous.kind != "duet":
                raise NotFound(f"No duet {continue_from}")
            if previous.status == "running":
                raise BadInput("that duet is still running: stop it or let it finish before continuing")
            history = [t for t in previous.result.get("turns", []) if is_turn(t)]
            topic = previous.config.get("topic", topic)
            conversation = _conversation_before(previous, history)
        run = Run(user_id=user_id, kind="duet", config={
            "topic": topic, "turns": turns, "agents": [asdict(a) for a in configs],
            **({"continue_from": continue_from, "conversation": conversation} if continue_from else {})})
        body = DuetBody(registry=self.registry, topic=topic, turns=turns, agents=configs, history=history,
                        earlier_changes=conversation.get("changes", []))
        if conversation:  # bots edited between the runs: recorded like a steer, from each bot's next turn
            body.pending = differences(replay(conversation["agents_at_start"], conversation["changes"]),
                                       [asdict(c) for c in configs])
        self.runs.admit(user_id)
        return await self.runs.start(run, body)

    async def changes(self, *, user_id: str, run_id: str) -> list[dict[str, Any]]:
        """The conversation's changes so far (live while it runs here); those no turn used yet last, unnumbered."""
        active = self.runs.active.get(run_id)
        if active is not None and isinstance(active.body, DuetBody) and active.run.user_id == user_id:
            config, result = active.run.config, active.body.live_result()
        else:
            run = await self.db.call(run_repo.get_run, run_id=run_id, user_id=user_id)
            if run is None:
                return []
            config, result = run.config, run.result or {}
        return [*conversation_changes(config, result), *unapplied_changes(config, result)]

    async def update_agent(self, *, user_id: str, run_id: str, index: int, changes: dict[str, Any]) -> dict[str, Any]:
        """Steer a running duet: the change applies from that bot's next turn and is recorded.

        In replica mode the duet may run on another replica: the change is sent to it, and its answer returned.
        """
        run = await self.db.call(run_repo.get_run, run_id=run_id, user_id=user_id)
        if run is None or run.kind != "duet":
            raise NotFound(f"No duet {run_id}")
        if index not in (0, 1):
            raise NotFound(f"A duet has agents 0 and 1, not {index}")
        active = self.runs.active.get(run_id)
        elsewhere = active is None and self.runs.replica is not None and run.status == "running"
        if not elsewhere and (active is None or not isinstance(active.body, DuetBody)):
            raise Conflict(f"Duet {run_id} is {run.status}: only a running duet can be changed")
        changes = self._checked(changes)
        if elsewhere:
            assert self.runs.replica is not None
            agent: dict[str, Any] = await self.runs.replica.ask_owner(run_id, STEER, {"index": index,
                                                                                      "changes": changes})
            return agent
        assert active is not None
        return await self._steer_here(active, {"index": index, "changes": changes})

    async def _steer_here(self, active: ActiveRun, args: dict[str, Any]) -> dict[str, Any]:
        """Apply a checked change to a duet running in this process; the bot as it now is."""
        if not isinstance(active.body, DuetBody) or active.status != "running":
            raise Conflict(f"Duet {active.id} is {active.status}: only a running duet can be changed")
        active.body.steer(args["index"], args["changes"])
        return asdict(active.body.agents[args["index"]])

    def _checked(self, changes: dict[str, Any]) -> dict[str, Any]:
        """The changes, refused with a clear reason when a bot could not run with them."""
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
        return changes

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
                 history: list[dict[str, Any]], earlier_changes: list[dict[str, Any]] | None = None) -> None:
        self.registry = registry
        self.topic = topic
        self.turns = turns
        self.agents = agents
        self.pending: dict[int, dict[str, Any]] = {}
        self.changes: list[dict[str, Any]] = []
        self.history = history
        self.earlier_changes = earlier_changes or []
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
        """The conversation: its turns (a partial last one on stop or failure) and every change made."""
        for turn in self.transcript:
            if turn.status == "running":  # cut short: keep its time and what it wrote (tokens estimated)
                turn.status = status
                turn.seconds = round(time.monotonic() - self._turn_started, 3)
                if not turn.output_tokens and turn.content:
                    turn.output_tokens = estimate_tokens(turn.content)
        # A turn cut short before its first word said nothing: no page showed it, so it is not kept.
        self.transcript = [t for t in self.transcript if is_turn(asdict(t))]
        return {"topic": self.topic, "agents": [asdict(a) for a in self.agents],
                "turns": [*self.history, *(asdict(t) for t in self.transcript)], "changes": self.all_changes(),
                **({"error": {"type": error.kind, "message": str(error)}} if error else {})}

    def live_result(self) -> dict[str, Any]:
        """The result so far, read without disturbing the run (the running turn included)."""
        return {"topic": self.topic, "agents": [asdict(a) for a in self.agents],
                "turns": [*self.history, *(asdict(t) for t in self.transcript)], "changes": self.all_changes()}

    def all_changes(self) -> list[dict[str, Any]]:
        """The changes of the whole conversation: the earlier runs', then this one's."""
        return [*self.earlier_changes, *self.changes]

    def _all_turns(self) -> list[tuple[int, str]]:
        """(agent index, content) of every turn with text so far, earlier runs included."""
        earlier = [(t["agent_index"], t["content"]) for t in self.history if t.get("content")]
        return earlier + [(t.agent_index, t.content) for t in self.transcript if t.status == "completed" and t.content]

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


def is_turn(turn: dict[str, Any]) -> bool:
    """Whether a stored turn counts: it completed, or its bot said something before it was cut short."""
    return turn.get("status") == "completed" or bool(turn.get("content"))


def conversation_changes(config: dict[str, Any], result: dict[str, Any]) -> list[dict[str, Any]]:
    """A duet's changes, earlier runs' first (from its config), then its own (from its result)."""
    earlier = config.get("conversation") or {}
    # A continuation's stored result repeats the earlier changes, a crash-recovered one has none: take them from
    # the config, and from the result only those of this run's turns (each applied from its `before_turn`).
    first = int((earlier.get("totals") or {}).get("turns") or 0)
    own = [c for c in result.get("changes") or [] if int(c.get("before_turn") or 0) >= first]
    return [*(earlier.get("changes") or []), *own]


def replay(agents: list[dict[str, Any]], changes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The bots after applying recorded changes, in order, to the bots as they started."""
    bots = [dict(a) for a in agents]
    for change in changes:
        index = change.get("agent_index")
        if isinstance(index, int) and 0 <= index < len(bots):
            bots[index].update(change.get("changes") or {})
    return bots


def unapplied_changes(config: dict[str, Any], result: dict[str, Any]) -> list[dict[str, Any]]:
    """Settings in the bots' latest configs that no recorded change explains: not used by any turn yet."""
    start = (config.get("conversation") or {}).get("agents_at_start") or config.get("agents") or []
    latest = result.get("agents") or []
    diffs = differences(replay(start, conversation_changes(config, result)), latest)
    return [{"before_turn": None, "agent_index": i, "agent": latest[i].get("name"), "changes": diff}
            for i, diff in diffs.items()]


def differences(before: list[dict[str, Any]], after: list[dict[str, Any]]) -> dict[int, dict[str, Any]]:
    """Per bot index, the carried settings that differ between two configurations of the bots."""
    diffs = {}
    for index, (old, new) in enumerate(zip(before, after, strict=False)):
        diff = {k: new[k] for k in CARRIED if k in new and new[k] != old.get(k)}
        if diff:
            diffs[index] = diff
    return diffs


def _conversation_before(previous: Run, history: list[dict[str, Any]]) -> dict[str, Any]:
    """What a continuation carries of the runs it continues: ids, bots at the start, changes, totals."""
    earlier = previous.config.get("conversation") or {}
    before = earlier.get("totals") or {}
    seconds = (previous.finished_at - previous.started_at).total_seconds() if previous.finished_at else 0.0
    return {
        "runs": [*(earlier.get("runs") or []), previous.id],
        "agents_at_start": earlier.get("agents_at_start") or previous.config.get("agents") or [],
        "changes": conversation_changes(previous.config, previous.result or {}),
        "totals": {"turns": len(history),
                   "input_tokens": int(before.get("input_tokens") or 0) + previous.input_tokens,
                   "output_tokens": int(before.get("output_tokens") or 0) + previous.output_tokens,
                   "cost_usd": float(before.get("cost_usd") or 0.0) + previous.cost_usd,
                   "seconds": round(float(before.get("seconds") or 0.0) + seconds, 3)},
    }
