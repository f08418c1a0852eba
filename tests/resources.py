"""Counting what a test leaves behind: child processes, threads, file descriptors."""

from __future__ import annotations

import asyncio
import os
import threading
import time


def child_pids() -> set[int]:
    """Live (non-zombie) children and zombies alike: both mean someone forgot to reap."""
    me = os.getpid()
    found: set[int] = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as f:
                stat = f.read()
        except OSError:
            continue
        # The command name may hold spaces and parentheses: split after the last ')'.
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == me:
            found.add(int(entry))
    return found


def open_fds() -> set[int]:
    return {int(fd) for fd in os.listdir("/proc/self/fd")}


def thread_names() -> set[str]:
    return {t.name for t in threading.enumerate() if t.is_alive()}


async def settle(predicate, within: float = 5.0) -> bool:
    """Wait until `predicate()` holds, for cleanups that finish a moment later."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return predicate()
