"""Service routes: `/health` and `/api/models` (../shared/API.md, Service)."""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app import __version__
from app.api.responses import Health, Models, documented
from app.context import Lantern


def build_service_router(lantern: Lantern) -> APIRouter:
    """Health and the model list, bound to this app's services."""
    router = APIRouter()

    @router.get("/health", response_model=None, responses={**documented(Health), **documented(Health, 503)})
    async def health() -> JSONResponse:
        """Liveness and database reachability; as a replica, whether it hears the others (the bus)."""
        ok = await lantern.db.ping()
        body = {"status": "ok" if ok else "degraded", "version": __version__,
                "database": "ok" if ok else "unreachable"}
        replica = lantern.runs.replica
        if replica is not None:  # deaf to the bus, it misses stops and steering asked elsewhere: take it out
            hears = replica.bus.listening.is_set()
            body["bus"] = "ok" if hears else "down"
            ok = ok and hears
            body["status"] = "ok" if ok else "degraded"
        return JSONResponse(body, status_code=200 if ok else 503)

    @router.get("/api/models", response_model=None, responses=documented(Models))
    async def models() -> dict[str, Any]:
        """Every model with availability and why not."""
        return {"default": lantern.registry.default_model,
                "models": [asdict(m) for m in await lantern.registry.list_models_live()]}

    return router
