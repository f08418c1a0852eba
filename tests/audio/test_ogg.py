"""Ogg Opus from upstream played as it is: the parser, the TOC durations, the pipeline path."""

from __future__ import annotations

import asyncio
import io
import subprocess
from collections.abc import AsyncIterator

import discord.opus
import pytest
from discord.oggparse import OggStream
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.audio.encoding import OpusFrameBuffer
from bot.audio.frames import FRAME_BYTES
from bot.audio.ogg import OggError, OggOpusParser, opus_packet_ms
from bot.audio.pipeline import DecodeJob, DecoderError
from bot.speech import SpeechRequest, Synthesizer
from bot.testing.pcm import align, chirp
from tests.audio.test_pipeline import client_for
from tests.fakes import speech
from tests.fakes.elevenlabs import FakeElevenLabs

VOICE = "21m00Tcm4TlvDq8ikWAM"
TEXT = "The quick brown fox jumps over the lazy dog."


@pytest.fixture(scope="module")
def ogg() -> bytes:
    """The fake's Ogg Opus for TEXT (espeak-ng speech encoded by ffmpeg's libopus)."""
    return asyncio.run(speech.render_speech(VOICE, TEXT, "opus_48000_64")).data


def decode(packets: list[bytes]) -> bytes:
    decoder = discord.opus.Decoder()
    return b"".join(decoder.decode(packet) for packet in packets)


def ogg_with_frames_of(ms: int, pcm: bytes) -> bytes:
    """Ogg Opus made by ffmpeg from 48 kHz stereo PCM, with `ms`-long Opus frames."""
    source = ["-f", "s16le", "-ar", "48000", "-ac", "2", "-i", "pipe:0"]
    encode = ["-c:a", "libopus", "-b:a", "64k", "-frame_duration", str(ms), "-f", "ogg"]
    return subprocess.run(
        ["ffmpeg", "-v", "error", *source, *encode, "pipe:1"],
        input=pcm,
        capture_output=True,
        check=True,
    ).stdout


def test_the_packets_are_discord_pys_without_the_two_headers(ogg: bytes) -> None:
    parser = OggOpusParser()
    packets = parser.feed(ogg)
    theirs = list(OggStream(io.BytesIO(ogg)).iter_packets())
    assert theirs[:2][0].startswith(b"OpusHead") and theirs[1].startswith(b"OpusTags")
    assert packets == theirs[2:]
    assert parser.headers_dropped == 2 and parser.pending == 0
    assert {opus_packet_ms(p) for p in packets} == {20.0}


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=5000), min_size=1, max_size=60))
def test_any_chunking_gives_the_same_packets(ogg: bytes, sizes: list[int]) -> None:
    parser = OggOpusParser()
    packets: list[bytes] = []
    offset = 0
    for size in sizes * (len(ogg) // sum(sizes) + 1):
        packets += parser.feed(ogg[offset : offset + size])
        offset += size
        if offset >= len(ogg):
            break
    assert packets == OggOpusParser().feed(ogg)


def test_a_packet_comes_out_as_soon_as_its_last_byte_is_in(ogg: bytes) -> None:
    """Not at the end of its page: ffmpeg's pages hold up to a second of audio."""
    parser = OggOpusParser()
    first_at = None
    for n in range(1, len(ogg) + 1):
        if parser.feed(ogg[n - 1 : n]):
            first_at = n
            break
    assert first_at is not None
    assert parser.pages == 2  # OpusHead's and OpusTags' pages; the audio page is not done
    first = OggOpusParser().feed(ogg)[0]
    assert ogg[first_at - len(first) : first_at] == first  # out with its very last byte
    assert parser.pending == 0


def test_bytes_that_are_not_ogg_are_refused() -> None:
    with pytest.raises(OggError):
        OggOpusParser().feed(b"ID3\x04" + bytes(100))


@pytest.mark.parametrize(
    ("toc", "extra", "ms"),
    [
        (0b00001_0_00, b"", 20.0),  # SILK narrowband, 20 ms, one frame
        (0b00011_0_00, b"", 60.0),  # SILK narrowband, 60 ms
        (0b01101_0_00, b"", 20.0),  # hybrid super-wideband, 20 ms
        (0b11111_0_00, b"", 20.0),  # CELT fullband, 20 ms
        (0b11100_0_00, b"", 2.5),  # CELT fullband, 2.5 ms
        (0b11111_0_01, b"", 40.0),  # two 20 ms frames
        (0b11110_0_11, bytes([3]), 30.0),  # code 3: three 10 ms frames
    ],
)
def test_a_packet_duration_comes_from_its_toc_byte(toc: int, extra: bytes, ms: float) -> None:
    assert opus_packet_ms(bytes([toc]) + extra + b"\x00") == ms


async def test_20_ms_packets_pass_through_untouched(ogg: bytes) -> None:
    buffer = OpusFrameBuffer()
    packets = OggOpusParser().feed(ogg)
    await buffer.write_opus(packets[:30])
    assert [buffer.read_frame() for _ in range(30)] == packets[:30]
    assert buffer.packets_passed == 30 and buffer.packets_transcoded == 0


async def test_other_frame_sizes_are_decoded_and_encoded_again_in_20_ms() -> None:
    pcm = chirp(300, 2500, 1.2)
    packets = OggOpusParser().feed(ogg_with_frames_of(60, pcm))
    assert {opus_packet_ms(p) for p in packets} == {60.0}
    buffer = OpusFrameBuffer()
    await buffer.write_opus(packets)
    buffer.finish()
    out = []
    while packet := buffer.read_frame():
        out.append(packet)
    assert buffer.packets_transcoded == len(packets) and buffer.packets_passed == 0
    assert {opus_packet_ms(p) for p in out} == {20.0}
    assert len(out) == len(packets) * 3
    assert align(pcm, decode(out)).correlation > 0.9


async def test_the_pipeline_plays_opus_from_elevenlabs_without_ffmpeg(
    fake_elevenlabs: FakeElevenLabs, ogg: bytes
) -> None:
    async with client_for(fake_elevenlabs) as client:
        synth = Synthesizer(client, ffmpeg_path="/nonexistent/ffmpeg")
        frames = OpusFrameBuffer()
        job = synth.job(SpeechRequest(TEXT, VOICE, output_format="opus_48000_64"), frames=frames)
        runner = asyncio.create_task(job.run())
        packets = [packet async for packet in frames.frames()]
        await runner
    assert packets == OggOpusParser().feed(ogg)
    assert frames.packets_passed == len(packets) and job.timings.first_frame_at is not None
    reference = await speech.reference_pcm(VOICE, TEXT, channels=2)
    assert align(reference, decode(packets)).correlation > 0.9
    assert len(decode(packets)) >= len(reference) - FRAME_BYTES


async def test_a_pcm_buffer_still_gets_opus_decoded_by_ffmpeg(
    fake_elevenlabs: FakeElevenLabs,
) -> None:
    async with client_for(fake_elevenlabs) as client:
        job = Synthesizer(client).job(SpeechRequest(TEXT, VOICE, output_format="opus_48000_64"))
        runner = asyncio.create_task(job.run())
        frames = [frame async for frame in job.frames.frames()]
        await runner
    assert frames and all(len(f) == FRAME_BYTES for f in frames)


class BodyStream:
    """An upstream that sends `body` (the `AudioStream` protocol of the pipeline)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.sent_at: float | None = None
        self.first_byte_at: float | None = None
        self.closed = False

    async def open(self) -> None:
        self.sent_at = self.first_byte_at = 0.0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        yield self.body

    async def aclose(self) -> None:
        self.closed = True


async def test_a_body_that_is_not_ogg_is_a_decoder_error() -> None:
    stream = BodyStream(b"ID3\x04" + bytes(4000))
    frames = OpusFrameBuffer()
    job = DecodeJob(lambda fmt: stream, "opus_48000_64", frames=frames)
    with pytest.raises(DecoderError):
        await job.run()
    assert stream.closed and frames.aborted
