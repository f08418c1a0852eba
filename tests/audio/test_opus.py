"""Opus encoding ahead of playback: real libopus, checked by decoding what it made."""

from __future__ import annotations

import asyncio
import ctypes

import discord.opus
import pytest

from bot.audio.encoding import OpusFrameBuffer
from bot.audio.frames import FRAME_BYTES, FrameBuffer
from bot.audio.opus import OPUS_SILENCE, EncoderSettings, OpusEncoder
from bot.testing.pcm import align, chirp, sine

OPUS_GET_COMPLEXITY = 4011
OPUS_GET_BITRATE = 4003


def decode(packets: list[bytes]) -> bytes:
    decoder = discord.opus.Decoder()  # stereo, as Discord's clients decode
    return b"".join(decoder.decode(packet) for packet in packets)


def ctl_get(encoder: OpusEncoder, request: int) -> int:
    value = ctypes.c_int32()
    encoder._lib.opus_encoder_ctl(encoder._state, request, ctypes.byref(value))
    return value.value


@pytest.mark.parametrize("channels", [1, 2])
def test_encoded_speech_band_decodes_back_to_the_input(channels: int) -> None:
    pcm = chirp(200, 3000, 1.0)  # stereo, both channels alike
    encoder = OpusEncoder(EncoderSettings(channels=channels))
    packets = encoder.encode_many(pcm)
    assert len(packets) == len(pcm) // FRAME_BYTES == encoder.frames_encoded
    assert all(0 < len(p) < FRAME_BYTES for p in packets)
    assert align(pcm, decode(packets)).correlation > 0.9


def test_mono_packets_say_mono_and_stereo_packets_say_stereo() -> None:
    left, right = sine(440, 0.5), chirp(300, 2000, 0.5)
    # A true stereo signal: the left channel of one, the right channel of the other.
    stereo = bytearray(left)
    stereo[2::4], stereo[3::4] = right[2::4], right[3::4]
    mono = OpusEncoder(EncoderSettings(channels=1)).encode_many(bytes(stereo))
    both = OpusEncoder(EncoderSettings(channels=2, bitrate=96)).encode_many(bytes(stereo))
    assert all(p[0] & 0x04 == 0 for p in mono)  # TOC byte, RFC 6716 section 3.1
    assert any(p[0] & 0x04 for p in both)


def test_the_settings_reach_libopus() -> None:
    encoder = OpusEncoder(EncoderSettings(complexity=2, bitrate=40))
    assert ctl_get(encoder, OPUS_GET_COMPLEXITY) == 2
    assert ctl_get(encoder, OPUS_GET_BITRATE) == 40_000
    assert ctl_get(OpusEncoder(), OPUS_GET_COMPLEXITY) == EncoderSettings().complexity == 5


@pytest.mark.parametrize(
    "changes",
    [
        {"complexity": 11},
        {"complexity": -1},
        {"channels": 3},
        {"application": "radio"},
        {"bandwidth": "ultra"},
        {"signal_type": "speech"},
        {"bitrate": 600},
    ],
)
def test_bad_settings_are_refused(changes: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        EncoderSettings(**changes)  # type: ignore[arg-type]


def test_a_frame_of_the_wrong_size_is_refused() -> None:
    with pytest.raises(ValueError, match="3840"):
        OpusEncoder().encode(bytes(100))


async def test_the_buffer_holds_packets_whatever_the_chunking() -> None:
    pcm = chirp(300, 2500, 0.53)  # not a whole number of frames
    buffer = OpusFrameBuffer()
    for start in range(0, len(pcm), 1000):
        await buffer.write(pcm[start : start + 1000])
    buffer.finish()
    packets = []
    while packet := buffer.read_frame():
        packets.append(packet)
    assert len(packets) == -(-len(pcm) // FRAME_BYTES)  # the last one padded
    assert align(pcm, decode(packets)).correlation > 0.9


async def test_an_underrun_is_opus_silence_and_the_end_is_empty() -> None:
    buffer = OpusFrameBuffer()
    assert buffer.read_frame() == OPUS_SILENCE
    assert buffer.underruns == 1
    await buffer.write(sine(440, 0.02))
    assert buffer.read_frame() not in (OPUS_SILENCE, b"")
    buffer.finish()
    assert buffer.read_frame() == b""


async def test_an_aborted_buffer_takes_no_more_packets() -> None:
    buffer = OpusFrameBuffer()
    await buffer.write(sine(440, 0.1))
    buffer.abort()
    await buffer.write(sine(440, 0.1))
    assert buffer.read_frame() == b""
    assert buffer.frames_written == 5


async def test_a_waiting_writer_is_woken_at_the_low_water_mark_not_at_each_frame() -> None:
    buffer = FrameBuffer(capacity=10)
    writer = asyncio.create_task(buffer.write(bytes(FRAME_BYTES * 14)))
    await asyncio.sleep(0.01)
    assert len(buffer) == 10 and not writer.done()
    for _ in range(4):
        buffer.read_frame()
    await asyncio.sleep(0.01)
    assert len(buffer) == 6, "above the low-water mark (5): the writer still waits"
    buffer.read_frame()
    await asyncio.wait_for(writer, 5)
    assert len(buffer) == 9 and buffer.frames_written == 14


async def test_a_silent_last_partial_frame_is_dropped_not_padded() -> None:
    buffer = OpusFrameBuffer()
    await buffer.write(sine(440, 0.04) + bytes(FRAME_BYTES // 2))  # 2 frames and half of silence
    buffer.finish()
    assert buffer.frames_written == 2 and buffer.exhausted is False
    audible = OpusFrameBuffer()
    await audible.write(sine(440, 0.05))  # 2.5 frames of sound: the half is padded
    audible.finish()
    assert audible.frames_written == 3
