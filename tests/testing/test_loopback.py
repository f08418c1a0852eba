"""The loopback voice client: real discord.py playback, encoding and encryption, recorded.

Assertions are on what was sent (packets, RTP fields, decrypted and decoded audio), never on
wall-clock pacing.
"""

from __future__ import annotations

import asyncio
import io
import struct
import threading

import discord
import nacl.exceptions
import pytest
from discord import opus

from bot.testing import pcm
from bot.testing.loopback import (
    OPUS_SILENCE_FRAME,
    LoopbackVoiceClient,
    SentPacket,
    decrypt_voice_packet,
)
from tests.fakes.voice import LoopbackVoiceFactory

TRAILING_SILENCE = 5  # AudioPlayer.send_silence() at the end of every play()


class AfterRecorder:
    """An ``after`` callback that, like real bot code, only hands over to the loop."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.calls: list[tuple[Exception | None, str]] = []
        self.done = asyncio.Event()

    def __call__(self, error: Exception | None) -> None:
        name = threading.current_thread().name
        self.loop.call_soon_threadsafe(self._record, error, name)

    def _record(self, error: Exception | None, thread_name: str) -> None:
        self.calls.append((error, thread_name))
        self.done.set()


class TrackedPCM(discord.PCMAudio):
    def __init__(self, data: bytes) -> None:
        super().__init__(io.BytesIO(data))
        self.cleaned_up = False

    def cleanup(self) -> None:
        self.cleaned_up = True


class OpusFrames(discord.AudioSource):
    """An already-encoded source: discord.py sends its frames without re-encoding."""

    def __init__(self, frames: list[bytes]) -> None:
        self._frames = iter(frames)

    def read(self) -> bytes:
        return next(self._frames, b"")

    def is_opus(self) -> bool:
        return True


def frames_in(pcm_bytes: bytes) -> int:
    return -(-len(pcm_bytes) // pcm.FRAME_BYTES)  # PCMAudio pads nothing: a short tail is a frame


def assert_decodes_to(voice: LoopbackVoiceClient, packets: list[SentPacket], source: bytes) -> None:
    decoded = voice.decode_pcm(packets)
    match = pcm.align(source, decoded, max_lag=2048)
    assert 0 < match.lag < 1024, match  # the encoder look-ahead, a few hundred samples
    assert match.correlation > 0.9, match


async def test_factory_builds_a_connected_client(loopback_voice: LoopbackVoiceClient) -> None:
    voice = loopback_voice
    assert voice.is_connected()
    assert isinstance(voice.channel, discord.VoiceChannel)
    assert voice.guild is voice.channel.guild
    assert voice.guild.voice_client is voice
    assert voice.client.voice_clients == [voice]
    assert voice.guild.me.voice is not None and voice.guild.me.voice.channel == voice.channel
    assert voice.mode == "aead_xchacha20_poly1305_rtpsize"
    assert voice.secret_key == list(voice.loopback_secret_key)
    # DAVE not negotiated (protocol version 0): _get_voice_packet skips E2EE, as with Discord.
    assert voice._connection.dave_protocol_version == 0
    assert voice._connection.dave_session is None and not voice._connection.can_encrypt
    assert voice.voice_privacy_code is None
    assert not voice.is_playing() and voice.source is None
    assert [(r.channel_id, r.self_mute) for r in voice.gateway_requests] == [
        (voice.channel.id, False)
    ]


async def test_packets_are_encoded_and_encrypted_by_discord_py(
    loopback_voice: LoopbackVoiceClient,
) -> None:
    voice = loopback_voice
    source = pcm.chirp(200, 3000, 0.4)
    voice.play(discord.PCMAudio(io.BytesIO(source)))
    await voice.wait_until_done()

    packets = voice.packets
    assert len(packets) == voice.packet_count == frames_in(source) + TRAILING_SILENCE
    for index, packet in enumerate(packets):
        assert packet.index == index
        assert (packet.version, packet.payload_type, packet.ssrc) == (2, 0x78, voice.ssrc)
        # RTP header, then ciphertext (payload + 16-byte Poly1305 tag), then the 4-byte nonce.
        assert len(packet.raw) == 12 + len(packet.opus) + 16 + 4
        assert packet.opus not in packet.raw
        assert packet.thread is voice.plays[0].player
    audio = voice.audio_packets()
    assert len(audio) == frames_in(source)
    for packet in audio:
        # A real Opus packet from the encoder: one 20 ms stereo frame.
        assert opus.Decoder.packet_get_nb_frames(packet.opus) == 1
        assert opus.Decoder.packet_get_samples_per_frame(packet.opus) == 960
        assert opus.Decoder.packet_get_nb_channels(packet.opus) == 2
    nonces = [struct.unpack(">I", p.raw[-4:])[0] for p in packets]
    assert nonces == list(range(len(packets)))

    first = packets[0]
    with pytest.raises(nacl.exceptions.CryptoError):
        decrypt_voice_packet(first.raw, mode=voice.mode, secret_key=bytes(32))
    tampered = first.raw[:2] + b"\x00\x00" + first.raw[4:]  # the header is authenticated
    with pytest.raises(nacl.exceptions.CryptoError):
        decrypt_voice_packet(tampered, mode=voice.mode, secret_key=voice.loopback_secret_key)


async def test_rtp_sequence_and_timestamp_are_continuous(
    loopback_voice: LoopbackVoiceClient,
) -> None:
    voice = loopback_voice
    voice.play(discord.PCMAudio(io.BytesIO(pcm.sine(440, 0.3))))
    await voice.wait_until_done()

    packets = voice.packets
    assert (packets[0].sequence, packets[0].timestamp) == (1, 0)  # discord.py's first packet
    assert [p.sequence for p in packets] == list(range(1, len(packets) + 1))
    assert [p.timestamp for p in packets] == [960 * i for i in range(len(packets))]
    assert voice.rtp_breaks() == []
    voice.assert_rtp_continuous()


async def test_decoded_audio_matches_the_source(loopback_voice: LoopbackVoiceClient) -> None:
    voice = loopback_voice
    source = pcm.chirp(150, 4000, 1.0)
    voice.play(discord.PCMAudio(io.BytesIO(source)))
    await voice.wait_until_done()

    assert_decodes_to(voice, voice.packets, source)
    frames = voice.decoded_frames()
    assert all(len(frame) == pcm.FRAME_BYTES for frame in frames)
    assert voice.silence_packet_count() == TRAILING_SILENCE
    assert [p.is_silence for p in voice.packets[-TRAILING_SILENCE:]] == [True] * TRAILING_SILENCE
    assert all(p.opus == OPUS_SILENCE_FRAME for p in voice.packets[-TRAILING_SILENCE:])
    # The first silence frame still carries the decoder's delayed tail of the audio.
    assert all(frame == bytes(pcm.FRAME_BYTES) for frame in frames[-TRAILING_SILENCE + 1 :])


async def test_after_fires_on_the_player_thread_and_the_player_ends(
    loopback_voice: LoopbackVoiceClient,
) -> None:
    voice = loopback_voice
    after = AfterRecorder(asyncio.get_running_loop())
    source = TrackedPCM(pcm.sine(330, 0.2))
    voice.play(source, after=after)
    assert voice.is_playing() and voice.source is source

    await asyncio.wait_for(after.done.wait(), timeout=5)
    await voice.wait_until_done()
    assert len(after.calls) == 1
    error, thread_name = after.calls[0]
    assert error is None
    assert thread_name == voice.plays[0].player.name and thread_name.startswith("audio-player")
    assert not voice.plays[0].player.is_alive()
    assert source.cleaned_up
    assert not voice.is_playing()
    assert voice.speaking_states == [discord.SpeakingState.voice, discord.SpeakingState.none]


async def test_every_play_keyword_reaches_the_encoder(loopback_voice: LoopbackVoiceClient) -> None:
    voice = loopback_voice
    source = pcm.chirp(200, 2500, 0.5)
    voice.play(
        discord.PCMAudio(io.BytesIO(source)),
        after=None,
        application="voip",
        bitrate=64,
        fec=False,
        expected_packet_loss=0.05,
        bandwidth="wide",
        signal_type="voice",
    )
    await voice.wait_until_done()

    call = voice.plays[0]
    assert (call.application, call.bitrate, call.fec, call.bandwidth, call.signal_type) == (
        "voip",
        64,
        False,
        "wide",
        "voice",
    )
    # Wideband: every audio packet's TOC byte is a 20 ms wideband config (9 SILK, 21 CELT).
    assert {p.opus[0] >> 3 for p in voice.audio_packets()} <= {9, 21}
    assert_decodes_to(voice, voice.packets, source)
    with pytest.raises(ValueError, match="bitrate"):
        voice.play(discord.PCMAudio(io.BytesIO(source)), bitrate=8)
    assert len(voice.plays) == 1  # a refused play() starts nothing


async def test_stop_midway(loopback_voice_factory: LoopbackVoiceFactory) -> None:
    voice = await loopback_voice_factory(speed=4.0)
    after = AfterRecorder(asyncio.get_running_loop())
    source = pcm.chirp(200, 3000, 2.0)
    voice.play(discord.PCMAudio(io.BytesIO(source)), after=after)
    await voice.wait_for_packets(10)
    voice.stop()
    assert not voice.is_playing() and voice.source is None
    await voice.wait_until_done()

    assert [error for error, _ in after.calls] == [None]
    audio = voice.audio_packets()
    assert 10 <= len(audio) < frames_in(source)
    assert voice.silence_packet_count() == TRAILING_SILENCE  # still connected: silence is sent
    voice.assert_rtp_continuous()
    sent = len(audio) * pcm.FRAME_BYTES
    assert_decodes_to(voice, voice.packets, source[:sent])


async def test_two_consecutive_plays(loopback_voice: LoopbackVoiceClient) -> None:
    voice = loopback_voice
    first, second = pcm.chirp(200, 2000, 0.4), pcm.chirp(3000, 500, 0.4)
    for source in (first, second):
        voice.play(discord.PCMAudio(io.BytesIO(source)))
        await voice.wait_until_done()

    assert len(voice.plays) == 2
    one, two = voice.packets_of(0), voice.packets_of(voice.plays[1])
    assert len(one) + len(two) == voice.packet_count
    for packets, source in ((one, first), (two, second)):
        assert len(packets) == frames_in(source) + TRAILING_SILENCE
        assert voice.silence_packet_count(packets) == TRAILING_SILENCE
        assert_decodes_to(voice, packets, source)
    # Sequence and timestamp live on the VoiceClient: the second play() carries straight on.
    voice.assert_rtp_continuous()
    assert voice.silence_packet_count() == 2 * TRAILING_SILENCE
    assert voice.speaking_states == [discord.SpeakingState.voice, discord.SpeakingState.none] * 2


async def test_play_while_playing_is_refused(loopback_voice: LoopbackVoiceClient) -> None:
    voice = loopback_voice
    voice.play(discord.PCMAudio(io.BytesIO(pcm.sine(440, 1.0))))
    with pytest.raises(discord.ClientException, match="Already playing"):
        voice.play(discord.PCMAudio(io.BytesIO(pcm.sine(440, 0.1))))
    voice.stop()
    await voice.wait_until_done()


async def test_pause_sends_silence_and_resume_goes_on(loopback_voice: LoopbackVoiceClient) -> None:
    voice = loopback_voice
    source = pcm.chirp(200, 2000, 0.6)
    voice.play(discord.PCMAudio(io.BytesIO(source)))
    await voice.wait_for_packets(5)
    voice.pause()
    assert voice.is_paused() and not voice.is_playing()
    await voice.wait_until(lambda: voice.silence_packet_count() >= TRAILING_SILENCE)
    paused_at = voice.packet_count
    await asyncio.sleep(0.1)
    assert voice.packet_count == paused_at  # nothing more while paused
    voice.resume()
    await voice.wait_until_done()

    assert voice.silence_packet_count() == 2 * TRAILING_SILENCE  # pause + end
    assert len(voice.audio_packets()) == frames_in(source)
    voice.assert_rtp_continuous()


async def test_opus_source_is_sent_byte_for_byte(loopback_voice: LoopbackVoiceClient) -> None:
    voice = loopback_voice
    encoder = opus.Encoder()
    source = pcm.sine(500, 0.2)
    frames = [
        encoder.encode(source[i : i + pcm.FRAME_BYTES], encoder.SAMPLES_PER_FRAME)
        for i in range(0, len(source), pcm.FRAME_BYTES)
    ]
    voice.play(OpusFrames(frames))
    await voice.wait_until_done()

    assert [p.opus for p in voice.audio_packets()] == frames


@pytest.mark.parametrize("mode", LoopbackVoiceClient.supported_modes)
async def test_every_supported_encryption_mode(
    loopback_voice_factory: LoopbackVoiceFactory, mode: str
) -> None:
    voice = await loopback_voice_factory(mode=mode, ssrc=1234, secret_key=bytes(range(32)))
    assert (voice.mode, voice.ssrc) == (mode, 1234)
    source = pcm.chirp(300, 2000, 0.2)
    voice.play(discord.PCMAudio(io.BytesIO(source)))
    await voice.wait_until_done()

    assert len(voice.audio_packets()) == frames_in(source)
    assert {p.ssrc for p in voice.packets} == {1234}
    assert_decodes_to(voice, voice.packets, source)


async def test_simulated_disconnect_mid_playback(loopback_voice: LoopbackVoiceClient) -> None:
    voice = loopback_voice
    client = voice.client
    seen: list[tuple[discord.Member, discord.VoiceState, discord.VoiceState]] = []

    @client.event
    async def on_voice_state_update(
        member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        seen.append((member, before, after))

    after = AfterRecorder(asyncio.get_running_loop())
    voice.play(discord.PCMAudio(io.BytesIO(pcm.sine(440, 2.0))), after=after)
    await voice.wait_for_packets(5)
    await voice.simulate_disconnect()

    assert not voice.is_connected() and not voice.is_playing()
    assert [error for error, _ in after.calls] == [None]
    assert voice.silence_packet_count() == 0  # discord.py sends no silence once disconnected
    assert voice.guild.voice_client is None and client.voice_clients == []
    assert voice.guild.me.voice is None
    assert voice.gateway_requests[-1].channel_id is None
    await asyncio.sleep(0)  # the dispatched event runs as a task
    assert len(seen) == 1
    member, before, after_state = seen[0]
    assert member == voice.guild.me and before.channel == voice.channel
    assert after_state.channel is None
    with pytest.raises(discord.ClientException, match="Not connected"):
        voice.play(discord.PCMAudio(io.BytesIO(pcm.sine(440, 0.1))))


async def test_disconnect_force_during_playback(loopback_voice: LoopbackVoiceClient) -> None:
    voice = loopback_voice
    after = AfterRecorder(asyncio.get_running_loop())
    voice.play(discord.PCMAudio(io.BytesIO(pcm.sine(440, 2.0))), after=after)
    await voice.wait_for_packets(3)
    await voice.disconnect(force=True)
    await voice.wait_until_done()

    assert not voice.is_connected()
    assert [error for error, _ in after.calls] == [None]
    assert voice.client.voice_clients == [] and voice.guild.me.voice is None
    assert voice.gateway_requests[-1].channel_id is None
    assert not voice._connection._socket_reader.is_alive()


async def test_move_to_another_channel(loopback_voice: LoopbackVoiceClient) -> None:
    voice = loopback_voice
    other = voice.add_voice_channel(900_000_000_000_000_010, name="other")
    voice.play(discord.PCMAudio(io.BytesIO(pcm.sine(440, 0.4))))
    await voice.move_to(other)
    assert voice.channel == other and voice.is_connected()
    assert voice.guild.me.voice is not None and voice.guild.me.voice.channel == other
    assert voice.gateway_requests[-1].channel_id == other.id
    await voice.wait_until_done()
    assert len(voice.audio_packets()) == frames_in(pcm.sine(440, 0.4))

    with pytest.raises(discord.ClientException, match="not a voice channel"):
        await voice.move_to(discord.Object(id=42))
    await voice.move_to(None)
    assert not voice.is_connected()


async def test_channel_connect_with_cls(loopback_voice: LoopbackVoiceClient) -> None:
    channel = loopback_voice.channel
    await loopback_voice.disconnect(force=True)
    voice = await channel.connect(cls=LoopbackVoiceClient)
    try:
        assert isinstance(voice, LoopbackVoiceClient) and voice.is_connected()
        assert channel.guild.voice_client is voice
        voice.play(discord.PCMAudio(io.BytesIO(pcm.sine(440, 0.1))))
        await voice.wait_until_done()
        assert voice.packet_count == frames_in(pcm.sine(440, 0.1)) + TRAILING_SILENCE
    finally:
        await voice.close()
    assert not any(t.is_alive() for t in voice.threads())


async def test_close_leaves_no_thread(loopback_voice_factory: LoopbackVoiceFactory) -> None:
    voice = await loopback_voice_factory()
    voice.play(discord.PCMAudio(io.BytesIO(pcm.sine(440, 2.0))))
    await voice.wait_for_packets(2)
    await voice.close()
    await voice.close()  # idempotent

    assert not any(t.is_alive() for t in voice.threads())
    assert voice.client.is_closed()
    ours = {t.name for t in voice.threads()}
    assert not [t for t in threading.enumerate() if t.name in ours]


async def test_create_on_an_existing_channel(loopback_voice_factory: LoopbackVoiceFactory) -> None:
    owner = await loopback_voice_factory()
    channel = owner.channel
    await owner.disconnect(force=True)
    old = await loopback_voice_factory(channel=channel)
    assert old.client is owner.client and not old.owns_client
    assert channel.guild.voice_client is old and old.is_connected()
    with pytest.raises(discord.ClientException, match="Already connected"):
        await LoopbackVoiceClient.create(channel=channel)
    await old.disconnect(force=True)
    new = await loopback_voice_factory(channel=channel)
    await old.close()  # a stale client must not unregister the current one
    assert channel.guild.voice_client is new and new.is_connected()
    await new.close()
    assert not new.client.is_closed()  # it belongs to `owner`
    assert channel.guild.voice_client is None
    await owner.close()
    assert owner.client.is_closed()
