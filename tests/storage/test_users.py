"""User settings and per-guild overrides, on every backend."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import BigInteger, Integer, column, inspect, select, table
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.engine import create_engine
from bot.storage.guilds import GuildSettingsRepository
from bot.storage.models import InvalidSetting, UserGuildOverride, UserSettings
from bot.storage.reader import ReaderConfigRepository
from bot.storage.tables import reader_blocks
from bot.storage.users import UserSettingsRepository

USER = 111_111_111_111_111_111
OTHER = 222_222_222_222_222_222
GUILD = 900_000_000_000_000_001
GUILD_2 = 900_000_000_000_000_002


@pytest.fixture
def users(db_engine: AsyncEngine) -> UserSettingsRepository:
    return UserSettingsRepository(db_engine)


async def test_unknown_user_has_nothing_set(users: UserSettingsRepository) -> None:
    assert await users.get(USER) == UserSettings(user_id=USER)
    settings = await users.get(USER)
    assert settings.is_empty() and settings.autoread is True and settings.nickname is None
    assert await users.get_override(GUILD, USER) == UserGuildOverride(guild_id=GUILD, user_id=USER)


async def test_partial_update_touches_only_given_fields(users: UserSettingsRepository) -> None:
    await users.update(USER, voice_id="voice-a", stability=0.3)
    await users.update(USER, speed=1.1)
    await users.update(USER, stability=None, speaker_boost=False)
    settings = await users.get(USER)
    assert settings.voice_id == "voice-a"
    assert settings.stability is None
    assert settings.speed == pytest.approx(1.1)
    assert settings.speaker_boost is False
    assert settings.similarity is None and settings.style is None


async def test_update_with_nothing_creates_an_empty_row(users: UserSettingsRepository) -> None:
    await users.update(USER)
    assert (await users.get(USER)).is_empty()


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("stability", 1.5),
        ("stability", -0.1),
        ("similarity", float("nan")),
        ("style", "0.5"),
        ("speed", 0.5),
        ("speed", 1.3),
        ("speaker_boost", 1),
        ("voice_id", ""),
        ("voice_id", "has space"),
        ("voice_id", "x" * 65),
    ],
)
async def test_out_of_range_values_are_refused(
    users: UserSettingsRepository, field: str, value: object
) -> None:
    with pytest.raises(InvalidSetting) as raised:
        await users.update(USER, **{field: value})
    assert raised.value.field == field
    assert (await users.get(USER)).is_empty()


async def test_range_edges_are_accepted(users: UserSettingsRepository) -> None:
    await users.update(USER, stability=0, similarity=1, style=0.0, speed=0.7)
    await users.update(USER, speed=1.2)
    settings = await users.get(USER)
    assert (settings.stability, settings.similarity, settings.speed) == (0.0, 1.0, 1.2)


async def test_override_is_per_guild(users: UserSettingsRepository) -> None:
    await users.update(USER, voice_id="mine")
    await users.update_override(GUILD, USER, voice_id="here", style=0.4)
    own, here = await users.get_for_guild(GUILD, USER)
    assert own.voice_id == "mine"
    assert (here.voice_id, here.style) == ("here", 0.4)
    assert (await users.get_override(GUILD_2, USER)).is_empty()


async def test_autoread_and_nickname(users: UserSettingsRepository) -> None:
    await users.set_autoread(USER, False)
    await users.set_nickname(USER, "  Ada   L ")
    settings = await users.get(USER)
    assert settings.autoread is False and settings.nickname == "Ada L"
    await users.set_nickname(USER, "   ")
    assert (await users.get(USER)).nickname is None
    with pytest.raises(InvalidSetting):
        await users.set_nickname(USER, "n" * 33)


async def test_reset_clears_voice_fields_but_not_autoread(users: UserSettingsRepository) -> None:
    await users.update(USER, voice_id="mine", stability=0.2)
    await users.set_autoread(USER, False)
    await users.set_nickname(USER, "Ada")
    await users.update_override(GUILD, USER, voice_id="here")
    await users.reset(USER, guild_id=GUILD)
    assert (await users.get_override(GUILD, USER)).is_empty()
    assert (await users.get(USER)).voice_id == "mine"
    await users.reset(USER)
    settings = await users.get(USER)
    assert settings.is_empty()
    assert (settings.autoread, settings.nickname) == (False, "Ada")


async def test_concurrent_partial_updates_keep_both_fields(
    db_engine: AsyncEngine, db_url: str
) -> None:
    second_engine = create_engine(db_url)
    try:
        first = UserSettingsRepository(db_engine)
        second = UserSettingsRepository(second_engine)
        for round_ in range(10):
            user_id = USER + round_
            await asyncio.gather(
                first.update(user_id, stability=0.25),
                second.update(user_id, voice_id="voice-b"),
                first.update_override(GUILD, user_id, speed=0.8),
                second.update_override(GUILD, user_id, style=0.6),
                first.set_autoread(user_id, False),
                second.set_nickname(user_id, "Bo"),
            )
            own, here = await first.get_for_guild(GUILD, user_id)
            assert (own.stability, own.voice_id, own.autoread, own.nickname) == (
                0.25,
                "voice-b",
                False,
                "Bo",
            )
            assert (here.speed, here.style) == (0.8, 0.6)
    finally:
        await second_engine.dispose()


async def _rows_mentioning(engine: AsyncEngine, value: int) -> dict[str, int]:
    """Every integer column of every table in the database, searched for `value`."""

    def scan(connection) -> dict[str, int]:
        found: dict[str, int] = {}
        inspector = inspect(connection)
        for table_name in inspector.get_table_names():
            for col in inspector.get_columns(table_name):
                if not isinstance(col["type"], Integer | BigInteger):
                    continue
                t = table(table_name, column(col["name"]))
                count = len(connection.execute(select(t).where(t.c[col["name"]] == value)).all())
                if count:
                    found[f"{table_name}.{col['name']}"] = count
        return found

    async with engine.connect() as connection:
        return await connection.run_sync(scan)


async def test_forget_user_leaves_nothing_of_them(db_engine: AsyncEngine) -> None:
    users = UserSettingsRepository(db_engine)
    guilds = GuildSettingsRepository(db_engine)
    reader = ReaderConfigRepository(db_engine)
    for user_id in (USER, OTHER):
        await users.update(user_id, voice_id="v", stability=0.5)
        await users.set_nickname(user_id, "Nick")
        await users.set_autoread(user_id, False)
        for guild_id in (GUILD, GUILD_2):
            await users.update_override(guild_id, user_id, speed=0.9)
    await guilds.update(GUILD, voice_id="server")
    await reader.block_user(GUILD, USER)
    assert set(await _rows_mentioning(db_engine, USER)) >= {
        "user_settings.user_id",
        "user_guild_overrides.user_id",
    }

    assert await users.forget_user(USER) >= 3

    # Only the admins' block survives, by design (see forget_user's docstring).
    assert await _rows_mentioning(db_engine, USER) == {f"{reader_blocks.name}.user_id": 1}
    assert await users.get(USER) == UserSettings(user_id=USER)
    assert (await users.get(OTHER)).nickname == "Nick"
    assert (await users.get_override(GUILD_2, OTHER)).speed == 0.9
    assert (await guilds.get(GUILD)).voice_id == "server"
    assert await users.forget_user(USER) == 0
