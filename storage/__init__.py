"""Persistence: SQLModel tables, engine, migrations and repository functions (no NiceGUI)."""
