"""JSON Schema → llama.cpp grammar (GBNF) for the embedded model, and the grammar of "answer or call a tool".

Not llama_cpp's own converter: its strings admit raw newlines and control characters (invalid JSON, measured on
SmolLM2 replies) and leave strings and arrays unbounded when a schema does not bound them. Here every string is
JSON-safe and at most `MAX_STRING` characters, every array at most `MAX_ITEMS` items, whitespace at most one
space, so a constrained reply always closes. Grammars are text, built once per schema (lru_cache).
"""

from __future__ import annotations

import json
import re
from functools import lru_cache
from typing import Any

MAX_STRING = 800  # a string the schema leaves unbounded (e.g. a 20,000-character SQL limit) stops here
MAX_ITEMS = 8
MAX_DEPTH = 8
CALL_MARK = "{"  # a tool call is a JSON object; a plain answer may not start with "{"

BASE_RULES = {
    "ws": "[ ]?",
    "char": r'[^"\\\x7F\x00-\x1F] | "\\" ["\\/nt]',
    "int": '"-"? ("0" | [1-9] [0-9]{0,12}) ws',
    "num": '"-"? ("0" | [1-9] [0-9]{0,12}) ("." [0-9]{1,6})? ws',
    "bool": '("true" | "false") ws',
    "null": '"null" ws',
}


# A plain answer: anything not starting with "{" (nor with whitespace, which would hide a "{").
ANSWER = "root ::= [^{ \\t\\n\\r] [^\\x00]*\n"


class GrammarError(ValueError):
    """A schema this converter cannot express (the request is refused, not run unconstrained)."""


def schema_grammar(schema: dict[str, Any]) -> str:
    """The GBNF of JSON values matching `schema`."""
    return _schema_grammar(json.dumps(schema))  # key order kept: properties are generated in the schema's order


def tool_grammar(tools: list[tuple[str, dict[str, Any]]]) -> str:
    """A plain answer, or `{"tool": <name>, "arguments": <that tool's arguments>}` for one offered tool."""
    return _tool_grammar(json.dumps(tools))


@lru_cache(maxsize=64)
def _schema_grammar(schema_json: str) -> str:
    """Cached by the schema's JSON."""
    schema = json.loads(schema_json)
    builder = _Builder(schema)
    return builder.text(builder.value(schema, "root", 0))


@lru_cache(maxsize=16)
def _tool_grammar(tools_json: str) -> str:
    """Cached by the offered tools' names and schemas."""
    tools = json.loads(tools_json)
    builder = _Builder({})
    calls = []
    for name, parameters in tools:
        try:
            args = builder.value(parameters or {"type": "object", "properties": {}}, f"{name}-args", 0)
        except GrammarError:  # e.g. an MCP tool's regex: any bounded object, as the tool layer checks arguments
            args = builder.any_object(0)
        calls.append(builder.add(f'{_lit(json.dumps(name))} ws "," ws {_lit(json.dumps("arguments"))} ws ":" ws '
                                 f"{args}", f"{name}-call"))
    call = builder.add(f'"{{" ws {_lit(json.dumps("tool"))} ws ":" ws ( {" | ".join(calls)} ) "}}"', "call")
    answer = builder.add(ANSWER.removeprefix("root ::= ").strip(), "answer")
    return builder.text(f"{call} | {answer}")


class _Builder:
    """Collects named rules; identical rule bodies share one name."""

    def __init__(self, root: dict[str, Any]) -> None:
        self.defs: dict[str, Any] = {**root.get("definitions", {}), **root.get("$defs", {})}
        self.rules: dict[str, str] = dict(BASE_RULES)
        self.by_body: dict[str, str] = {}

    def text(self, root: str) -> str:
        """The whole grammar, `root` first."""
        return "\n".join([f"root ::= {root}", *(f"{n} ::= {b}" for n, b in self.rules.items())]) + "\n"

    def add(self, body: str, hint: str) -> str:
        """A rule name for `body`."""
        if body in BASE_RULES.values():
            return next(n for n, b in BASE_RULES.items() if b == body)
        if body not in self.by_body:
            base = re.sub(r"[^a-z0-9]+", "-", hint.lower()).strip("-") or "r"
            name, n = base, 1
            while name in self.rules or name == "root":
                n += 1
                name = f"{base}{n}"
            self.rules[name] = body
            self.by_body[body] = name
        return self.by_body[body]

    def value(self, schema: dict[str, Any] | bool, hint: str, depth: int) -> str:
        """The rule for one schema."""
        if depth > MAX_DEPTH:
            raise GrammarError("the schema nests too deeply for the local model")
        if schema is True or schema == {}:
            return self.any_value(depth)
        if not isinstance(schema, dict):
            raise GrammarError(f"unsupported schema {schema!r}")
        if "$ref" in schema:
            ref = str(schema["$ref"]).rsplit("/", 1)[-1]
            if ref not in self.defs:
                raise GrammarError(f"unknown reference {schema['$ref']}")
            return self.value(self.defs[ref], ref, depth + 1)
        if "const" in schema:
            return self.add(f"{_lit(json.dumps(schema['const']))} ws", hint)
        if "enum" in schema:
            return self.add("( " + " | ".join(_lit(json.dumps(v)) for v in schema["enum"]) + " ) ws", hint)
        options = schema.get("anyOf") or schema.get("oneOf")
        if options:
            return self.add(" | ".join(self.value(s, f"{hint}-{i}", depth + 1) for i, s in enumerate(options)), hint)
        kind = schema.get("type")
        if isinstance(kind, list):
            return self.add(" | ".join(self.value({**schema, "type": k}, f"{hint}-{k}", depth + 1) for k in kind),
                            hint)
        if kind == "object" or (kind is None and "properties" in schema):
            return self.object(schema, hint, depth)
        if kind == "array":
            return self.array(schema, hint, depth)
        if kind == "string":
            return self.string(schema, hint)
        simple = {"integer": "int", "number": "num", "boolean": "bool", "null": "null"}
        if kind in simple:
            return simple[kind]
        if kind is None:
            return self.any_value(depth)
        raise GrammarError(f"unsupported type {kind!r}")

    def object(self, schema: dict[str, Any], hint: str, depth: int) -> str:
        """Required properties in order, then each optional one (a subset of the valid objects, always valid)."""
        properties: dict[str, Any] = schema.get("properties") or {}
        if not properties:  # no properties listed: free-form; listed as none: the empty object
            return self.any_object(depth) if "properties" not in schema else self.add('"{" ws "}" ws', "empty")
        required = [k for k in properties if k in set(schema.get("required", []))]
        optional = [k for k in properties if k not in required]
        pairs = {k: f'{_lit(json.dumps(k))} ws ":" ws {self.value(properties[k], f"{hint}-{k}", depth + 1)}'
                 for k in properties}
        body = ' "," ws '.join(pairs[k] for k in required)
        for k in optional:
            body += f' ( "," ws {pairs[k]} )?' if body else f" ( {pairs[k]}"
        if not required:
            body += " )?" * (1 if optional else 0)
        return self.add(f'"{{" ws {body} "}}" ws', hint)

    def array(self, schema: dict[str, Any], hint: str, depth: int) -> str:
        """Items between minItems and maxItems (bounded by MAX_ITEMS)."""
        items = schema.get("items", {})
        item = self.value(items if isinstance(items, dict) else {}, f"{hint}-item", depth + 1)
        low = int(schema.get("minItems", 0))
        high = min(int(schema.get("maxItems", MAX_ITEMS)), max(MAX_ITEMS, low))
        if high < low:
            raise GrammarError(f"{hint}: maxItems is below minItems")
        if high == 0:
            return self.add('"[" ws "]" ws', hint)
        more = f'( "," ws {item} ){_count(max(low - 1, 0), high - 1)}'
        inner = f"{item} {more}" if low else f"( {item} {more} )?"
        return self.add(f'"[" ws {inner} "]" ws', hint)

    def string(self, schema: dict[str, Any], hint: str) -> str:
        """A JSON-safe string of bounded length, or a simple pattern."""
        low = int(schema.get("minLength", 0))
        high = min(int(schema.get("maxLength", MAX_STRING)), max(MAX_STRING, low))
        if "pattern" in schema:
            return self.add(r'"\"" ' + _pattern(str(schema["pattern"])) + r' "\"" ws', hint)
        return self.add(r'"\"" ' + (f"char{_count(low, high)}" if high else "") + r' "\"" ws', hint)

    def any_value(self, depth: int) -> str:
        """Any JSON value, bounded (free-form schemas); nesting stops at MAX_DEPTH."""
        scalar = self.add(f"{self.string({}, 'any-string')} | num | bool | null", "any-scalar")
        if depth >= MAX_DEPTH - 1:
            return scalar
        inner = self.any_value(depth + 2)
        listed = self.add(f'"[" ws ( {inner} ( "," ws {inner} ){{0,{MAX_ITEMS - 1}}} )? "]" ws', f"any-list{depth}")
        return self.add(f"{scalar} | {listed} | {self.any_object(depth)}", f"any{depth}")

    def any_object(self, depth: int) -> str:
        """An object with string keys and any values, bounded."""
        key = self.string({"minLength": 1, "maxLength": 40}, "key")
        inner = self.any_value(depth + 2) if depth < MAX_DEPTH - 1 else self.add(
            f"{self.string({}, 'any-string')} | num | bool | null", "any-scalar")
        pair = f'{key} ":" ws {inner}'
        return self.add(f'"{{" ws ( {pair} ( "," ws {pair} ){{0,{MAX_ITEMS - 1}}} )? "}}" ws', f"any-object{depth}")


def _count(low: int, high: int) -> str:
    """A GBNF repetition."""
    return f"{{{low}}}" if low == high else f"{{{low},{high}}}"


def _lit(text: str) -> str:
    """A GBNF string literal."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


PATTERN_ATOM = re.compile(r"(\[(?:\\.|[^\]\\])+\]|\\.|[^\\\[\](){}|*+?.^$])(\?|\*|\+|\{\d+(?:,\d*)?\})?")


def _pattern(pattern: str) -> str:
    """An anchored pattern of classes and literals with quantifiers (e.g. ^#?[A-Za-z0-9_]{2,30}$) as GBNF."""
    if not (pattern.startswith("^") and pattern.endswith("$")):
        raise GrammarError(f"pattern {pattern} must be anchored with ^ and $")
    body, parts, at = pattern[1:-1], [], 0
    while at < len(body):
        match = PATTERN_ATOM.match(body, at)
        if match is None:
            raise GrammarError(f"pattern {pattern} is too complex for the local model's grammar")
        atom, quantifier = match.group(1), match.group(2) or ""
        if atom.startswith("\\") and atom[1] in "dw":
            atom = "[0-9]" if atom[1] == "d" else "[A-Za-z0-9_]"
        elif atom.startswith("\\"):
            atom = _lit(atom[1])
        elif not atom.startswith("["):
            atom = _lit(atom)
        unsafe = atom.startswith("[") and ('"' in atom or "\\\\" in atom)  # raw quotes or backslashes: bad JSON
        if atom in ('"\\""', '"\\\\"') or atom.startswith("[^") or unsafe:
            raise GrammarError(f"pattern {pattern}: quotes, backslashes and negated classes are not supported")
        if quantifier in ("*", "+"):
            quantifier = f"{{{0 if quantifier == '*' else 1},{MAX_STRING}}}"
        elif quantifier.startswith("{") and quantifier.endswith(",}"):
            quantifier = quantifier[:-1] + f"{MAX_STRING}}}"
        parts.append(atom + quantifier)
        at = match.end()
    return " ".join(parts)
