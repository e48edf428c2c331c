"""The sample business database: deterministic, plausible, and created atomically once."""

from __future__ import annotations

import hashlib
import sqlite3
import time
from datetime import date
from pathlib import Path

import pytest

from services.tools import sample_data
from services.tools.sample_data import ensure_sample_database

TABLES = ("regions", "customers", "products", "orders")
# Pinned figures: a change here means every saved conversation about the sample data is now wrong.
SAMPLE_DIGEST = "d3f73aba6c6fefbdb94adb135944e3bcf44560223a6b0637c2d7e3220bccfa1b"
TOTAL_REVENUE = 13_791_824.13
ORDER_COUNT = 4004


def content_digest(path: Path) -> str:
    """A checksum of every row of every table, independent of the file's page layout."""
    digest = hashlib.sha256()
    with sqlite3.connect(path) as conn:
        for table in TABLES:
            for row in conn.execute(f"SELECT * FROM {table} ORDER BY id"):
                digest.update(repr((table, row)).encode())
    return digest.hexdigest()


def rows(path: Path, sql: str) -> list[tuple]:
    """All rows of a query over a plain connection."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute(sql).fetchall()
    finally:
        conn.close()


def test_two_generations_are_identical_and_pinned(tmp_path: Path) -> None:
    first = ensure_sample_database(tmp_path / "a" / "sample.db")
    second = ensure_sample_database(tmp_path / "b" / "sample.db")
    assert content_digest(first) == content_digest(second) == SAMPLE_DIGEST


def test_known_figures(tmp_path: Path) -> None:
    db = ensure_sample_database(tmp_path / "sample.db")
    counts = {t: rows(db, f"SELECT count(*) FROM {t}")[0][0] for t in TABLES}
    assert counts == {"regions": 5, "customers": 300, "products": 30, "orders": ORDER_COUNT}
    # Revenue computed in Python from the raw rows, not by the SQL the tools would run.
    orders = rows(db, "SELECT quantity, unit_price, status FROM orders")
    revenue = sum(q * p for q, p, status in orders if status == "completed")
    assert round(revenue, 2) == TOTAL_REVENUE


def test_data_is_plausible(tmp_path: Path) -> None:
    db = ensure_sample_database(tmp_path / "sample.db")
    assert [r[0] for r in rows(db, "SELECT name FROM regions ORDER BY id")] == [
        "North", "South", "East", "West", "Central"]
    assert {r[0] for r in rows(db, "SELECT segment FROM customers")} == {"Consumer", "SMB", "Enterprise"}
    assert {r[0] for r in rows(db, "SELECT status FROM orders")} == {"completed", "refunded", "cancelled"}
    prices = dict(rows(db, "SELECT id, unit_price FROM products"))
    signups = dict(rows(db, "SELECT id, created_at FROM customers"))
    years = set()
    for customer_id, product_id, quantity, price, day in rows(
            db, "SELECT customer_id, product_id, quantity, unit_price, order_date FROM orders"):
        ordered = date.fromisoformat(day)
        assert date(2024, 1, 1) <= ordered <= date(2025, 12, 31)
        assert day >= signups[customer_id], "an order placed before the customer signed up"
        assert quantity >= 1
        base = prices[product_id]
        assert price in {base, round(base * 1.05, 2), round(base * 0.9, 2), round(round(base * 1.05, 2) * 0.9, 2)}
        years.add(ordered.year)
    assert years == {2024, 2025}
    emails = [r[0] for r in rows(db, "SELECT email FROM customers")]
    assert len(set(emails)) == len(emails)


def test_created_once_and_left_alone(tmp_path: Path) -> None:
    db = ensure_sample_database(tmp_path / "sample.db")
    before = db.stat()
    assert ensure_sample_database(db) == db
    after = db.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["sample.db"], "temp or journal files left behind"


def test_a_failed_build_leaves_no_database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # An order without a price breaks a NOT NULL constraint after the other tables are written.
    monkeypatch.setattr(sample_data, "_orders", lambda _rng, _customers: [(1, 1, 1, None, "2024-01-01", "completed")])
    with pytest.raises(sqlite3.IntegrityError, match="unit_price"):
        ensure_sample_database(tmp_path / "sample.db")
    assert list(tmp_path.iterdir()) == []
    monkeypatch.undo()
    assert content_digest(ensure_sample_database(tmp_path / "sample.db")) == SAMPLE_DIGEST


def test_generation_is_quick(tmp_path: Path) -> None:
    started = time.perf_counter()
    ensure_sample_database(tmp_path / "sample.db")
    assert time.perf_counter() - started < 3.0  # ~0.05 s here; generous for slow CI machines
