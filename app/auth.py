"""Who is asking: in loopback mode, always the one local user."""

from __future__ import annotations

from storage.models import LOCAL_USER_ID


def current_user_id() -> str:
    """The user of the current page or request."""
    return LOCAL_USER_ID
