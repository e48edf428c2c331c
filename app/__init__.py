"""Lantern application: entry point, settings, pages and the HTTP API."""

__version__ = "0.1.0"
