"""Process settings for serving many guilds: the garbage collector and the child watcher.

`tune_for_serving()` is called once by `python -m bot run` (and by the benchmarks, which
measure the bot as it runs), on the event loop, before the bot starts. Not by tests: these
are process-wide and the test process runs many loops.

- The garbage collector's thresholds go up: with a guild cache, hundreds of queued items
  and a thread sending audio, the default (a collection every 700 allocations) spent
  seconds per reader burst in collections that hold the GIL while every guild's audio
  waits (`docs/performance.md`). Once ready the bot also freezes what it holds then.
- On Python 3.11 on Linux, subprocesses (ffmpeg, one per message) are reaped through a
  pidfd on the loop (`asyncio.PidfdChildWatcher`, 3.12's default) instead of a new thread
  per child that the loop waits to start.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import warnings
from typing import Final

log = logging.getLogger(__name__)

GC_THRESHOLDS: Final = (20_000, 50, 100)


def tune_for_serving() -> None:
    """Idempotent. Call it before the first subprocess: a child started under another
    watcher would never be reaped once the watcher is replaced."""
    gc.set_threshold(*GC_THRESHOLDS)
    if sys.version_info < (3, 12) and sys.platform == "linux" and hasattr(os, "pidfd_open"):
        loop = asyncio.get_running_loop()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            policy = asyncio.get_event_loop_policy()
            current = getattr(policy, "_watcher", None)
            if isinstance(current, asyncio.PidfdChildWatcher) and current._loop is loop:
                return
            watcher = asyncio.PidfdChildWatcher()
            watcher.attach_loop(loop)
            asyncio.get_event_loop_policy().set_child_watcher(watcher)
        log.debug("child processes reaped through pidfds")
