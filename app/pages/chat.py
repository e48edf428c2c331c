"""The Chat page: conversations with streamed replies, stop, regenerate, edit, branches, re-attach."""

from __future__ import annotations

from typing import Any

from nicegui import background_tasks, context, ui

from app.auth import current_user_id
from app.context import Lantern
from app.pages.chat_sidebar import SidebarRows
from app.pages.frame import frame
from app.pages.run_page import follow
from app.urls import url
from components.buttons import icon_button
from components.conversation_list import ConversationList
from components.message_card import listen as listen_for_message_actions
from components.message_view import Branch, MessageView
from services.chat.reply import CUT_OFF
from services.chat.service import ChatStart
from services.core.errors import LanternError
from services.core.events import Done, Error, Event, TextDelta, ToolCall, ToolOutput, Usage
from services.tools.registry import TOOL_NAMES
from storage import conversations as conv_repo
from storage import runs as run_repo
from storage.conversations import PathEntry
from storage.models import Run

CONTINUE_PROMPT = "Continue exactly where your last reply stopped, without repeating it."
HISTORY_PAGE = 40  # messages drawn at first; older ones on request, so long histories open fast


def register(lantern: Lantern) -> None:
    """Routes: a new chat and a stored one."""

    @ui.page("/")
    async def new_chat() -> None:
        await ChatPage(lantern, None).build()

    @ui.page("/chat/{conversation_id}")
    async def stored_chat(conversation_id: str) -> None:
        await ChatPage(lantern, conversation_id).build()

    @ui.page("/tools")
    async def tools_chat() -> None:
        await ChatPage(lantern, None, with_tools=True).build()


class ChatPage:
    """One tab's view of one conversation."""

    def __init__(self, lantern: Lantern, conversation_id: str | None, *, with_tools: bool = False) -> None:
        self.lantern = lantern
        self.conversation_id = conversation_id
        self.with_tools = with_tools
        self.running_run: str | None = None
        self.drawn: list[str] = []  # ids of the messages drawn, oldest first (after `hidden` undrawn ones)
        self.hidden = 0
        self.views: list[MessageView] = []
        self.placeholder: ui.label | None = None

    async def build(self) -> None:
        """Draw the page and re-attach to a reply still being generated."""
        conv = None
        if self.conversation_id:
            conv = await self.lantern.db.call(conv_repo.get_conversation,
                                              conversation_id=self.conversation_id, user_id=current_user_id())
        listen_for_message_actions(context.client)  # now, so a first send does not redraw the page's layout
        await self.lantern.registry.list_models_live()  # the servers' own lists (cached), for the pickers
        # Built-ins and the tools of MCP servers already connected; the others join once started (below).
        self.tool_names = list(await self.lantern.tools.available(current_user_id(), start=False))
        with frame("Tools" if self.with_tools else "Chat") as chrome:
            with chrome.drawer:
                rows = SidebarRows(self.lantern)
                self.sidebar = ConversationList(load=rows.list, load_one=rows.one, rename=rows.rename,
                                                delete=rows.delete, href=lambda i: url(f"/chat/{i}"),
                                                current=self.conversation_id)
            await self.sidebar.refresh()
            if self.conversation_id and conv is None:
                ui.label("This conversation does not exist (it may have been deleted).").classes("text-lg")
                ui.link("Start a new chat", "/")
                return
            self._controls(conv)
            background_tasks.create(self._more_tools(current_user_id()), name="tools-for-picker")
            self.thread = ui.element().classes("lantern-thread")  # one class: a send re-sends it (issue #9)
            self._composer()
            await self.render_thread()

    # ---- drawing -------------------------------------------------------------------------------

    def _controls(self, conv: Any) -> None:
        """Model picker, conversation settings and export."""
        models = self.lantern.registry.list_models()
        options = {m.id: f"{m.id} · tools" if m.supports_tools else m.id for m in models if m.available}
        default = self.lantern.registry.default_model
        for m in models:  # the configured default stays in view even when unusable, saying why
            if m.id == default and not m.available:
                options[m.id] = f"{m.id} · unavailable: {m.reason}"
        with_tools = [m.id for m in models if m.available and m.supports_tools and m.provider != "scripted"]
        with_tools.sort(key=lambda i: i.startswith("local/"))  # the embedded model's tool use is a demo: last
        current = conv.model if conv and conv.model in options else self.lantern.registry.default_model
        if self.with_tools and current not in with_tools and with_tools:
            current = with_tools[0]
        if current not in options and options:
            current = next(iter(options))
        with ui.row().classes("w-full items-center gap-2"):
            self.model = ui.select(options, value=current, label="Model").classes("min-w-64").mark("model") \
                .props("dense outlined")
            self.tools = ui.select(self.tool_names, multiple=True, label="Tools",
                                   value=list(TOOL_NAMES) if self.with_tools else []) \
                .classes("min-w-48").props("dense outlined use-chips clearable").mark("tools") \
                .tooltip("Let the assistant query the sample business database and calculate. "
                         "Needs a model that supports tools.")
            unavailable = sorted({f"{m.provider}: {m.reason}" for m in models if not m.available})
            if unavailable:
                ui.icon("info").classes("opacity-60").tooltip("Not available: " + "; ".join(unavailable))
            ui.space()
            # Shown by lantern.css once the thread has a message (a first send then costs no update).
            self.export = ui.button("Export", icon="download").props("flat dense").classes("lantern-export")
            with self.export, ui.menu():
                for fmt, label in (("md", "Markdown"), ("json", "JSON (lossless)"), ("pdf", "PDF")):
                    ui.menu_item(label, lambda f=fmt: self._download(f)).mark(f"export-{fmt}")
        if self.with_tools:
            self._tools_hint(any(not i.startswith("local/") for i in with_tools))
        with ui.expansion("Conversation settings", icon="tune").classes("w-full") \
                .props("dense header-class=text-sm"):
            self.system = ui.textarea("System prompt", value=conv.system_prompt if conv else "") \
                .props("autogrow outlined").classes("w-full").mark("system-prompt")
            with ui.row().classes("w-full items-center gap-4"):
                ui.label("Temperature")
                self.temperature = ui.slider(min=0, max=2, step=0.1,
                                             value=conv.temperature if conv and conv.temperature is not None
                                             else 0.7).props("label-always").classes("max-w-xs")

    @staticmethod
    def _tools_hint(has_tool_model: bool) -> None:
        """What the Tools page is for, and what it needs."""
        with ui.card().classes("w-full"):
            ui.label("Ask questions about the sample business database — customers, products, orders and "
                     "regions over two years. Every query the assistant runs appears as a card.") \
                .classes("text-sm")
            ui.label("Try: “What's our total revenue?” or “Which region sold the most in 2025?”") \
                .classes("text-sm opacity-70")
            if not has_tool_model:
                ui.label("The embedded model's tool use is a demo: a 135M model often picks the wrong tool or "
                         "arguments. Set OPENAI_API_KEY, ANTHROPIC_API_KEY or AWS credentials, or add an "
                         "OpenAI-compatible server such as Ollama (LANTERN_OPENAI_COMPAT), for real answers.") \
                    .classes("text-sm text-warning").mark("tools-demo-note")

    def _composer(self) -> None:
        """Input, send and stop; Enter sends, Shift+Enter adds a line, Esc stops."""
        # Send or Stop shows by whether a reply's caret is on the page (lantern.css): switching costs no bytes;
        # updating both buttons with their listeners was ~1.3 KB per reply (issue #9's byte budget).
        with ui.element().classes("lantern-composer"):
            self.input = ui.textarea(placeholder="Message Lantern…").props("autogrow outlined autofocus") \
                .classes("flex-grow").mark("composer")
            self.input.on("keydown.enter.exact.prevent", self.send)
            self.input.on("keydown.esc", self.stop)
            icon_button("send", "Send (Enter)", self.send, props="round").classes("lantern-send")
            icon_button("stop", "Stop (Esc)", self.stop, props="round color=negative").classes("lantern-stop")
        ui.keyboard(lambda e: self.stop() if e.key.escape and e.action.keydown else None, ignore=[])

    async def render_thread(self, *, show_all: bool = False) -> None:
        """Draw the current branch; replies still being written are followed live."""
        entries: list[PathEntry] = []
        if self.conversation_id:
            entries = await self.lantern.db.call(conv_repo.current_path, conversation_id=self.conversation_id)
        hidden = 0 if show_all else max(0, len(entries) - HISTORY_PAGE)
        self.thread.clear()
        self.drawn, self.hidden, self.views, self.placeholder = [], hidden, [], None
        with self.thread:
            if not entries:
                self.placeholder = ui.label("Ask anything. Enter sends, Shift+Enter adds a line.") \
                    .classes("opacity-60 self-center py-12")
            if hidden:
                ui.button(f"Show {hidden} earlier messages", icon="expand_less",
                          on_click=lambda: self.render_thread(show_all=True)).props("flat dense")
        await self._draw(entries, hidden)

    async def _append_thread(self) -> None:
        """Draw only what a send added below the messages shown; redraw if the branch changed meanwhile."""
        assert self.conversation_id
        entries = await self.lantern.db.call(conv_repo.current_path, conversation_id=self.conversation_id)
        shown = [e.message.id for e in entries[self.hidden:self.hidden + len(self.drawn)]]
        if shown != self.drawn or len(entries) <= self.hidden + len(self.drawn):
            await self.render_thread()
            return
        if self.placeholder is not None:
            self.placeholder.delete()
            self.placeholder = None
        if self.views:
            self.views[-1].drop_regenerate()  # only the last reply offers it
        await self._draw(entries, self.hidden + len(self.drawn))

    async def _draw(self, entries: list[PathEntry], start: int) -> None:
        """Draw `entries[start:]` at the end of the thread; follow replies still being written."""
        live: list[tuple[str, MessageView]] = []
        with self.thread:
            for i, entry in enumerate(entries[start:], start=start):
                if (following := await self._show(entry, last=i == len(entries) - 1)) is not None:
                    live.append(following)
        for run_id, view in live:
            self._follow(run_id, view)

    async def _live_run(self, run_id: str | None) -> Run | None:
        """The reply's run if it is still being written: here, or (replica mode) on another replica."""
        if not run_id:
            return None
        if (active := self.lantern.runs.active.get(run_id)) is not None:
            return active.run
        if self.lantern.runs.replica is None:
            return None
        run = await self.lantern.db.call(run_repo.get_run, run_id=run_id)
        return run if run is not None and run.status == "running" else None

    async def _show(self, entry: PathEntry, *, last: bool) -> tuple[str, MessageView] | None:
        """Draw one message; a reply still running is returned, to be followed live."""
        m = entry.message
        live_run = await self._live_run(m.run_id) if m.status == "running" else None
        if m.status == "running" and live_run is None:  # it ended since it was read
            fresh = await self.lantern.db.call(conv_repo.get_message, message_id=m.id)
            m = fresh or m
        running = m.status == "running" and live_run is not None
        siblings = entry.siblings
        view = MessageView(
            role=m.role, content=m.content, created=m.created_at, live=running,
            branch=Branch(index=entry.index, count=len(siblings),
                          go=lambda i: self._switch(siblings[i])),
            on_edit=(lambda text: self._edit(m.id, text)) if m.role == "user" else None,
            on_regenerate=self._regenerate if m.role == "assistant" and last else None)
        self.drawn.append(m.id)
        self.views.append(view)
        if view.body is None:
            return None
        if running and m.run_id and live_run is not None:
            self._note_dropped(view, live_run.config.get("dropped_messages", 0))
            return m.run_id, view
        if parts := m.extra.get("parts"):
            await view.load_parts(parts)
        else:
            await view.body.load(m.content, live=False)
        view.show_usage(model=m.model, input_tokens=m.input_tokens, output_tokens=m.output_tokens,
                        cost_usd=m.cost_usd, status=m.status, estimated=bool(m.extra.get("estimated_usage")))
        self._note_dropped(view, m.extra.get("dropped_messages", 0))
        if err := m.extra.get("error"):
            view.show_error(err["message"])
        if reason := m.extra.get("stop_reason"):
            view.show_cut_off(reason, self._continue if last else None)
        return None

    @staticmethod
    def _note_dropped(view: MessageView, dropped: int) -> None:
        """Say when the model did not see the whole conversation."""
        if dropped:
            view.show_note(f"{dropped} earlier message{'s' if dropped != 1 else ''} did not fit the "
                           "model's context window and were not sent.")

    async def _more_tools(self, user_id: str) -> None:
        """Offer the tools of MCP servers that start after the page was drawn (a failed one is left out)."""
        names = list(await self.lantern.tools.available(user_id))
        if names != self.tool_names and not self.tools.is_deleted:
            self.tool_names = names
            self.tools.set_options(names, value=[v for v in self.tools.value or [] if v in names])

    # ---- actions -------------------------------------------------------------------------------

    async def send(self) -> None:
        """Send the typed message and stream the reply."""
        text = (self.input.value or "").strip()
        if not text:
            ui.notify("Type a message first.", type="warning")
            return
        started = await self._begin(lambda: self.lantern.chat.start(
            user_id=current_user_id(), messages=[{"role": "user", "content": text}],
            model=self.model.value, conversation_id=self.conversation_id,
            system=(self.system.value or "").strip() or None, temperature=self.temperature.value,
            tools=self.tools.value or None), append=True)
        if started:
            _clear(self.input)

    async def _regenerate(self) -> None:
        """A new version of the last reply; the old one stays one click away."""
        assert self.conversation_id
        conv_id = self.conversation_id
        await self._begin(lambda: self.lantern.chat.regenerate(
            user_id=current_user_id(), conversation_id=conv_id, model=self.model.value,
            tools=self.tools.value or None))

    async def _continue(self) -> None:
        """Ask the model to go on from where a cut-off reply stopped (a new turn, like any message)."""
        await self._begin(lambda: self.lantern.chat.start(
            user_id=current_user_id(), messages=[{"role": "user", "content": CONTINUE_PROMPT}],
            model=self.model.value, conversation_id=self.conversation_id,
            system=(self.system.value or "").strip() or None, temperature=self.temperature.value,
            tools=self.tools.value or None), append=True)

    async def _edit(self, message_id: str, text: str) -> None:
        """Rerun the conversation from an edited user message."""
        assert self.conversation_id
        conv_id = self.conversation_id
        await self._begin(lambda: self.lantern.chat.edit(
            user_id=current_user_id(), conversation_id=conv_id, message_id=message_id, content=text,
            model=self.model.value, tools=self.tools.value or None))

    async def _begin(self, starter: Any, *, append: bool = False) -> bool:
        """Start a reply (unless one is running), then draw it (appended, or the thread redrawn) and follow it."""
        if self.running_run:
            ui.notify("A reply is still being written: stop it first (Esc).", type="warning")
            return False
        try:
            start: ChatStart = await starter()
        except LanternError as exc:
            ui.notify(str(exc), type="negative", multi_line=True)
            return False
        if self.conversation_id is None:
            self.conversation_id = start.conversation_id
            self.sidebar.set_current(start.conversation_id)
            ui.navigate.history.replace(url(f"/chat/{start.conversation_id}"))
        await (self._append_thread() if append else self.render_thread())
        await self.sidebar.touch(start.conversation_id)
        return True

    async def _switch(self, message_id: str) -> None:
        """Show another version of a message (and the branch below it)."""
        if self.running_run or not self.conversation_id:
            return
        await self.lantern.db.call(conv_repo.select_branch, conversation_id=self.conversation_id,
                                   user_id=current_user_id(), message_id=message_id)
        await self.render_thread()

    def _download(self, fmt: str) -> None:
        """Download the conversation in a format."""
        if self.conversation_id:
            ui.download(f"/api/conversations/{self.conversation_id}/export?format={fmt}")

    async def stop(self) -> None:
        """Stop the reply being written; what was written is kept."""
        if self.running_run:
            await self.lantern.runs.stop(self.running_run)

    # ---- streaming -----------------------------------------------------------------------------

    def _follow(self, run_id: str, view: MessageView) -> None:
        """Stream a run's events into a reply view, in the background (the view draws errors itself)."""
        self.running_run = run_id
        usage: Usage | None = None

        async def on_event(event: Event) -> None:
            nonlocal usage
            assert view.body is not None
            match event:
                case TextDelta(delta=delta):
                    view.body.append(delta)
                case ToolCall(id=call_id, name=name, args=args):
                    await view.add_tool(call_id=call_id, name=name, args=args)
                case ToolOutput(id=call_id) if call_id in view.cards:
                    await view.cards[call_id].finish(output=event.output, is_error=event.is_error,
                                                     seconds=event.seconds)
                case Usage():
                    usage = event
                case Error(message=message):
                    view.show_error(message)
                case Done(status=status):
                    await view.body.finish()
                    view.show_usage(model=f"{usage.provider}/{usage.model}" if usage else None,
                                    input_tokens=usage.input_tokens if usage else 0,
                                    output_tokens=usage.output_tokens if usage else 0,
                                    cost_usd=usage.cost_usd if usage else 0.0, status=status)
                    if status == "completed" and usage is not None and usage.stop_reason in CUT_OFF:
                        view.show_cut_off(usage.stop_reason, self._continue)

        async def on_end(_status: str | None) -> None:
            if self.running_run == run_id:
                self.running_run = None

        assert view.body is not None
        follow(self.lantern, run_id, on_event, container=view.body, on_end=on_end, show_errors=False)


def _clear(box: ui.textarea) -> None:
    """Empty the composer: the browser clears its own box (~50 bytes) instead of NiceGUI re-sending the
    whole element and a method call (~0.9 KB of each first reply's page bytes, issue #9)."""
    # The server's value changes the way NiceGUI records a value that came from the browser: no update sent.
    box._send_update_on_value_change = False  # NiceGUI 3's own switch for exactly this
    try:
        box.value = ""
    finally:
        box._send_update_on_value_change = True
    box.client.run_javascript(f'getElement({box.id}).inputValue=""')
