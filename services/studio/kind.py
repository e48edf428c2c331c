"""The deliverables run kind (the Studio page): marketing deliverables drafted from a brief.

Its stored and API name stays `deliverables` (../shared/API.md); people know it as Studio.
"""

from __future__ import annotations

from typing import Any

from services.core.kinds import RunKind
from services.studio import export
from services.studio.service import StudioBody
from storage.models import Run


def recover(run: Run, events: list[dict[str, Any]]) -> dict[str, Any]:
    """Nothing to rebuild: each deliverable is stored as it is drafted; the run shows as interrupted."""
    return {}


def label(run: Run) -> str:
    """`launch · Lumen`: the module and the brief's brand; a rewrite says what it rewrote and how."""
    if rewrite := run.config.get("regenerate"):
        return f"Rewrite {rewrite.get('kind', '')}: {str(rewrite.get('instruction', ''))[:60]}"
    brand = (run.config.get("brief") or {}).get("brand") or ""
    return f"{run.config.get('module', '')} · {brand}" if brand else str(run.config.get("module") or "Studio")


DELIVERABLES = RunKind(name="deliverables", noun="generation", title="Studio", icon="campaign", page="/studio",
                       body=StudioBody, recover=recover, exporter=export, label=label)
