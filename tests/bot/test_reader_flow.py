"""Reading channels aloud end to end: real `discord.Message`s built from gateway payloads in,
the fake ElevenLabs and the loopback voice client out.

Time (the "X said" spacing, the rate limit, max wait) comes from a fake clock set on the
reader. The fake's snowflakes carry the time its module was imported, so message ages are
meaningless here: the reader's wall clock is pinned to 0 (age 0); the age rule is unit-tested.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import discord
import pytest

from bot.player import Outcome, SpeechItem
from bot.reader import REACT_FAILED, REACT_LATE, REACT_VOICE, MessageReader
from tests.fakes.discord import (
    DiscordHarness,
    message_payload,
    next_snowflake,
    overwrite_payload,
    user_payload,
)
from tests.fakes.elevenlabs import FakeElevenLabs

from .conftest import BotFactory

SECRET = "the pelican flies at midnight"


class Clock:
    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@dataclass
class Env:
    tts: DiscordHarness
    fake: FakeElevenLabs
    reader: MessageReader
    clock: Clock

    @property
    def spoken(self) -> list[str]:
        return [request.json["text"] for request in self.fake.tts_requests]

    @property
    def reactions(self) -> list[tuple[int, str]]:
        return [(r["message_id"], r["emoji"]) for r in self.tts.rest.reactions]

    def channel(self, key: str) -> Any:
        return self.tts.guild.channel(key)

    async def say(self, content: str, **kwargs: Any) -> tuple[discord.Message, SpeechItem | None]:
        """A message from alice in #general (by default); its queued item, if it was read."""
        message = await self.tts.message_create(content, **kwargs)
        tracked = self.reader.tracked.get(message.id)
        return message, tracked.item if tracked is not None else None

    async def setup(self, command: str, **options: Any) -> str:
        log = await self.tts.invoke(f"setup {command}", user="owner", options=options)
        reply = log.last
        assert reply.ephemeral and reply.pings_nobody
        return reply.content or ""

    async def option(self, name: str, value: str) -> str:
        return await self.setup("option", name=name, value=value)

    async def hold_queue(self) -> SpeechItem:
        """A first message whose synthesis stalls: everything after it waits in the queue."""
        self.fake.stall_next(0, 30)
        _, first = await self.say("first")
        assert first is not None
        await until(lambda: len(self.fake.tts_requests) == 1, "the stalled request")
        return first

    @property
    def player(self) -> Any:
        return self.reader.voices.players[self.tts.guild.id]


async def until(predicate: Any, what: str = "condition") -> None:
    for _ in range(1500):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"timed out waiting for {what}")


async def finished(item: SpeechItem) -> Outcome:
    return (await asyncio.wait_for(item.wait(), 15)).outcome


async def make_env(
    tts_factory: BotFactory,
    fake: FakeElevenLabs,
    voice: dict[str, str] | None = None,
    **settings: Any,
) -> Env:
    tts = await tts_factory(voice=voice if voice is not None else {"alice": "lounge"}, **settings)
    reader = tts.bot.get_cog("Reader").reader
    clock = Clock()
    reader.clock = clock
    reader.wall_clock = lambda: 0.0
    env = Env(tts, fake, reader, clock)
    assert "now read" in await env.setup("channel", channel=tts.guild.general)
    return env


@pytest.fixture
async def env(tts_factory: BotFactory, fake_elevenlabs: FakeElevenLabs) -> Env:
    return await make_env(tts_factory, fake_elevenlabs)


# -- where and whom ---------------------------------------------------------------------------


async def test_bound_channel_is_read_with_autojoin_and_x_said(env: Env) -> None:
    message, item = await env.say("Hello @everyone, **look** at https://example.com/x")
    assert item is not None and item.message_id == message.id
    voice = env.tts.guild.guild.voice_client
    assert voice is not None and voice.channel.id == env.tts.guild.channel_ids["lounge"]
    assert await finished(item) is Outcome.PLAYED
    assert env.spoken == ["Alice said, Hello everyone, look at a link to example.com"]
    assert voice.audio_packets()
    assert not env.reactions


async def test_voice_chat_of_the_bots_channel_is_read_and_can_be_turned_off(env: Env) -> None:
    await env.tts.invoke("join", user="alice")
    _, item = await env.say("from the voice chat", channel=env.channel("lounge"))
    assert item is not None
    await finished(item)
    assert "from the voice chat" in env.spoken[-1]

    await env.option("read_voice_chat", "off")
    _, item = await env.say("not this one", channel=env.channel("lounge"))
    assert item is None
    _, item = await env.say("nor the other voice chat", channel=env.channel("quiet"))
    assert item is None


async def test_threads_of_a_bound_channel_follow_the_option(env: Env) -> None:
    _, item = await env.say("in the thread", channel=env.channel("thread"))
    assert item is not None
    await finished(item)
    assert await env.option("read_threads", "off") == "`read_threads` is now off."
    _, item = await env.say("thread again", channel=env.channel("thread"))
    assert item is None
    assert all("thread again" not in text for text in env.spoken)


async def test_unbound_channel_and_author_not_in_voice_are_not_read(env: Env) -> None:
    await env.tts.add_channel("elsewhere", kind="text")
    _, item = await env.say("unbound", channel=env.channel("elsewhere"))
    assert item is None
    _, item = await env.say("bob is not in voice", author="bob")
    assert item is None
    assert env.tts.guild.guild.voice_client is None  # no autojoin for either
    assert not env.fake.tts_requests and not env.reactions


async def test_not_in_the_bots_channel_unless_require_voice_is_off(env: Env) -> None:
    _, item = await env.say("first")  # autojoin into lounge
    await env.tts.voice_join("bob", env.channel("quiet"))
    _, item = await env.say("bob elsewhere", author="bob")
    assert item is None
    await env.option("require_voice", "off")
    _, item = await env.say("bob elsewhere again", author="bob")
    assert item is not None


async def test_bots_and_webhooks_need_read_bots(env: Env) -> None:
    robot = await env.tts.add_member("robot", bot=True)
    await env.tts.voice_join(robot, env.channel("lounge"))
    _, item = await env.say("beep", author=robot)
    assert item is None
    await env.option("read_bots", "on")
    _, item = await env.say("beep again", author=robot)
    assert item is not None


async def test_blocked_members_are_not_read(env: Env) -> None:
    alice = env.tts.guild.alice
    assert "no longer read" in await env.setup("block", user=alice)
    _, item = await env.say("blocked")
    assert item is None
    assert "again" in await env.setup("unblock", user=alice)
    _, item = await env.say("unblocked")
    assert item is not None


async def test_members_who_opted_out_are_not_read(env: Env) -> None:
    alice = env.tts.guild.member_id("alice")
    await env.reader.set_autoread(alice, False)
    _, item = await env.say("opted out")
    assert item is None
    await env.reader.set_autoread(alice, True)
    _, item = await env.say("opted in")
    assert item is not None


async def test_skip_prefix(env: Env) -> None:
    _, item = await env.say("!not read")
    assert item is None
    assert "none" in await env.option("skip_prefix", "none")
    _, item = await env.say("!read now")
    assert item is not None


async def test_required_role(env: Env) -> None:
    admin = env.tts.guild.role("admin")
    assert admin.mention in await env.option("required_role_id", admin.mention)
    _, item = await env.say("no role")
    assert item is None
    await env.tts.voice_join("owner", env.channel("lounge"))
    _, item = await env.say("has the role", author="owner")
    assert item is not None


# -- "X said" ---------------------------------------------------------------------------------


async def test_x_said_spacing_and_nickname(
    tts_factory: BotFactory, fake_elevenlabs: FakeElevenLabs
) -> None:
    env = await make_env(tts_factory, fake_elevenlabs, voice={"alice": "lounge", "bob": "lounge"})
    for author, text, advance in [
        ("alice", "one", 0),
        ("alice", "two", 30),
        ("alice", "three", 61),
        ("bob", "four", 1),
        ("alice", "five", 1),
        ("bob", "six", 1),
    ]:
        if text == "six":
            await env.reader.set_nickname(env.tts.guild.member_id("bob"), "Bobby Tables")
        env.clock.advance(advance)
        _, item = await env.say(text, author=author)
        assert item is not None
        assert await finished(item) is Outcome.PLAYED  # said before the clock moves on
    assert env.spoken == [
        "Alice said, one",
        "two",
        "Alice said, three",
        "Bob said, four",
        "Alice said, five",
        "Bobby Tables said, six",
    ]

    await env.option("say_name", "off")
    env.clock.advance(120)
    _, item = await env.say("seven")
    await finished(item)
    assert env.spoken[-1] == "seven"


# -- edits and deletions ----------------------------------------------------------------------


async def test_edited_before_it_is_spoken_is_spoken_as_edited(env: Env) -> None:
    await env.hold_queue()
    message, second = await env.say("original words")
    await env.tts.message_edit(message, "edited words")
    assert second is not None and second.text == "edited words"
    assert env.reader.tracked[message.id].item is second
    await env.tts.message_delete(await env.tts.message_create("x"))  # untracked: no effect
    env.player.skip()  # the stalled first item gives way
    assert await finished(second) is Outcome.PLAYED
    assert env.spoken[-1] == "edited words"
    assert "original words" not in env.spoken[-1]


async def test_edit_to_the_skip_prefix_or_after_speaking(env: Env) -> None:
    await env.hold_queue()
    message, item = await env.say("will be skipped")
    await env.tts.message_edit(message, "!never mind")
    assert item is not None and await finished(item) is Outcome.CANCELLED
    env.player.skip()
    spoken, item = await env.say("said as sent")
    assert await finished(item) is Outcome.PLAYED
    requests = len(env.fake.tts_requests)
    await env.tts.message_edit(spoken, "too late to change")
    assert len(env.fake.tts_requests) == requests
    assert all("never mind" not in text and "too late" not in text for text in env.spoken)


async def test_a_burst_is_queued_in_order_with_one_name(env: Env) -> None:
    await env.hold_queue()
    env.clock.advance(120)
    messages = await asyncio.gather(*(env.tts.message_create(f"burst {n}") for n in range(4)))
    items = [env.reader.tracked[message.id].item for message in messages]
    assert env.player.pending()[1:] == items
    assert [item.text for item in items] == [
        "Alice said, burst 0",
        "burst 1",
        "burst 2",
        "burst 3",
    ]


async def test_bulk_delete_removes_every_queued_message(env: Env) -> None:
    await env.hold_queue()
    doomed = [(await env.say(f"doomed {n}"))[0] for n in range(2)]
    _, kept = await env.say("kept")
    payload = {
        "ids": [str(message.id) for message in doomed],
        "channel_id": str(env.tts.guild.channel_ids["general"]),
        "guild_id": str(env.tts.guild.id),
    }
    await env.tts.dispatch("MESSAGE_DELETE_BULK", payload)
    assert env.player.pending()[1:] == [kept]


async def test_deleted_while_queued_never_plays(env: Env) -> None:
    await env.hold_queue()
    message, second = await env.say("second")
    _, third = await env.say("third")
    await env.tts.message_delete(message)
    assert await finished(second) is Outcome.CANCELLED
    assert message.id not in env.reader.tracked
    assert second not in env.player.pending()
    assert third in env.player.pending()
    assert not env.reactions


async def test_deleted_while_speaking_stops(env: Env) -> None:
    message, item = await env.say(" ".join(["a long sentence that takes a while to say"] * 6))
    voice = env.tts.guild.guild.voice_client
    await voice.wait_until(lambda: env.player.current is item, what="speaking")
    await env.tts.message_delete(message)
    result = await asyncio.wait_for(item.wait(), 15)
    assert result.outcome is Outcome.CANCELLED
    assert not env.reactions


# -- refusals: one reaction, never a channel message -----------------------------------------


async def test_queue_full_gets_a_reaction(
    tts_factory: BotFactory, fake_elevenlabs: FakeElevenLabs
) -> None:
    env = await make_env(tts_factory, fake_elevenlabs, queue_limit=1)
    await env.option("say_name", "off")
    await env.hold_queue()  # pending: the queue holds one
    message, item = await env.say("second")
    assert item is None
    assert env.reactions == [(message.id, REACT_FAILED)]
    assert not env.tts.rest.calls_to("POST", r"/channels/\d+/messages")


async def test_voice_unusable_gets_a_reaction(env: Env) -> None:
    deny = discord.Permissions(connect=True)
    closed = await env.tts.add_channel(
        "closed", overwrites=[overwrite_payload(env.tts.guild.role_ids["bot"], deny=deny)]
    )
    await env.tts.voice_move("alice", closed)
    message, item = await env.say("hello")
    assert item is None
    assert env.reactions == [(message.id, REACT_VOICE)]
    assert not env.tts.rest.calls_to("POST", r"/channels/\d+/messages")


async def test_elevenlabs_failure_gets_a_reaction(env: Env) -> None:
    env.fake.fail_next(500, times=5)
    message, item = await env.say("this will fail")
    assert await finished(item) is Outcome.FAILED
    await until(lambda: env.reactions, "the reaction")
    assert env.reactions == [(message.id, REACT_FAILED)]


async def test_messages_lost_to_a_disconnect_get_a_reaction(env: Env) -> None:
    await env.hold_queue()
    message, item = await env.say("never said")
    await env.tts.invoke("leave", user="alice")
    assert item is not None and await finished(item) is Outcome.CANCELLED
    await until(lambda: (message.id, REACT_VOICE) in env.reactions, "the reaction")


async def test_rate_limit_reacts_once(env: Env) -> None:
    await env.option("user_rate_limit", "2")
    results = [await env.say(f"message {n}") for n in range(4)]
    assert [item is not None for _, item in results] == [True, True, False, False]
    assert env.reactions == [(results[2][0].id, REACT_LATE)]
    env.clock.advance(61)
    _, item = await env.say("after a minute")
    assert item is not None


async def test_messages_that_waited_too_long_are_dropped(env: Env) -> None:
    await env.hold_queue()
    message, second = await env.say("second")
    env.clock.advance(30)
    assert env.reader.drop_expired() == []
    env.clock.advance(31)
    assert message.id in env.reader.drop_expired()
    assert await finished(second) is Outcome.CANCELLED
    await until(lambda: (message.id, REACT_LATE) in env.reactions, "the reaction")
    assert (message.id, REACT_LATE) in env.reactions


# -- /setup -----------------------------------------------------------------------------------


async def test_setup_show_lists_channels_blocks_and_options(env: Env) -> None:
    await env.setup("block", user=env.tts.guild.bob)
    await env.option("max_length", "120")
    log = await env.tts.invoke("setup show", user="owner")
    embed = log.last.embeds[0]
    text = str(embed)
    assert f"<#{env.tts.guild.channel_ids['general']}>" in text
    assert f"<@{env.tts.guild.member_id('bob')}>" in text
    assert "`max_length`: 120 ·" in text and "`autojoin`: on (default)" in text
    assert log.last.pings_nobody


async def test_setup_remove_channel(env: Env) -> None:
    general = env.tts.guild.general
    assert "no longer read" in await env.setup("remove channel", channel=general)
    assert "was not read" in await env.setup("remove channel", channel=general)
    _, item = await env.say("not read any more")
    assert item is None


async def test_setup_option_refuses_bad_values_clearly(env: Env) -> None:
    assert "must be at least 20" in await env.option("max_length", "3")
    assert "must be on or off" in await env.option("autojoin", "maybe")
    assert "no option `colour`" in await env.option("colour", "blue")
    assert "emoji_mode` is now drop" in await env.option("emoji_mode", "DROP")
    assert "is now name" in await env.option("emoji_mode", "default")


async def test_setup_option_names_are_autocompleted(env: Env) -> None:
    log = await env.tts.autocomplete("setup option", "name", "thr", user="owner")
    assert [choice["value"] for choice in log.choices] == ["read_threads"]
    log = await env.tts.autocomplete("setup option", "name", "", user="owner")
    assert len(log.choices) == 13


@pytest.mark.parametrize(
    ("command", "options"),
    [
        ("setup channel", lambda g: {"channel": g.general}),
        ("setup remove channel", lambda g: {"channel": g.general}),
        ("setup show", lambda g: {}),
        ("setup option", lambda g: {"name": "autojoin", "value": "off"}),
        ("setup block", lambda g: {"user": g.bob}),
        ("setup unblock", lambda g: {"user": g.bob}),
    ],
)
async def test_setup_needs_manage_server(env: Env, command: str, options: Any) -> None:
    log = await env.tts.invoke(command, user="alice", options=options(env.tts.guild))
    assert "Manage Server permission" in (log.last.content or "")
    assert log.last.ephemeral
    cmd = env.tts.find_command(command)
    assert cmd.root_parent.default_permissions == discord.Permissions(manage_guild=True)


# -- load and privacy -------------------------------------------------------------------------


async def test_no_database_read_per_message(env: Env, monkeypatch: pytest.MonkeyPatch) -> None:
    _, item = await env.say("warm the caches")
    assert item is not None
    repository = env.reader.config.repository

    def no_reads(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("read the database for a message")

    for name in ("get_options", "blocked_users", "bound_channels", "all_bound_channels"):
        monkeypatch.setattr(repository, name, no_reads)
    monkeypatch.setattr(env.reader.users.repository, "get", no_reads)
    for n in range(3):
        _, item = await env.say(f"cached {n}")
        assert item is not None
    await env.tts.add_channel("unbound", kind="text")
    _, item = await env.say("unbound", channel=env.channel("unbound"), author="bob")
    assert item is None


async def test_message_text_is_never_stored_or_logged(
    env: Env, caplog: pytest.LogCaptureFixture, tmp_path: Path
) -> None:
    caplog.set_level(logging.DEBUG)
    message, item = await env.say(SECRET)
    await env.tts.message_edit(message, SECRET + " edited")
    _, skipped = await env.say("!" + SECRET)
    assert skipped is None
    assert await finished(item) is Outcome.PLAYED
    assert SECRET in env.spoken[0]  # it did go to ElevenLabs, to be spoken
    assert "pelican" not in caplog.text
    assert str(message.id) in caplog.text
    assert not stored_anywhere(tmp_path, "pelican")


def stored_anywhere(root: Path, needle: str) -> list[str]:
    """Where `needle` appears: in the database's rows, or in any file under `root` (WAL too)."""
    with sqlite3.connect(root / "bot.sqlite3") as connection:
        found = ["database"] if needle in "\n".join(connection.iterdump()) else []
    return found + [
        str(path)
        for path in root.rglob("*")
        if path.is_file() and needle.encode() in path.read_bytes()
    ]


async def test_webhooks_are_read_in_the_servers_voice_when_allowed(env: Env) -> None:
    _, first = await env.say("connect first")
    assert first is not None and await finished(first) is Outcome.PLAYED
    general = env.tts.guild.channel_ids["general"]
    payload = message_payload(
        channel_id=general,
        guild_id=env.tts.guild.id,
        author=user_payload(None, "Announcer", bot=True),
        content="from a webhook",
        webhook_id=4242,
    )
    await env.tts.dispatch("MESSAGE_CREATE", payload)
    assert int(payload["id"]) not in env.reader.tracked
    await env.option("read_bots", "on")
    payload = {**payload, "id": str(next_snowflake())}
    await env.tts.dispatch("MESSAGE_CREATE", payload)
    assert int(payload["id"]) not in env.reader.tracked  # a webhook is never in voice
    await env.option("require_voice", "off")
    payload = {**payload, "id": str(next_snowflake())}
    await env.tts.dispatch("MESSAGE_CREATE", payload)
    item = env.reader.tracked[int(payload["id"])].item
    assert item.requester_id == env.tts.guild.member_id("me")  # the server's voice
    assert await finished(item) is Outcome.PLAYED
    assert env.spoken[-1] == "Announcer said, from a webhook"


# -- /voice autoread and /voice nickname ------------------------------------------------------


async def test_voice_autoread_off_stops_reading_and_on_resumes(env: Env) -> None:
    reply = (await env.tts.invoke("voice autoread", enabled=False)).last
    assert reply.ephemeral and reply.pings_nobody and "no longer read" in reply.content
    assert (await env.tts.bot.storage.users.get(env.tts.member("alice").id)).autoread is False
    _, item = await env.say("nobody hears this")
    assert item is None and not env.spoken

    await env.tts.invoke("voice autoread", enabled=True)
    _, item = await env.say("now you hear me")
    assert item is not None and await finished(item) is Outcome.PLAYED
    assert env.spoken == ["Alice said, now you hear me"]


async def test_voice_nickname_is_said_before_messages_and_can_be_cleared(env: Env) -> None:
    reply = (await env.tts.invoke("voice nickname", name="Captain <@123> Al")).last
    assert reply.pings_nobody and "Captain" in reply.content
    _, item = await env.say("ahoy")
    assert item is not None and await finished(item) is Outcome.PLAYED
    assert env.spoken[-1].startswith("Captain")
    assert "<@" not in env.spoken[-1]

    await env.tts.invoke("voice nickname")
    env.clock.advance(120)  # past the "X said" spacing
    _, item = await env.say("back to normal")
    assert item is not None and await finished(item) is Outcome.PLAYED
    assert env.spoken[-1] == "Alice said, back to normal"
