"""Async domain layer: events, providers, runs, chat and friends (never imports NiceGUI)."""
