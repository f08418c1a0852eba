"""Caches in front of the database, so that `on_message` does no database read per message.

The bound channels of every guild are loaded once at start, so a message in a channel that is
not read costs nothing; a guild's options and blocked users, and a user's autoread and
nickname, are read once and then kept, with a time-to-live as a safety net for changes made
behind the cache's back. `/setup` writes go through `ReaderConfig`, which updates it at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from bot.storage.models import UserSettings
from bot.storage.reader import ReaderConfigRepository, ReaderOptions
from bot.storage.users import UserSettingsRepository
from bot.ttl_cache import TTLCache

log = logging.getLogger(__name__)

#: Cached guild options / blocks and user settings are read again after this many seconds.
CACHE_TTL = 600.0
#: At most this many users' settings are kept in memory.
USER_CACHE_SIZE = 10_000


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
        self._bound: dict[int, frozenset[int]] = {}
        self._primed = False
        self._guilds: TTLCache[int, GuildConfig] = TTLCache(ttl=ttl, clock=self._now)

    def _now(self) -> float:
        return self.clock()  # late-bound: tests may swap `clock`

    @property
    def ttl(self) -> float:
        return self._guilds.ttl

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
        return await self._guilds.get(guild_id, lambda: self._load(guild_id))

    async def _load(self, guild_id: int) -> GuildConfig:
        if not self._primed:
            self._bound[guild_id] = frozenset(await self.repository.bound_channels(guild_id))
        loaded_at = self.clock()
        return GuildConfig(
            options=await self.repository.get_options(guild_id),
            blocked=frozenset(await self.repository.blocked_users(guild_id)),
            loaded_at=loaded_at,
        )

    def invalidate(self, guild_id: int) -> None:
        self._guilds.invalidate(guild_id)

    def forget_guild(self, guild_id: int) -> None:
        self._guilds.invalidate(guild_id)
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
        self._users: TTLCache[int, UserSettings] = TTLCache(ttl=ttl, clock=self._now, size=size)

    def _now(self) -> float:
        return self.clock()

    @property
    def ttl(self) -> float:
        return self._users.ttl

    @property
    def size(self) -> int | None:
        return self._users.size

    async def get(self, user_id: int) -> UserSettings:
        return await self._users.get(user_id, lambda: self.repository.get(user_id))

    def invalidate(self, user_id: int) -> None:
        self._users.invalidate(user_id)
