"""Settings, for admins: each SQL data source with its engine, masked URL, status (checked) and tools."""

from __future__ import annotations

import asyncio
import json
import os
import sqlite3
from pathlib import Path

import pytest
from nicegui.testing import User

PASSWORD = "pw-never-on-the-page"


@pytest.fixture
def sources(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """A SQLite file, a missing file, an unreachable PostgreSQL server and (when CI has one) a live one."""
    shop = tmp_path / "shop.db"
    with sqlite3.connect(shop) as conn:
        conn.execute("CREATE TABLE items (name TEXT)")
    configured = {"shop": f"sqlite:///{shop}", "gone": f"sqlite:///{tmp_path / 'gone.db'}",
                  "away": f"postgresql://reader:{PASSWORD}@127.0.0.1:9/sales", "bad": "ftp://host/file"}
    if os.environ.get("TEST_DATABASE_URL"):
        configured["team"] = os.environ["TEST_DATABASE_URL"]
    monkeypatch.setenv("LANTERN_SQL_SOURCES", json.dumps(configured))
    return configured


async def test_settings_lists_sources_with_their_checked_status(sources: dict[str, str], user: User) -> None:
    await user.open("/settings")
    await user.should_see(marker="sources-section")
    await user.should_see("shop__sql_query, shop__describe_data")
    await user.should_see(marker="source-shop")
    assert _status(user, "shop") == "ready"
    assert "does not exist" in _status(user, "gone")
    assert _status(user, "bad").startswith("invalid: the URL must be")
    for _ in range(200):  # PostgreSQL sources are connected to in the background
        if _status(user, "away") != "checking…":
            break
        await asyncio.sleep(0.05)
    assert _status(user, "away").startswith("Cannot reach the data source away")
    await user.should_see("postgresql://reader:***@127.0.0.1:9/sales")
    await user.should_not_see(PASSWORD)
    if "team" in sources:
        await user.should_see("connected (read-only)", retries=100)
    else:
        pytest.skip("TEST_DATABASE_URL is not set: the live PostgreSQL source was not checked")


async def test_settings_says_how_to_add_a_source_when_there_is_none(user: User) -> None:
    await user.open("/settings")
    await user.should_see(marker="sources-empty")
    await user.should_see("LANTERN_SQL_SOURCES")


def _status(user: User, name: str) -> str:
    """The status line shown for a source."""
    return next(iter(user.find(marker=f"source-status-{name}").elements)).text
