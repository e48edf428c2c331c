"""One error shape for every API failure: `{"error": {"type", "message"}}`."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from services.core import errors


def error_response(status: int, type_: str, message: str, **extra: Any) -> JSONResponse:
    """The standard error body."""
    return JSONResponse({"error": {"type": type_, "message": message, **extra}}, status_code=status)


def lantern_error_response(exc: errors.LanternError, **headers: str) -> JSONResponse:
    """One of our errors as a response: its status, our body, `Retry-After` when it carries one."""
    response = error_response(status_for(exc), exc.kind, str(exc))
    if isinstance(exc, errors.RateLimited):
        response.headers["Retry-After"] = str(int(exc.retry_after))
    response.headers.update(headers)
    return response


def status_for(exc: errors.LanternError) -> int:
    """HTTP status of one of our errors (each declares its own, services/core/errors.py)."""
    return exc.status


def install(app: FastAPI) -> None:
    """Register the handlers."""

    async def lantern_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, errors.LanternError)
        return lantern_error_response(exc)

    async def validation_error(_request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, RequestValidationError)
        fields = [{"field": ".".join(str(p) for p in e["loc"] if p != "body"), "message": e["msg"]}
                  for e in exc.errors()]
        summary = "; ".join(f"{f['field'] or 'body'}: {f['message']}" for f in fields)
        return error_response(422, "validation", f"Invalid request: {summary}", fields=fields)

    async def unreadable_body(_request: Request, exc: Exception) -> JSONResponse:
        # FastAPI's own 400 for a body it cannot decode (invalid UTF-8, nesting too deep), in our shape.
        return error_response(400, "bad_request", f"{getattr(exc, 'detail', 'Bad request')}: send UTF-8 JSON")

    app.add_exception_handler(errors.LanternError, lantern_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(400, unreadable_body)


def install_not_found(app: FastAPI) -> None:
    """Unknown `/api/...` routes answer in the API's error shape (NiceGUI would serve its HTML 404 page).

    Registered after every API route: it only catches what no route matched.
    """

    async def not_found(request: Request) -> JSONResponse:
        return error_response(404, "not_found", f"No API route {request.method} {request.url.path}: "
                                                "see /docs for the routes")

    app.add_api_route("/api/{rest:path}", not_found, methods=["GET", "POST", "PUT", "PATCH", "DELETE"],
                      include_in_schema=False)
