"""The voice lifecycle: leaving empty or idle channels, following moves, freeing on kicks.

Time is never slept through: `VoiceService.sweep(now=...)` is called with a made-up clock.
"""

from __future__ import annotations

import asyncio
import time

from bot.audio.sender import shared_sender
from bot.player import DisconnectedError, Outcome
from bot.testing.loopback import LoopbackVoiceClient
from tests.fakes.discord import DiscordHarness
from tests.resources import child_pids, settle, thread_names

from .conftest import BotFactory

LONG_TEXT = (
    "This is a long message that takes a few seconds to say, so that it is still being "
    "spoken while the test does something else to the voice connection."
)


def voice_of(tts: DiscordHarness) -> LoopbackVoiceClient:
    voice = tts.guild.guild.voice_client
    assert isinstance(voice, LoopbackVoiceClient)
    return voice


async def joined(tts: DiscordHarness) -> LoopbackVoiceClient:
    log = await tts.invoke("join")
    assert log.last.content.startswith("Joined"), log.last
    return voice_of(tts)


async def test_leaves_when_nobody_is_left_after_the_grace_period(tts: DiscordHarness) -> None:
    voices = tts.bot.voices
    voice = await joined(tts)
    await tts.voice_leave("alice")
    start = time.monotonic()
    assert await voices.sweep(now=start + voices.empty_grace / 2) == []
    assert voice.is_connected()
    assert await voices.sweep(now=start + voices.empty_grace + 1) == [tts.guild.id]
    assert not voice.is_connected()
    assert tts.guild.guild.voice_client is None
    assert tts.guild.id not in voices.players


async def test_stays_when_someone_comes_back_within_the_grace_period(
    tts: DiscordHarness,
) -> None:
    voices = tts.bot.voices
    voice = await joined(tts)
    await tts.voice_leave("alice")
    await tts.voice_join("bob", tts.guild.lounge)
    assert await voices.sweep(now=time.monotonic() + voices.empty_grace + 1) == []
    assert voice.is_connected()


async def test_other_bots_do_not_count_as_listeners(tts: DiscordHarness) -> None:
    voices = tts.bot.voices
    await joined(tts)
    robot = await tts.add_member("robot", bot=True)
    await tts.voice_join(robot, tts.guild.lounge)
    await tts.voice_leave("alice")
    assert await voices.sweep(now=time.monotonic() + voices.empty_grace + 1) == [tts.guild.id]


async def test_leaves_after_the_idle_timeout(tts_factory: BotFactory) -> None:
    tts = await tts_factory(voice={"alice": "lounge"}, idle_disconnect_seconds=120)
    voices = tts.bot.voices
    assert voices.idle_timeout == 120
    voice = await joined(tts)
    start = time.monotonic()
    assert await voices.sweep(now=start + 119) == []
    assert voice.is_connected()
    assert await voices.sweep(now=start + 121) == [tts.guild.id]
    assert not voice.is_connected()


async def test_an_idle_timeout_of_zero_never_leaves(tts_factory: BotFactory) -> None:
    tts = await tts_factory(voice={"alice": "lounge"}, idle_disconnect_seconds=0)
    voice = await joined(tts)
    assert await tts.bot.voices.sweep(now=time.monotonic() + 10_000) == []
    assert voice.is_connected()


async def test_not_idle_while_speaking(tts: DiscordHarness) -> None:
    voices = tts.bot.voices
    log = await tts.invoke("speak", text=LONG_TEXT)
    await tts.wait_for_replies(log, 2)
    player = voices.players[tts.guild.id]
    voice = voice_of(tts)
    await voice.wait_until(lambda: player.current is not None)
    assert await voices.sweep(now=time.monotonic() + voices.idle_timeout + 1) == []
    assert voice.is_connected()
    player.stop()


async def test_moved_by_someone_follows_and_keeps_the_queue(tts_factory: BotFactory) -> None:
    tts = await tts_factory(voice={"alice": "lounge", "bob": "quiet"})
    log = await tts.invoke("speak", text=LONG_TEXT)
    await tts.wait_for_replies(log, 2)
    await tts.invoke("speak", text="And then this.")
    voices = tts.bot.voices
    player = voices.players[tts.guild.id]
    voice = voice_of(tts)
    await voice.wait_until(lambda: player.current is not None)
    queued = len(player)

    await tts.voice_move("me", tts.guild.quiet)  # a moderator drags the bot to Quiet
    await voice.wait_until(lambda: voice.channel.id == tts.guild.channel_ids["quiet"])
    assert voices.players[tts.guild.id] is player
    assert len(player) == queued and player.voice_client is voice
    assert voice.is_connected()
    # Bob is there: the bot's channel is now Quiet, so bob may queue and alice may not.
    bob = await tts.invoke("speak", user="bob", text="Hello from quiet.")
    assert "Queued" in (await tts.wait_for_replies(bob, 2))[1].content
    alice = await tts.invoke("speak", text="Still here?")
    assert "already speaking in" in alice.last.content
    player.stop()


def leftover_threads(before: set[str]) -> set[str]:
    """Threads started since `before`, except those that live as long as the bot: the event
    loop's executor workers, the Opus encoder pool's (started on demand, up to its size), the
    one voice sender that serves every guild, and the database's threads (aiosqlite
    connections, the SQLite writer and readers of `bot.storage.engine`)."""
    lasting = (
        "asyncio_",
        "ThreadPoolExecutor",
        "opus-encode",
        "voice-sender",
        "sqlite-writer",
        "sqlite-reader",
    )
    return {
        name
        for name in thread_names() - before
        if not name.startswith(lasting) and "_connection_worker_thread" not in name
    }


async def _assert_freed(tts: DiscordHarness, voice: LoopbackVoiceClient, items, before) -> None:
    voices = tts.bot.voices
    assert await settle(lambda: tts.guild.id not in voices.players)
    results = [await asyncio.wait_for(item.wait(), 5) for item in items]
    assert all(r.outcome is Outcome.CANCELLED for r in results), results
    assert all(isinstance(r.error, DisconnectedError) for r in results), results
    assert not voice.is_connected()
    await voice.wait_until_done()
    assert await settle(lambda: child_pids() <= before["pids"]), child_pids()
    assert await settle(lambda: not any(t.is_alive() for t in voice.threads()))
    sender = shared_sender()  # lasts as long as the process: its playback for us must not
    assert await settle(lambda: all(p.voice is not voice for p in list(sender._playbacks)))
    assert await settle(lambda: leftover_threads(before["threads"]) == set()), leftover_threads(
        before["threads"]
    )


async def _speaking_with_a_queue(tts: DiscordHarness):
    voices = tts.bot.voices
    first = await tts.invoke("speak", text=LONG_TEXT)
    await tts.wait_for_replies(first, 2)
    await tts.invoke("speak", text="A second message.")
    await tts.invoke("speak", text="A third message.")
    player = voices.players[tts.guild.id]
    voice = voice_of(tts)
    await voice.wait_until(lambda: player.current is not None)
    items = [player.current, *player.pending()]
    assert len(items) == 3
    return voice, items


async def test_kicked_clears_the_queue_and_frees_everything(tts_factory: BotFactory) -> None:
    # MP3 through ffmpeg (not the in-process decoder): a kick must leave no ffmpeg behind.
    before = {"pids": child_pids(), "threads": thread_names()}
    tts = await tts_factory(
        voice={"alice": "lounge"}, elevenlabs_output_format="mp3_44100_128", mp3_decoder="ffmpeg"
    )
    voice, items = await _speaking_with_a_queue(tts)
    await voice.simulate_disconnect()
    await _assert_freed(tts, voice, items, before)


async def test_a_voice_state_update_without_channel_frees_everything(
    tts_factory: BotFactory,
) -> None:
    before = {"pids": child_pids(), "threads": thread_names()}
    tts = await tts_factory(voice={"alice": "lounge"}, elevenlabs_output_format="mp3_44100_128")
    voice, items = await _speaking_with_a_queue(tts)
    await tts.voice_leave("me")
    await _assert_freed(tts, voice, items, before)
    # After a kick the bot can be brought back, with a fresh player.
    log = await tts.invoke("speak", text="Back again.")
    assert (await tts.wait_for_replies(log, 2))[1].content == "Speaking now."
    tts.bot.voices.players[tts.guild.id].stop()


async def test_leave_while_speaking_frees_everything(tts_factory: BotFactory) -> None:
    before = {"pids": child_pids(), "threads": thread_names()}
    tts = await tts_factory(voice={"alice": "lounge"}, elevenlabs_output_format="mp3_44100_128")
    voice, items = await _speaking_with_a_queue(tts)
    reply = (await tts.invoke("leave")).last
    assert reply.content == "Left the voice channel."
    await _assert_freed(tts, voice, items, before)


async def test_close_stops_every_player_and_leaves(tts_factory: BotFactory) -> None:
    before = {"pids": child_pids(), "threads": thread_names()}
    tts = await tts_factory(voice={"alice": "lounge"}, elevenlabs_output_format="mp3_44100_128")
    voice, items = await _speaking_with_a_queue(tts)
    await tts.bot.close()
    await _assert_freed(tts, voice, items, before)
