"""`TTLCache`: time-to-live with a fake clock, LRU bound, one load per key, invalidation."""

from __future__ import annotations

import asyncio

from bot.ttl_cache import TTLCache


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Loader:
    def __init__(self) -> None:
        self.calls = 0
        self.value = "first"
        self.gate: asyncio.Event | None = None

    async def __call__(self) -> str:
        self.calls += 1
        value = self.value  # what the database held when the read began
        if self.gate is not None:
            await self.gate.wait()
        return value


async def test_a_value_is_loaded_once_then_served_until_its_ttl_ends() -> None:
    clock, load = Clock(), Loader()
    cache: TTLCache[str, str] = TTLCache(ttl=60, clock=clock)
    assert await cache.get("k", load) == "first"
    load.value = "second"
    clock.now += 59.9
    assert await cache.get("k", load) == "first"
    assert load.calls == 1
    clock.now += 0.1
    assert await cache.get("k", load) == "second"
    assert load.calls == 2


async def test_concurrent_misses_share_one_load() -> None:
    load = Loader()
    load.gate = asyncio.Event()
    cache: TTLCache[str, str] = TTLCache(ttl=60, clock=Clock())
    waiting = [asyncio.create_task(cache.get("k", load)) for _ in range(10)]
    await asyncio.sleep(0)
    load.gate.set()
    assert await asyncio.gather(*waiting) == ["first"] * 10
    assert load.calls == 1


async def test_an_invalidation_wins_over_a_load_in_flight() -> None:
    """A read that began before a change must not put the old value back in the cache."""
    load = Loader()
    load.gate = asyncio.Event()
    cache: TTLCache[str, str] = TTLCache(ttl=60, clock=Clock())
    early = asyncio.create_task(cache.get("k", load))
    await asyncio.sleep(0)
    load.value = "changed"  # the change lands while the first read is in flight ...
    cache.invalidate("k")  # ... and the writer invalidates
    late = asyncio.create_task(cache.get("k", load))  # a new load, not the stale one
    await asyncio.sleep(0)
    load.gate.set()
    assert await early == "first"
    assert await late == "changed"
    assert await cache.get("k", load) == "changed"
    assert load.calls == 2


async def test_the_least_recently_used_goes_first() -> None:
    cache: TTLCache[int, str] = TTLCache(ttl=60, clock=Clock(), size=2)
    cache.put(1, "a")
    cache.put(2, "b")
    assert cache.peek(1) == "a"  # 1 is now the most recent
    cache.put(3, "c")
    assert (cache.peek(1), cache.peek(2), cache.peek(3)) == ("a", None, "c")
    assert len(cache) == 2


async def test_invalidate_where_drops_the_matching_keys() -> None:
    cache: TTLCache[tuple[int, int], str] = TTLCache(ttl=60, clock=Clock())
    for guild in (1, 2):
        for user in (10, 20):
            cache.put((guild, user), f"{guild}/{user}")
    cache.invalidate_where(lambda key: key[0] == 1)
    assert sorted(key for key in [(1, 10), (1, 20), (2, 10), (2, 20)] if key in cache) == [
        (2, 10),
        (2, 20),
    ]
