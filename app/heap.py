"""Keep Python's cyclic garbage collector from pausing streams (issue #9).

A full collection walks every tracked object and holds the event loop meanwhile. Start-up leaves ~150k
objects (NiceGUI, FastAPI, SQLAlchemy, pydantic...) that live as long as the process; with 58 streams
running on this 2-core machine, full collections took 230-600 ms and every stream stalled that long.
Freezing what start-up created moves it out of the collector's view for good, so a collection only walks
what came after (measured: 100-145 ms in the same load).
"""

from __future__ import annotations

import gc
import logging

log = logging.getLogger(__name__)


def freeze_startup_objects() -> None:
    """Collect once, then exempt everything still alive from future collections."""
    gc.collect()
    gc.freeze()
    log.debug("froze %d objects out of the garbage collector's view", gc.get_freeze_count())
