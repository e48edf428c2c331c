"""Duet export: a lossless JSON document of a duet run (bots, every change, turns, usage, timings),
and Markdown and PDF transcripts of it.

`document` takes the stored `Run` (and, while the duet is running in this process, its
`ActiveRun` for the live transcript); the module is this kind's exporter (services/export/formats.py
`Exporter`): `render(duet_export, doc, fmt)` makes the file.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from html import escape
from typing import Any

from services.core.runs import ActiveRun
from services.core.usage import usage_text
from services.duet.service import STEERABLE, DuetBody, conversation_changes
from services.export.conversation import STATUS_LABEL
from services.export.formats import (
    close_open_fence,
    html_page,
    human_time,
    iso,
    quote,
    render_markdown_html,
    slug,
)
from storage.models import Run

DOCUMENT_FORMAT = "lantern.duet"
DOCUMENT_VERSION = 1
# Whitelists: only these fields ever leave a run in an export (never the user id).
AGENT_FIELDS = ("name", "model", "system_prompt", "temperature", "max_tokens")
TURN_FIELDS = ("turn", "agent_index", "agent", "model", "content", "status", "seconds", "input_tokens",
               "output_tokens", "cost_usd", "started_at")
CHANGE_FIELDS = ("before_turn", "agent_index", "agent", "at")
CHANGE_KEYS = (*STEERABLE, *(k for k in ("max_tokens",) if k not in STEERABLE))


def document(run: Run, *, active: ActiveRun | None = None) -> dict[str, Any]:
    """The whole duet as a JSON-ready dict.

    A finished run is read from its stored result. A running one has no stored result yet: pass its
    `ActiveRun` to export the transcript so far (its partial turn included); without it the document
    has the configuration and status but no turns.

    A continued duet is one conversation over several runs (`conversation_runs`, this one last): its turns,
    changes, bots at the start and `totals` cover the whole conversation; `run_totals` are this run's own.
    """
    config = run.config or {}
    earlier = config.get("conversation") or {}
    result, usage, status = _source(run, active)
    start_agents = [_pick(a, AGENT_FIELDS) for a in earlier.get("agents_at_start") or config.get("agents") or []]
    turns = [_pick(t, TURN_FIELDS) for t in result.get("turns") or []]
    started = iso(run.started_at)
    finished = iso(run.finished_at) if run.finished_at and status != "running" else None
    first = int((earlier.get("totals") or {}).get("turns") or 0)
    own = {"turns": sum(1 for t in turns if int(t["turn"] or 0) >= first),
           "input_tokens": int(usage["input_tokens"]), "output_tokens": int(usage["output_tokens"]),
           "cost_usd": float(usage["cost_usd"]), "seconds": _seconds_between(started, finished)}
    return {
        "format": DOCUMENT_FORMAT,
        "version": DOCUMENT_VERSION,
        "exported_at": iso(datetime.now(UTC)),
        "id": run.id,
        "trace_id": run.trace_id,
        "status": status,
        "started_at": started,
        "finished_at": finished,
        "topic": str(result.get("topic") or config.get("topic") or ""),
        "turns_requested": config.get("turns"),
        "continue_from": config.get("continue_from"),
        "conversation_runs": [*(earlier.get("runs") or []), run.id],
        "agents_at_start": start_agents,
        "agents_at_end": [_pick(a, AGENT_FIELDS) for a in result.get("agents") or []] or start_agents,
        "turns": turns,
        "changes": [_change_fields(c) for c in conversation_changes(config, result)],
        "totals": _conversation_totals(earlier.get("totals") or {}, own),
        "run_totals": own,
        "error": _error(run, result),
    }


def to_markdown(doc: dict[str, Any]) -> str:
    """The transcript as Markdown: the bots, each turn verbatim, each change where it took effect, totals."""
    out = [f"# {_title(doc)}", "", f"_{_meta(doc)}_", ""]
    if doc.get("continue_from"):
        out += [f"_Continues duet `{doc['continue_from']}`: its turns come first._", ""]
    out += ["## Bots", ""]
    for agent in doc["agents_at_start"]:
        out += [f"**{_flat(agent['name'])}** — {_agent_settings(agent)}", "",
                quote(agent["system_prompt"]) if agent.get("system_prompt") else "_No system prompt._", ""]
    out += ["## Conversation", ""]
    for item in _timeline(doc):
        if "turn" in item:
            out += _turn_markdown(item)
        else:
            out += [*_change_markdown(item, doc["status"]), ""]
    if doc.get("error"):
        out += [quote(f"Error: {doc['error']['message']}"), ""]
    out += ["## Totals", "", _totals(doc), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def to_html(doc: dict[str, Any]) -> str:
    """The print HTML: names and system prompts escaped, turns rendered as Markdown with raw HTML escaped."""
    title = _title(doc)
    parts = [f"<h1>{escape(title)}</h1>", f'<p class="meta">{escape(_meta(doc))}</p>']
    if doc.get("continue_from"):
        parts.append(f'<p class="meta">Continues duet {escape(doc["continue_from"])}: its turns come first.</p>')
    for agent in doc["agents_at_start"]:
        prompt = (f'<div class="plain">{escape(agent["system_prompt"])}</div>' if agent.get("system_prompt")
                  else '<p class="usage">No system prompt.</p>')
        parts.append(f'<div class="system"><b>{escape(_flat(agent["name"]))}</b> — '
                     f"{escape(_agent_settings(agent))}{prompt}</div>")
    for item in _timeline(doc):
        if "turn" in item:
            parts.append(_turn_html(item))
        else:
            parts.append(f'<div class="change">{"".join(_change_html(item, doc["status"]))}</div>')
    if doc.get("error"):
        parts.append(f'<p class="error">Error: {escape(doc["error"]["message"])}</p>')
    parts.append(f'<p class="totals">{escape(_totals(doc))}</p>')
    return html_page(title, parts, DUET_CSS)


def filename(doc: dict[str, Any], fmt: str) -> str:
    """A safe ASCII file name from the topic, e.g. `duet-is-sql-a-language.md`."""
    stem = slug(doc.get("topic") or "")
    return f"duet-{stem}.{fmt}" if stem else f"duet.{fmt}"


DUET_CSS = """
.system .plain { margin-top: 1mm; background: #f1f4f9; padding: 2mm 3mm; border-radius: 2mm; }
.change { margin: 0 0 3mm; padding-left: 3mm; border-left: 1.5pt solid #e0a800; color: #5c4400; font-size: 9pt; }
.change p { margin: 0 0 1mm; }
.totals { border-top: 0.6pt solid #d8d8d8; padding-top: 2mm; color: #444; font-size: 9pt; }
"""


def _source(run: Run, active: ActiveRun | None) -> tuple[dict[str, Any], dict[str, Any], str]:
    """(result, usage, status): live from the active run when it is this duet's, else as stored."""
    if active is not None and active.id == run.id and isinstance(active.body, DuetBody):
        return active.body.live_result(), dict(active.usage), active.status
    usage = {"input_tokens": run.input_tokens, "output_tokens": run.output_tokens, "cost_usd": run.cost_usd}
    return run.result or {}, usage, run.status


def _conversation_totals(earlier: dict[str, Any], own: dict[str, Any]) -> dict[str, Any]:
    """This run's figures added to those of the runs it continues (seconds: time spent running, not the gaps)."""
    if not earlier:
        return dict(own)
    seconds = None if own["seconds"] is None else round(float(earlier.get("seconds") or 0) + own["seconds"], 3)
    return {"turns": int(earlier.get("turns") or 0) + own["turns"],
            "input_tokens": int(earlier.get("input_tokens") or 0) + own["input_tokens"],
            "output_tokens": int(earlier.get("output_tokens") or 0) + own["output_tokens"],
            "cost_usd": round(float(earlier.get("cost_usd") or 0) + own["cost_usd"], 6), "seconds": seconds}


def _pick(source: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
    """The whitelisted fields of a stored dict (missing ones as None), copied."""
    return {name: json.loads(json.dumps(source.get(name))) for name in names}


def _change_fields(change: dict[str, Any]) -> dict[str, Any]:
    """A recorded mid-run change with only the steerable settings in it."""
    changed = change.get("changes") or {}
    return {**_pick(change, CHANGE_FIELDS), "changes": {k: changed[k] for k in CHANGE_KEYS if k in changed}}


def _error(run: Run, result: dict[str, Any]) -> dict[str, Any] | None:
    """`{"type", "message"}` of a failed run: the body's record, else the run row's message."""
    stored = result.get("error")
    if isinstance(stored, dict) and stored.get("message"):
        return {"type": stored.get("type"), "message": str(stored["message"])}
    return {"type": None, "message": run.error} if run.error else None


def _seconds_between(started: str, finished: str | None) -> float | None:
    """Wall-clock seconds of the run, once it has finished."""
    if finished is None:
        return None
    return round((datetime.fromisoformat(finished) - datetime.fromisoformat(started)).total_seconds(), 3)


def _timeline(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Turns in order, each recorded change just before the turn it first applied to.

    A change made after a bot's last turn was never applied; it goes at the end, marked `pending`.
    """
    changes = sorted(doc["changes"], key=lambda c: (c.get("before_turn") is None, c.get("before_turn") or 0))
    items: list[dict[str, Any]] = []
    for turn in doc["turns"]:
        while changes and changes[0].get("before_turn") is not None and changes[0]["before_turn"] <= turn["turn"]:
            items.append(changes.pop(0))
        items.append(turn)
    return items + changes + _pending_changes(doc)


def _pending_changes(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """Settings in the final configs that no recorded change explains: steered after the bot's last turn."""
    replayed = [dict(a) for a in doc["agents_at_start"]]
    for change in doc["changes"]:
        index = change.get("agent_index")
        if isinstance(index, int) and 0 <= index < len(replayed):
            replayed[index].update(change["changes"])
    pending = []
    for index, (before, after) in enumerate(zip(replayed, doc["agents_at_end"], strict=False)):
        diff = {k: after[k] for k in CHANGE_KEYS if k in after and after[k] != before.get(k)}
        if diff:
            pending.append({"before_turn": None, "agent_index": index, "agent": after.get("name"), "at": None,
                            "changes": diff, "pending": True})
    return pending


def _change_texts(change: dict[str, Any], status: str) -> list[tuple[str, str | None]]:
    """(sentence, system prompt or None) for each setting a change touched."""
    who = _flat(str(change.get("agent") or f"Bot {change.get('agent_index')}"))
    if change.get("pending"):
        when = "for its next turn" if status == "running" else "after its last turn; not used"
    else:
        when = f"from turn {int(change['before_turn']) + 1}"
    texts: list[tuple[str, str | None]] = []
    for key, value in change["changes"].items():
        if key == "system_prompt":
            texts.append((f"✎ {who}'s system prompt changed ({when}) to:", str(value)))
        else:
            texts.append((f"✎ {who}'s {key.replace('_', ' ')} changed to {value} ({when})", None))
    return texts


def _change_markdown(change: dict[str, Any], status: str) -> list[str]:
    """A change as blockquote lines; a new system prompt is quoted under its line."""
    lines: list[str] = []
    for sentence, prompt in _change_texts(change, status):
        lines.append(f"> {sentence}")
        if prompt is not None:
            lines += [">", *(f"> {line}".rstrip() for line in quote(prompt).splitlines())]
    return lines


def _change_html(change: dict[str, Any], status: str) -> list[str]:
    """A change as escaped paragraphs."""
    return [f"<p>{escape(sentence)}</p>" + (f'<div class="plain">{escape(prompt)}</div>' if prompt else "")
            for sentence, prompt in _change_texts(change, status)]


def _turn_heading(turn: dict[str, Any]) -> str:
    """`Turn 3 — Bob (scripted/bob)`, with `— stopped` etc. when the turn did not complete."""
    heading = f"Turn {int(turn['turn']) + 1} — {_flat(str(turn['agent']))} ({turn['model']})"
    if turn.get("status") in STATUS_LABEL:
        heading += f" — {STATUS_LABEL[turn['status']]}"
    return heading


def _turn_markdown(turn: dict[str, Any]) -> list[str]:
    """A turn: heading, content verbatim (an open code block closed), figures."""
    content = close_open_fence(turn["content"]) if turn.get("content") else "_(no text)_"
    return [f"### {_turn_heading(turn)}", "", content, "", f"_{_turn_figures(turn)}_", ""]


def _turn_html(turn: dict[str, Any]) -> str:
    """A turn as a section: escaped heading, content rendered as Markdown with raw HTML escaped."""
    body = render_markdown_html(turn["content"]) if turn.get("content") else '<p class="usage">(no text)</p>'
    return (f'<section class="msg assistant"><p class="head"><span class="who">{escape(_turn_heading(turn))}'
            f'</span></p><div class="md">{body}</div><p class="usage">{escape(_turn_figures(turn))}</p></section>')


def _turn_figures(turn: dict[str, Any]) -> str:
    """`12 in / 30 out tokens · 1.2 s · $0.0012`."""
    return usage_text(turn.get("input_tokens") or 0, turn.get("output_tokens") or 0,
                      float(turn.get("cost_usd") or 0), seconds=float(turn.get("seconds") or 0))


def _title(doc: dict[str, Any]) -> str:
    """`Duet: <topic>` on one line."""
    return f"Duet: {_flat(doc['topic']) or 'untitled'}"


def _flat(text: str) -> str:
    """Whitespace collapsed, so a name or topic stays on its line."""
    return " ".join(text.split())


def _agent_settings(agent: dict[str, Any]) -> str:
    """`scripted/alice · temperature 0.5 · up to 256 tokens a turn`."""
    parts = [str(agent["model"]), f"temperature {agent['temperature']}"]
    if agent.get("max_tokens"):
        parts.append(f"up to {agent['max_tokens']} tokens a turn")
    return " · ".join(parts)


def _meta(doc: dict[str, Any]) -> str:
    """`Completed · started 2025-06-01 12:00 UTC · exported 2025-06-01 12:05 UTC`."""
    status = "Still running" if doc["status"] == "running" else str(doc["status"]).capitalize()
    return (f"{status} · started {human_time(doc['started_at'])} · "
            f"exported {human_time(doc['exported_at'])}")


def _totals(doc: dict[str, Any]) -> str:
    """`4 turns · 40 in / 12 out tokens · 3.2 s · $0.0012`, saying so when it covers several runs."""
    text = _figures(doc["totals"])
    runs = len(doc.get("conversation_runs") or ())
    if runs > 1 and doc.get("run_totals"):
        text = f"Whole conversation ({runs} runs): {text}. This run: {_figures(doc['run_totals'])}"
    return text


def _figures(totals: dict[str, Any]) -> str:
    """Turns, then the usage line every export and page writes."""
    turns = totals.get("turns")
    usage = usage_text(totals.get("input_tokens") or 0, totals.get("output_tokens") or 0,
                       float(totals.get("cost_usd") or 0), seconds=totals.get("seconds"))
    return usage if turns is None else f"{turns} turn{'s' if turns != 1 else ''} · {usage}"

