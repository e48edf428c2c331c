"""A pipeline is data: ordered LLM steps whose prompts use the topic and earlier steps' outputs.

Templates use `{topic}`, `{steps.<id>}` (an earlier step's response) and `{steps.<id>.<field>}`
(a field of an earlier JSON step). A step with `until` loops back to `repeat_from` until its JSON
field has the wanted value, at most `max_attempts` times; then the pipeline stops early. A JSON step's reply
is held to `output_schema` (or a schema derived from `fields`) by providers that enforce schemas natively.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from services.core import json_schema as js
from services.core.errors import BadInput

# A definition is a page of YAML: these caps leave room for any real one (the built-in has ~200 values) and
# keep a hostile one from costing more than a moment of a worker thread.
MAX_SOURCE_BYTES = 256 * 1024
MAX_VALUES = 10_000
MAX_DEPTH = 40
MAX_PROBLEMS = 10
NO_ALIASES = ("pipeline definitions may not use YAML anchors or aliases (&name / *name / <<: *name): "
              "write each value out in full")

REFERENCE = re.compile(r"\{steps\.([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?\}")
PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "str": str, "int": int, "float": (int, float), "bool": bool, "list": list, "dict": dict}
# A JSON step's schema when its definition gives none: each declared field, bounded (see services/core/json_schema.py).
FIELD_SCHEMAS: dict[str, dict[str, Any]] = {
    "str": js.text(1000), "int": {"type": "integer"}, "float": {"type": "number"}, "bool": {"type": "boolean"},
    "list": js.array({}, max_items=10), "dict": {"type": "object"}}


class Condition(BaseModel):
    """A JSON field of the step's output must equal a value."""

    model_config = ConfigDict(extra="forbid")

    field: str
    equals: Any


class StepDef(BaseModel):
    """One step: which role's model answers which prompt, and what shape the answer has."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    title: str
    role: str
    prompt: str = Field(min_length=1)
    output: Literal["text", "json"] = "text"
    fields: dict[str, Literal["str", "int", "float", "bool", "list", "dict"]] = Field(default_factory=dict)
    # The JSON Schema sent for structured output; derived from `fields` when absent (see step_schema).
    output_schema: dict[str, Any] | None = None
    retries: int = Field(1, ge=0, le=5)
    max_tokens: int | None = Field(None, ge=1, le=32_000)
    until: Condition | None = None
    repeat_from: str | None = None


class PipelineDef(BaseModel):
    """A whole pipeline; validated so that every reference points backwards."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=80)
    description: str = ""
    roles: list[str] = Field(min_length=1)
    steps: list[StepDef] = Field(min_length=1, max_length=30)
    result: str | None = None
    max_attempts: int = Field(3, ge=1, le=10)

    @model_validator(mode="after")
    def _references(self) -> PipelineDef:
        """Roles exist, ids are unique, templates and loops only refer to earlier steps."""
        seen: dict[str, StepDef] = {}
        for i, step in enumerate(self.steps):
            where = f"steps[{i}] ({step.id})"
            if step.id in seen:
                raise ValueError(f"{where}: the id '{step.id}' is used twice")
            if step.role not in self.roles:
                raise ValueError(f"{where}.role: '{step.role}' is not one of roles {self.roles}")
            for ref, field in REFERENCE.findall(step.prompt):
                if ref not in seen:
                    later = any(s.id == ref for s in self.steps[i:])
                    raise ValueError(f"{where}.prompt: refers to step '{ref}', which "
                                     f"{'comes later' if later else 'does not exist'}")
                if field and seen[ref].output != "json":
                    raise ValueError(f"{where}.prompt: '{ref}.{field}' needs step '{ref}' to have output: json")
            for name in PLACEHOLDER.findall(step.prompt):
                if name != "topic" and not REFERENCE.fullmatch("{" + name + "}"):
                    raise ValueError(f"{where}.prompt: unknown placeholder {{{name}}} (use {{topic}} or "
                                     "{steps.<id>} / {steps.<id>.<field>})")
            if step.output == "json" and not step.fields:
                raise ValueError(f"{where}.fields: a json step must list its fields")
            if step.output_schema is not None:
                _check_schema(step, where)
            if step.until is not None:
                if step.output != "json" or step.until.field not in step.fields:
                    raise ValueError(f"{where}.until: '{step.until.field}' must be one of this step's json fields")
                if step.repeat_from not in seen and step.repeat_from != step.id:
                    raise ValueError(f"{where}.repeat_from: must name this or an earlier step")
            elif step.repeat_from is not None:
                raise ValueError(f"{where}.repeat_from: only a step with `until` can loop back")
            seen[step.id] = step
        if self.result is not None and self.result not in seen:
            raise ValueError(f"result: '{self.result}' is not a step id")
        return self


def parse_definition(source: str | dict[str, Any]) -> PipelineDef:
    """A definition from YAML/JSON text or a dict, or BadInput naming the line or field at fault.

    Text can take a moment (PyYAML is pure Python): async callers run this in a worker thread.
    """
    data: Any = source
    if isinstance(source, str):
        size = len(source.encode("utf-8", "surrogatepass"))
        if size > MAX_SOURCE_BYTES:
            raise BadInput(f"the definition is {size / 1024:,.0f} KiB, more than the {MAX_SOURCE_BYTES // 1024} KiB "
                           "accepted")
        try:
            data = yaml.load(source, Loader=_Loader) if not source.lstrip().startswith("{") else json.loads(source)
        except json.JSONDecodeError as exc:
            raise BadInput(f"line {exc.lineno}: {exc.msg}") from exc
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f"line {mark.line + 1}: " if mark is not None else ""
            raise BadInput(f"{line}{getattr(exc, 'problem', None) or exc}") from exc
        except RecursionError as exc:
            raise BadInput("the definition is nested too deeply") from exc
        except ValueError as exc:  # e.g. an integer of more than 4,300 digits
            raise BadInput(f"a value cannot be read: {exc}") from exc
    if not isinstance(data, dict):
        raise BadInput("a pipeline definition is a mapping with name, roles and steps")
    try:
        return PipelineDef.model_validate(data)
    except ValidationError as exc:
        # Thousands of wrong items would otherwise each search the text for their line: name the first few.
        problems = []
        for err in exc.errors()[:MAX_PROBLEMS]:
            path = _path(err["loc"])
            message = err["msg"].removeprefix("Value error, ")
            line_no = _line_of(source, err["loc"], err["msg"]) if isinstance(source, str) else None
            problems.append(f"{f'line {line_no}: ' if line_no else ''}{path + ': ' if path else ''}{message}")
        if exc.error_count() > MAX_PROBLEMS:
            problems.append(f"and {exc.error_count() - MAX_PROBLEMS:,} more problems")
        raise BadInput("; ".join(problems)) from exc


class _Loader(yaml.SafeLoader):
    """SafeLoader without anchors and aliases (a few hundred bytes of them expand to gigabytes), with caps."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._values = 0
        self._depth = 0

    def compose_node(self, parent: Any, index: Any) -> Any:
        """Refuse an alias or anchor, the 10,001st value and nesting past MAX_DEPTH before composing the node."""
        event = self.peek_event()
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.MarkedYAMLError(problem=NO_ALIASES, problem_mark=event.start_mark)
        self._values += 1
        if self._values > MAX_VALUES:
            raise yaml.MarkedYAMLError(problem=f"the definition has more than {MAX_VALUES:,} values",
                                       problem_mark=event.start_mark)
        if self._depth >= MAX_DEPTH:
            raise yaml.MarkedYAMLError(problem=f"the definition is nested more than {MAX_DEPTH} levels deep",
                                       problem_mark=event.start_mark)
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


def render(template: str, *, topic: str, outputs: dict[str, Any]) -> str:
    """Fill a prompt template with the topic and earlier outputs."""
    def value(match: re.Match[str]) -> str:
        step, field = match.group(1), match.group(2)
        out = outputs.get(step)
        if field:
            return _as_text(out.get(field) if isinstance(out, dict) else None)
        return _as_text(out)

    return REFERENCE.sub(value, template).replace("{topic}", topic)


def check_fields(step: StepDef, data: Any) -> str | None:
    """Why a JSON step's output does not have the declared fields, or None when it does."""
    if not isinstance(data, dict):
        return "the response is not a JSON object"
    for name, type_name in step.fields.items():
        if name not in data:
            return f"field '{name}' is missing"
        expected = FIELD_TYPES[type_name]
        if not isinstance(data[name], expected) or (type_name in ("int", "float") and isinstance(data[name], bool)):
            return f"field '{name}' should be {type_name}"
    return None


def step_schema(step: StepDef) -> dict[str, Any] | None:
    """The JSON Schema a JSON step's reply must match (None for a text step)."""
    if step.output != "json":
        return None
    return step.output_schema or js.obj({name: FIELD_SCHEMAS[kind] for name, kind in step.fields.items()})


def _check_schema(step: StepDef, where: str) -> None:
    """A step's own schema is an object schema that requires every declared field."""
    schema = step.output_schema or {}
    if step.output != "json":
        raise ValueError(f"{where}.output_schema: only a json step has one")
    if schema.get("type") != "object" or not isinstance(schema.get("properties"), dict):
        raise ValueError(f"{where}.output_schema: must be an object schema with properties")
    missing = [f for f in step.fields if f not in schema["properties"] or f not in schema.get("required", [])]
    if missing:
        raise ValueError(f"{where}.output_schema: must list and require {', '.join(missing)}")


def _as_text(value: Any) -> str:
    """How an output appears inside a later prompt."""
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, indent=2)


def _path(loc: tuple[Any, ...]) -> str:
    """steps[2].prompt from ('steps', 2, 'prompt')."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _line_of(text: str, loc: tuple[Any, ...], message: str) -> int | None:
    """Best effort: the line of the offending key, within the step the error names (YAML or JSON)."""
    index = next((p for p in loc if isinstance(p, int)), None)
    if index is None and (named := re.search(r"steps\[(\d+)\]", message)):
        index = int(named.group(1))
    start = 0
    if index is not None:
        steps = list(re.finditer(r"^\s*(?:-\s*)?[\"']?id[\"']?\s*:", text, re.MULTILINE))
        if index >= len(steps):
            return None
        start = steps[index].start()
    keys = [p for p in loc if isinstance(p, str) and p != "steps"]
    missing = "Field required" in message
    if keys and not missing:
        key = re.compile(rf"[\"']?{re.escape(keys[-1])}[\"']?\s*:", re.MULTILINE)
        found = key.search(text, start)
        if found is not None:
            start = found.start()
    elif index is None:
        return None
    return text.count("\n", 0, start) + 1
