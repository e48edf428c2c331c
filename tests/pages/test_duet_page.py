"""The Duet page as a person sees it."""

from __future__ import annotations

import pytest
from nicegui.testing import User


@pytest.fixture
def scripted_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LANTERN_DEFAULT_MODEL", "scripted/echo")


async def test_a_duet_streams_labelled_turns_and_can_be_reopened(scripted_default: None, user: User) -> None:
    await user.open("/duet")
    user.find(marker="topic").type("Is Python fast enough?")
    user.find(marker="turns").elements.pop().value = 4
    user.find(marker="start").click()
    await user.should_see("Turn 1 · Ada")
    await user.should_see("Turn 2 · Grace")
    await user.should_see("Turn 4 · Grace", retries=50)
    await user.should_see("4 turns · finished")
    run_id = (await user.http_client.get("/api/runs")).json()["items"][0]["id"]
    await user.open(f"/duet/{run_id}")
    await user.should_see("Turn 4 · Grace")
    assert len(user.find(marker="turn").elements) == 4


async def test_bad_config_is_refused_on_the_page(scripted_default: None, user: User) -> None:
    await user.open("/duet")
    user.find(marker="start").click()
    await user.should_see("topic is empty")
    user.find(marker="topic").type("Anything")
    user.find(marker="turns").elements.pop().value = 0
    user.find(marker="start").click()
    await user.should_see("turns must be at least 1")
    assert (await user.http_client.get("/api/runs")).json()["items"] == []


async def test_steer_stop_and_continue(user: User) -> None:
    await user.open("/duet")
    user.find(marker="model-0").elements.pop().value = "scripted/slow"
    user.find(marker="model-1").elements.pop().value = "scripted/echo"
    user.find(marker="topic").type("Go slowly")
    user.find(marker="turns").elements.pop().value = 4
    user.find(marker="start").click()
    await user.should_see("Turn 1 · Ada")
    user.find(marker="temperature-1").elements.pop().value = 1.5
    user.find(marker="apply-1").click()
    await user.should_see("Grace changed: temperature")
    user.find(marker="stop").click()
    await user.should_see("1 turn · stopped")  # a stopped duet says so; Ada's turn, cut short, counts
    run_id = (await user.http_client.get("/api/runs")).json()["items"][0]["id"]
    run = (await user.http_client.get(f"/api/runs/{run_id}")).json()
    assert run["status"] == "stopped" and run["result"]["turns"][-1]["status"] == "stopped"  # whichever was live
    user.find(marker="model-0").elements.pop().value = "scripted/echo"
    user.find(marker="turns").elements.pop().value = 1
    user.find(marker="continue").click()
    await user.should_see("Turn 2 · Grace", retries=50)


async def test_reload_mid_duet_replays_and_continues_and_history_lists_it(user: User) -> None:
    await user.open("/duet")
    user.find(marker="model-0").elements.pop().value = "scripted/slow"
    user.find(marker="model-1").elements.pop().value = "scripted/echo"
    user.find(marker="topic").type("Reload me")
    user.find(marker="turns").elements.pop().value = 2
    user.find(marker="start").click()
    await user.should_see("Turn 1 · Ada")
    run_id = (await user.http_client.get("/api/runs")).json()["items"][0]["id"]
    await user.open(f"/duet/{run_id}")  # a reload mid-turn
    await user.should_see("Turn 1 · Ada")
    await user.should_see("Turn 2 · Grace", retries=100)  # and it goes on live
    await user.should_see("2 turns · finished")
    await user.open("/history")
    user.find("Runs").click()
    await user.should_see("Reload me")
    await user.should_see("completed")


# --- what a stopped, steered or continued duet says, live and reopened --------------------------------------


@pytest.fixture
def paced_scripts(monkeypatch: pytest.MonkeyPatch) -> None:
    """`pace` speaks for about a second a turn; `mute` starts its turn and never says a word."""
    import json

    from tests.conftest import SCRIPTS

    scripts = {**SCRIPTS, "pace": {"replies": ["word " * 40], "delay": 0.03, "chunk": 5},
               "mute": {"replies": [{"text": "", "hang": True}]}}
    monkeypatch.setenv("LANTERN_SCRIPTS", json.dumps(scripts))


async def start_duet(user: User, *, models: tuple[str, str], turns: int, topic: str = "Tea") -> None:
    await user.open("/duet")
    user.find(marker="model-0").elements.pop().value = models[0]
    user.find(marker="model-1").elements.pop().value = models[1]
    user.find(marker="topic").type(topic)
    user.find(marker="turns").elements.pop().value = turns
    user.find(marker="start").click()


def transcript(user: User) -> list[str]:
    """The transcript top to bottom: each turn's heading, and each change note as the name of the bot changed."""
    [column] = user.find(marker="transcript").elements
    items = []
    for child in column.default_slot.children:
        if "turn" in child._markers:
            items.append(child.default_slot.children[0].text)
        else:
            items.append(child.text.removeprefix("✎ ").split(" ")[0])
    return items


async def latest_run(user: User) -> dict:
    run_id = (await user.http_client.get("/api/runs")).json()["items"][0]["id"]
    return dict((await user.http_client.get(f"/api/runs/{run_id}")).json())


async def exported(user: User, run_id: str) -> dict:
    return dict((await user.http_client.get(f"/api/runs/{run_id}/export", params={"format": "json"})).json())


async def test_a_stopped_duet_says_stopped_and_counts_its_partial_turn_live_reopened_and_exported(
        user: User) -> None:
    await start_duet(user, models=("scripted/echo", "scripted/slow"), turns=4)
    await user.should_see("Turn 2 · Grace")  # Grace has begun to speak
    user.find(marker="stop").click()
    await user.should_see("2 turns · stopped")  # Ada's turn, and what Grace said before the stop
    run = await latest_run(user)
    assert run["status"] == "stopped"
    await user.open(f"/duet/{run['id']}")
    await user.should_see("2 turns · stopped")
    assert len(user.find(marker="turn").elements) == 2
    assert (await exported(user, run["id"]))["totals"]["turns"] == 2


async def test_a_turn_stopped_before_its_first_word_is_not_a_turn(paced_scripts: None, user: User) -> None:
    await start_duet(user, models=("scripted/echo", "scripted/mute"), turns=4)
    await user.should_see("Turn 2 of 4")  # Ada is done; Grace's turn has begun, silent
    user.find(marker="stop").click()
    await user.should_see("1 turn · stopped")
    run = await latest_run(user)
    await user.open(f"/duet/{run['id']}")
    await user.should_see("1 turn · stopped")
    assert transcript(user) == ["Turn 1 · Ada"]
    doc = await exported(user, run["id"])
    assert doc["totals"]["turns"] == len(doc["turns"]) == 1


async def test_change_notes_stay_before_the_turn_they_apply_to(paced_scripts: None, user: User) -> None:
    await start_duet(user, models=("scripted/pace", "scripted/echo"), turns=4)
    await user.should_see("Turn 1 · Ada")
    # While Ada speaks turn 1: Grace's change applies from turn 2, Ada's own from her next turn, turn 3.
    user.find(marker="temperature-1").elements.pop().value = 1.5
    user.find(marker="apply-1").click()
    user.find(marker="temperature-0").elements.pop().value = 0.2
    user.find(marker="apply-0").click()
    await user.should_see("4 turns · finished", retries=100)
    expected = ["Turn 1 · Ada", "Grace", "Turn 2 · Grace", "Ada", "Turn 3 · Ada", "Turn 4 · Grace"]
    assert transcript(user) == expected
    await user.should_see("Grace changed: temperature — from turn 2")
    await user.should_see("Ada changed: temperature — from turn 3")
    run = await latest_run(user)
    await user.open(f"/duet/{run['id']}")
    await user.should_see("4 turns · finished")
    assert transcript(user) == expected
    await user.should_see("Grace changed: temperature — from turn 2")
    md = (await user.http_client.get(f"/api/runs/{run['id']}/export", params={"format": "md"})).text
    grace = "> ✎ Grace's temperature changed to 1.5 (from turn 2)"
    ada = "> ✎ Ada's temperature changed to 0.2 (from turn 3)"
    assert md.index("### Turn 1") < md.index(grace) < md.index("### Turn 2") < md.index(ada) < md.index("### Turn 3")


async def test_a_continued_duet_keeps_the_earlier_change_notes_in_place(paced_scripts: None, user: User) -> None:
    await start_duet(user, models=("scripted/pace", "scripted/slow"), turns=4)
    await user.should_see("Turn 1 · Ada")
    user.find(marker="temperature-1").elements.pop().value = 1.5
    user.find(marker="apply-1").click()
    await user.should_see("Turn 2 · Grace", retries=100)
    user.find(marker="stop").click()
    await user.should_see("2 turns · stopped")
    user.find(marker="model-1").elements.pop().value = "scripted/echo"
    user.find(marker="turns").elements.pop().value = 2
    user.find(marker="continue").click()
    await user.should_see("4 turns · finished", retries=100)
    # Grace's model was changed between the runs: it applies from her next turn, turn 4.
    assert transcript(user) == ["Turn 1 · Ada", "Grace", "Turn 2 · Grace", "Turn 3 · Ada", "Grace", "Turn 4 · Grace"]
    await user.should_see("Grace changed: model — from turn 4")
    run = await latest_run(user)
    await user.open(f"/duet/{run['id']}")
    await user.should_see("4 turns · finished")
    assert transcript(user) == ["Turn 1 · Ada", "Grace", "Turn 2 · Grace", "Turn 3 · Ada", "Grace", "Turn 4 · Grace"]
