"""Every kind of run Lantern knows, in the order people see them; a new kind is one more line here."""

from __future__ import annotations

from services.chat.kind import CHAT
from services.core.kinds import Registry
from services.duet.kind import DUET
from services.pipelines.kind import PIPELINE
from services.studio.kind import DELIVERABLES

KINDS = Registry([CHAT, DUET, PIPELINE, DELIVERABLES])
