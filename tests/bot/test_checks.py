"""Every reason /speak and /join refuse, through the real tree, against the fake Discord."""

from __future__ import annotations

from typing import Any

import discord

from bot.testing.loopback import LoopbackConnectionState, LoopbackVoiceClient
from tests.fakes.discord import DiscordHarness, FakeDiscordREST, overwrite_payload
from tests.fakes.elevenlabs import FakeElevenLabs

from .conftest import BotFactory


def refusal(log) -> str:
    """The one reply a refused command sent: ephemeral, pinging nobody."""
    reply = log.last
    assert reply.ephemeral, reply
    assert reply.pings_nobody, reply
    return reply.content or ""


def bot_role(tts: DiscordHarness) -> int:
    return tts.guild.role_ids["bot"]


async def test_speak_refused_when_the_caller_is_not_in_voice(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    log = await tts.invoke("speak", user="bob", text="hello")
    assert "Join a voice channel first" in refusal(log)
    assert tts.guild.guild.voice_client is None
    assert not fake_elevenlabs.tts_requests


async def test_join_refused_when_the_caller_is_not_in_voice(tts: DiscordHarness) -> None:
    log = await tts.invoke("join", user="bob")
    assert "Join a voice channel first" in refusal(log)


async def test_only_the_bots_channel_may_queue_once_connected(tts_factory: BotFactory) -> None:
    tts = await tts_factory(voice={"alice": "lounge", "bob": "quiet"})
    first = await tts.invoke("speak", text="first")
    await tts.wait_for_replies(first, 2)
    log = await tts.invoke("speak", user="bob", text="second")
    text = refusal(log)
    assert "already speaking in" in text and f"<#{tts.guild.channel_ids['lounge']}>" in text
    assert tts.guild.guild.voice_client.channel.id == tts.guild.channel_ids["lounge"]


async def test_afk_channel_is_refused(tts_factory: BotFactory) -> None:
    tts = await tts_factory(voice={"alice": "afk"})
    log = await tts.invoke("speak", text="hello")
    assert "AFK channel" in refusal(log)
    assert tts.guild.guild.voice_client is None


async def test_join_with_the_afk_channel_as_option_is_refused(tts: DiscordHarness) -> None:
    log = await tts.invoke("join", options={"channel": tts.guild.afk})
    assert "AFK channel" in refusal(log)


async def test_full_channel_is_refused_without_move_members(tts_factory: BotFactory) -> None:
    tts = await tts_factory()
    full = await tts.add_channel("full", user_limit=1)
    await tts.voice_join("alice", full)
    log = await tts.invoke("speak", text="hello")
    text = refusal(log)
    assert "is full" in text and "Move Members" in text
    assert tts.guild.guild.voice_client is None


async def test_full_channel_is_joined_with_move_members(tts_factory: BotFactory) -> None:
    tts = await tts_factory()
    allow = discord.Permissions(move_members=True)
    full = await tts.add_channel(
        "full", user_limit=1, overwrites=[overwrite_payload(bot_role(tts), allow=allow)]
    )
    await tts.voice_join("alice", full)
    log = await tts.invoke("speak", text="hello")
    reply = (await tts.wait_for_replies(log, 2))[-1]
    assert "Speaking now" in reply.content
    assert tts.guild.guild.voice_client.channel.id == full.id


async def test_missing_connect_is_refused_naming_the_permission(tts_factory: BotFactory) -> None:
    tts = await tts_factory()
    deny = discord.Permissions(connect=True)
    closed = await tts.add_channel(
        "closed", overwrites=[overwrite_payload(bot_role(tts), deny=deny)]
    )
    await tts.voice_join("alice", closed)
    log = await tts.invoke("speak", text="hello")
    text = refusal(log)
    assert "Connect permission" in text and f"<#{closed.id}>" in text
    assert tts.guild.guild.voice_client is None


async def test_missing_speak_is_refused_naming_the_permission(tts_factory: BotFactory) -> None:
    tts = await tts_factory()
    deny = discord.Permissions(speak=True)
    mute = await tts.add_channel("mute", overwrites=[overwrite_payload(bot_role(tts), deny=deny)])
    await tts.voice_join("alice", mute)
    log = await tts.invoke("join")
    assert "Speak permission" in refusal(log)


async def test_missing_connect_is_named_alone_since_it_hides_speak(tts_factory: BotFactory) -> None:
    tts = await tts_factory()
    deny = discord.Permissions(speak=True, connect=True)
    both = await tts.add_channel("both", overwrites=[overwrite_payload(bot_role(tts), deny=deny)])
    await tts.voice_join("alice", both)
    log = await tts.invoke("join")
    assert "the Connect permission in" in refusal(log)


async def test_stage_channel_requests_to_speak(
    tts_factory: BotFactory, discord_rest: FakeDiscordREST
) -> None:
    tts = await tts_factory(voice={"alice": "stage"})
    log = await tts.invoke("speak", text="hello stage")
    reply = (await tts.wait_for_replies(log, 2))[-1]
    assert "Speaking now" in reply.content
    edits = discord_rest.voice_state_edits
    assert len(edits) == 1 and edits[0]["user"] == "@me"
    assert edits[0].get("request_to_speak_timestamp")
    assert "suppress" not in edits[0]


async def test_stage_channel_unsuppresses_with_mute_members(
    tts_factory: BotFactory, discord_rest: FakeDiscordREST
) -> None:
    tts = await tts_factory()
    allow = discord.Permissions(mute_members=True)
    stage = await tts.add_channel(
        "podium", kind="stage", overwrites=[overwrite_payload(bot_role(tts), allow=allow)]
    )
    await tts.voice_join("alice", stage)
    log = await tts.invoke("join")
    assert "Joined" in (await tts.wait_for_replies(log, 2))[-1].content
    edits = discord_rest.voice_state_edits
    assert len(edits) == 1 and edits[0]["suppress"] is False


async def test_stage_channel_refused_clearly_when_discord_says_no(
    tts_factory: BotFactory, discord_rest: FakeDiscordREST, fake_elevenlabs: FakeElevenLabs
) -> None:
    tts = await tts_factory(voice={"alice": "stage"})
    discord_rest.fail(
        "PATCH", r"/guilds/\d+/voice-states/@me", status=403, code=50013, message="Missing Access"
    )
    log = await tts.invoke("speak", text="hello stage")
    text = refusal(log)
    assert "could not become a speaker" in text and f"<#{tts.guild.channel_ids['stage']}>" in text
    assert tts.guild.guild.voice_client is None
    assert not fake_elevenlabs.tts_requests


async def test_text_over_the_cap_is_refused_with_the_cap(
    tts_factory: BotFactory, fake_elevenlabs: FakeElevenLabs
) -> None:
    tts = await tts_factory(voice={"alice": "lounge"}, max_text_chars=20)
    log = await tts.invoke("speak", text="x" * 21)
    text = refusal(log)
    assert "21 characters" in text and "at most 20" in text
    assert not fake_elevenlabs.tts_requests
    assert tts.guild.guild.voice_client is None


async def test_text_at_the_cap_is_spoken(
    tts_factory: BotFactory, fake_elevenlabs: FakeElevenLabs
) -> None:
    tts = await tts_factory(voice={"alice": "lounge"}, max_text_chars=20)
    log = await tts.invoke("speak", text="a" * 20)
    assert "Speaking now" in (await tts.wait_for_replies(log, 2))[-1].content


async def test_empty_text_after_cleaning_is_refused(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    log = await tts.invoke("speak", text="\u200b\u200b ** **")
    assert "nothing to say" in refusal(log)
    assert not fake_elevenlabs.tts_requests


async def test_a_channel_nobody_listens_in_does_not_hold_the_bot(
    tts_factory: BotFactory,
) -> None:
    tts = await tts_factory(voice={"alice": "lounge", "bob": "quiet"})
    await tts.invoke("join")
    await tts.voice_leave("alice")  # the bot waits out its grace period alone in Lounge
    log = await tts.invoke("speak", user="bob", text="over here")
    assert (await tts.wait_for_replies(log, 2))[1].content == "Speaking now."
    assert tts.guild.guild.voice_client.channel.id == tts.guild.channel_ids["quiet"]


class NeverConnects(LoopbackConnectionState):
    """The gateway request goes out, the voice server never answers."""

    async def connect(self, *, self_deaf: bool, self_mute: bool, **kwargs: Any) -> None:
        await self._voice_connect(self_deaf=self_deaf, self_mute=self_mute)
        raise TimeoutError


class FailingVoiceClient(LoopbackVoiceClient):
    def create_connection_state(self) -> NeverConnects:
        return NeverConnects(self)


async def test_a_voice_connection_that_fails_is_one_clear_refusal(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    tts.bot.voices.voice_client_cls = FailingVoiceClient
    log = await tts.invoke("speak", text="hello")
    assert refusal(log) == "Connecting to the voice channel failed; try again in a moment."
    assert tts.guild.guild.voice_client is None
    assert not tts.bot.voice_clients
    assert not fake_elevenlabs.tts_requests


async def test_a_full_queue_is_refused_with_its_size(
    tts_factory: BotFactory, fake_elevenlabs: FakeElevenLabs
) -> None:
    tts = await tts_factory(voice={"alice": "lounge"}, queue_limit=1)
    fake_elevenlabs.stall_next(0, 3)  # the first item has no audio yet: it stays queued
    first = await tts.invoke("speak", text="first")
    assert (await tts.wait_for_replies(first, 2))[1].content == "Speaking now."
    log = await tts.invoke("speak", text="second")
    assert "The queue is full (1 messages)" in refusal(log)
    tts.bot.voices.players[tts.guild.id].stop()
