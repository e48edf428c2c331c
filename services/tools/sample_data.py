"""The bundled sample business database: regions, customers, products and two years of orders."""

from __future__ import annotations

import os
import random
import sqlite3
import tempfile
from datetime import date, timedelta
from pathlib import Path

SEED = 20240101
FIRST_DAY = date(2024, 1, 1)
LAST_DAY = date(2025, 12, 31)
CUSTOMER_COUNT = 300

REGIONS = ("North", "South", "East", "West", "Central")
SEGMENTS = ("Consumer", "SMB", "Enterprise")
STATUSES = ("completed", "refunded", "cancelled")

# (name, category, unit price): fixed so prices never depend on the random stream.
PRODUCTS = (
    ("Lantern Laptop 13", "Hardware", 1199.00), ("Lantern Laptop 15", "Hardware", 1499.00),
    ("Desk Monitor 27", "Hardware", 329.00), ("Docking Station", "Hardware", 189.00),
    ("Mini PC", "Hardware", 649.00), ("Tablet 11", "Hardware", 549.00),
    ("Office Suite", "Software", 99.00), ("Design Studio", "Software", 299.00),
    ("Backup Pro", "Software", 59.00), ("Security Shield", "Software", 79.00),
    ("Analytics Cloud", "Software", 480.00), ("Project Planner", "Software", 149.00),
    ("Wireless Mouse", "Accessories", 29.99), ("Mechanical Keyboard", "Accessories", 89.00),
    ("USB-C Hub", "Accessories", 45.50), ("Noise-Cancelling Headset", "Accessories", 199.00),
    ("Webcam HD", "Accessories", 69.00), ("Laptop Sleeve", "Accessories", 24.99),
    ("Setup Service", "Services", 150.00), ("Data Migration", "Services", 750.00),
    ("Priority Support (year)", "Services", 399.00), ("On-site Repair", "Services", 220.00),
    ("Network Audit", "Services", 1200.00), ("Managed Backup (year)", "Services", 360.00),
    ("Intro Workshop", "Training", 120.00), ("Advanced Analytics Course", "Training", 450.00),
    ("Security Awareness", "Training", 80.00), ("Team Onboarding", "Training", 600.00),
    ("Certification Exam", "Training", 250.00), ("Executive Briefing", "Training", 900.00),
)

FIRST_NAMES = ("Ada", "Ben", "Chloe", "David", "Elena", "Farid", "Grace", "Hugo", "Ines", "Jonas",
               "Keiko", "Liam", "Maya", "Nikhil", "Olivia", "Pavel", "Quinn", "Rosa", "Samir", "Tara")
LAST_NAMES = ("Andersen", "Baker", "Costa", "Dubois", "Evans", "Fischer", "Garcia", "Hughes", "Ito",
              "Jensen", "Kowalski", "Lopez", "Moreau", "Novak", "Okafor", "Patel", "Rossi", "Schmidt")
COMPANY_WORDS = ("Blue", "Cedar", "Harbor", "Summit", "Granite", "Maple", "River", "Atlas", "Nova", "Pioneer")
COMPANY_KINDS = ("Logistics", "Foods", "Dental", "Studios", "Builders", "Consulting", "Labs", "Retail")

SCHEMA = """
CREATE TABLE regions (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE);
CREATE TABLE customers (
    id INTEGER PRIMARY KEY, name TEXT NOT NULL, email TEXT NOT NULL UNIQUE,
    region_id INTEGER NOT NULL REFERENCES regions(id), segment TEXT NOT NULL, created_at TEXT NOT NULL);
CREATE TABLE products (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, category TEXT NOT NULL,
    unit_price REAL NOT NULL);
CREATE TABLE orders (
    id INTEGER PRIMARY KEY, customer_id INTEGER NOT NULL REFERENCES customers(id),
    product_id INTEGER NOT NULL REFERENCES products(id), quantity INTEGER NOT NULL,
    unit_price REAL NOT NULL, order_date TEXT NOT NULL, status TEXT NOT NULL);
CREATE INDEX orders_date ON orders(order_date);
CREATE INDEX orders_customer ON orders(customer_id);
"""

Customer = tuple[int, str, str, int, str, str]
Order = tuple[int, int, int, float, str, str]


def ensure_sample_database(path: Path) -> Path:
    """Create the sample database at `path` unless it exists; readers never see a half-built file."""
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        _build(tmp)
        # fsync before the rename so a power cut cannot leave a renamed-but-empty file.
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def _build(path: Path) -> None:
    """Write every table into an empty SQLite file in one transaction."""
    rng = random.Random(SEED)
    customers = _customers(rng)
    orders = _orders(rng, customers)
    conn = sqlite3.connect(path)
    try:
        # No journal: the file is private until renamed, so crash safety comes from the rename.
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.executescript(SCHEMA)
        with conn:
            conn.executemany("INSERT INTO regions VALUES (?, ?)", enumerate(REGIONS, start=1))
            conn.executemany("INSERT INTO customers VALUES (?, ?, ?, ?, ?, ?)", customers)
            conn.executemany("INSERT INTO products VALUES (?, ?, ?, ?)",
                             [(i, *p) for i, p in enumerate(PRODUCTS, start=1)])
            conn.executemany("INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?, ?)",
                             [(i, *o) for i, o in enumerate(orders, start=1)])
    finally:
        conn.close()


def _customers(rng: random.Random) -> list[Customer]:
    """Consumers are people, SMB and Enterprise customers are companies; sign-ups spread over 21 months."""
    signup_days = (date(2025, 9, 30) - FIRST_DAY).days
    rows: list[Customer] = []
    for cid in range(1, CUSTOMER_COUNT + 1):
        segment = rng.choices(SEGMENTS, weights=(60, 30, 10))[0]
        region_id = rng.choices(range(1, len(REGIONS) + 1), weights=(25, 20, 22, 18, 15))[0]
        if segment == "Consumer":
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            name, handle = f"{first} {last}", f"{first}.{last}"
        else:
            name = f"{rng.choice(COMPANY_WORDS)} {rng.choice(COMPANY_KINDS)}"
            handle = name.replace(" ", "")
        # Skew sign-ups early (min of two draws) so the 2024 cohort has time to order.
        created = FIRST_DAY + timedelta(days=min(rng.randrange(signup_days), rng.randrange(signup_days)))
        email = f"{handle.lower()}.{cid}@example.com"
        rows.append((cid, name, email, region_id, segment, created.isoformat()))
    return rows


def _orders(rng: random.Random, customers: list[Customer]) -> list[Order]:
    """Orders after each customer's sign-up, sorted by date so ids follow time; 2025 prices are 5% higher."""
    per_two_years = {"Consumer": (2, 16), "SMB": (10, 40), "Enterprise": (30, 80)}
    quantities = {"Consumer": (1, 3), "SMB": (1, 10), "Enterprise": (5, 40)}
    rows: list[Order] = []
    for cid, _name, _email, _region, segment, created_at in customers:
        start = date.fromisoformat(created_at)
        span = (LAST_DAY - start).days + 1
        # Order count scales with how long the customer has been around, so volume grows over time.
        count = max(1, round(rng.randint(*per_two_years[segment]) * span / 731))
        for _ in range(count):
            product_id = rng.randrange(len(PRODUCTS)) + 1
            price = PRODUCTS[product_id - 1][2]
            day = start + timedelta(days=rng.randrange(span))
            if day.year == 2025:
                price = round(price * 1.05, 2)
            if segment == "Enterprise":
                price = round(price * 0.9, 2)  # volume discount
            status = rng.choices(STATUSES, weights=(90, 6, 4))[0]
            rows.append((cid, product_id, rng.randint(*quantities[segment]), price, day.isoformat(), status))
    rows.sort(key=lambda o: (o[4], o[0], o[1]))
    return rows

