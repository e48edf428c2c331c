"""The module that speaks MCP, through the official `mcp` SDK (1.x): a connection to one server.

The SDK's sessions are anyio task groups, which must be entered and left by one task. So each
connection is a small actor: one long-lived task on the app's event loop owns the transport and the
session, and callers hand it jobs through a queue and await a future. Cancelling a caller (a stopped
run, a timeout) cancels only its job, which tells the server to drop that request
(`notifications/cancelled`); the session stays up for the next call. A session that dies (the process
exits, the HTTP server goes away) fails the calls in flight with an error the model reads, and the
next use connects again. Everything that leaves this module is scrubbed of the server's secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import IO, Any, TextIO, cast

import anyio
import httpx
from mcp import ClientSession, McpError, StdioServerParameters, types
from mcp.client.stdio import stdio_client
from mcp.client.streamable_http import streamable_http_client

from services.tools.base import ToolError
from services.tools.mcp_config import McpServerConfig, McpUnavailable, guard_logs, scrub, secrets
from services.tools.mcp_results import render_result
from services.tools.mcp_stderr import stderr_file, stderr_tail, trim

log = logging.getLogger(__name__)

RETRY_FAILED_AFTER_S = 30.0  # a failed server is tried again on use after this long (or at once on `retry`)
CLOSE_TIMEOUT_S = 6.0  # stdio: the SDK closes stdin, waits 2 s, then SIGTERM and SIGKILL the process group
PING_TIMEOUT_S = 5.0
MAX_TOOLS = 1000

Op = Callable[[ClientSession, "_Job"], Awaitable[Any]]


class _NotSent(Exception):
    """The session had closed before the request left: safe to send once more on a new session."""


@dataclass(frozen=True, kw_only=True, slots=True)
class RemoteTool:
    """A tool as its server lists it."""

    name: str
    description: str
    input_schema: dict[str, Any]


@dataclass(eq=False)
class _Job:
    """One request for the actor, and how its caller hears back."""

    op: Op
    future: asyncio.Future[Any]
    request_id: int | None = None
    scope: anyio.CancelScope | None = None

    def cancel(self) -> None:
        """The caller gave up: end the request (the actor then tells the server)."""
        if self.scope is not None:
            self.scope.cancel()

    def settle(self, value: Any = None, error: BaseException | None = None) -> None:
        """Hand the outcome to the caller, unless it already left."""
        if not self.future.done():
            if error is None:
                self.future.set_result(value)
            else:
                self.future.set_exception(error)


@dataclass(eq=False)
class _Link:
    """One connection's lifetime: its task, its job queue, and whether it still works."""

    ready: asyncio.Future[None]  # resolved once it connected or failed; `status` says which
    jobs: asyncio.Queue[_Job | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None
    broken: bool = False
    closing: bool = False
    running: set[_Job] = field(default_factory=set)


class McpConnection:
    """A lazily started connection to one MCP server, reconnected on use after it dies."""

    def __init__(self, name: str, config: McpServerConfig) -> None:
        self.name = name
        self.config = config
        self.status = "idle"  # idle, connecting, connected, disconnected, failed
        self.reason: str | None = None
        self.tools: list[RemoteTool] = []
        self._hidden = secrets(config)
        guard_logs(self._hidden)
        self._link: _Link | None = None
        self._lock = asyncio.Lock()
        self._failed_at = 0.0
        self._stale = False  # the server said its tool list changed
        self._retired: set[asyncio.Task[None]] = set()  # old links still closing their process
        self.closed = False  # removed, replaced or shut down: never started again

    async def list_tools(self, *, retry: bool = False) -> list[RemoteTool]:
        """The server's tools, starting it first if needed; McpUnavailable says why it cannot start."""
        await self._connect(retry=retry)
        if self._stale:
            self._stale = False
            self.tools = await self._submit(lambda session, _: _list_tools(session))
        return self.tools

    async def call(self, tool: str, args: dict[str, Any]) -> str:
        """Run one tool: its text (a structured result as pretty JSON), or ToolError with what went wrong."""

        async def op(session: ClientSession, job: _Job) -> types.CallToolResult:
            # call_tool takes this id before its first await; it is needed to tell the server to stop.
            job.request_id = session._request_id
            return await session.call_tool(tool, args)

        text, is_error = render_result(await self._submit(op))
        text = scrub(text, self._hidden)
        if is_error:
            raise ToolError(text or f"{tool} failed without saying why")
        return text or "(no output)"

    async def check(self) -> None:
        """Ping a connected server, so a listing shows whether it is still there (reconnecting if not)."""
        if self.status != "connected":
            return
        with contextlib.suppress(ToolError, TimeoutError):  # the status says what happened
            await asyncio.wait_for(self._submit(lambda session, _: session.send_ping()), PING_TIMEOUT_S)

    async def close(self) -> None:
        """End the session and its process for good; waits for it, so no orphan is left behind."""
        self.closed = True
        link, self._link = self._link, None
        tasks = set(self._retired)
        if link is not None and link.task is not None and not link.task.done():
            link.closing = True
            link.jobs.put_nowait(None)
            tasks.add(link.task)
        if tasks:
            _, late = await asyncio.wait(tasks, timeout=CLOSE_TIMEOUT_S)
            for task in late:  # cancelling makes anyio kill the process and reap it
                task.cancel()
            if late:
                await asyncio.wait(late, timeout=3)
        self.status, self.reason = "idle", None

    # ---- the actor ---------------------------------------------------------------------------------------

    async def _connect(self, *, retry: bool) -> None:
        """Make sure a working session exists (one start at a time), or raise McpUnavailable."""
        async with self._lock:
            if self.closed:
                raise McpUnavailable(f"MCP server {self.name} was removed or Lantern is shutting down.")
            link = self._link
            if self.status == "connected" and link is not None and not link.broken:
                return
            recently = time.monotonic() - self._failed_at < RETRY_FAILED_AFTER_S
            if self.status == "failed" and recently and not retry:
                raise McpUnavailable(self._unavailable())
            if link is None or link.broken or link.task is None or link.task.done():
                self._retire(link)
                loop = asyncio.get_running_loop()
                link = self._link = _Link(ready=loop.create_future())
                self.status, self.reason = "connecting", None
                link.task = loop.create_task(self._serve(link), name=f"mcp-{self.name}")
            try:
                await asyncio.wait_for(asyncio.shield(link.ready), self.config.connect_timeout_s)
            except TimeoutError:
                self._fail(link, f"it did not finish starting within {self.config.connect_timeout_s:g} s")
                assert link.task is not None
                link.task.cancel()
            if self.status != "connected":
                raise McpUnavailable(self._unavailable())

    async def _submit(self, op: Op) -> Any:
        """Run `op` on the session; a request that never left a dead session is sent once more on a new one."""
        for attempt in range(2):
            await self._connect(retry=False)
            link = self._link
            if link is None:  # closed while it was starting
                raise McpUnavailable(f"MCP server {self.name} was removed or Lantern is shutting down.")
            job = _Job(op=op, future=asyncio.get_running_loop().create_future())
            link.jobs.put_nowait(job)
            try:
                return await job.future
            except _NotSent:
                if attempt:
                    raise McpUnavailable(self._unavailable()) from None
            except asyncio.CancelledError:
                job.cancel()
                raise
        raise AssertionError("unreachable")

    async def _serve(self, link: _Link) -> None:
        """Own the transport and session for the link's lifetime: connect, list tools, run jobs until closed."""
        with stderr_file(bool(self.config.command)) as errlog:
            connected, reason = False, None
            try:
                async with AsyncExitStack() as stack:
                    read, write = await self._open_transport(stack, errlog)
                    session = await stack.enter_async_context(
                        ClientSession(read, write, message_handler=self._on_message))
                    await session.initialize()
                    self.tools = await _list_tools(session)
                    connected, self._stale = True, False
                    if self._link is link:
                        self.status, self.reason = "connected", None
                    link.ready.set_result(None)
                    log.info("MCP server %s connected with %d tools", self.name, len(self.tools))
                    async with anyio.create_task_group() as group:
                        while not link.broken and (job := await link.jobs.get()) is not None:
                            group.start_soon(self._run, link, session, job, errlog)
                        group.cancel_scope.cancel()  # closing: calls still running end now, with an error
            except Exception as exc:  # whatever ended the session is the reason shown; the next use reconnects
                reason = self._describe(exc, None if connected else errlog)
            finally:
                link.broken = True
                self._abandon(link, reason)
                if not connected:
                    self._fail(link, reason or "it stopped while starting")
                elif self._link is link and not link.closing:
                    self.status, self.reason = "disconnected", reason or self.reason or "the connection closed"
                    log.warning("MCP server %s disconnected: %s", self.name, self.reason)
                if not link.ready.done():
                    link.ready.set_result(None)

    async def _run(self, link: _Link, session: ClientSession, job: _Job, errlog: IO[bytes] | None) -> None:
        """One job inside the session's task group; a cancelled call is cancelled on the server too."""
        if job.future.done():  # its caller left while it waited in the queue
            return
        link.running.add(job)
        try:
            with anyio.CancelScope() as scope:
                job.scope = scope
                try:
                    job.settle(await job.op(session, job))
                except McpError as exc:
                    if exc.error.code == types.CONNECTION_CLOSED:
                        self._break(link, "the connection closed during a call (the server may have crashed)")
                        job.settle(error=ToolError(self._stopped_during_call("the connection closed")))
                    else:
                        job.settle(error=ToolError(self._clean(f"MCP server {self.name}: {exc.error.message}")))
                except (anyio.ClosedResourceError, anyio.BrokenResourceError):
                    self._break(link, "the connection had closed")
                    job.settle(error=_NotSent())
                except Exception as exc:  # e.g. a structured result that does not match its declared schema
                    job.settle(error=ToolError(self._clean(f"MCP server {self.name}: {type(exc).__name__}: {exc}")))
            if scope.cancelled_caught and job.request_id is not None:
                await _tell_cancelled(session, job.request_id)
        finally:
            link.running.discard(job)
            if not job.future.done():  # the session itself ended (shut down, or its transport failed)
                why = "Lantern is shutting the server down" if link.closing else "the connection closed"
                job.settle(error=ToolError(self._stopped_during_call(why)))
            trim(errlog)

    async def _open_transport(self, stack: AsyncExitStack, errlog: IO[bytes] | None) -> tuple[Any, Any]:
        """The read and write streams of a stdio process or a streamable-HTTP endpoint."""
        config = self.config
        if config.command:
            params = StdioServerParameters(command=config.command, args=config.args, env=config.env or None,
                                           cwd=config.cwd)
            read, write = await stack.enter_async_context(stdio_client(params, errlog=cast(TextIO, errlog)))
            return read, write
        assert config.url is not None
        http = await stack.enter_async_context(httpx.AsyncClient(
            headers=config.headers, timeout=httpx.Timeout(30.0, read=300.0)))
        read, write, _ = await stack.enter_async_context(streamable_http_client(config.url, http_client=http))
        return read, write

    async def _on_message(self, message: Any) -> None:
        """Note a changed tool list (refreshed on next listing); other messages need nothing from us."""
        if isinstance(message, types.ServerNotification) and isinstance(message.root,
                                                                         types.ToolListChangedNotification):
            self._stale = True

    # ---- helpers -----------------------------------------------------------------------------------------

    def _break(self, link: _Link, reason: str) -> None:
        """The session is gone: let the actor end, so the next use connects again."""
        if not link.broken:
            link.broken = True
            link.jobs.put_nowait(None)
            if self._link is link:
                self.status, self.reason = "disconnected", reason
                log.warning("MCP server %s disconnected: %s", self.name, reason)

    def _abandon(self, link: _Link, reason: str | None) -> None:
        """Fail what the ended link still held: calls in flight get an error, queued ones are sent again."""
        for job in list(link.running):
            job.settle(error=ToolError(self._stopped_during_call(reason or "it was shut down")))
        while not link.jobs.empty():
            queued = link.jobs.get_nowait()
            if queued is not None:
                queued.settle(error=_NotSent())

    def _fail(self, link: _Link, reason: str) -> None:
        """Record a failed start (shown with its reason; tried again after a while or on `retry`)."""
        if self._link is link and self.status != "failed":
            self.status, self.reason, self._failed_at = "failed", self._clean(reason), time.monotonic()
            log.warning("MCP server %s failed: %s", self.name, self.reason)

    def _retire(self, link: _Link | None) -> None:
        """Keep an old link's task until it has closed its process, so shutdown can wait for it."""
        if link is not None and link.task is not None and not link.task.done():
            self._retired.add(link.task)
            link.task.add_done_callback(self._retired.discard)

    def _unavailable(self) -> str:
        """Why the server cannot be used now, for the model and the card."""
        return f"MCP server {self.name} is not available: {self.reason or 'it is not connected'}."

    def _stopped_during_call(self, reason: str) -> str:
        """The error a call gets when its server went away."""
        return self._clean(f"MCP server {self.name} stopped during the call ({reason}); "
                           "it will be started again on the next call.")

    def _clean(self, text: str) -> str:
        """`text` without the server's secrets."""
        return scrub(text, self._hidden)

    def _describe(self, exc: BaseException, errlog: IO[bytes] | None) -> str:
        """What went wrong, in a line, with the end of the server's stderr when there is one."""
        while isinstance(exc, BaseExceptionGroup) and exc.exceptions:
            exc = exc.exceptions[0]
        if isinstance(exc, McpError):
            text = exc.error.message
        elif isinstance(exc, FileNotFoundError):
            text = f"command not found: {self.config.command}"
        elif isinstance(exc, OSError):
            text = f"cannot start {self.config.command}: {exc.strerror or exc}"
        elif isinstance(exc, httpx.HTTPStatusError):
            text = f"the server answered HTTP {exc.response.status_code}"
        elif isinstance(exc, httpx.HTTPError):
            text = f"cannot reach the server ({type(exc).__name__}: {exc or 'no detail'})"
        else:
            text = f"{type(exc).__name__}: {exc}"
        tail = stderr_tail(errlog)
        return self._clean(f"{text} (stderr: {tail})" if tail else text)


async def _list_tools(session: ClientSession) -> list[RemoteTool]:
    """Every tool the server lists, page by page."""
    tools: list[RemoteTool] = []
    cursor: str | None = None
    while len(tools) < MAX_TOOLS:
        page = await session.list_tools(cursor)
        tools += [RemoteTool(name=t.name, description=(t.description or t.title or t.name).strip(),
                             input_schema=dict(t.inputSchema)) for t in page.tools]
        cursor = page.nextCursor
        if not cursor:
            break
    return tools


async def _tell_cancelled(session: ClientSession, request_id: int) -> None:
    """Ask the server to stop a request we no longer wait for (best effort: it may be gone already)."""
    notice = types.CancelledNotification(params=types.CancelledNotificationParams(
        requestId=request_id, reason="the caller stopped waiting"))
    with anyio.move_on_after(2):
        try:
            await session.send_notification(types.ClientNotification(notice))
        except Exception:  # the session closed meanwhile: nothing is running there any more
            log.debug("could not send the cancellation of request %s", request_id)
