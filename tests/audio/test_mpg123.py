"""MP3 decoded in the process by libmpg123: the same audio as ffmpeg, from pieces of any size."""

from __future__ import annotations

import asyncio
import functools

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.audio import mpg123
from bot.audio.formats import InputFormat
from bot.audio.frames import FrameBuffer
from bot.audio.mpg123 import Mp3DecodeError, Mp3Decoder, Mp3DecoderUnavailableError, Mp3ToDiscord
from bot.audio.pipeline import DecoderError
from bot.speech import SpeechRequest, Synthesizer
from bot.testing.pcm import align
from tests.audio.test_formats import ffmpeg_decode
from tests.audio.test_pipeline import client_for, collect
from tests.fakes import speech
from tests.fakes.elevenlabs import FakeElevenLabs

VOICE = "21m00Tcm4TlvDq8ikWAM"
TEXT = "Pack my box with five dozen liquor jugs."
MP3_FORMATS = sorted(name for name in speech.OUTPUT_FORMATS if name.startswith("mp3"))


@functools.cache
def _sample() -> tuple[bytes, bytes]:
    """The fake's mp3 of TEXT, and its audio converted in one piece."""
    data = asyncio.run(speech.render_speech(VOICE, TEXT, "mp3_44100_128")).data
    return data, _convert_all(data, [])


def _convert_all(data: bytes, sizes: list[int]) -> bytes:
    converter = Mp3ToDiscord()
    out, at = [], 0
    for size in sizes:
        out.append(converter.convert(data[at : at + size]))
        at += size
    out.append(converter.convert(data[at:]))
    converter.close()
    return b"".join(out)


@pytest.mark.parametrize("name", MP3_FORMATS)
async def test_every_mp3_format_decodes_as_ffmpeg_decodes_it(name: str) -> None:
    audio = await speech.render_speech(VOICE, TEXT, name)
    reference = await speech.reference_pcm(VOICE, TEXT, channels=2)
    ours = _convert_all(audio.data, [997] * (len(audio.data) // 997))
    theirs = await ffmpeg_decode(name, audio.data)
    assert align(reference, ours, max_lag=8192).correlation > 0.9
    # The same length as ffmpeg's output (within one MP3 frame) and the same alignment.
    frame_bytes = 1152 * 48_000 // InputFormat.parse(name).sample_rate * 4
    assert abs(len(ours) - len(theirs)) <= frame_bytes, (len(ours), len(theirs))
    fit = align(theirs, ours, max_lag=2048)
    assert fit.lag == 0 and fit.correlation > 0.99, fit


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.integers(min_value=1, max_value=3000), max_size=40))
def test_the_split_of_the_stream_does_not_change_the_audio(sizes: list[int]) -> None:
    data, whole = _sample()
    assert _convert_all(data, sizes) == whole


def test_audio_comes_out_as_soon_as_its_frames_are_in() -> None:
    """No read-ahead: each frame is decoded once its bytes are there, not a chunk later."""
    data, _ = _sample()
    decoder = Mp3Decoder()
    produced_at = [len(decoder.decode(data[i : i + 100])) for i in range(0, 4000, 100)]
    decoder.close()
    first = next(i for i, n in enumerate(produced_at) if n)
    assert first * 100 <= 3 * 418 + 100  # the third 128 kbit/s frame at the latest
    assert decoder.rate == 44_100


def test_garbage_is_no_audio_and_no_error() -> None:
    converter = Mp3ToDiscord()
    assert converter.convert(b'{"detail": "not audio"}' * 100) == b""
    converter.close()


def test_a_closed_decoder_refuses_more() -> None:
    decoder = Mp3Decoder()
    decoder.close()
    decoder.close()  # idempotent
    with pytest.raises(Mp3DecodeError):
        decoder.decode(b"\xff\xfb")


def test_without_the_library_the_decoder_says_how_to_fix_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(mpg123, "_library", lambda: None)
    assert not mpg123.available()
    with pytest.raises(Mp3DecoderUnavailableError) as caught:
        Mp3Decoder()
    message = str(caught.value)
    assert "libmpg123-0" in message and "MP3_DECODER=ffmpeg" in message and "\n" not in message


async def test_the_pipeline_runs_no_process_for_mp3(fake_elevenlabs: FakeElevenLabs) -> None:
    async with client_for(fake_elevenlabs) as client:
        job = Synthesizer(client, ffmpeg_path="/nonexistent/ffmpeg").job(SpeechRequest(TEXT, VOICE))
        assert await collect(job)
        assert job._proc is None


async def test_auto_falls_back_to_ffmpeg_without_the_library(
    fake_elevenlabs: FakeElevenLabs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mpg123, "_library", lambda: None)
    async with client_for(fake_elevenlabs) as client:
        job = Synthesizer(client).job(SpeechRequest(TEXT, VOICE), frames=FrameBuffer(capacity=4))
        task = asyncio.create_task(job.run())
        for _ in range(500):
            if job._proc is not None:
                break
            await asyncio.sleep(0.01)
        assert job._proc is not None  # ffmpeg decodes instead
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task


async def test_asking_for_a_missing_library_costs_no_request(
    fake_elevenlabs: FakeElevenLabs, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(mpg123, "_library", lambda: None)
    async with client_for(fake_elevenlabs) as client:
        job = Synthesizer(client, mp3_decoder="libmpg123").job(SpeechRequest(TEXT, VOICE))
        with pytest.raises(Mp3DecoderUnavailableError):
            await collect(job)
    assert fake_elevenlabs.tts_requests == []


async def test_an_undecodable_body_is_a_decoder_error(
    fake_elevenlabs: FakeElevenLabs, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: Mp3ToDiscord, chunk: bytes) -> bytes:
        raise Mp3DecodeError("bad stream")

    monkeypatch.setattr(Mp3ToDiscord, "convert", refuse)
    async with client_for(fake_elevenlabs) as client:
        job = Synthesizer(client).job(SpeechRequest(TEXT, VOICE))
        with pytest.raises(DecoderError) as caught:
            await collect(job)
    assert "bad stream" in caught.value.detail
    assert str(caught.value) == "The audio could not be decoded."


async def test_a_decoder_that_cannot_start_is_a_decoder_error(
    fake_elevenlabs: FakeElevenLabs, monkeypatch: pytest.MonkeyPatch
) -> None:
    """mpg123_new() failing (out of memory) is the item's failure, not an unexpected error."""

    def refuse(self: Mp3ToDiscord) -> None:
        raise Mp3DecodeError("Out of memory")

    monkeypatch.setattr(Mp3ToDiscord, "__init__", refuse)
    async with client_for(fake_elevenlabs) as client:
        job = Synthesizer(client).job(SpeechRequest(TEXT, VOICE))
        with pytest.raises(DecoderError) as caught:
            await collect(job)
        assert client.in_flight == 0
    assert caught.value.detail == "libmpg123: Out of memory"
