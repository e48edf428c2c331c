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
    await user.should_see("finished")
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
