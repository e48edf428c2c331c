"""Run routes: start, list, inspect, follow, stop, steer and export runs (../shared/API.md, Runs)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Header, Query, Response
from fastapi.responses import JSONResponse

from app.api.downloads import download
from app.api.errors import error_response
from app.api.responses import AgentChanged, RunOut, RunPage, RunStarted, RunStopped, documented
from app.api.schemas_runs import AgentPatch, DeliverablesCreate, PipelineCreate, RunCreate
from app.api.sse import sse_response
from app.auth import current_user_id
from app.context import Lantern
from services.core.errors import NotFound
from services.export.formats import render
from services.export.live import run_document
from services.kinds import KINDS
from storage import runs as run_repo
from storage.models import Run

PUBLIC_RUN_FIELDS = {"id", "trace_id", "kind", "status", "conversation_id", "config", "result", "error",
                     "input_tokens", "output_tokens", "cost_usd", "started_at", "finished_at"}


def build_run_router(lantern: Lantern) -> APIRouter:
    """The run routes, bound to this app's services."""
    router = APIRouter()

    async def owned(run_id: str) -> Run:
        found = await lantern.db.call(run_repo.get_run, run_id=run_id, user_id=current_user_id())
        if found is None:
            raise NotFound(f"No run {run_id}")
        return found

    @router.post("/api/runs", status_code=201, response_model=None, responses=documented(RunStarted, 201))
    async def create(body: RunCreate) -> dict[str, Any]:
        """Start a run in the background; follow it with `/api/runs/{id}/events`."""
        if isinstance(body, DeliverablesCreate):
            active = await lantern.studio.start(user_id=current_user_id(), module=body.module,
                                                brief=body.brief.model_dump(exclude_none=True), model=body.model)
        elif isinstance(body, PipelineCreate):
            active = await lantern.pipelines.start(
                user_id=current_user_id(), topic=body.topic, pipeline=body.pipeline, definition=body.definition,
                model=body.model, models=body.models, max_attempts=body.max_attempts)
        else:
            active = await lantern.duet.start(user_id=current_user_id(), topic=body.topic, turns=body.turns,
                                              agents=[a.model_dump() for a in body.agents],
                                              continue_from=body.continue_from)
        return {"run_id": active.run.id, "trace_id": active.run.trace_id, "status": "running"}

    @router.get("/api/runs", response_model=None, responses=documented(RunPage))
    async def list_runs(kind: str | None = None, limit: int = Query(50, ge=1, le=500),
                        offset: int = Query(0, ge=0, le=2**31)) -> dict[str, Any]:  # beyond: a 500 from the driver
        """The user's runs, newest first."""
        runs = await lantern.db.call(run_repo.list_runs, user_id=current_user_id(), kind=kind, limit=limit,
                                     offset=offset)
        return {"items": [public(r) for r in runs]}

    @router.get("/api/runs/{run_id}", response_model=None, responses=documented(RunOut))
    async def get(run_id: str) -> dict[str, Any]:
        """A run's status, config, timings, usage and result."""
        return public(await owned(run_id))

    @router.get("/api/runs/{run_id}/events")
    async def events(run_id: str, last_event_id: str | None = Header(None)) -> Response:
        """Replay then follow a run as SSE, resuming after `Last-Event-ID`."""
        await owned(run_id)
        after = min(int(last_event_id), 2**31 - 1) if last_event_id and last_event_id.isdecimal() else 0  # seq is int32
        return sse_response(lantern.runs.follow(run_id, after=after))

    @router.post("/api/runs/{run_id}/stop", responses=documented(RunStopped))
    async def stop(run_id: str) -> Response:
        """Stop a running run at once; partial output is kept."""
        found = await owned(run_id)
        if not await lantern.runs.stop(run_id):
            return error_response(409, "not_running", f"Run {run_id} is {found.status}, not running")
        return JSONResponse({"status": "stopped"})

    @router.patch("/api/runs/{run_id}/agents/{index}", response_model=None, responses=documented(AgentChanged))
    async def steer(run_id: str, index: int, body: AgentPatch) -> dict[str, Any]:
        """Change a duet bot from its next turn; the change is recorded in the transcript."""
        agent = await lantern.duet.update_agent(user_id=current_user_id(), run_id=run_id, index=index,
                                                changes=body.model_dump(exclude_none=True))
        return {"index": index, "agent": agent}

    @router.get("/api/runs/{run_id}/export")
    async def export(run_id: str, format: str = Query("json", pattern="^(json|md|pdf)$")) -> Response:
        """The run as a file: JSON (lossless), Markdown or PDF."""
        found = await owned(run_id)
        return download(await render(KINDS.get(found.kind).exporter, await run_document(lantern.runs, found), format))

    return router


def public(run: Run) -> dict[str, Any]:
    """A run as clients see it (no owner id): usage as one object, the error with its type."""
    body = run.model_dump(mode="json", include=PUBLIC_RUN_FIELDS)
    body["usage"] = {"input_tokens": run.input_tokens, "output_tokens": run.output_tokens, "cost_usd": run.cost_usd}
    if run.error:
        body["error_type"] = run.error_type or "error"
    return body
