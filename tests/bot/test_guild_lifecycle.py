"""Leaving a server: its data is deleted after the grace period, unless the bot comes back.

Departures and returns are real gateway events (GUILD_DELETE, GUILD_CREATE) through
discord.py's parser; the purge is run with an explicit `now` instead of waiting 30 days.
"""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest
from sqlalchemy import select

from bot.storage.registry import load_all_tables
from bot.storage.types import utcnow
from cogs.guild_lifecycle import GUILD_DATA_GRACE_DAYS, grace_period
from tests.fakes.discord import DiscordHarness

from .conftest import BotFactory
from .test_voice_commands import member_id

GONE_GUILD = 7_000_000_000_000_000_001


def lifecycle(tts: DiscordHarness) -> Any:
    cog = tts.bot.get_cog("GuildLifecycle")
    assert cog is not None
    return cog


async def fill_guild(tts: DiscordHarness, guild_id: int) -> None:
    """Settings of every kind that belong to one server."""
    storage = tts.bot.storage
    alice = member_id(tts, "alice")
    await storage.guilds.update(guild_id, speed=0.9, lock_voice=True)
    await storage.users.update_override(guild_id, alice, stability=0.3)
    await storage.reader.bind_channel(guild_id, tts.guild.channel_ids["general"])
    await storage.reader.block_user(guild_id, member_id(tts, "bob"))
    await storage.users.update(alice, speed=1.1)  # the user's own: not the server's


async def guild_rows(tts: DiscordHarness, guild_id: int) -> list[tuple[str, dict]]:
    """Every row, in every table, with a `guild_id` column equal to `guild_id`."""
    found = []
    async with tts.bot.storage.engine.connect() as connection:
        for table in load_all_tables().sorted_tables:
            if "guild_id" not in table.c:
                continue
            rows = await connection.execute(select(table).where(table.c.guild_id == guild_id))
            found += [(table.name, dict(row)) for row in rows.mappings()]
    return found


async def leave(tts: DiscordHarness, *, unavailable: bool = False) -> None:
    payload: dict[str, Any] = {"id": str(tts.guild.id)}
    if unavailable:
        payload["unavailable"] = True
    await tts.dispatch("GUILD_DELETE", payload)


async def come_back(tts: DiscordHarness) -> None:
    payload = next(g for g in tts.rest.gateway_guilds if int(g["id"]) == tts.guild.id)
    await tts.dispatch("GUILD_CREATE", payload)


async def test_data_is_deleted_after_the_grace_period(tts_factory: BotFactory, db_url: str) -> None:
    """On each backend (db_url: SQLite, and PostgreSQL when TEST_DATABASE_URL is set)."""
    tts = await tts_factory(database_url=db_url)
    gid = tts.guild.id
    await fill_guild(tts, gid)
    await leave(tts)
    left_at = (await tts.bot.storage.guilds.get(gid)).left_at
    assert left_at is not None

    grace = timedelta(days=GUILD_DATA_GRACE_DAYS)
    assert await lifecycle(tts).purge(now=left_at + grace - timedelta(minutes=1)) == []
    assert await guild_rows(tts, gid)

    assert await lifecycle(tts).purge(now=left_at + grace + timedelta(minutes=1)) == [gid]
    assert await guild_rows(tts, gid) == []
    alice = await tts.bot.storage.users.get(member_id(tts, "alice"))
    assert alice.speed == 1.1, "a member's own settings are not the server's to delete"


async def test_data_is_kept_when_the_bot_comes_back(tts: DiscordHarness) -> None:
    gid = tts.guild.id
    await fill_guild(tts, gid)
    await leave(tts)
    assert (await tts.bot.storage.guilds.get(gid)).left_at is not None
    await come_back(tts)
    assert tts.bot.get_guild(gid) is not None
    assert (await tts.bot.storage.guilds.get(gid)).left_at is None

    later = utcnow() + timedelta(days=GUILD_DATA_GRACE_DAYS * 3)
    assert await lifecycle(tts).purge(now=later) == []
    settings = await tts.bot.storage.guilds.get(gid)
    assert (settings.speed, settings.lock_voice) == (0.9, True)


async def test_leaving_twice_does_not_extend_the_period(tts: DiscordHarness) -> None:
    gid = tts.guild.id
    await fill_guild(tts, gid)
    await leave(tts)
    first = (await tts.bot.storage.guilds.get(gid)).left_at
    await lifecycle(tts).on_guild_remove(tts.bot.get_guild(gid) or SimpleNamespace(id=gid))
    assert (await tts.bot.storage.guilds.get(gid)).left_at == first


async def test_an_outage_is_not_a_departure(tts: DiscordHarness) -> None:
    gid = tts.guild.id
    await fill_guild(tts, gid)
    await leave(tts, unavailable=True)
    assert (await tts.bot.storage.guilds.get(gid)).left_at is None
    await come_back(tts)
    assert await lifecycle(tts).purge(now=utcnow() + timedelta(days=365)) == []


async def test_servers_left_while_offline_start_their_period_at_ready(
    tts: DiscordHarness,
) -> None:
    await fill_guild(tts, GONE_GUILD)
    await fill_guild(tts, tts.guild.id)
    await lifecycle(tts).on_ready()
    assert (await tts.bot.storage.guilds.get(GONE_GUILD)).left_at is not None
    assert (await tts.bot.storage.guilds.get(tts.guild.id)).left_at is None

    purged = await lifecycle(tts).purge(now=utcnow() + timedelta(days=GUILD_DATA_GRACE_DAYS + 1))
    assert purged == [GONE_GUILD]
    assert await guild_rows(tts, GONE_GUILD) == []
    assert await guild_rows(tts, tts.guild.id)


async def test_a_process_with_some_shards_does_not_judge_the_others(
    tts: DiscordHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    await fill_guild(tts, GONE_GUILD)
    monkeypatch.setattr(tts.bot, "shard_ids", [0])
    await lifecycle(tts).on_ready()
    assert (await tts.bot.storage.guilds.get(GONE_GUILD)).left_at is None


async def test_the_purge_runs_periodically(tts: DiscordHarness) -> None:
    cog = lifecycle(tts)
    assert cog.purge_loop.is_running()
    assert cog.purge_loop.hours >= 1


def test_grace_period_defaults_to_30_days_and_follows_a_setting() -> None:
    assert grace_period(SimpleNamespace(settings=SimpleNamespace())) == timedelta(days=30)  # type: ignore[arg-type]
    configured = SimpleNamespace(settings=SimpleNamespace(guild_data_grace_days=7))
    assert grace_period(configured) == timedelta(days=7)  # type: ignore[arg-type]


async def test_the_purge_empties_the_voice_resolution_cache(tts: DiscordHarness) -> None:
    """Resolution caches each server's settings: a purge must not leave them in memory."""
    gid = tts.guild.id
    alice = member_id(tts, "alice")
    await fill_guild(tts, gid)
    before = await tts.bot.preferences.levels(gid, alice)  # cached now
    assert (before[1].stability, before[2].speed) == (0.3, 0.9)
    await leave(tts)
    left_at = (await tts.bot.storage.guilds.get(gid)).left_at
    assert left_at is not None
    purged = await lifecycle(tts).purge(now=left_at + timedelta(days=GUILD_DATA_GRACE_DAYS + 1))
    assert purged == [gid]
    _user, override, server = await tts.bot.preferences.levels(gid, alice)
    assert (override.stability, server.speed, server.lock_voice) == (None, None, False)
