"""A small in-memory cache in front of the database: time-to-live, LRU bound, one load per key.

Used where a hot path would otherwise read the same rows for every message or utterance (the
reader's configuration and users, `PreferenceService`'s settings levels). The time-to-live is
the bound on staleness for changes this process cannot see (another shard process writing
the same database); changes made here call `invalidate` at once.

An invalidation also wins over a load already in flight: a value read before the change is
neither stored nor handed to callers who arrive after it.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from typing import Any, Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")
T = TypeVar("T")


class SingleFlight:
    """Concurrent loads of the same key share one database read."""

    def __init__(self) -> None:
        self._inflight: dict[Any, asyncio.Future[Any]] = {}

    async def run(self, key: Any, load: Callable[[], Awaitable[T]]) -> T:
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await load()
        except BaseException as error:
            future.set_exception(error)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        else:
            future.set_result(value)
            return value
        finally:
            self._inflight.pop(key, None)


class TTLCache(Generic[K, V]):
    """Values by key, each kept `ttl` seconds after it was loaded; at most `size` of them.

    `clock` is monotonic seconds (tests pass a fake one). `size=None` means unbounded.
    """

    def __init__(
        self,
        *,
        ttl: float,
        clock: Callable[[], float] = time.monotonic,
        size: int | None = None,
    ) -> None:
        self.ttl = ttl
        self.clock = clock
        self.size = size
        self._values: OrderedDict[K, tuple[V, float]] = OrderedDict()
        self._loads = SingleFlight()
        # Bumped by every invalidation: a load that started before one does not count.
        self._generation = 0

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return self.peek(key) is not None  # type: ignore[arg-type]

    def peek(self, key: K) -> V | None:
        """The fresh cached value, or None (nothing is loaded)."""
        cached = self._values.get(key)
        if cached is None:
            return None
        if self.clock() - cached[1] >= self.ttl:
            del self._values[key]
            return None
        self._values.move_to_end(key)
        return cached[0]

    async def get(self, key: K, load: Callable[[], Awaitable[V]]) -> V:
        """The cached value, or `load()`'s (one load for all concurrent callers of `key`)."""
        cached = self.peek(key)
        if cached is not None:
            return cached
        generation = self._generation
        return await self._loads.run((key, generation), lambda: self._load(key, load, generation))

    async def _load(self, key: K, load: Callable[[], Awaitable[V]], generation: int) -> V:
        loaded_at = self.clock()
        value = await load()
        if generation == self._generation:
            self._store(key, value, loaded_at)
        return value

    def put(self, key: K, value: V) -> None:
        """Store a value the caller just read: it wins over any load still in flight."""
        self._generation += 1
        self._store(key, value, self.clock())

    def _store(self, key: K, value: V, loaded_at: float) -> None:
        self._values[key] = (value, loaded_at)
        self._values.move_to_end(key)
        if self.size is not None:
            while len(self._values) > self.size:
                self._values.popitem(last=False)

    def invalidate(self, key: K) -> None:
        self._generation += 1
        self._values.pop(key, None)

    def invalidate_where(self, predicate: Callable[[K], bool]) -> None:
        """Drop every key for which `predicate` is true (a guild's (guild, user) pairs, say)."""
        self._generation += 1
        for key in [key for key in self._values if predicate(key)]:
            del self._values[key]

    def clear(self) -> None:
        self._generation += 1
        self._values.clear()


__all__ = ["SingleFlight", "TTLCache"]
