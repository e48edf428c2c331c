"""`/openapi.json` and a self-contained `/docs` page (no CDN: Lantern runs offline and its CSP allows only itself)."""

from __future__ import annotations

import html
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

METHODS = ("get", "post", "patch", "put", "delete")


def build_docs_router(app: FastAPI) -> APIRouter:
    """The schema of the HTTP API (pages and NiceGUI internals left out) and a readable page of it."""
    router = APIRouter()

    def schema() -> dict[str, Any]:
        full = app.openapi()
        paths = {p: ops for p, ops in full["paths"].items() if p.startswith(("/api/", "/health"))}
        return {**full, "info": {"title": "Lantern API", "version": full["info"].get("version", "")},
                "paths": paths}

    @router.get("/openapi.json", include_in_schema=False)
    def openapi() -> JSONResponse:
        return JSONResponse(schema())

    @router.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(render(schema()))

    return router


def render(spec: dict[str, Any]) -> str:
    """One section per operation: method, path, summary, parameters and body fields."""
    components = spec.get("components", {}).get("schemas", {})
    sections = []
    for path, ops in spec["paths"].items():
        for method in METHODS:
            op = ops.get(method)
            if op is None:
                continue
            params = "".join(f"<li><code>{html.escape(p['name'])}</code> ({p['in']})"
                             f"{' required' if p.get('required') else ''}</li>" for p in op.get("parameters", []))
            ref = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            body = components.get(ref.get("$ref", "").rsplit("/", 1)[-1], {})
            required = set(body.get("required", []))
            fields = "".join(f"<li><code>{html.escape(name)}</code>{' required' if name in required else ''}</li>"
                             for name in body.get("properties", {}))
            sections.append(
                f"<section><h2><span class=m>{method.upper()}</span> <code>{html.escape(path)}</code></h2>"
                f"<p>{html.escape(op.get('description') or op.get('summary') or '')}</p>"
                + (f"<h3>Parameters</h3><ul>{params}</ul>" if params else "")
                + (f"<h3>Body</h3><ul>{fields}</ul>" if fields else "") + "</section>")
    return ("<!doctype html><html lang=en><head><meta charset=utf-8><title>Lantern API</title>"
            "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
            "section{border-top:1px solid #8884;padding:.5rem 0}h2{font-size:1.05rem;margin:.4rem 0}"
            "h3{font-size:.9rem;margin:.3rem 0}.m{display:inline-block;min-width:4.5rem;color:#2563eb}"
            "@media(prefers-color-scheme:dark){body{background:#111;color:#ddd}}</style></head><body>"
            "<h1>Lantern API</h1><p>The contract, events and examples are in the README. Machine-readable: "
            "<a href=openapi.json>openapi.json</a>. In shared mode send <code>Authorization: Basic …</code> or "
            "<code>Authorization: Bearer lt_…</code>.</p>" + "".join(sections) + "</body></html>")
