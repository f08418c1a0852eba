"""DecodeJob against the strict fake ElevenLabs: frames, underruns, cancellation, errors.

Assertions are on the frames produced, never on wall-clock time.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from pydantic import SecretStr

from bot.audio.formats import FormatPolicy
from bot.audio.frames import FRAME_BYTES, SILENCE, FrameBuffer
from bot.audio.pipeline import (
    AudioTooLongError,
    DecodeJob,
    DecoderError,
    FFmpegNotFoundError,
)
from bot.elevenlabs.client import ElevenLabsClient, RetryPolicy
from bot.elevenlabs.errors import PlanRestrictionError, StreamInterruptedError
from bot.speech import SpeechRequest, Synthesizer
from bot.testing.pcm import align
from tests.fakes import speech
from tests.fakes.elevenlabs import FakeElevenLabs

VOICE = "21m00Tcm4TlvDq8ikWAM"  # Rachel: on the fake's default (creator) tier
TEXT = "The quick brown fox jumps over the lazy dog."
MP3_FRAME_S = 1152 / 44_100


# ---------------------------------------------------------------------------- helpers


@contextlib.asynccontextmanager
async def client_for(fake: FakeElevenLabs, **kwargs: object) -> AsyncIterator[ElevenLabsClient]:
    kwargs.setdefault("retry", RetryPolicy(max_retries=0))
    async with aiohttp.ClientSession() as session:
        yield ElevenLabsClient(
            session,
            SecretStr(fake.api_key),
            base_url=fake.base_url,
            **kwargs,  # type: ignore[arg-type]
        )


def split_frames(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]


def pad_to_frame(pcm: bytes) -> bytes:
    return pcm + bytes(-len(pcm) % FRAME_BYTES)


async def collect(job: DecodeJob) -> list[bytes]:
    """Run the job and gather every frame it produces, as `say` does."""
    task = asyncio.create_task(job.run())
    frames = [frame async for frame in job.frames.frames()]
    await task
    return frames


def children() -> set[int]:
    """Pids whose parent is this process (psutil is not installed)."""
    me = os.getpid()
    found: set[int] = set()
    for tid in os.listdir(f"/proc/{me}/task"):
        with contextlib.suppress(OSError), open(f"/proc/{me}/task/{tid}/children") as f:
            found.update(int(pid) for pid in f.read().split())
    return found


@dataclass(frozen=True)
class Resources:
    children: frozenset[int]
    threads: int
    fds: int

    @classmethod
    def now(cls) -> Resources:
        return cls(
            frozenset(children()),
            len(os.listdir("/proc/self/task")),
            len(os.listdir("/proc/self/fd")),
        )

    def within(self, baseline: Resources) -> bool:
        return (
            self.children <= baseline.children
            and self.threads <= baseline.threads
            and self.fds <= baseline.fds
        )


async def settle(baseline: Resources, *, tries: int = 300) -> Resources:
    """Poll (bounded) until sockets, reaper threads and children are back to `baseline`.

    Closing is asynchronous on both ends of the loopback connection (the fake runs in this
    process) and asyncio reaps children from a thread: what remains after the bound leaked.
    """
    now = Resources.now()
    for _ in range(tries):
        if now.within(baseline):
            break
        await asyncio.sleep(0.01)
        now = Resources.now()
    return now


async def wait_for(predicate, *, tries: int = 1000) -> None:  # type: ignore[no-untyped-def]
    for _ in range(tries):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


class CadencedReader(threading.Thread):
    """Reads `read_frame()` at a fixed cadence on its own thread, like discord.py's player."""

    def __init__(self, buffer: FrameBuffer, interval: float = 0.02) -> None:
        super().__init__(name="cadenced-reader", daemon=True)
        self.buffer = buffer
        self.interval = interval
        self.frames: list[bytes] = []
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            frame = self.buffer.read_frame()
            if not frame:
                return
            self.frames.append(frame)
            time.sleep(self.interval)


# ---------------------------------------------------------------------------- formats


async def test_pcm_48000_is_exactly_the_reference_in_stereo(
    fake_elevenlabs: FakeElevenLabs,
) -> None:
    reference = await speech.reference_pcm(VOICE, TEXT, channels=2)
    async with client_for(fake_elevenlabs) as client:
        job = Synthesizer(client).job(SpeechRequest(TEXT, VOICE, output_format="pcm_48000"))
        frames = await collect(job)
    assert all(len(f) == FRAME_BYTES for f in frames)
    assert b"".join(frames) == pad_to_frame(reference)
    assert job.output_format == "pcm_48000"
    assert job._proc is None  # no ffmpeg for pcm_48000


@pytest.mark.parametrize(
    ("output_format", "slack_s", "decoder"),
    [
        ("mp3_44100_128", 2 * MP3_FRAME_S, "libmpg123"),
        ("mp3_44100_128", 2 * MP3_FRAME_S, "ffmpeg"),
        ("mp3_22050_32", 2 * 1152 / 22_050, "libmpg123"),
        ("mp3_22050_32", 2 * 1152 / 22_050, "ffmpeg"),
        ("pcm_24000", 0.02, "auto"),
        ("pcm_16000", 0.02, "auto"),
        ("pcm_44100", 0.02, "auto"),
        ("ulaw_8000", 0.02, "auto"),
    ],
)
async def test_every_format_decodes_to_the_reference(
    fake_elevenlabs: FakeElevenLabs, output_format: str, slack_s: float, decoder: str
) -> None:
    reference = await speech.reference_pcm(VOICE, TEXT, channels=2)
    async with client_for(fake_elevenlabs) as client:
        synthesizer = Synthesizer(client, mp3_decoder=decoder)
        job = synthesizer.job(SpeechRequest(TEXT, VOICE, output_format=output_format))
        frames = await collect(job)
    assert frames and all(len(f) == FRAME_BYTES for f in frames)
    decoded = b"".join(frames)
    ref_s = len(reference) / (48_000 * 4)
    dec_s = len(decoded) / (48_000 * 4)
    assert abs(dec_s - ref_s) <= slack_s + 0.02, (dec_s, ref_s)
    fit = align(reference, decoded, max_lag=4096)
    assert fit.correlation > 0.9, fit
    assert job.timings.first_frame_at is not None
    assert job.timings.first_byte_at is not None
    assert job.timings.first_frame_at >= job.timings.first_byte_at


# ---------------------------------------------------------------------------- underrun


@pytest.mark.parametrize("output_format", ["pcm_48000", "pcm_24000", "mp3_44100_128"])
async def test_a_stall_gives_silence_then_the_next_frames_in_order(
    fake_elevenlabs_factory, output_format: str
) -> None:
    # Reference frames for comparison: a clean decode of the same body.
    fake = await fake_elevenlabs_factory()
    async with client_for(fake) as client:
        clean = await collect(
            Synthesizer(client).job(SpeechRequest(TEXT, VOICE, output_format=output_format))
        )
        # Stall once ~0.2 s of audio is through, far longer than the reader needs to drain
        # it; the first-byte delay lets ffmpeg start first, even on a loaded machine.
        audio = await speech.render_speech(VOICE, TEXT, output_format)
        fake.first_byte_delay = 0.3
        fake.stall_next(after_bytes=len(audio.data) // 15, seconds=1.5)
        job = Synthesizer(client).job(SpeechRequest(TEXT, VOICE, output_format=output_format))
        task = asyncio.create_task(job.run())
        await wait_for(lambda: job.frames.frames_written > 0)
        reader = CadencedReader(job.frames)
        reader.start()
        await task
        await wait_for(lambda: not reader.is_alive(), tries=3000)
    got = reader.frames
    assert all(len(f) == FRAME_BYTES for f in got)
    kinds = ["-" if f is SILENCE else "a" for f in got]
    sequence = "".join(kinds)
    # Audio, then underrun silence during the stall, then audio again.
    assert "a-" in sequence and "-a" in sequence.lstrip("-"), sequence
    audio_frames = [f for f in got if f is not SILENCE]
    assert len(audio_frames) == len(clean)  # nothing skipped, nothing doubled
    assert audio_frames == clean  # the next frames, in order
    assert job.frames.underruns == kinds.count("-")


# ---------------------------------------------------------------------------- cancellation


async def _warm(fake: FakeElevenLabs, client: ElevenLabsClient, fmt: str) -> None:
    """Render (cache) the speech and make the loop's resolver threads exist before counting."""
    await collect(Synthesizer(client).job(SpeechRequest(TEXT, VOICE, output_format=fmt)))
    fake.reset_records()


@pytest.mark.parametrize(
    ("output_format", "decoder"),
    [("mp3_44100_128", "ffmpeg"), ("mp3_44100_128", "libmpg123"), ("pcm_48000", "auto")],
)
@pytest.mark.parametrize("stage", ["before_first_byte", "mid_stream", "after_body", "playback"])
async def test_cancel_leaves_no_process_thread_or_fd(
    fake_elevenlabs_factory, stage: str, output_format: str, decoder: str
) -> None:
    fake = await fake_elevenlabs_factory()
    async with client_for(fake) as client:
        await _warm(fake, client, output_format)
        baseline = Resources.now()
        frames = FrameBuffer(capacity=4 if stage == "after_body" else 100)
        reader: CadencedReader | None = None
        if stage == "before_first_byte":
            fake.headers_delay, fake.first_byte_delay = 0.2, 30.0
        elif stage in ("mid_stream", "playback"):
            fake.pace = 1.0
        job = Synthesizer(client, mp3_decoder=decoder).job(
            SpeechRequest(TEXT, VOICE, output_format=output_format), frames=frames
        )
        task = asyncio.create_task(job.run())
        if stage == "before_first_byte":
            await wait_for(lambda: fake.tts_requests and fake.tts_requests[-1].headers_sent_at)
            await wait_for(lambda: job.stream is not None and job.stream.headers_received)
            assert job.timings.first_byte_at is None
        elif stage == "mid_stream":
            await wait_for(lambda: frames.frames_written >= 3)
            assert job.timings.body_done_at is None
        elif stage == "after_body":
            await wait_for(lambda: job.timings.body_done_at is not None)
            assert client.in_flight == 0  # the slot went back when the body was read
            await wait_for(lambda: len(frames) == frames.capacity)  # held by the unread buffer
        else:
            await wait_for(lambda: frames.frames_written >= 2)
            reader = CadencedReader(frames)
            reader.start()
            await wait_for(lambda: len(reader.frames) >= 3)
        if decoder == "ffmpeg" and stage != "after_body":
            assert job._proc is not None  # ffmpeg is running: the cancel must reap it
        elif decoder != "ffmpeg":
            assert job._proc is None  # decoded in the process: there is no child at all
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        assert frames.aborted and frames.read_frame() == b""
        if reader is not None:
            await wait_for(lambda: not reader.is_alive())
        assert client.in_flight == 0
        await wait_for(lambda: fake.tts_in_flight == 0)
        after = await settle(baseline)
    assert after.children <= baseline.children, "ffmpeg left running"
    assert after.threads <= baseline.threads, "thread left behind"
    assert after.fds <= baseline.fds, "fd left open"


async def test_cancel_while_the_request_is_being_opened(fake_elevenlabs_factory) -> None:
    """Cancelled while open() and the ffmpeg spawn are both in flight."""
    fake = await fake_elevenlabs_factory()
    async with client_for(fake) as client:
        await _warm(fake, client, "mp3_44100_128")
        baseline = Resources.now()
        fake.headers_delay = 30.0
        for _ in range(5):
            job = Synthesizer(client, mp3_decoder="ffmpeg").job(SpeechRequest(TEXT, VOICE))
            task = asyncio.create_task(job.run())
            await asyncio.sleep(0)  # spawn and POST both started, neither finished
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task
            assert job._proc is None
        assert client.in_flight == 0
        after = await settle(baseline)
    assert after.within(baseline), (after, baseline)


async def test_player_dropping_the_frames_stops_the_decoder(fake_elevenlabs_factory) -> None:
    """`BufferSource.cleanup()` aborts from the player thread: the job ends by itself."""
    fake = await fake_elevenlabs_factory(pace=1.0)
    async with client_for(fake) as client:
        await _warm(fake, client, "mp3_44100_128")
        baseline = Resources.now()
        job = Synthesizer(client).job(SpeechRequest(TEXT, VOICE))
        task = asyncio.create_task(job.run())
        await wait_for(lambda: job.frames.frames_written >= 2)
        # From another thread, as the player's cleanup() does (no executor: it would count).
        aborter = threading.Thread(target=job.frames.abort)
        aborter.start()
        aborter.join()
        await asyncio.wait_for(task, 10)  # ends without error, well before the audio would
        assert job.timings.body_done_at is None
        assert client.in_flight == 0
        after = await settle(baseline)
    assert after.within(baseline), (after, baseline)


# ---------------------------------------------------------------------------- upstream errors


@pytest.mark.parametrize("output_format", ["pcm_48000", "mp3_44100_128"])
async def test_a_cut_stream_raises_and_the_frames_before_stay_valid(
    fake_elevenlabs: FakeElevenLabs, output_format: str
) -> None:
    reference = await speech.reference_pcm(VOICE, TEXT, channels=2)
    audio = await speech.render_speech(VOICE, TEXT, output_format)
    cut = len(audio.data) // 2
    fake_elevenlabs.cut_next(after_bytes=cut)
    async with client_for(fake_elevenlabs) as client:
        job = Synthesizer(client).job(SpeechRequest(TEXT, VOICE, output_format=output_format))
        task = asyncio.create_task(job.run())
        frames = [frame async for frame in job.frames.frames()]
        with pytest.raises(StreamInterruptedError):
            await task
        assert client.in_flight == 0
    assert frames and all(len(f) == FRAME_BYTES for f in frames)
    decoded = b"".join(frames)
    if output_format == "pcm_48000":
        assert job.bytes_in == cut
        # An odd trailing byte (half a sample) cannot be played and is dropped.
        assert decoded == pad_to_frame(reference[: cut // 2 * 4])
    else:
        half = reference[: len(reference) // 3]  # surely inside what arrived
        assert align(half, decoded).correlation > 0.9


async def test_garbage_that_ffmpeg_cannot_decode_is_a_decoder_error(
    fake_elevenlabs: FakeElevenLabs,
) -> None:
    class Garbage:
        sent_at = first_byte_at = None

        async def open(self) -> None:
            self.sent_at = self.first_byte_at = time.perf_counter()

        async def __aiter__(self) -> AsyncIterator[bytes]:
            for _ in range(8):
                yield b"this is not audio at all " * 100

        async def aclose(self) -> None:
            pass

    baseline = Resources.now()
    job = DecodeJob(lambda _fmt: Garbage(), "mp3_44100_128")
    with pytest.raises(DecoderError):
        await collect(job)
    assert job.frames.read_frame() == b""
    after = await settle(baseline)
    assert after.within(baseline), (after, baseline)


# ---------------------------------------------------------------------------- 403 fallback


async def test_a_refused_format_falls_back_to_mp3_once_and_is_remembered(
    fake_elevenlabs_factory,
) -> None:
    fake = await fake_elevenlabs_factory()
    fake.allowed_formats.discard("pcm_24000")
    policy = FormatPolicy()
    async with client_for(fake) as client:
        synth = Synthesizer(client, policy=policy)
        request = SpeechRequest(TEXT, VOICE, output_format="pcm_24000")
        first = synth.job(request)
        frames = await collect(first)
        assert first.output_format == "mp3_44100_128"
        assert first.requested_format == "pcm_24000"
        assert frames and "pcm_24000" in policy.refused
        second = synth.job(request)
        assert await collect(second)
        assert second.output_format == "mp3_44100_128"
        formats = [r.query.get("output_format") for r in fake.tts_requests]
        assert formats == ["pcm_24000", "mp3_44100_128", "mp3_44100_128"]
        assert [r.status for r in fake.tts_requests] == [403, 200, 200]

        fake.allowed_formats.discard("mp3_44100_128")
        with pytest.raises(PlanRestrictionError):
            await collect(synth.job(SpeechRequest(TEXT, VOICE)))
        assert client.in_flight == 0


async def test_a_voice_refused_for_the_tier_is_not_a_format_refusal(
    fake_elevenlabs_factory,
) -> None:
    fake = await fake_elevenlabs_factory()
    voice = next(
        v
        for v in fake.voices
        if v.get("available_for_tiers") and "pro" not in v["available_for_tiers"]
    )
    fake.tier = "pro"
    policy = FormatPolicy()
    async with client_for(fake) as client:
        job = Synthesizer(client, policy=policy).job(
            SpeechRequest(TEXT, voice["voice_id"], output_format="pcm_24000")
        )
        with pytest.raises(PlanRestrictionError):
            await collect(job)
    assert not policy.refused
    assert len(fake.tts_requests) == 1  # no pointless retry in mp3


# ---------------------------------------------------------------------------- limits


async def test_the_byte_cap_raises_audio_too_long(fake_elevenlabs: FakeElevenLabs) -> None:
    baseline = Resources.now()
    async with client_for(fake_elevenlabs) as client:
        job = Synthesizer(client, max_bytes=4096).job(SpeechRequest(TEXT, VOICE))
        with pytest.raises(AudioTooLongError):
            await collect(job)
        assert client.in_flight == 0
        assert job.bytes_in <= 4096 + 4096  # stopped at the chunk that crossed the cap
    after = await settle(baseline)
    assert after.children <= baseline.children


async def test_a_missing_ffmpeg_is_one_clear_sentence_and_costs_no_request(
    fake_elevenlabs: FakeElevenLabs,
) -> None:
    async with client_for(fake_elevenlabs) as client:
        synthesizer = Synthesizer(client, ffmpeg_path="/nonexistent/ffmpeg", mp3_decoder="ffmpeg")
        job = synthesizer.job(SpeechRequest(TEXT, VOICE))
        with pytest.raises(FFmpegNotFoundError) as caught:
            await collect(job)
        assert client.in_flight == 0
    message = str(caught.value)
    assert "/nonexistent/ffmpeg" in message and "FFMPEG_PATH" in message
    assert message.count(". ") == 0 and message.endswith(".") and "\n" not in message
    assert fake_elevenlabs.tts_requests == []
    assert job.frames.read_frame() == b""


async def test_pcm_48000_needs_no_ffmpeg(fake_elevenlabs: FakeElevenLabs) -> None:
    async with client_for(fake_elevenlabs) as client:
        job = Synthesizer(client, ffmpeg_path="/nonexistent/ffmpeg").job(
            SpeechRequest(TEXT, VOICE, output_format="pcm_48000")
        )
        assert await collect(job)
