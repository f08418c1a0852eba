"""Reader configuration: bound channels, blocks, typed options with one set of defaults."""

from __future__ import annotations

import dataclasses

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.models import InvalidSetting
from bot.storage.reader import (
    DEFAULT_READER_OPTIONS,
    OPTION_SPECS,
    ReaderConfigRepository,
    ReaderOptions,
    parse_option_value,
    validate_option,
)

GUILD = 900_000_000_000_000_001
OTHER_GUILD = 900_000_000_000_000_002
CHANNELS = (700_000_000_000_000_003, 700_000_000_000_000_001)
USER = 111_111_111_111_111_111
ROLE = 555_555_555_555_555_555


@pytest.fixture
def reader(db_engine: AsyncEngine) -> ReaderConfigRepository:
    return ReaderConfigRepository(db_engine)


def test_every_option_has_a_spec_and_a_default() -> None:
    assert set(OPTION_SPECS) == {f.name for f in dataclasses.fields(ReaderOptions)}
    for spec in OPTION_SPECS.values():
        assert validate_option(spec.name, spec.default) == spec.default


async def test_bind_unbind_and_list(reader: ReaderConfigRepository) -> None:
    for channel in CHANNELS:
        assert await reader.bind_channel(GUILD, channel) is True
    assert await reader.bind_channel(GUILD, CHANNELS[0]) is False
    await reader.bind_channel(OTHER_GUILD, CHANNELS[0])
    assert await reader.bound_channels(GUILD) == sorted(CHANNELS)
    assert await reader.all_bound_channels() == {
        GUILD: set(CHANNELS),
        OTHER_GUILD: {CHANNELS[0]},
    }
    assert await reader.unbind_channel(GUILD, CHANNELS[0]) is True
    assert await reader.unbind_channel(GUILD, CHANNELS[0]) is False
    assert await reader.bound_channels(GUILD) == [CHANNELS[1]]
    assert await reader.bound_channels(OTHER_GUILD) == [CHANNELS[0]]


async def test_block_and_unblock(reader: ReaderConfigRepository) -> None:
    assert await reader.block_user(GUILD, USER) is True
    assert await reader.block_user(GUILD, USER) is False
    assert await reader.is_blocked(GUILD, USER) is True
    assert await reader.is_blocked(OTHER_GUILD, USER) is False
    assert await reader.blocked_users(GUILD) == [USER]
    assert await reader.unblock_user(GUILD, USER) is True
    assert await reader.unblock_user(GUILD, USER) is False
    assert await reader.blocked_users(GUILD) == []


async def test_options_default_then_set_and_reset(reader: ReaderConfigRepository) -> None:
    assert await reader.get_options(GUILD) == DEFAULT_READER_OPTIONS
    options = await reader.set_option(GUILD, "max_length", 500)
    options = await reader.set_option(GUILD, "require_voice", False)
    options = await reader.set_option(GUILD, "required_role_id", ROLE)
    options = await reader.set_option(GUILD, "emoji_mode", "DROP")
    options = await reader.set_option(GUILD, "skip_prefix", "")
    assert (options.max_length, options.require_voice, options.required_role_id) == (
        500,
        False,
        ROLE,
    )
    assert (options.emoji_mode, options.skip_prefix) == ("drop", "")
    assert await reader.get_changed_options(GUILD) == {
        "max_length": 500,
        "require_voice": False,
        "required_role_id": ROLE,
        "emoji_mode": "drop",
        "skip_prefix": "",
    }
    assert await reader.get_options(OTHER_GUILD) == DEFAULT_READER_OPTIONS
    options = await reader.reset_option(GUILD, "max_length")
    assert options.max_length == DEFAULT_READER_OPTIONS.max_length
    options = await reader.set_option(GUILD, "required_role_id", None)
    assert options.required_role_id is None


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("nope", True),
        ("require_voice", "yes"),
        ("max_length", 5),
        ("max_length", 10_000),
        ("max_length", True),
        ("user_rate_limit", -1),
        ("max_wait_seconds", 1),
        ("emoji_mode", "shout"),
        ("spoilers_mode", 1),
        ("skip_prefix", "x" * 17),
        ("skip_prefix", " !"),
        ("required_role_id", 0),
        ("autojoin", None),
    ],
)
async def test_invalid_options_are_refused(
    reader: ReaderConfigRepository, name: str, value: object
) -> None:
    with pytest.raises(InvalidSetting) as raised:
        await reader.set_option(GUILD, name, value)
    assert raised.value.field == name
    assert await reader.get_options(GUILD) == DEFAULT_READER_OPTIONS


@pytest.mark.parametrize(
    ("name", "raw", "value"),
    [
        ("require_voice", "off", False),
        ("read_bots", " ON ", True),
        ("say_name", "yes", True),
        ("max_length", "250", 250),
        ("required_role_id", f"<@&{ROLE}>", ROLE),
        ("required_role_id", str(ROLE), ROLE),
        ("required_role_id", "none", None),
        ("skip_prefix", "//", "//"),
        ("spoilers_mode", "Read", "read"),
    ],
)
def test_parse_option_value(name: str, raw: str, value: object) -> None:
    assert parse_option_value(name, raw) == value


@pytest.mark.parametrize(
    ("name", "raw"),
    [("require_voice", "maybe"), ("max_length", "lots"), ("required_role_id", "@mods")],
)
def test_parse_option_value_refuses(name: str, raw: str) -> None:
    with pytest.raises(InvalidSetting):
        parse_option_value(name, raw)
