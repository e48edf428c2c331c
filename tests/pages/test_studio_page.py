"""The Studio page as a person sees it: brief, live progress, envelope, Draft → Amend → Approve → Export."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
from nicegui.testing import User

from services.accounts.passwords import hash_password
from services.core.usage import usage_text
from storage import users as user_repo
from storage.engine import Database
from tests.conftest import SCRIPTS

BRIEF = {"brand": "Lumen", "product": "Night roast", "audience": "Night owls", "goal": "Launch awareness"}
TITLES = ["Campaign brief", "LinkedIn post", "X/Twitter post", "Email copy"]


async def generate(user: User, model: str, *, brief: dict[str, str] | None = None, module: str = "campaign") -> None:
    """Fill the brief on /studio and press Generate."""
    await user.open("/studio")
    for key, value in (BRIEF if brief is None else brief).items():
        user.find(marker=key).type(value)
    user.find(marker="module").elements.pop().value = module
    user.find(marker="model").elements.pop().value = model
    user.find(marker="generate").click()


def texts(user: User, marker: str) -> list[str]:
    """What the elements with this marker read, in page order."""
    try:
        elements = user.find(marker=marker).elements
    except AssertionError:
        return []
    with user.client:
        return [" ".join(str(c) for c in e._displayed_contents(only_visible=True) if c)
                for e in sorted(elements, key=lambda e: e.id)]


async def latest_run(user: User) -> dict[str, Any]:
    """The newest studio run as the API reports it."""
    run_id = (await user.http_client.get("/api/runs", params={"kind": "deliverables"})).json()["items"][0]["id"]
    return dict((await user.http_client.get(f"/api/runs/{run_id}")).json())


async def test_success_shows_progress_envelope_and_every_card(user: User) -> None:
    await generate(user, "scripted/studio_ok")
    await user.should_see(marker="export-all", retries=100)
    assert texts(user, "envelope-status") == ["SUCCESS"]
    assert texts(user, "row-status") == ["done"] * 4
    await user.should_see("4 / 4 deliverables · completed")
    assert len(user.find(marker="deliverable").elements) == 4
    assert texts(user, "draft") == ["Bright **coffee** for night owls."] * 4
    assert texts(user, "status-badge") == ["draft v1"] * 4
    assert "#lumen" in texts(user, "hashtag")
    await user.should_see("scripted/studio_ok")  # meta: who answered
    run = await latest_run(user)
    assert run["result"]["status"] == "SUCCESS" and len(run["result"]["deliverables"]) == 4


async def test_partial_shows_the_badge_the_failed_row_and_the_warning(user: User) -> None:
    await generate(user, "scripted/studio_partial")
    await user.should_see(marker="export-all", retries=100)
    assert texts(user, "envelope-status") == ["PARTIAL"]
    assert texts(user, "row-status") == ["done", "failed", "done", "done"]
    [error] = texts(user, "row-error")  # only the failed row shows a reason
    assert "manifest without content" in error
    [warning] = texts(user, "warning")
    assert warning.startswith("⚠ LinkedIn post:") and "manifest without content" in warning
    assert len(user.find(marker="deliverable").elements) == 3


async def test_failed_shows_the_error_with_its_trace_id(user: User) -> None:
    await generate(user, "scripted/studio_down")
    await user.should_see(marker="envelope-status", retries=150)
    assert texts(user, "envelope-status") == ["FAILED"]
    assert texts(user, "row-status") == ["failed"] * 4
    run = await latest_run(user)
    trace = run["result"]["error"]["trace_id"]
    assert "no deliverable could be generated" in texts(user, "envelope-error")[0]
    assert trace and trace in texts(user, "trace-id")[0]
    await user.should_not_see(marker="deliverable")


@pytest.fixture
def studio_chain(monkeypatch: pytest.MonkeyPatch) -> None:
    """The configured chain after the chosen model (set before the app starts)."""
    monkeypatch.setenv("LANTERN_STUDIO_CHAIN", '["scripted/studio_ok"]')


async def test_fallback_is_shown_and_the_next_provider_answers(studio_chain: None, user: User) -> None:
    await generate(user, "scripted/studio_down")
    await user.should_see(marker="envelope-status", retries=150)
    notes = texts(user, "fallback-note")
    assert notes and notes[0] == "↪ scripted/studio_down failed: 503, trying scripted/studio_ok"
    assert texts(user, "envelope-status") == ["SUCCESS"]


async def test_amend_diff_approve_export_and_refusal_before_approval(user: User) -> None:
    await generate(user, "scripted/studio_ok", module="social_calendar")
    await user.should_see(marker="export-all", retries=100)
    with user.scope(marker="deliverable-x_post"):
        # Export before approval is refused on the page.
        user.find(marker="export-md").click()
        await user.should_see("Export refused: only approved deliverables can be exported")
        # Amend: a new version, in the history, with its diff.
        user.find(marker="editor").elements.pop().value = "Bright **coffee** for night owls.\n\nOrder tonight."
        user.find(marker="save").click()
        await user.should_see("draft v2")
        assert len(user.find(marker="version-row").elements) == 2
        assert "+Order tonight." in texts(user, "diff-line")
        user.find(marker="diff-v2").click()
        await user.should_see("Changes from v1 to v2")
        # Approve locks it.
        user.find(marker="approve").click()
        await user.should_see("approved v2")
        with user.client:
            assert not user.find(marker="editor").elements.pop().enabled
        await user.should_not_see(marker="export-refused")
        user.find(marker="export-md").click()
    response = await user.download.next()
    assert response.status_code == 200
    assert response.text == "# Lumen launch\n\nBright **coffee** for night owls.\n\nOrder tonight.\n\n#lumen #coffee\n"
    with user.scope(marker="deliverable-x_post"):
        user.find(marker="export-json").click()
    doc = json.loads((await user.download.next()).text)
    assert doc["version"] == 2 and doc["content_markdown"].endswith("Order tonight.")
    # Export all approved: a zip of the one approved deliverable.
    user.find(marker="export-all").click()
    archive = zipfile.ZipFile(io.BytesIO((await user.download.next()).content))
    names = sorted(archive.namelist())
    assert [n.rsplit(".", 1)[1] for n in names] == ["json", "md"] and names[0].startswith("x_post-")
    assert "Order tonight." in archive.read(names[1]).decode()
    # Re-opened, the stored generation shows the cards with their versions and approval.
    run_id = (await latest_run(user))["id"]
    await user.open(f"/studio/{run_id}")
    await user.should_see(marker="export-all", retries=50)  # shown once every card is drawn
    assert len(user.find(marker="deliverable").elements) == 3
    assert sorted(texts(user, "status-badge")) == ["approved v2", "draft v1", "draft v1"]
    assert texts(user, "row-status") == ["done"] * 3


async def test_reopening_a_running_generation_follows_it_live(user: User) -> None:
    await generate(user, "scripted/studio_slow")
    await user.should_see("writing…", retries=50)
    run_id = (await latest_run(user))["id"]
    await user.open(f"/studio/{run_id}")  # a reload: the rows so far, then live
    await user.should_see(marker="progress-row-3")
    assert texts(user, "envelope-status") == []
    await user.should_see(marker="export-all", retries=200)
    assert texts(user, "row-status") == ["done"] * 4
    assert texts(user, "envelope-status") == ["SUCCESS"]
    assert len(user.find(marker="deliverable").elements) == 4


async def test_bad_brief_and_unknown_ids_are_refused(user: User) -> None:
    await generate(user, "scripted/studio_ok", brief={k: v for k, v in BRIEF.items() if k != "brand"})
    await user.should_see("Not started: the brief needs brand")
    await user.should_not_see(marker="progress-row")
    assert (await user.http_client.get("/api/runs", params={"kind": "deliverables"})).json()["items"] == []
    await user.open("/studio/nope")
    await user.should_see("This generation does not exist.")


async def test_regenerate_one_deliverable_with_an_instruction(user: User) -> None:
    await generate(user, "scripted/studio_ok", module="social_calendar")
    await user.should_see(marker="export-all", retries=100)
    with user.scope(marker="deliverable-instagram_caption"):
        user.find(marker="instruction").type("make it warmer")
        user.find(marker="regenerate").click()
        await user.should_see("regenerated: make it warmer")
        await user.should_see("draft v2")


def run_usage(run: dict[str, Any]) -> str:
    """A run's usage as the API reports it, worded the one way Lantern words usage."""
    usage = run["usage"]
    return usage_text(usage["input_tokens"], usage["output_tokens"], usage["cost_usd"])


async def history_shows(user: User, run_id: str, figure: str) -> None:
    """History's Runs tab shows this figure on the run's row."""
    await user.open("/history?tab=runs")
    with user.scope(marker=f"run-{run_id}"):
        await user.should_see(figure)


async def test_the_generation_shows_the_same_usage_as_history_and_the_api(user: User) -> None:
    await generate(user, "scripted/studio_ok")
    await user.should_see(marker="export-all", retries=100)
    run = await latest_run(user)
    figure = run_usage(run)
    assert run["usage"]["input_tokens"] > 0 and run["usage"]["output_tokens"] > 0
    [meta] = texts(user, "meta")
    assert meta == f"scripted/studio_ok · {figure} · trace {run['trace_id']}"
    await history_shows(user, run["id"], figure)
    await user.open(f"/studio/{run['id']}")  # re-opened, the same figure
    await user.should_see(marker="export-all", retries=50)
    assert texts(user, "meta") == [meta]


async def test_a_regeneration_is_a_run_in_history_with_its_usage(user: User) -> None:
    await generate(user, "scripted/studio_ok", module="social_calendar")
    await user.should_see(marker="export-all", retries=100)
    with user.scope(marker="deliverable-x_post"):
        user.find(marker="instruction").type("make it punchier")
        user.find(marker="regenerate").click()
        await user.should_see("draft v2")
    rewrite = await latest_run(user)
    assert rewrite["status"] == "completed" and rewrite["config"]["regenerate"]["instruction"] == "make it punchier"
    assert rewrite["usage"]["output_tokens"] > 0
    await user.should_see(f"Regenerated as version 2 · {run_usage(rewrite)}")
    await history_shows(user, rewrite["id"], run_usage(rewrite))
    await user.open(f"/studio/{rewrite['id']}")  # where History's row leads: the rewrite, its usage, the card
    await user.should_see(marker="export-all", retries=50)
    assert texts(user, "row-status") == ["done"]  # one row: the deliverable it rewrote
    await user.should_see("1. Rewrite: X/Twitter post")
    assert texts(user, "meta") == [f"scripted/studio_ok · {run_usage(rewrite)} · trace {rewrite['trace_id']}"]
    assert texts(user, "status-badge") == ["draft v2"]


@pytest.fixture
def hanging_rewrite(monkeypatch: pytest.MonkeyPatch) -> None:
    """`studio_rw_hang` drafts three deliverables, then its fourth call (the rewrite) writes a little and hangs."""
    draft = json.dumps({"title": "Lumen", "content_markdown": "Bright **coffee** for night owls.",
                        "hashtags": ["lumen"]})
    scripts = {**SCRIPTS, "studio_rw_hang": {"replies": [draft, draft, draft, {"text": '{"title": "Lu',
                                                                               "hang": True}]}}
    monkeypatch.setenv("LANTERN_SCRIPTS", json.dumps(scripts))


async def test_a_regeneration_can_be_stopped_from_the_page(hanging_rewrite: None, user: User) -> None:
    await generate(user, "scripted/studio_rw_hang", module="social_calendar")
    await user.should_see(marker="export-all", retries=100)
    with user.scope(marker="deliverable-instagram_caption"):
        await user.should_not_see(marker="regenerate-stop")  # only while a rewrite runs
        user.find(marker="instruction").type("make it warmer")
        user.find(marker="regenerate").click()
        await user.should_see(marker="regenerate-stop")
        user.find(marker="regenerate-stop").click()
    await user.should_see("Regeneration stopped: the deliverable is unchanged.")
    with user.scope(marker="deliverable-instagram_caption"):
        await user.should_not_see(marker="regenerate-stop")
        assert texts(user, "status-badge") == ["draft v1"]
    rewrite = await latest_run(user)
    assert rewrite["status"] == "stopped" and rewrite["config"]["regenerate"]["kind"] == "instagram_caption"
    assert rewrite["usage"]["output_tokens"] > 0  # what it wrote before the stop is counted (estimated)


@pytest.fixture
def one_run_a_minute(monkeypatch: pytest.MonkeyPatch) -> None:
    """Shared mode (login required) with a limit of one run a minute per person."""
    monkeypatch.setenv("LANTERN_REQUIRE_LOGIN", "1")
    monkeypatch.setenv("LANTERN_RUNS_PER_MINUTE", "1")


async def test_a_regeneration_is_refused_once_the_rate_limit_is_used_up(
        one_run_a_minute: None, lantern_env: Any, user: User) -> None:
    db = Database(f"sqlite:///{lantern_env / 'lantern.db'}")
    db.open()
    db.session_call(user_repo.add_user, name="ann", password_hash=hash_password("ann long password"))
    db.close()
    await user.open("/studio")
    await user.should_see(marker="login-name")
    user.find(marker="login-name").type("ann")
    user.find(marker="login-password").type("ann long password")
    user.find(marker="login-submit").click()
    await user.should_not_see(marker="login-submit", retries=50)
    await generate(user, "scripted/studio_ok", module="social_calendar")  # the one run of this minute
    await user.should_see(marker="export-all", retries=100)
    with user.scope(marker="deliverable-x_post"):
        user.find(marker="instruction").type("make it punchier")
        user.find(marker="regenerate").click()
    await user.should_see("Too many runs this minute")
    with user.scope(marker="deliverable-x_post"):
        assert texts(user, "status-badge") == ["draft v1"]
    runs = (await user.http_client.get("/api/runs", params={"kind": "deliverables"})).json()["items"]
    assert len(runs) == 1  # the refused rewrite stored nothing
