"""Guild settings, lock_voice, and the grace period after the bot leaves a guild."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.guilds import GuildSettingsRepository
from bot.storage.models import GuildSettings, InvalidSetting
from bot.storage.reader import ReaderConfigRepository
from bot.storage.users import UserSettingsRepository

GUILD = 900_000_000_000_000_001
OTHER_GUILD = 900_000_000_000_000_002
USER = 111_111_111_111_111_111
CHANNEL = 700_000_000_000_000_001
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def guilds(db_engine: AsyncEngine) -> GuildSettingsRepository:
    return GuildSettingsRepository(db_engine)


async def test_unknown_guild_has_defaults(guilds: GuildSettingsRepository) -> None:
    assert await guilds.get(GUILD) == GuildSettings(guild_id=GUILD)


async def test_partial_updates_and_lock(guilds: GuildSettingsRepository) -> None:
    await guilds.update(GUILD, voice_id="server-voice", model_id="eleven_flash_v2_5")
    await guilds.update(GUILD, stability=0.4, speaker_boost=False)
    await guilds.set_lock_voice(GUILD, True)
    settings = await guilds.get(GUILD)
    assert (settings.voice_id, settings.model_id) == ("server-voice", "eleven_flash_v2_5")
    assert (settings.stability, settings.speaker_boost, settings.lock_voice) == (0.4, False, True)
    await guilds.update(GUILD, model_id=None, lock_voice=False)
    settings = await guilds.get(GUILD)
    assert (settings.model_id, settings.lock_voice, settings.voice_id) == (
        None,
        False,
        "server-voice",
    )


async def test_invalid_values_are_refused(guilds: GuildSettingsRepository) -> None:
    with pytest.raises(InvalidSetting):
        await guilds.update(GUILD, speed=2.0)
    with pytest.raises(InvalidSetting):
        await guilds.update(GUILD, model_id=" ")
    assert await guilds.get(GUILD) == GuildSettings(guild_id=GUILD)


async def test_reset_clears_defaults_and_unlocks(guilds: GuildSettingsRepository) -> None:
    await guilds.update(GUILD, voice_id="v", model_id="m", style=0.3, lock_voice=True)
    await guilds.reset(GUILD)
    assert await guilds.get(GUILD) == GuildSettings(guild_id=GUILD)


async def _fill_guild(engine: AsyncEngine, guild_id: int) -> None:
    await GuildSettingsRepository(engine).update(guild_id, voice_id="v")
    await UserSettingsRepository(engine).update_override(guild_id, USER, speed=0.9)
    reader = ReaderConfigRepository(engine)
    await reader.bind_channel(guild_id, CHANNEL)
    await reader.block_user(guild_id, USER)
    await reader.set_option(guild_id, "max_length", 100)


async def test_departed_guild_is_purged_after_the_grace_period(db_engine: AsyncEngine) -> None:
    guilds = GuildSettingsRepository(db_engine)
    reader = ReaderConfigRepository(db_engine)
    users = UserSettingsRepository(db_engine)
    await users.update(USER, voice_id="mine")
    for guild_id in (GUILD, OTHER_GUILD):
        await _fill_guild(db_engine, guild_id)

    await guilds.mark_guild_left(GUILD, now=T0)
    await guilds.mark_guild_left(GUILD, now=T0 + timedelta(days=5))  # keeps the first date
    assert (await guilds.get(GUILD)).left_at == T0

    grace = timedelta(days=30)
    assert await guilds.purge_departed_guilds(grace, now=T0 + timedelta(days=29)) == []
    assert await guilds.purge_departed_guilds(grace, now=T0 + timedelta(days=30)) == [GUILD]

    assert await guilds.get(GUILD) == GuildSettings(guild_id=GUILD)
    assert await reader.bound_channels(GUILD) == []
    assert await reader.blocked_users(GUILD) == []
    assert await reader.get_changed_options(GUILD) == {}
    assert (await users.get_override(GUILD, USER)).is_empty()
    # Other guilds and the user's own settings are untouched.
    assert (await guilds.get(OTHER_GUILD)).voice_id == "v"
    assert await reader.bound_channels(OTHER_GUILD) == [CHANNEL]
    assert (await users.get_override(OTHER_GUILD, USER)).speed == 0.9
    assert (await users.get(USER)).voice_id == "mine"


async def test_returning_guild_is_not_purged(guilds: GuildSettingsRepository) -> None:
    await guilds.update(GUILD, voice_id="v")
    await guilds.mark_guild_left(GUILD, now=T0)
    assert await guilds.mark_guild_returned(GUILD) is True
    assert await guilds.mark_guild_returned(GUILD) is False
    assert (await guilds.get(GUILD)).left_at is None
    assert await guilds.purge_departed_guilds(timedelta(days=1), now=T0 + timedelta(days=99)) == []
    assert (await guilds.get(GUILD)).voice_id == "v"


async def test_left_at_round_trips_as_aware_utc(guilds: GuildSettingsRepository) -> None:
    paris = datetime(2026, 3, 1, 14, 30, tzinfo=timezone(timedelta(hours=1)))
    await guilds.mark_guild_left(GUILD, now=paris)
    left_at = (await guilds.get(GUILD)).left_at
    assert left_at == paris and left_at.tzinfo == UTC
    with pytest.raises(Exception, match="naive"):
        await guilds.mark_guild_left(OTHER_GUILD, now=datetime(2026, 1, 1))


async def test_sync_presence_at_start_up(db_engine: AsyncEngine) -> None:
    guilds = GuildSettingsRepository(db_engine)
    await _fill_guild(db_engine, GUILD)
    await ReaderConfigRepository(db_engine).bind_channel(OTHER_GUILD, CHANNEL)
    await guilds.sync_presence([GUILD], now=T0)
    assert (await guilds.get(GUILD)).left_at is None
    assert (await guilds.get(OTHER_GUILD)).left_at == T0  # left while we were offline
    await guilds.sync_presence([GUILD, OTHER_GUILD], now=T0 + timedelta(days=1))
    assert (await guilds.get(OTHER_GUILD)).left_at is None
