"""The JSON Schemas Lantern sends for structured output: bounded builders, and a validator for the subset used.

Every string and array is bounded: a small model under a grammar otherwise writes one string until max_tokens
(measured on SmolLM2: 5 invalid replies in 9), and OpenAI's strict mode wants every object closed and every
property required, which `obj` gives.
"""

from __future__ import annotations

import re
from typing import Any

TYPES: dict[str, type | tuple[type, ...]] = {
    "string": str, "integer": int, "number": (int, float), "boolean": bool, "null": type(None),
    "object": dict, "array": list}


def text(max_length: int, *, min_length: int = 1, pattern: str | None = None) -> dict[str, Any]:
    """A string of bounded length."""
    schema: dict[str, Any] = {"type": "string", "minLength": min_length, "maxLength": max_length}
    if pattern is not None:
        schema["pattern"] = pattern
    return schema


def array(items: dict[str, Any], *, max_items: int, min_items: int = 0) -> dict[str, Any]:
    """A list of bounded length."""
    return {"type": "array", "items": items, "minItems": min_items, "maxItems": max_items}


def obj(properties: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A closed object whose properties are all required, in this order."""
    return {"type": "object", "properties": properties, "required": list(properties),
            "additionalProperties": False}


def problem(value: Any, schema: dict[str, Any], path: str = "") -> str | None:
    """Why `value` does not match `schema` (the keywords Lantern's schemas use), or None when it does."""
    where = path or "the reply"
    if "anyOf" in schema or "oneOf" in schema:
        options = schema.get("anyOf") or schema.get("oneOf") or []
        return None if any(problem(value, s, path) is None for s in options) else f"{where} matches no allowed shape"
    if "const" in schema and value != schema["const"]:
        return f"{where} should be {schema['const']!r}"
    if "enum" in schema and value not in schema["enum"]:
        return f"{where} should be one of {', '.join(map(repr, schema['enum']))}"
    kinds = schema.get("type")
    if kinds is not None:
        names = kinds if isinstance(kinds, list) else [kinds]
        if not any(_is(value, name) for name in names):
            return f"{where} should be {' or '.join(names)}"
    if isinstance(value, str):
        return _string_problem(value, schema, where)
    if isinstance(value, list):
        if len(value) < schema.get("minItems", 0):
            return f"{where} needs at least {schema['minItems']} items"
        if "maxItems" in schema and len(value) > schema["maxItems"]:
            return f"{where} has more than {schema['maxItems']} items"
        items = schema.get("items")
        if isinstance(items, dict):
            for i, item in enumerate(value):
                if (found := problem(item, items, f"{path}[{i}]")) is not None:
                    return found
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        for name in schema.get("required", []):
            if name not in value:
                return f"field '{path + '.' if path else ''}{name}' is missing"
        if schema.get("additionalProperties") is False and (extra := sorted(set(value) - set(properties))):
            return f"unexpected field(s) {', '.join(extra)}"
        for name, sub in properties.items():
            if name in value and (found := problem(value[name], sub, f"{path + '.' if path else ''}{name}")):
                return found
    return None


def _is(value: Any, name: str) -> bool:
    """JSON type membership (a bool is not a number here, as in JSON)."""
    if name in ("integer", "number") and isinstance(value, bool):
        return False
    return isinstance(value, TYPES.get(name, object))


def _string_problem(value: str, schema: dict[str, Any], where: str) -> str | None:
    """Length and pattern of a string."""
    if len(value) < schema.get("minLength", 0):
        return f"{where} is empty" if schema.get("minLength") == 1 else f"{where} is too short"
    if "maxLength" in schema and len(value) > schema["maxLength"]:
        return f"{where} is longer than {schema['maxLength']} characters"
    if "pattern" in schema and re.search(schema["pattern"], value) is None:
        return f"{where} does not match {schema['pattern']}"
    return None
