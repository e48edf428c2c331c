"""A continued duet a crash cut short keeps its conversation's changes and numbers its turns after the earlier ones."""

from __future__ import annotations

from services.duet.recovery import recover
from storage.models import Run

AGENTS = [{"name": "Ann", "model": "scripted/echo"}, {"name": "Ben", "model": "scripted/hello"}]
CHANGE = {"before_turn": 1, "agent_index": 0, "agent": "Ann", "changes": {"temperature": 1.2}, "at": "2026-01-01"}


def test_a_continued_duet_recovers_with_its_earlier_changes_and_turn_numbers() -> None:
    run = Run(user_id="u", kind="duet", config={"topic": "Tea", "agents": AGENTS, "continue_from": "r1",
                                                "conversation": {"runs": ["r1"], "changes": [CHANGE],
                                                                 "totals": {"turns": 2}}})
    events = [{"seq": 1, "type": "text.delta", "data": {"delta": "Third ", "agent": "Ann"}},
              {"seq": 2, "type": "turn.finished", "data": {"turn": 2, "agent": "Ann", "content": "Third turn"}},
              {"seq": 3, "type": "text.delta", "data": {"delta": "Four", "agent": "Ben"}}]
    result = recover(run, events)
    assert result["changes"] == [CHANGE]
    assert [(t["turn"], t["agent"], t["status"]) for t in result["turns"]] == [(2, "Ann", "completed"),
                                                                                (3, "Ben", "interrupted")]
    assert result["turns"][1]["content"] == "Four"


def test_a_first_duet_recovers_from_turn_zero_without_changes() -> None:
    run = Run(user_id="u", kind="duet", config={"topic": "Tea", "agents": AGENTS})
    result = recover(run, [{"seq": 1, "type": "text.delta", "data": {"delta": "Hi", "agent": "Ann"}}])
    assert result["changes"] == [] and [t["turn"] for t in result["turns"]] == [0]
