"""The REST + SSE API for scripts and other clients (../shared/API.md)."""
