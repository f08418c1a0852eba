"""FrameBuffer, the hand-over between the event loop and discord.py's player thread."""

from __future__ import annotations

import array
import asyncio
import threading

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.audio.frames import FRAME_BYTES, SILENCE, BufferSource, FrameBuffer, MonoToStereo


def frame(n: int) -> bytes:
    return bytes([n % 256]) * FRAME_BYTES


async def test_whole_frames_are_readable_and_the_remainder_waits() -> None:
    buf = FrameBuffer()
    await buf.write(frame(1) + frame(2)[:100])
    assert buf.read_frame() == frame(1)
    assert buf.read_frame() == SILENCE  # only a partial frame is there: underrun
    await buf.write(frame(2)[100:])
    assert buf.read_frame() == frame(2)


async def test_underrun_gives_silence_then_continues_without_catching_up() -> None:
    buf = FrameBuffer()
    await buf.write(frame(1))
    reads = [buf.read_frame() for _ in range(4)]
    assert reads == [frame(1), SILENCE, SILENCE, SILENCE]
    assert buf.underruns == 3
    await buf.write(frame(2) + frame(3))
    buf.finish()
    # After the stall the next reads are the next frames, one per read: no burst,
    # nothing skipped, and the end is b''.
    assert [buf.read_frame() for _ in range(3)] == [frame(2), frame(3), b""]


async def test_finish_pads_the_last_partial_frame_with_silence() -> None:
    buf = FrameBuffer()
    await buf.write(b"\x01" * 10)
    buf.finish()
    last = buf.read_frame()
    assert len(last) == FRAME_BYTES
    assert last[:10] == b"\x01" * 10 and last[10:] == bytes(FRAME_BYTES - 10)
    assert buf.read_frame() == b""
    assert buf.exhausted


async def test_abort_drops_everything_and_ends_reads() -> None:
    buf = FrameBuffer()
    await buf.write(frame(1) * 3)
    buf.abort()
    assert buf.read_frame() == b""
    await buf.write(frame(4))  # writes after an abort are ignored
    assert buf.read_frame() == b""


async def test_writer_waits_when_full_and_resumes_when_a_thread_reads() -> None:
    buf = FrameBuffer(capacity=2)
    writer = asyncio.create_task(buf.write(b"".join(frame(i + 1) for i in range(5))))
    await asyncio.sleep(0.05)
    assert not writer.done()
    assert len(buf) == 2
    got: list[bytes] = []

    def player_thread() -> None:
        for _ in range(5):
            while True:
                f = buf.read_frame()
                if f != SILENCE:
                    got.append(f)
                    break
                threading.Event().wait(0.001)

    thread = threading.Thread(target=player_thread)
    thread.start()
    await asyncio.wait_for(writer, 5)
    await asyncio.to_thread(thread.join, 5)
    assert got == [frame(i + 1) for i in range(5)]


async def test_async_frames_iterates_until_finished() -> None:
    buf = FrameBuffer(capacity=3)

    async def produce() -> None:
        for i in range(10):
            await buf.write(frame(i))
            await asyncio.sleep(0)
        buf.finish()

    task = asyncio.create_task(produce())
    got = [f async for f in buf.frames()]
    await task
    assert got == [frame(i) for i in range(10)]


async def test_first_frame_callback_runs_on_the_loop() -> None:
    buf = FrameBuffer()
    called = asyncio.Event()
    buf.on_first_frame = called.set
    await buf.write(frame(1))
    await asyncio.wait_for(called.wait(), 1)
    assert buf.first_frame_at is not None


def test_buffer_source_is_pcm_and_cleanup_aborts() -> None:
    buf = FrameBuffer()
    source = BufferSource(buf)
    assert not source.is_opus()
    source.cleanup()
    assert source.read() == b""


@given(st.lists(st.binary(max_size=50), max_size=20))
def test_mono_to_stereo_keeps_sample_alignment_across_any_chunking(chunks: list[bytes]) -> None:
    data = b"".join(chunks)
    data = data[: len(data) - len(data) % 2]
    converter = MonoToStereo()
    out = b""
    consumed = 0
    for chunk in chunks:
        take = chunk[: max(0, len(data) - consumed)]
        consumed += len(take)
        out += converter.convert(take)
    mono = array.array("h", data)
    stereo = array.array("h", out)
    assert list(stereo[0::2]) == list(mono)
    assert list(stereo[1::2]) == list(mono)


def test_mono_to_stereo_holds_an_odd_byte_until_its_pair_arrives() -> None:
    converter = MonoToStereo()
    assert converter.convert(b"\x01") == b""
    assert converter.pending == 1
    assert converter.convert(b"\x02") == b"\x01\x02\x01\x02"


def test_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError):
        FrameBuffer(capacity=0)


async def test_an_abort_from_the_player_thread_wakes_a_waiting_writer() -> None:
    """`BufferSource.cleanup()` runs on the player thread; asyncio events need their loop."""
    buf = FrameBuffer(capacity=1)
    writer = asyncio.create_task(buf.write(frame(1) + frame(2) + frame(3)))
    for _ in range(100):
        if len(buf) == 1:
            break
        await asyncio.sleep(0.001)
    assert not writer.done()
    thread = threading.Thread(target=BufferSource(buf).cleanup)
    thread.start()
    thread.join()
    await asyncio.wait_for(writer, 5)
    assert buf.read_frame() == b""


async def test_frames_stops_when_aborted_from_a_thread() -> None:
    buf = FrameBuffer()
    got: list[bytes] = []

    async def consume() -> None:
        got.extend([f async for f in buf.frames()])

    task = asyncio.create_task(consume())
    await asyncio.sleep(0.01)
    thread = threading.Thread(target=buf.abort)
    thread.start()
    thread.join()
    await asyncio.wait_for(task, 5)
    assert got == []


def test_the_last_frame_is_never_lost_to_a_reader_racing_finish() -> None:
    """A reader that found the deque empty must not then see `finished` and stop early."""

    async def once() -> list[bytes]:
        buf = FrameBuffer()
        await buf.write(frame(7)[:100])  # a partial frame: nothing readable yet
        got: list[bytes] = []
        started = threading.Event()

        def reader() -> None:
            started.set()
            while (f := buf.read_frame()) != b"":
                if f is not SILENCE:
                    got.append(f)

        thread = threading.Thread(target=reader)
        thread.start()
        started.wait()
        buf.finish()
        thread.join(5)
        return got

    for _ in range(200):
        got = asyncio.run(once())
        assert got == [frame(7)[:100] + bytes(FRAME_BYTES - 100)]


async def test_pending_bytes_counts_the_partial_frame() -> None:
    buf = FrameBuffer()
    await buf.write(frame(1) + b"\x01" * 10)
    assert buf.pending_bytes == 10
    buf.finish()
    assert buf.pending_bytes == 0 and len(buf) == 2


@pytest.mark.parametrize(
    ("codec", "rate"), [("pcm", 48000), ("pcm", 24000), ("pcm", 22050), ("ulaw", 8000)]
)
@given(cuts=st.lists(st.integers(min_value=0, max_value=4000), max_size=8))
def test_raw_conversion_does_not_depend_on_how_the_stream_was_chunked(
    codec: str, rate: int, cuts: list[int]
) -> None:
    from bot.audio.frames import RawToDiscord

    audio = bytes((i * 37) % 256 for i in range(4000))
    whole = RawToDiscord(codec, rate).convert(audio)
    converter = RawToDiscord(codec, rate)
    pieces, start = [], 0
    for cut in sorted(cuts):
        pieces.append(converter.convert(audio[start:cut]))
        start = max(start, cut)
    pieces.append(converter.convert(audio[start:]))
    assert b"".join(pieces) == whole


def test_raw_conversion_reaches_48k_stereo() -> None:
    from bot.audio.frames import RawToDiscord

    one_second_24k = bytes(24000 * 2)
    out = RawToDiscord("pcm", 24000).convert(one_second_24k)
    # The resampler holds back a few samples of state until the next chunk.
    assert abs(len(out) - 48000 * 4) <= 32
    assert abs(len(RawToDiscord("ulaw", 8000).convert(bytes(8000))) - 48000 * 4) <= 32
