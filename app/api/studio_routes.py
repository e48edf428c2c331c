"""Deliverables routes (../shared/API.md, Deliverables)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Response

from app.api.responses import DeliverableWithVersions, Envelope, Modules, documented
from app.api.schemas_runs import Amend, GenerateBody
from app.auth import current_user_id
from app.context import Lantern
from services.export.filenames import content_disposition
from services.studio.modules import KINDS, MODULES
from storage import runs as run_repo


def build_studio_router(lantern: Lantern) -> APIRouter:
    """The deliverables routes, bound to this app's services."""
    router = APIRouter()

    @router.get("/api/deliverables/modules", response_model=None, responses=documented(Modules))
    async def modules() -> dict[str, Any]:
        """Modules and the deliverable kinds each produces."""
        return {"modules": [{"id": name, "deliverables": [{"kind": k, "title": KINDS[k].title,
                                                           "platform": KINDS[k].platform} for k in kinds]}
                            for name, kinds in MODULES.items()]}

    @router.post("/api/deliverables/generate", response_model=None, responses=documented(Envelope))
    async def generate(body: GenerateBody) -> dict[str, Any]:
        """Generate a module's deliverables and return the envelope when done."""
        active = await lantern.studio.start(user_id=current_user_id(), module=body.module,
                                            brief=body.brief.model_dump(exclude_none=True), model=body.model)
        await lantern.runs.wait(active.run.id)
        run = await lantern.db.call(run_repo.get_run, run_id=active.run.id)
        assert run is not None
        return run.result

    @router.get("/api/deliverables/{deliverable_id}", response_model=None,
                responses=documented(DeliverableWithVersions))
    async def get(deliverable_id: str) -> dict[str, Any]:
        """A deliverable with every version."""
        return await lantern.studio.get(user_id=current_user_id(), deliverable_id=deliverable_id)

    @router.patch("/api/deliverables/{deliverable_id}", response_model=None,
                   responses=documented(DeliverableWithVersions))
    async def amend(deliverable_id: str, body: Amend) -> dict[str, Any]:
        """Save an amended text as a new version."""
        return await lantern.studio.amend(user_id=current_user_id(), deliverable_id=deliverable_id,
                                          content=body.content_markdown)

    @router.post("/api/deliverables/{deliverable_id}/approve", response_model=None,
                 responses=documented(DeliverableWithVersions))
    async def approve(deliverable_id: str) -> dict[str, Any]:
        """Lock the latest version as approved."""
        return await lantern.studio.approve(user_id=current_user_id(), deliverable_id=deliverable_id)

    @router.get("/api/deliverables/{deliverable_id}/export")
    async def export(deliverable_id: str, format: str = Query("md", pattern="^(md|json)$")) -> Response:
        """The approved version as a file (409 until approved)."""
        text, name = await lantern.studio.export(user_id=current_user_id(), deliverable_id=deliverable_id, fmt=format)
        media = "application/json" if format == "json" else "text/markdown; charset=utf-8"
        return Response(text, media_type=media, headers={"Content-Disposition": content_disposition(name)})

    return router
