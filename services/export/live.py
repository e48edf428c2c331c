"""A run's export document as it is now, wherever it runs: in replica mode a live run may be driven by another
process (the API is not sticky behind a load balancer), and only that process holds its unfinished turns."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from services.core.errors import LanternError
from services.kinds import KINDS
from storage import runs as run_repo
from storage.models import Run

if TYPE_CHECKING:
    from services.core.replicas import Replica
    from services.core.runs import ActiveRun, RunManager

EXPORT = "run.export"  # a request to the replica driving a run: its document as it is now


async def run_document(runs: RunManager, run: Run) -> dict[str, Any]:
    """The run's document: live from this process or from the replica driving it, else as stored."""
    active = runs.active.get(run.id)
    if active is None and run.status == "running" and runs.replica is not None:
        try:
            return dict(await runs.replica.ask_owner(run.id, EXPORT, {}))
        except LanternError:  # it ended meanwhile, or its replica died (reaped soon): as stored now
            stored = await runs.db.call(run_repo.get_run, run_id=run.id)
            run = stored if stored is not None else run
    return KINDS.get(run.kind).exporter.document(run, active=active)


def answer_exports(replica: Replica) -> None:
    """Answer other replicas' export requests for the runs driven here."""

    async def document_here(active: ActiveRun, _args: dict[str, Any]) -> dict[str, Any]:
        return KINDS.get(active.run.kind).exporter.document(active.run, active=active)

    replica.handle(EXPORT, document_here)
