"""The chat run kind: one assistant reply in a conversation (from Chat, the API or the /v1 endpoint)."""

from __future__ import annotations

from typing import Any

from services.chat import export
from services.chat.reply import ReplyBody
from services.core.kinds import RunKind
from services.core.recovery import streamed_text
from storage.models import Run


def recover(run: Run, events: list[dict[str, Any]]) -> dict[str, Any]:
    """The reply as far as it was streamed."""
    return {"message": {"role": "assistant", "content": streamed_text(events)}}


CHAT = RunKind(name="chat", noun="reply", title="Chat", icon="chat", page="", body=ReplyBody, recover=recover,
               exporter=export, label=lambda run: f"Reply from {run.config.get('model') or 'a model'}")
