"""A server's data outlives the bot's departure by a grace period, then it is deleted.

Leaving (kicked, left, or the server deleted) starts the period; being in the server
again (joined back, or seen at start-up) cancels it; a periodic task deletes what is
left of servers whose period is over. The dates live in the database
(`guild_settings.left_at`), so a restart neither loses nor extends a period.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import discord
from discord.ext import commands, tasks

if TYPE_CHECKING:
    from bot.app import TTSBot
    from bot.storage.guilds import GuildSettingsRepository

log = logging.getLogger(__name__)

GUILD_DATA_GRACE_DAYS = 30
"""Default grace period; `Settings.guild_data_grace_days` wins once that setting exists."""
PURGE_INTERVAL_HOURS = 6.0


def grace_period(bot: TTSBot) -> timedelta:
    days = getattr(bot.settings, "guild_data_grace_days", None)
    return timedelta(days=GUILD_DATA_GRACE_DAYS if days is None else days)


class GuildLifecycle(commands.Cog):
    def __init__(self, bot: TTSBot) -> None:
        self.bot = bot
        self.grace = grace_period(bot)
        self._purging: asyncio.Task[list[int]] | None = None

    async def cog_load(self) -> None:
        self.purge_loop.start()

    async def cog_unload(self) -> None:
        self.purge_loop.cancel()
        # A purge in progress finishes its transaction: cut halfway, the SQLite driver is
        # left with a connection that never closes.
        if self._purging is not None and not self._purging.done():
            await asyncio.wait([self._purging], timeout=10)

    @property
    def _guilds(self) -> GuildSettingsRepository | None:
        storage = self.bot.storage
        return storage.guilds if storage is not None else None

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        if self._guilds is None:
            return
        await self._guilds.mark_guild_left(guild.id)
        self._changed([guild.id])
        days = self.grace.total_seconds() / 86400
        log.info("left guild %s: its data is deleted in %g days unless I return", guild.id, days)

    @commands.Cog.listener()
    async def on_guild_join(self, guild: discord.Guild) -> None:
        await self._returned(guild)

    @commands.Cog.listener()
    async def on_guild_available(self, guild: discord.Guild) -> None:
        await self._returned(guild)

    @commands.Cog.listener()
    async def on_ready(self) -> None:
        """Servers left while the bot was offline start their period now.

        Only when this process runs every shard: otherwise the servers of the other
        shards would look departed.
        """
        if self._guilds is None or self.bot.shard_ids is not None:
            return
        await self._guilds.sync_presence(guild.id for guild in self.bot.guilds)

    async def _returned(self, guild: discord.Guild) -> None:
        guilds = self._guilds
        if guilds is None:
            return
        # Every guild becomes available at each start: read first (no write lock on
        # SQLite), write only for the rare guild whose data is pending deletion.
        if (await guilds.get(guild.id)).left_at is None:
            return
        if await guilds.mark_guild_returned(guild.id):
            self._changed([guild.id])
            log.info("back in guild %s: its data is kept", guild.id)

    async def purge(self, *, now: datetime | None = None) -> list[int]:
        """Delete the data of every server left more than the grace period ago."""
        if self._guilds is None:
            return []
        present = {guild.id for guild in self.bot.guilds}
        purged = await self._guilds.purge_departed_guilds(self.grace, now=now)
        self._changed(purged)
        if present & set(purged):  # a missed join event: should not happen, worth knowing
            log.warning("purged guilds the bot is in: %s", sorted(present & set(purged)))
        return purged

    def _changed(self, guild_ids: list[int]) -> None:
        """These guilds' stored settings changed: the voice resolution's cache forgets them."""
        preferences = getattr(self.bot, "preferences", None)
        if preferences is not None:
            for guild_id in guild_ids:
                preferences.invalidate_guild(guild_id)

    @tasks.loop(hours=PURGE_INTERVAL_HOURS)
    async def purge_loop(self) -> None:
        try:
            self._purging = asyncio.ensure_future(self.purge())
            await asyncio.shield(self._purging)
        except Exception:  # keep the loop alive; the next round retries
            log.exception("purging departed guilds failed")


async def setup(bot: TTSBot) -> None:
    await bot.add_cog(GuildLifecycle(bot))
