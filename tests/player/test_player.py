"""The guild player through the bot's sender, Opus encoder and discord.py's encryption (loopback).

Assertions are on what was sent: packet counts, RTP continuity, decoded audio
compared with the fake's own speech. Timing belongs to the benchmarks.
"""

from __future__ import annotations

import asyncio
import audioop
from collections.abc import AsyncIterator

import aiohttp
import discord.opus
import pytest
from pydantic import SecretStr

from bot.audio.frames import FRAME_BYTES, FRAME_MS
from bot.audio.ogg import OggOpusParser
from bot.audio.opus import SILENT_PEAK
from bot.audio.sender import END_SILENCE
from bot.elevenlabs.client import ElevenLabsClient, RetryPolicy
from bot.elevenlabs.errors import VoiceNotFoundError
from bot.player import (
    DEFAULT_IDLE_END_MS,
    DisconnectedError,
    EncoderSettings,
    GuildPlayer,
    Outcome,
    QueueFullError,
    SpeechItem,
)
from bot.speech import SpeechRequest, Synthesizer
from bot.testing.loopback import LoopbackVoiceClient
from bot.testing.pcm import align
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.speech import reference_pcm, render_speech
from tests.resources import child_pids, settle

VOICE = "21m00Tcm4TlvDq8ikWAM"
TEXTS = ["Hello there.", "This is the second message.", "And a third one."]


@pytest.fixture
async def synth(fake_elevenlabs: FakeElevenLabs) -> AsyncIterator[Synthesizer]:
    async with aiohttp.ClientSession() as session:
        client = ElevenLabsClient(
            session,
            SecretStr(fake_elevenlabs.api_key),
            base_url=fake_elevenlabs.base_url,
            retry=RetryPolicy(max_retries=0),
        )
        yield Synthesizer(client)


@pytest.fixture
async def player(loopback_voice: LoopbackVoiceClient) -> AsyncIterator[GuildPlayer]:
    player = GuildPlayer(loopback_voice.guild.id, queue_limit=5)
    player.attach(loopback_voice)
    yield player
    await player.aclose()
    await loopback_voice.wait_until_done()
    assert await settle(lambda: not child_pids()), "ffmpeg left running"


def item(
    synth: Synthesizer, text: str, *, voice: str = VOICE, fmt: str = "pcm_48000"
) -> SpeechItem:
    request = SpeechRequest(text=text, voice_id=voice, output_format=fmt)
    return SpeechItem(
        make_job=lambda frames: synth.job(request, frames=frames), requester_id=42, text=text
    )


def padded(pcm: bytes) -> bytes:
    """An item's audio as the player sends it: whole frames, the last one padded with
    silence, or dropped when it is silent (`OpusFrameBuffer.finish`)."""
    whole = len(pcm) - len(pcm) % FRAME_BYTES
    tail = pcm[whole:]
    if tail and audioop.max(tail, 2) > SILENT_PEAK:
        return pcm + bytes(-len(pcm) % FRAME_BYTES)
    return pcm[:whole]


async def warm(texts: list[str], fmt: str = "pcm_48000") -> None:
    """Render the fake's speech ahead, so its own espeak/ffmpeg are not counted as ours."""
    for text in texts:
        await render_speech(VOICE, text, fmt)


async def test_queued_items_play_in_order_gaplessly_in_one_playback(
    synth: Synthesizer, player: GuildPlayer, loopback_voice: LoopbackVoiceClient
) -> None:
    items = [item(synth, text) for text in TEXTS]
    assert [player.enqueue(i) for i in items] == [0, 1, 2]
    results = [await asyncio.wait_for(i.wait(), 20) for i in items]
    assert [r.outcome for r in results] == [Outcome.PLAYED] * 3
    await loopback_voice.wait_until_done()

    assert player.playbacks == 1  # one play() for the whole burst
    loopback_voice.assert_rtp_continuous()
    references = [padded(await reference_pcm(VOICE, t, channels=2)) for t in TEXTS]
    expected_frames = sum(len(r) // FRAME_BYTES for r in references)
    assert [r.frames for r in results] == [len(r) // FRAME_BYTES for r in references]
    # Everything sent: the audio, then the idle tail (silence) and discord.py's 5 silence packets.
    decoded = loopback_voice.decode_pcm()
    match = align(b"".join(references), decoded)
    assert match.correlation > 0.95
    # No silence was added between items: the audio is contiguous from the first packet.
    assert match.lag < 400  # the Opus encoder's look-ahead, nothing more
    audio_packets = loopback_voice.packet_count - loopback_voice.silence_packet_count()
    assert audio_packets >= expected_frames


async def test_opus_from_elevenlabs_is_sent_as_it_came(
    synth: Synthesizer, player: GuildPlayer, loopback_voice: LoopbackVoiceClient
) -> None:
    await warm(TEXTS[:2], "opus_48000_64")
    items = [item(synth, t, fmt="opus_48000_64") for t in TEXTS[:2]]
    for i in items:
        player.enqueue(i)
    results = [await asyncio.wait_for(i.wait(), 20) for i in items]
    assert [r.outcome for r in results] == [Outcome.PLAYED] * 2
    await loopback_voice.wait_until_done()
    upstream = []
    for text in TEXTS[:2]:
        upstream += OggOpusParser().feed((await render_speech(VOICE, text, "opus_48000_64")).data)
    sent = [p.opus for p in loopback_voice.packets if not p.is_silence]
    assert sent == upstream, "every packet as ElevenLabs made it, none re-encoded"
    counts = [i.frames.packets_passed for i in items]
    assert counts == [r.frames for r in results]
    for text, packets in zip(TEXTS[:2], (sent[: counts[0]], sent[counts[0] :]), strict=True):
        decoder = discord.opus.Decoder()
        heard = b"".join(decoder.decode(packet) for packet in packets)
        reference = await reference_pcm(VOICE, text, channels=2)
        assert align(reference, heard).correlation > 0.9


async def test_mp3_items_decode_to_the_speech(
    synth: Synthesizer, player: GuildPlayer, loopback_voice: LoopbackVoiceClient
) -> None:
    await warm(TEXTS[:2], "mp3_44100_128")
    items = [item(synth, t, fmt="mp3_44100_128") for t in TEXTS[:2]]
    for i in items:
        player.enqueue(i)
    for i in items:
        assert (await asyncio.wait_for(i.wait(), 20)).outcome is Outcome.PLAYED
    await loopback_voice.wait_until_done()
    reference = b"".join([await reference_pcm(VOICE, t, channels=2) for t in TEXTS[:2]])
    assert align(reference[: 48000 * 4], loopback_voice.decode_pcm()).correlation > 0.8


async def test_a_failing_item_is_reported_and_the_queue_goes_on(
    synth: Synthesizer, player: GuildPlayer, loopback_voice: LoopbackVoiceClient
) -> None:
    items = [
        item(synth, TEXTS[0]),
        item(synth, "nobody", voice="no-such-voice"),
        item(synth, TEXTS[2]),
    ]
    for i in items:
        player.enqueue(i)
    results = [await asyncio.wait_for(i.wait(), 20) for i in items]
    assert [r.outcome for r in results] == [Outcome.PLAYED, Outcome.FAILED, Outcome.PLAYED]
    assert isinstance(results[1].error, VoiceNotFoundError)
    await loopback_voice.wait_until_done()
    loopback_voice.assert_rtp_continuous()


async def test_skip_ends_the_current_item_and_the_next_one_plays(
    fake_elevenlabs: FakeElevenLabs,
    synth: Synthesizer,
    player: GuildPlayer,
    loopback_voice: LoopbackVoiceClient,
) -> None:
    await warm(["A long sentence that takes a while to say out loud, word by word.", TEXTS[1]])
    fake_elevenlabs.pace = 1.0  # real time: the first item is still streaming when skipped
    first = item(synth, "A long sentence that takes a while to say out loud, word by word.")
    second = item(synth, TEXTS[1])
    player.enqueue(first)
    player.enqueue(second)
    await loopback_voice.wait_for_packets(10)
    assert player.skip() is first
    assert (await asyncio.wait_for(first.wait(), 10)).outcome is Outcome.SKIPPED
    assert (await asyncio.wait_for(second.wait(), 20)).outcome is Outcome.PLAYED
    assert first.task is not None and first.task.done()
    await loopback_voice.wait_until_done()
    loopback_voice.assert_rtp_continuous()
    assert player.playbacks == 1


async def test_stop_clears_the_queue_and_the_current_item(
    fake_elevenlabs: FakeElevenLabs,
    synth: Synthesizer,
    player: GuildPlayer,
    loopback_voice: LoopbackVoiceClient,
) -> None:
    await warm(TEXTS)
    fake_elevenlabs.pace = 1.0
    items = [item(synth, t) for t in TEXTS]
    for i in items:
        player.enqueue(i)
    await loopback_voice.wait_for_packets(5)
    assert player.stop() == 3
    results = [await asyncio.wait_for(i.wait(), 10) for i in items]
    assert [r.outcome for r in results] == [Outcome.CANCELLED] * 3
    await loopback_voice.wait_until_done()
    assert player.idle
    assert all(i.task is None or i.task.done() for i in items)


async def test_a_full_queue_refuses_with_a_typed_error(synth: Synthesizer) -> None:
    player = GuildPlayer(1, queue_limit=2)  # no voice client: nothing moves
    player.enqueue(item(synth, TEXTS[0]))
    player.enqueue(item(synth, TEXTS[1]))
    with pytest.raises(QueueFullError, match="2 messages"):
        player.enqueue(item(synth, TEXTS[2]))
    await player.aclose()


async def test_disconnect_mid_item_cancels_everything(
    fake_elevenlabs: FakeElevenLabs,
    synth: Synthesizer,
    player: GuildPlayer,
    loopback_voice: LoopbackVoiceClient,
) -> None:
    await warm(TEXTS[:2])
    fake_elevenlabs.pace = 1.0
    items = [item(synth, t) for t in TEXTS[:2]]
    for i in items:
        player.enqueue(i)
    await loopback_voice.wait_for_packets(5)
    await loopback_voice.simulate_disconnect()
    results = [await asyncio.wait_for(i.wait(), 10) for i in items]
    assert all(r.outcome is Outcome.CANCELLED for r in results)
    assert all(isinstance(r.error, DisconnectedError) for r in results)
    assert player.idle


async def test_playback_ends_when_idle_and_restarts_for_the_next_item(
    synth: Synthesizer, player: GuildPlayer, loopback_voice: LoopbackVoiceClient
) -> None:
    first = item(synth, TEXTS[0])
    player.enqueue(first)
    await asyncio.wait_for(first.wait(), 20)
    await loopback_voice.wait_until_done()
    assert await settle(lambda: not player.playing)
    packets_after_first = loopback_voice.packet_count
    # The idle period (Opus silence until the source ends), then the sender's end of
    # playback, as discord.py's player ends one: five silence frames.
    idle_frames = DEFAULT_IDLE_END_MS // FRAME_MS
    assert loopback_voice.silence_packet_count() == idle_frames + END_SILENCE

    second = item(synth, TEXTS[1])
    assert player.enqueue(second) == 0
    assert (await asyncio.wait_for(second.wait(), 20)).outcome is Outcome.PLAYED
    await loopback_voice.wait_until_done()
    assert player.playbacks == 2
    assert loopback_voice.packet_count > packets_after_first
    assert loopback_voice.playbacks == 2
    assert loopback_voice.plays == [], "the bot's sender plays, not discord.py's player"


async def test_removing_a_prefetched_item_cancels_its_request(
    fake_elevenlabs: FakeElevenLabs, synth: Synthesizer, player: GuildPlayer
) -> None:
    await warm(TEXTS)
    fake_elevenlabs.pace = 0.5  # slower than real time: the prefetch is still downloading
    items = [item(synth, t) for t in TEXTS]
    items[1].message_id = 1234
    for i in items:
        player.enqueue(i)
    assert await settle(lambda: items[1].task is not None)
    removed = player.remove(lambda i: i.message_id == 1234)
    assert removed == [items[1]]
    assert (await asyncio.wait_for(items[1].wait(), 10)).outcome is Outcome.CANCELLED
    assert items[1].task is not None and items[1].task.done()
    assert [r.outcome for r in [await asyncio.wait_for(items[i].wait(), 30) for i in (0, 2)]] == [
        Outcome.PLAYED
    ] * 2


async def test_an_edited_item_not_yet_played_is_spoken_as_edited(
    synth: Synthesizer, player: GuildPlayer, loopback_voice: LoopbackVoiceClient
) -> None:
    items = [item(synth, TEXTS[0]), item(synth, "typo heer")]
    items[1].message_id = 99
    for i in items:
        player.enqueue(i)
    edited = SpeechRequest(text=TEXTS[1], voice_id=VOICE, output_format="pcm_48000")
    assert player.replace(
        lambda i: i.message_id == 99, lambda frames: synth.job(edited, frames=frames)
    )
    for i in items:
        assert (await asyncio.wait_for(i.wait(), 20)).outcome is Outcome.PLAYED
    await loopback_voice.wait_until_done()
    reference = padded(await reference_pcm(VOICE, TEXTS[0], channels=2)) + await reference_pcm(
        VOICE, TEXTS[1], channels=2
    )
    assert align(reference, loopback_voice.decode_pcm()).correlation > 0.95


async def test_encoder_settings_shape_the_packets(
    synth: Synthesizer, loopback_voice: LoopbackVoiceClient
) -> None:
    settings = EncoderSettings(application="voip", bitrate=24, bandwidth="wide", channels=1)
    player = GuildPlayer(1, encoder=settings)
    player.attach(loopback_voice)
    spoken = item(synth, TEXTS[0])
    player.enqueue(spoken)
    assert (await asyncio.wait_for(spoken.wait(), 20)).outcome is Outcome.PLAYED
    await loopback_voice.wait_until_done()
    speech = [p.opus for p in loopback_voice.packets if not p.is_silence]
    assert speech
    # Every packet's TOC byte (RFC 6716, 3.1): mono, 20 ms frames, and at 24 kbit/s in
    # voip mode at wideband, SILK-only (configurations 0-11) at wideband (8-11).
    assert all(p[0] & 0x04 == 0 for p in speech), "mono packets"
    configs = {p[0] >> 3 for p in speech}
    assert configs <= {8, 9, 10, 11}, configs
    assert all((p[0] >> 3) % 4 == 1 for p in speech), "20 ms frames"
    await player.aclose()
