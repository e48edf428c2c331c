"""The duet run kind: two bots talking for N turns, steerable mid-run."""

from __future__ import annotations

from services.core.kinds import RunKind
from services.duet import export
from services.duet.recovery import recover
from services.duet.service import DuetBody

DUET = RunKind(name="duet", noun="duet", title="Duet", icon="forum", page="/duet", body=DuetBody,
               recover=recover, exporter=export, label=lambda run: str(run.config.get("topic") or "Duet"))
