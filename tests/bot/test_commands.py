"""/speak, /skip, /stop, /queue, /join, /leave, /privacy through the real tree."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from bot.player import Outcome
from bot.privacy import PRIVACY_NOTICE
from bot.testing.loopback import LoopbackVoiceClient
from bot.voices.errors import CatalogNotReady
from tests.fakes.discord import DiscordHarness, FakeDiscordREST
from tests.fakes.elevenlabs import FakeElevenLabs

from .conftest import BotFactory


def player_of(tts: DiscordHarness):
    return tts.bot.voices.players[tts.guild.id]


def voice_of(tts: DiscordHarness) -> LoopbackVoiceClient:
    voice = tts.guild.guild.voice_client
    assert isinstance(voice, LoopbackVoiceClient)
    return voice


async def speak(tts: DiscordHarness, text: str, **kwargs):
    """/speak and its queue-position answer (the first follow-up after the thinking defer)."""
    log = await tts.invoke("speak", text=text, **kwargs)
    assert log.callback.deferred and log.callback.ephemeral
    await tts.wait_for_replies(log, 2)
    reply = log.replies[1]
    assert reply.ephemeral and reply.pings_nobody
    return log, reply


# ---------------------------------------------------------------- /speak


async def test_mentions_are_read_as_names_and_nothing_pings(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    g = tts.guild
    text = (
        f"hey <@{g.member_id('alice')}> and <@!{g.member_id('alice')}>, "
        f"<@&{g.role_ids['admin']}> in <#{g.channel_ids['general']}> @everyone @here"
    )
    log, _ = await speak(tts, text)
    await voice_of(tts).wait_until(lambda: bool(fake_elevenlabs.tts_requests))
    spoken = fake_elevenlabs.tts_requests[-1].json["text"]
    assert "<@" not in spoken and "<#" not in spoken and str(g.member_id("alice")) not in spoken
    assert "Alice" in spoken and "Admin" in spoken and "general" in spoken
    assert "@everyone" not in spoken and "@here" not in spoken
    for r in log.replies:
        if r.content:  # the thinking defer carries no content
            assert r.allowed_mentions == {"parse": []}, r


async def test_a_mention_of_an_uncached_member_is_not_read_as_an_id(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    bob = tts.guild.member_id("bob")  # not in voice: not in the bot's member cache
    await speak(tts, f"ask <@{bob}>")
    await voice_of(tts).wait_until(lambda: bool(fake_elevenlabs.tts_requests))
    spoken = fake_elevenlabs.tts_requests[-1].json["text"]
    assert str(bob) not in spoken and "<@" not in spoken


async def test_speak_answers_with_the_queue_position(tts_factory: BotFactory) -> None:
    tts = await tts_factory(voice={"alice": "lounge", "bob": "lounge"})
    _, first = await speak(tts, "The first message, long enough to still be playing.")
    assert first.content == "Speaking now."
    _, second = await speak(tts, "The second one.", user="bob")
    assert second.content == "Queued: one message ahead of yours."
    _, third = await speak(tts, "The third one.")
    assert third.content == "Queued: 2 messages ahead of yours."
    player_of(tts).stop()


async def test_speak_with_a_voice_by_name_uses_it(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    adam = next(v for v in fake_elevenlabs.voices if v["name"] == "Adam")
    await speak(tts, "In another voice.", voice="adam")
    await voice_of(tts).wait_until(lambda: bool(fake_elevenlabs.tts_requests))
    assert adam["voice_id"] in fake_elevenlabs.tts_requests[-1].path


async def test_an_unknown_voice_is_refused_before_anything_is_sent(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    log = await tts.invoke("speak", text="hello", voice="no-such-voice")
    reply = log.last
    assert reply.ephemeral and reply.pings_nobody
    assert "no-such-voice" in reply.content
    assert not fake_elevenlabs.tts_requests


async def test_a_failing_item_gets_a_follow_up_saying_so(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    fake_elevenlabs.fail_next(404, "voice_not_found")
    log, reply = await speak(tts, "This will fail.")
    assert reply.content == "Speaking now."
    replies = await tts.wait_for_replies(log, 3)
    failure = replies[2]
    assert failure.kind == "followup" and failure.ephemeral and failure.pings_nobody
    assert failure.content.startswith("I could not say that:")
    assert "voice does not exist" in failure.content


async def test_a_played_item_gets_no_failure_follow_up(tts: DiscordHarness) -> None:
    log, _ = await speak(tts, "Fine.")
    voice = voice_of(tts)
    await voice.wait_until(lambda: voice.playbacks == 1)
    await voice.wait_until_done()
    await tts.settle(10)
    assert len(log.replies) == 2


async def test_voice_autocomplete_ranks_the_catalogue(tts: DiscordHarness) -> None:
    log = await tts.autocomplete("speak", "voice", "Ra", text="hi")
    choices = log.choices
    assert choices and len(choices) <= 25
    assert choices[0]["name"].startswith("Rachel")
    assert choices[0]["value"] == "21m00Tcm4TlvDq8ikWAM"


async def test_voice_autocomplete_with_nothing_typed_lists_at_most_25(
    tts: DiscordHarness,
) -> None:
    log = await tts.autocomplete("speak", "voice", "")
    assert log.choices is not None and 0 < len(log.choices) <= 25
    assert all(len(c["name"]) <= 100 and len(c["value"]) <= 100 for c in log.choices)


async def test_voice_autocomplete_before_the_catalogue_loads_offers_nothing(
    tts: DiscordHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    def not_ready(current: str, limit: int = 25) -> list[tuple[str, str]]:
        raise CatalogNotReady()

    monkeypatch.setattr(tts.bot.catalog, "autocomplete", not_ready)
    log = await tts.autocomplete("speak", "voice", "Ra")
    assert log.choices == []


# ---------------------------------------------------------------- /skip /stop /queue


async def test_skip_stop_and_queue(tts_factory: BotFactory) -> None:
    tts = await tts_factory(voice={"alice": "lounge", "bob": "lounge"})
    await speak(tts, "The first message, long enough to still be playing.")
    await speak(tts, "Bob's message.", user="bob")
    await speak(tts, "Alice again.")
    player = player_of(tts)
    voice = voice_of(tts)
    await voice.wait_until(lambda: player.current is not None)

    queue = (await tts.invoke("queue", user="bob")).last
    assert queue.ephemeral and queue.pings_nobody
    lines = queue.content.splitlines()
    alice, bob = tts.guild.member_id("alice"), tts.guild.member_id("bob")
    assert lines[0].startswith(f"Speaking: <@{alice}>") and "first message" in lines[0]
    # Each line: who asked, the voice in parentheses when known, the start of the text.
    assert re.fullmatch(rf"1\. <@{bob}>( \(\w+\))?: Bob's message\.", lines[1]), lines
    assert re.fullmatch(rf"2\. <@{alice}>( \(\w+\))?: Alice again\.", lines[2]), lines

    first = player.current
    skip = (await tts.invoke("skip")).last
    assert skip.content == "Skipped." and skip.ephemeral and skip.pings_nobody
    assert (await asyncio.wait_for(first.wait(), 5)).outcome is Outcome.SKIPPED

    stop = (await tts.invoke("stop")).last
    assert stop.content == "Stopped; 2 messages dropped." and stop.ephemeral
    await voice.wait_until(lambda: player.idle)
    empty = (await tts.invoke("queue")).last
    assert empty.content == "Nothing is being said, and nothing is waiting."


async def test_skip_stop_queue_when_not_connected(tts: DiscordHarness) -> None:
    for name in ("skip", "stop"):
        reply = (await tts.invoke(name)).last
        assert reply.ephemeral and reply.pings_nobody
        assert "not in a voice channel" in reply.content, name
    reply = (await tts.invoke("queue")).last
    assert reply.content == "Nothing is being said, and nothing is waiting."


async def test_skip_with_nothing_playing(tts: DiscordHarness) -> None:
    await tts.invoke("join")
    reply = (await tts.invoke("skip")).last
    assert reply.content == "Nothing is being said."
    reply = (await tts.invoke("stop")).last
    assert reply.content == "Nothing is being said, and nothing is waiting."


# ---------------------------------------------------------------- /join /leave /privacy


async def test_join_the_callers_channel(tts: DiscordHarness) -> None:
    log = await tts.invoke("join")
    assert log.callback.deferred and log.callback.ephemeral
    reply = log.last
    lounge = tts.guild.channel_ids["lounge"]
    assert reply.content == f"Joined <#{lounge}>." and reply.ephemeral and reply.pings_nobody
    assert voice_of(tts).channel.id == lounge
    assert voice_of(tts).gateway_requests[-1].self_deaf


async def test_join_a_named_channel_and_move(tts: DiscordHarness) -> None:
    quiet = tts.guild.quiet
    log = await tts.invoke("join", options={"channel": quiet})
    assert log.last.content == f"Joined <#{quiet.id}>."
    assert voice_of(tts).channel.id == quiet.id
    # Nobody listens in Quiet: alice may bring the bot to her own channel.
    log = await tts.invoke("join")
    assert voice_of(tts).channel.id == tts.guild.channel_ids["lounge"]
    assert log.last.content == f"Joined <#{tts.guild.channel_ids['lounge']}>."


async def test_join_where_the_bot_already_is(tts: DiscordHarness) -> None:
    await tts.invoke("join")
    log = await tts.invoke("join")
    assert log.last.content == f"I am already in <#{tts.guild.channel_ids['lounge']}>."


async def test_nobody_outside_the_channel_may_pull_the_bot_away(tts_factory: BotFactory) -> None:
    tts = await tts_factory(voice={"alice": "lounge", "bob": "quiet"})
    await tts.invoke("join")
    for command in ("join", "leave", "stop", "skip"):
        reply = (await tts.invoke(command, user="bob")).last
        assert reply.ephemeral and reply.pings_nobody
        assert f"<#{tts.guild.channel_ids['lounge']}>" in reply.content, command
    assert voice_of(tts).channel.id == tts.guild.channel_ids["lounge"]


async def test_a_moderator_may_pull_the_bot_away(tts_factory: BotFactory) -> None:
    tts = await tts_factory(voice={"alice": "lounge", "owner": "quiet"})
    await tts.invoke("join")
    log = await tts.invoke("join", user="owner")  # the admin role has Move Members
    assert log.last.content == f"Joined <#{tts.guild.channel_ids['quiet']}>."


async def test_leave(tts: DiscordHarness) -> None:
    await tts.invoke("join")
    voice = voice_of(tts)
    reply = (await tts.invoke("leave")).last
    assert reply.content == "Left the voice channel." and reply.ephemeral and reply.pings_nobody
    assert tts.guild.guild.voice_client is None
    assert not voice.is_connected()
    assert tts.guild.id not in tts.bot.voices.players
    reply = (await tts.invoke("leave")).last
    assert "not in a voice channel" in reply.content and reply.ephemeral


def test_the_readme_privacy_section_is_the_notice() -> None:
    readme = Path(__file__).resolve().parents[2] / "README.md"
    text = readme.read_text(encoding="utf-8") if readme.exists() else ""
    if "## Privacy" not in text:
        pytest.skip("the README has no Privacy section yet")
    section = text.split("## Privacy", 1)[1].split("\n## ", 1)[0]

    def words(markdown: str) -> str:  # the embed has bold labels; the README wraps lines
        return " ".join(markdown.replace("**", "").split())

    assert words(PRIVACY_NOTICE) == words(section)


async def test_the_commands_the_notice_names_exist(tts: DiscordHarness) -> None:
    named = re.findall(r"`/([a-z ]+)`", PRIVACY_NOTICE)
    assert named
    known = {c.qualified_name for c in tts.bot.tree.walk_commands()}
    assert set(named) <= known, set(named) - known


async def test_privacy(tts: DiscordHarness, discord_rest: FakeDiscordREST) -> None:
    reply = (await tts.invoke("privacy")).last
    assert reply.ephemeral and reply.pings_nobody
    assert reply.embeds and reply.embeds[0]["description"] == PRIVACY_NOTICE
    assert not discord_rest.unknown_calls
