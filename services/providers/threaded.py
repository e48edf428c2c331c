"""Bridge a blocking SDK (llama.cpp, boto3) to an async stream without blocking the event loop."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

Put = Callable[[Any], None]
_END = object()


async def stream_from_thread(work: Callable[[Put, threading.Event], None]) -> AsyncIterator[Any]:
    """Run `work(put, cancel)` in a worker thread and yield what it puts, in order.

    An exception in the worker is re-raised here. Closing or cancelling the iterator sets
    `cancel`, which the worker checks between items (tokens, stream events) to stop early.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()
    cancel = threading.Event()

    def put(item: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def run() -> None:
        try:
            work(put, cancel)
        except BaseException as exc:  # handed over to the event loop side, raised there
            put(_Failure(exc))
        finally:
            put(_END)

    worker = loop.run_in_executor(None, run)
    try:
        while (item := await queue.get()) is not _END:
            if isinstance(item, _Failure):
                raise item.exc
            yield item
    finally:
        cancel.set()
        if not worker.done():
            worker.add_done_callback(lambda f: f.exception())  # consumed, so never "never retrieved"


class _Failure:
    """An exception travelling from the worker thread."""

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc
