"""Repository functions for saved presets."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from storage.conversations import ensure_user
from storage.models import Preset


def save_preset(session: Session, *, user_id: str, kind: str, name: str, config: dict[str, Any]) -> Preset:
    """Save (or overwrite, by name) a preset."""
    ensure_user(session, user_id=user_id, name=user_id)
    existing = session.exec(select(Preset).where(Preset.user_id == user_id, Preset.kind == kind,
                                                 Preset.name == name)).first()
    preset = existing or Preset(user_id=user_id, kind=kind, name=name)
    preset.config = config
    session.add(preset)
    session.flush()
    return preset


def list_presets(session: Session, *, user_id: str, kind: str) -> list[Preset]:
    """The user's presets of a kind, by name."""
    return list(session.exec(select(Preset).where(Preset.user_id == user_id, Preset.kind == kind)
                             .order_by(col(Preset.name))))
