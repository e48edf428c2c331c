"""`/openapi.json` and a self-contained `/docs` page (no CDN: Lantern runs offline and its CSP allows only itself)."""

from __future__ import annotations

import html
import json
from typing import Any

from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse, JSONResponse

METHODS = ("get", "post", "patch", "put", "delete")


def build_docs_router(app: FastAPI) -> APIRouter:
    """The schema of the HTTP API (pages and NiceGUI internals left out) and a readable page of it."""
    router = APIRouter()

    def schema() -> dict[str, Any]:
        full = app.openapi()
        paths = {p: ops for p, ops in full["paths"].items() if p.startswith(("/api/", "/v1/", "/health"))}
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
    """One section per operation: method, path, summary, typed parameters, typed body fields and an example body."""
    components = spec.get("components", {}).get("schemas", {})
    sections = []
    for path, ops in spec["paths"].items():
        for method in METHODS:
            op = ops.get(method)
            if op is None:
                continue
            params = "".join(f"<li><code>{html.escape(p['name'])}</code> "
                             f"<i>{html.escape(type_name(p.get('schema', {}), components))}</i>"
                             f" ({p['in']}){' required' if p.get('required') else ''}</li>"
                             for p in op.get("parameters", []))
            ref = op.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
            body = resolve(ref, components)
            required = set(body.get("required", []))
            fields = "".join(
                f"<li><code>{html.escape(name)}</code> <i>{html.escape(type_name(prop, components))}</i>"
                f"{' required' if name in required else ''}"
                + (f" — {html.escape(str(prop['description']))}" if prop.get("description") else "") + "</li>"
                for name, prop in body.get("properties", {}).items())
            sample = (f"<h3>Example body</h3><pre>{html.escape(json.dumps(example(body, components), indent=2))}</pre>"
                      if body else "")
            sections.append(
                f"<section><h2><span class=m>{method.upper()}</span> <code>{html.escape(path)}</code></h2>"
                f"<p>{html.escape(op.get('description') or op.get('summary') or '')}</p>"
                + (f"<h3>Parameters</h3><ul>{params}</ul>" if params else "")
                + (f"<h3>Body</h3><ul>{fields}</ul>{sample}" if fields else "") + "</section>")
    return ("<!doctype html><html lang=en><head><meta charset=utf-8><title>Lantern API</title>"
            "<style>body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem}"
            "section{border-top:1px solid #8884;padding:.5rem 0}h2{font-size:1.05rem;margin:.4rem 0}"
            "h3{font-size:.9rem;margin:.3rem 0}.m{display:inline-block;min-width:4.5rem;color:#2563eb}"
            "i{color:#888}pre{background:#8881;padding:.5rem;border-radius:4px;overflow:auto}"
            "@media(prefers-color-scheme:dark){body{background:#111;color:#ddd}}</style></head><body>"
            "<h1>Lantern API</h1><p>The contract, events and examples are in the README. Machine-readable: "
            "<a href=openapi.json>openapi.json</a>. In shared mode send <code>Authorization: Basic …</code> or "
            "<code>Authorization: Bearer lt_…</code>. Errors are <code>{\"error\": {\"type\", \"message\"}}</code>; "
            "streams are Server-Sent Events resumable with <code>Last-Event-ID</code>.</p>"
            + "".join(sections) + "</body></html>")


def resolve(schema: dict[str, Any], components: dict[str, Any]) -> dict[str, Any]:
    """A schema with its `$ref` followed."""
    ref = schema.get("$ref")
    return components.get(ref.rsplit("/", 1)[-1], {}) if ref else schema


def type_name(schema: dict[str, Any], components: dict[str, Any]) -> str:
    """A short type for people: string, integer, list of string, one of a | b, Brief…"""
    if "$ref" in schema:
        return str(schema["$ref"].rsplit("/", 1)[-1])
    if "enum" in schema:
        return " | ".join(json.dumps(v) for v in schema["enum"])
    if "const" in schema:
        return json.dumps(schema["const"])
    for key in ("anyOf", "oneOf"):
        if key in schema:
            names = [type_name(s, components) for s in schema[key] if s.get("type") != "null"]
            return " | ".join(names) + (" or null" if any(s.get("type") == "null" for s in schema[key]) else "")
    if schema.get("type") == "array":
        return "list of " + type_name(schema.get("items", {}), components)
    return str(schema.get("type", "any"))


def example(schema: dict[str, Any], components: dict[str, Any], depth: int = 0) -> Any:
    """A plausible value for a schema: its example or default, else one built from the types."""
    schema = resolve(schema, components)
    if depth > 5:
        return None
    for key in ("example", "default"):
        if schema.get(key) is not None:
            return schema[key]
    if schema.get("examples"):
        return schema["examples"][0]
    if "enum" in schema:
        return schema["enum"][0]
    if "const" in schema:
        return schema["const"]
    for key in ("anyOf", "oneOf"):
        if key in schema:
            options = [s for s in schema[key] if s.get("type") != "null"] or schema[key]
            return example(options[0], components, depth + 1)
    kind = schema.get("type")
    if kind == "object" or "properties" in schema:
        required = set(schema.get("required", []))
        props = schema.get("properties", {})
        chosen = [n for n in props if n in required] or list(props)[:3]
        return {n: example(props[n], components, depth + 1) for n in chosen}
    if kind == "array":
        return [example(schema.get("items", {}), components, depth + 1)]
    return {"string": "text", "integer": 1, "number": 0.5, "boolean": True}.get(str(kind))
