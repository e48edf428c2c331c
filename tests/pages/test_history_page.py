"""History's Runs tab: searched by topic, title and content, continuations marked, and the tab kept in the address."""

from __future__ import annotations

from nicegui.testing import User

from tests.api.test_runs_api import duet_body


async def start_duet(user: User, topic: str, **extra: object) -> str:
    """A finished duet about `topic`."""
    created = await user.http_client.post("/api/runs", json=duet_body(topic=topic, **extra))
    run_id = str(created.json()["run_id"])
    await user.http_client.get(f"/api/runs/{run_id}/events")
    return run_id


async def test_runs_are_searched_and_continuations_shown(user: User) -> None:
    first = await start_duet(user, "Should cities ban cars")
    second = await start_duet(user, "Should cities ban cars", continue_from=first)
    other = await start_duet(user, "Tabs or spaces")
    await user.open("/history?tab=runs")
    await user.should_see(marker=f"run-{other}")
    await user.should_see(marker=f"continues-{first}")  # before: three look-alike rows, no sign of the chain
    await user.should_see("continued later")
    # Before: runs could not be searched at all.
    user.find(marker="history-run-search").type("ban cars").trigger("update:modelValue")
    await user.should_not_see(marker=f"run-{other}")
    await user.should_see(marker=f"run-{second}")
    # Words the bots wrote, not the topic.
    user.find(marker="history-run-search").clear().type("scripted").trigger("update:modelValue")
    await user.should_see(marker=f"run-{other}")
    user.find(marker="history-run-search").clear().type("no such words anywhere").trigger("update:modelValue")
    await user.should_see("Nothing matches.")


async def test_the_runs_tab_is_kept_in_the_address(user: User) -> None:
    await start_duet(user, "Tabs or spaces")
    await user.open("/history?tab=runs")  # where Back from an opened run lands
    await user.should_see(marker="history-run-search")
    await user.open("/history")
    await user.should_see(marker="history-search")
