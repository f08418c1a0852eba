"""The reader's rules, table-driven on plain data, and its caches against a real database."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.reader import (
    GuildView,
    LastSpeakers,
    MessageFacts,
    RateLimiter,
    ReaderConfig,
    Skip,
    Source,
    UserCache,
    decide,
    read_source,
    said,
)
from bot.storage.reader import DEFAULT_READER_OPTIONS, ReaderConfigRepository
from bot.storage.users import UserSettingsRepository

GUILD = 900_000_000_000_000_001
BOT = 1
ALICE = 2
BOUND = 10
THREAD = 11
OTHER = 12
LOUNGE = 20  # the bot's voice channel
QUIET = 21
AFK = 22
ROLE = 30


def view(**options: Any) -> GuildView:
    connected = options.pop("connected", True)
    return GuildView(
        bot_id=BOT,
        options=dataclasses.replace(DEFAULT_READER_OPTIONS, **options),
        bound=frozenset({BOUND}),
        blocked=frozenset({99}),
        bot_voice_channel_id=LOUNGE if connected else None,
        afk_channel_id=AFK,
    )


def facts(**changes: Any) -> MessageFacts:
    base = MessageFacts(
        channel_id=BOUND,
        author_id=ALICE,
        author_voice_channel_id=LOUNGE,
        content="hello",
        role_ids=frozenset({ROLE}),
    )
    return dataclasses.replace(base, **changes)


# (case, message changes, view options (incl. connected), expected skip, expected join)
CASES: list[tuple[str, dict[str, Any], dict[str, Any], Skip | None, int | None]] = [
    ("bound channel, author with the bot", {}, {}, None, None),
    ("system message", {"is_system": True}, {}, Skip.SYSTEM, None),
    ("the bot itself", {"author_id": BOT}, {}, Skip.OWN, None),
    ("unbound channel", {"channel_id": OTHER}, {}, Skip.NOT_READ_HERE, None),
    ("thread of a bound channel", {"channel_id": THREAD, "is_thread": True, "parent_id": BOUND},
     {}, None, None),
    ("thread, threads off", {"channel_id": THREAD, "is_thread": True, "parent_id": BOUND},
     {"read_threads": False}, Skip.THREADS_OFF, None),
    ("thread of an unbound channel", {"channel_id": THREAD, "is_thread": True, "parent_id": OTHER},
     {}, Skip.NOT_READ_HERE, None),
    ("voice chat of the bot's channel", {"channel_id": LOUNGE}, {}, None, None),
    ("voice chat, option off", {"channel_id": LOUNGE}, {"read_voice_chat": False},
     Skip.NOT_READ_HERE, None),
    ("voice chat of another channel", {"channel_id": QUIET}, {}, Skip.NOT_READ_HERE, None),
    ("voice chat while not connected", {"channel_id": LOUNGE}, {"connected": False},
     Skip.NOT_READ_HERE, None),
    ("older than max wait", {"age": 61.0}, {}, Skip.TOO_OLD, None),
    ("just within max wait", {"age": 60.0}, {}, None, None),
    ("max wait option", {"age": 10.0}, {"max_wait_seconds": 5}, Skip.TOO_OLD, None),
    ("bot author", {"author_is_bot": True}, {}, Skip.BOT_AUTHOR, None),
    ("webhook", {"is_webhook": True}, {}, Skip.BOT_AUTHOR, None),
    ("bot author, bots on", {"author_is_bot": True}, {"read_bots": True}, None, None),
    ("blocked", {"author_id": 99}, {}, Skip.BLOCKED, None),
    ("required role held", {}, {"required_role_id": ROLE}, None, None),
    ("required role missing", {"role_ids": frozenset()}, {"required_role_id": ROLE},
     Skip.MISSING_ROLE, None),
    ("skip prefix", {"content": "!hi"}, {}, Skip.SKIP_PREFIX, None),
    ("skip prefix after spaces", {"content": "  !hi"}, {}, Skip.SKIP_PREFIX, None),
    ("other prefix", {"content": "!hi"}, {"skip_prefix": "//"}, None, None),
    ("no prefix", {"content": "!hi"}, {"skip_prefix": ""}, None, None),
    ("author in another channel", {"author_voice_channel_id": QUIET}, {}, Skip.NOT_IN_VOICE, None),
    ("author not in voice", {"author_voice_channel_id": None}, {}, Skip.NOT_IN_VOICE, None),
    ("author elsewhere, require_voice off", {"author_voice_channel_id": QUIET},
     {"require_voice": False}, None, None),
    ("not connected: autojoin", {}, {"connected": False}, None, LOUNGE),
    ("not connected: autojoin their channel", {"author_voice_channel_id": QUIET},
     {"connected": False}, None, QUIET),
    ("not connected, autojoin off", {}, {"connected": False, "autojoin": False},
     Skip.NOT_CONNECTED, None),
    ("not connected, author not in voice", {"author_voice_channel_id": None},
     {"connected": False}, Skip.NOT_IN_VOICE, None),
    ("not connected, author in AFK", {"author_voice_channel_id": AFK}, {"connected": False},
     Skip.NOT_IN_VOICE, None),
    ("not connected, require_voice off, author not in voice", {"author_voice_channel_id": None},
     {"connected": False, "require_voice": False}, Skip.NOT_IN_VOICE, None),
]  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "options", "skip", "join"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_decide(
    changes: dict[str, Any], options: dict[str, Any], skip: Skip | None, join: int | None
) -> None:
    verdict = decide(facts(**changes), view(**options))
    assert verdict.skip is skip
    assert verdict.read is (skip is None)
    assert verdict.join_channel_id == join


def test_opted_out_is_asked_last() -> None:
    assert decide(facts(), view(), autoread=False).skip is Skip.OPTED_OUT
    # a cheaper rule wins, so the reader never reads user settings for those
    assert decide(facts(content="!x"), view(), autoread=False).skip is Skip.SKIP_PREFIX


def test_read_source() -> None:
    assert read_source(facts(), view()) is Source.BOUND
    assert read_source(facts(channel_id=LOUNGE), view()) is Source.VOICE_CHAT
    thread = facts(channel_id=THREAD, is_thread=True, parent_id=BOUND)
    assert read_source(thread, view()) is Source.THREAD
    assert read_source(facts(channel_id=BOUND), view(connected=False)) is Source.BOUND


def test_said() -> None:
    assert said("Alice", "hello") == "Alice said, hello"
    assert said("", "hello") == "hello"


def test_last_speakers_spacing() -> None:
    speakers = LastSpeakers()
    assert speakers.needs_name(GUILD, ALICE, 0.0)
    speakers.spoke(GUILD, ALICE, 0.0)
    assert not speakers.needs_name(GUILD, ALICE, 59.9)
    assert speakers.needs_name(GUILD, ALICE, 60.0)
    assert speakers.needs_name(GUILD, 3, 1.0)  # someone else
    assert speakers.needs_name(GUILD + 1, ALICE, 1.0)  # another guild
    speakers.spoke(GUILD, 3, 1.0)
    assert speakers.needs_name(GUILD, ALICE, 2.0)  # alice again after bob


def test_rate_limiter_window_and_one_warning() -> None:
    rate = RateLimiter(window=60.0)
    for t in (0.0, 1.0):
        assert rate.allow(GUILD, ALICE, 2, t)
        rate.record(GUILD, ALICE, t)
    assert not rate.allow(GUILD, ALICE, 2, 2.0)
    assert rate.first_refusal(GUILD, ALICE, 2.0)
    assert not rate.first_refusal(GUILD, ALICE, 3.0)
    assert rate.allow(GUILD, 3, 2, 2.0)  # per user
    assert rate.allow(GUILD, ALICE, 0, 2.0)  # 0: no limit
    assert rate.allow(GUILD, ALICE, 2, 60.5)  # the first one left the window
    assert rate.allow(GUILD, ALICE, 2, 61.0)


# -- caches -------------------------------------------------------------------------------------


class Counting:
    """Wraps a repository and counts the calls that read."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.reads: list[str] = []

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self.inner, name)
        if not callable(attribute):
            return attribute

        async def call(*args: Any, **kwargs: Any) -> Any:
            if name in ("get", "get_options", "blocked_users", "bound_channels",
                        "all_bound_channels", "get_changed_options"):  # fmt: skip
                self.reads.append(name)
            return await attribute(*args, **kwargs)

        return call


async def test_reader_config_reads_once_and_writes_through(db_engine: AsyncEngine) -> None:
    repository = Counting(ReaderConfigRepository(db_engine))
    await repository.inner.bind_channel(GUILD, BOUND)
    now = [0.0]
    config = ReaderConfig(repository, clock=lambda: now[0], ttl=600.0)  # type: ignore[arg-type]
    await config.prime()
    assert config.might_read(GUILD, [BOUND])
    assert not config.might_read(GUILD, [OTHER, None])
    assert not config.might_read(GUILD + 1, [BOUND])

    first = await config.get(GUILD)
    assert first.options == DEFAULT_READER_OPTIONS and first.blocked == frozenset()
    reads = len(repository.reads)
    for _ in range(5):
        await config.get(GUILD)
    assert len(repository.reads) == reads  # cached

    await config.bind(GUILD, OTHER)
    assert config.might_read(GUILD, [OTHER])
    await config.unbind(GUILD, BOUND)
    await config.unbind(GUILD, OTHER)
    assert not config.might_read(GUILD, [BOUND, OTHER])

    await config.set_option(GUILD, "say_name", False)
    assert (await config.get(GUILD)).options.say_name is False
    await config.block(GUILD, ALICE)
    assert ALICE in (await config.get(GUILD)).blocked
    await config.unblock(GUILD, ALICE)
    assert ALICE not in (await config.get(GUILD)).blocked
    await config.reset_option(GUILD, "say_name")
    assert (await config.get(GUILD)).options.say_name is True

    reads = len(repository.reads)
    now[0] = 601.0  # the TTL is a safety net for changes made elsewhere
    await config.get(GUILD)
    assert len(repository.reads) > reads


async def test_reader_config_invalid_option_still_invalidates(db_engine: AsyncEngine) -> None:
    config = ReaderConfig(ReaderConfigRepository(db_engine))
    await config.get(GUILD)
    with pytest.raises(ValueError, match="at least"):
        await config.set_option(GUILD, "max_length", 3)
    assert (await config.get(GUILD)).options.max_length == 300


async def test_user_cache_reads_once_until_invalidated(db_engine: AsyncEngine) -> None:
    repository = Counting(UserSettingsRepository(db_engine))
    cache = UserCache(repository, size=2)  # type: ignore[arg-type]
    assert (await cache.get(ALICE)).autoread is True
    await cache.get(ALICE)
    assert repository.reads == ["get"]
    await repository.inner.set_autoread(ALICE, False)
    assert (await cache.get(ALICE)).autoread is True  # stale until told
    cache.invalidate(ALICE)
    assert (await cache.get(ALICE)).autoread is False
    for user in (3, 4, 5):  # LRU bound
        await cache.get(user)
    assert len(cache._users) == 2
