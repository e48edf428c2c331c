"""The run-kind registry: each kind of run declares once what the rest of Lantern needs to know about it.

History, the navigation, the run routes and crash recovery read this registry instead of naming kinds; a new
kind is its own package (body, recovery, exporter) plus one line in services/kinds.py.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from services.core.errors import NotFound
from services.core.runs import ActiveRun, RunBody
from services.export.formats import Exporter
from storage.models import Run

# A crash leaves a run's stored events but not its result: the kind rebuilds it from them (core/recovery.py).
Recover = Callable[[Run, list[dict[str, Any]]], dict[str, Any]]


class RunExporter(Exporter, Protocol):
    """An exporter whose document is made from a run (and its live state while it runs here)."""

    def document(self, run: Run, *, active: ActiveRun | None = None) -> dict[str, Any]:
        """The run as a JSON-ready dict."""
        ...


@dataclass(frozen=True, kw_only=True)
class RunKind:
    """One kind of run: its stored name (`Run.kind`, the API's `kind`), how it runs, recovers, exports and shows."""

    name: str
    title: str  # what a person calls it: "Duet", "Studio"
    noun: str  # what a person calls one run: "duet", "generation"
    icon: str  # a Material icon name
    page: str  # where its runs open: f"{page}/{run_id}" ("" for chat: its runs open as conversations)
    body: type[RunBody]
    recover: Recover
    exporter: RunExporter
    label: Callable[[Run], str]  # one line naming a run, for History

    def url(self, run: Run) -> str:
        """Where a person reopens the run."""
        if not self.page:
            return f"/chat/{run.conversation_id}" if run.conversation_id else "/"
        return f"{self.page}/{run.id}"


class Registry:
    """The registered kinds, in the order they are shown."""

    def __init__(self, kinds: Iterable[RunKind]) -> None:
        self._kinds = {kind.name: kind for kind in kinds}

    def __iter__(self) -> Any:
        return iter(self._kinds.values())

    def __contains__(self, name: object) -> bool:
        return name in self._kinds

    def get(self, name: str) -> RunKind:
        """The kind called `name`, or NotFound (e.g. a run stored by a newer Lantern)."""
        try:
            return self._kinds[name]
        except KeyError:
            raise NotFound(f"Lantern does not know runs of kind {name!r}") from None

    def names(self) -> list[str]:
        """The kinds' stored names."""
        return list(self._kinds)
