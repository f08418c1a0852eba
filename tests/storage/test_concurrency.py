"""Concurrent writers: nothing is lost and SQLite never answers "database is locked"."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.engine import create_engine
from bot.storage.guilds import GuildSettingsRepository
from bot.storage.reader import ReaderConfigRepository
from bot.storage.users import UserSettingsRepository

GUILD = 900_000_000_000_000_001
USERS = 40


async def test_many_writers_on_several_engines(db_url: str) -> None:
    """Three engines stand for three processes; every write lands, none fails."""
    engines = [create_engine(db_url) for _ in range(3)]
    try:
        jobs = []
        for index in range(USERS):
            user_repo = UserSettingsRepository(engines[index % 3])
            other_repo = UserSettingsRepository(engines[(index + 1) % 3])
            reader = ReaderConfigRepository(engines[(index + 2) % 3])
            jobs += [
                user_repo.update(index + 1, stability=0.5),
                other_repo.update(index + 1, voice_id=f"voice-{index}"),
                user_repo.update_override(GUILD, index + 1, speed=1.0),
                reader.bind_channel(GUILD, 1000 + index),
                reader.block_user(GUILD, index + 1),
                other_repo.get(index + 1),
            ]
        await asyncio.gather(*jobs)

        users = UserSettingsRepository(engines[0])
        for index in range(USERS):
            settings = await users.get(index + 1)
            assert (settings.stability, settings.voice_id) == (0.5, f"voice-{index}")
        reader = ReaderConfigRepository(engines[0])
        assert len(await reader.bound_channels(GUILD)) == USERS
        assert len(await reader.blocked_users(GUILD)) == USERS
    finally:
        for engine in engines:
            await engine.dispose()


async def test_reads_do_not_wait_for_a_writer(db_engine: AsyncEngine, db_backend: str) -> None:
    """A long write transaction holds SQLite's write lock; settings can still be read."""
    guilds = GuildSettingsRepository(db_engine)
    await guilds.update(GUILD, voice_id="before")
    async with db_engine.begin() as writer:
        await writer.execute(
            text("UPDATE guild_settings SET voice_id = 'during' WHERE guild_id = :g"),
            {"g": GUILD},
        )
        settings = await asyncio.wait_for(guilds.get(GUILD), timeout=5)
        assert settings.voice_id == "before"
    assert (await guilds.get(GUILD)).voice_id == "during"


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
async def test_sqlite_writer_waits_for_the_lock_instead_of_failing(db_url: str) -> None:
    first, second = create_engine(db_url), create_engine(db_url)
    try:
        users = UserSettingsRepository(second)
        async with first.begin() as holder:
            await holder.execute(text("UPDATE user_settings SET nickname = 'x'"))
            waiting = asyncio.create_task(users.update(1, style=0.2))
            await asyncio.sleep(0.3)
            assert not waiting.done()  # queued on busy_timeout, not failed
        await asyncio.wait_for(waiting, timeout=10)
        assert (await users.get(1)).style == 0.2
    finally:
        await first.dispose()
        await second.dispose()
