"""Caches in front of the database, so that `on_message` does no database read per message.

The bound channels of every guild are loaded once at start, so a message in a channel that is
not read costs nothing; a guild's options and blocked users, and a user's autoread and
nickname, are read once and then kept, with a time-to-live as a safety net for changes made
behind the cache's back. `/setup` writes go through `ReaderConfig`, which updates it at once.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Any, TypeVar

from bot.storage.models import UserSettings
from bot.storage.reader import ReaderConfigRepository, ReaderOptions
from bot.storage.users import UserSettingsRepository

log = logging.getLogger(__name__)

T = TypeVar("T")

#: Cached guild options / blocks and user settings are read again after this many seconds.
CACHE_TTL = 600.0
#: At most this many users' settings are kept in memory.
USER_CACHE_SIZE = 10_000


class _SingleFlight:
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


@dataclass(frozen=True, slots=True)
class GuildConfig:
    options: ReaderOptions
    blocked: frozenset[int]
    loaded_at: float


class ReaderConfig:
    """Write-through cache of the reader configuration (`/setup` goes through here)."""

    def __init__(
        self,
        repository: ReaderConfigRepository,
        *,
        clock: Callable[[], float] = time.monotonic,
        ttl: float = CACHE_TTL,
    ) -> None:
        self.repository = repository
        self.clock = clock
        self.ttl = ttl
        self._bound: dict[int, frozenset[int]] = {}
        self._primed = False
        self._guilds: dict[int, GuildConfig] = {}
        self._loads = _SingleFlight()

    async def prime(self) -> None:
        """Load every guild's bound channels (one query), so unread channels cost nothing."""
        bound = await self.repository.all_bound_channels()
        self._bound = {guild: frozenset(channels) for guild, channels in bound.items()}
        self._primed = True
        log.info("reader: %d guilds have bound channels", len(self._bound))

    def bound(self, guild_id: int) -> frozenset[int]:
        return self._bound.get(guild_id, frozenset())

    def might_read(self, guild_id: int, channel_ids: Iterable[int | None]) -> bool:
        """False when none of these channels is bound: no database read needed to skip."""
        if not self._primed:
            return True
        bound = self._bound.get(guild_id)
        return bound is not None and any(c in bound for c in channel_ids if c is not None)

    async def get(self, guild_id: int) -> GuildConfig:
        cached = self._guilds.get(guild_id)
        if cached is not None and self.clock() - cached.loaded_at < self.ttl:
            return cached
        return await self._loads.run(guild_id, lambda: self._load(guild_id))

    async def _load(self, guild_id: int) -> GuildConfig:
        if not self._primed:
            self._bound[guild_id] = frozenset(await self.repository.bound_channels(guild_id))
        config = GuildConfig(
            options=await self.repository.get_options(guild_id),
            blocked=frozenset(await self.repository.blocked_users(guild_id)),
            loaded_at=self.clock(),
        )
        self._guilds[guild_id] = config
        return config

    def invalidate(self, guild_id: int) -> None:
        self._guilds.pop(guild_id, None)

    def forget_guild(self, guild_id: int) -> None:
        self._guilds.pop(guild_id, None)
        self._bound.pop(guild_id, None)

    # -- writes (each updates the cache at once) -------------------------------------------

    async def bind(self, guild_id: int, channel_id: int) -> bool:
        added = await self.repository.bind_channel(guild_id, channel_id)
        self._bound[guild_id] = self.bound(guild_id) | {channel_id}
        return added

    async def unbind(self, guild_id: int, channel_id: int) -> bool:
        removed = await self.repository.unbind_channel(guild_id, channel_id)
        remaining = self.bound(guild_id) - {channel_id}
        if remaining:
            self._bound[guild_id] = remaining
        else:
            self._bound.pop(guild_id, None)
        return removed

    async def block(self, guild_id: int, user_id: int) -> bool:
        added = await self.repository.block_user(guild_id, user_id)
        self.invalidate(guild_id)
        return added

    async def unblock(self, guild_id: int, user_id: int) -> bool:
        removed = await self.repository.unblock_user(guild_id, user_id)
        self.invalidate(guild_id)
        return removed

    async def set_option(self, guild_id: int, name: str, value: object) -> ReaderOptions:
        try:
            return await self.repository.set_option(guild_id, name, value)
        finally:
            self.invalidate(guild_id)

    async def reset_option(self, guild_id: int, name: str) -> ReaderOptions:
        try:
            return await self.repository.reset_option(guild_id, name)
        finally:
            self.invalidate(guild_id)


class UserCache:
    """Each user's autoread and nickname, read once, kept (LRU, TTL) until changed."""

    def __init__(
        self,
        repository: UserSettingsRepository,
        *,
        clock: Callable[[], float] = time.monotonic,
        ttl: float = CACHE_TTL,
        size: int = USER_CACHE_SIZE,
    ) -> None:
        self.repository = repository
        self.clock = clock
        self.ttl = ttl
        self.size = size
        self._users: OrderedDict[int, tuple[UserSettings, float]] = OrderedDict()
        self._loads = _SingleFlight()

    async def get(self, user_id: int) -> UserSettings:
        cached = self._users.get(user_id)
        if cached is not None and self.clock() - cached[1] < self.ttl:
            self._users.move_to_end(user_id)
            return cached[0]
        return await self._loads.run(user_id, lambda: self._load(user_id))

    async def _load(self, user_id: int) -> UserSettings:
        settings = await self.repository.get(user_id)
        self._users[user_id] = (settings, self.clock())
        self._users.move_to_end(user_id)
        while len(self._users) > self.size:
            self._users.popitem(last=False)
        return settings

    def invalidate(self, user_id: int) -> None:
        self._users.pop(user_id, None)
