"""Process tuning for `python -m bot run`: checked in a child process (it is process-wide)."""

from __future__ import annotations

import subprocess
import sys

PROGRAM = """
import asyncio, gc, sys
from bot.runtime import GC_THRESHOLDS, tune_for_serving

async def main():
    tune_for_serving()
    assert gc.get_threshold() == GC_THRESHOLDS, gc.get_threshold()
    watcher = asyncio.get_event_loop_policy().get_child_watcher()
    assert type(watcher).__name__ == "PidfdChildWatcher", watcher
    procs = [await asyncio.create_subprocess_exec("true") for _ in range(20)]
    codes = [await p.wait() for p in procs]
    assert codes == [0] * 20, codes
    print("ok")

asyncio.run(main())
"""


def test_tuning_raises_gc_thresholds_and_reaps_children_through_pidfds() -> None:
    done = subprocess.run(
        [sys.executable, "-W", "error::DeprecationWarning", "-c", PROGRAM],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
