"""MP3 fed to ffmpeg in whole frames plus padding: same audio, and no wait for 1,024 bytes."""

from __future__ import annotations

import asyncio
import subprocess

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.audio.formats import InputFormat, ffmpeg_command
from bot.audio.mp3 import PADDING, Mp3Framer, frame_length
from tests.fakes import speech

VOICE = "21m00Tcm4TlvDq8ikWAM"
TEXT = "Hello there, this is a sentence in frames."


@pytest.fixture(scope="module")
def mp3() -> bytes:
    return asyncio.run(speech.render_speech(VOICE, TEXT, "mp3_44100_128")).data


@pytest.fixture(scope="module")
def mp3_22k() -> bytes:
    return asyncio.run(speech.render_speech(VOICE, TEXT, "mp3_22050_32")).data


def decode(data: bytes, fmt: str = "mp3_44100_128") -> bytes:
    command = ffmpeg_command("ffmpeg", InputFormat.parse(fmt))
    return subprocess.run(command, input=data, capture_output=True, check=True).stdout


def framed(data: bytes, sizes: list[int], *, padded: bool = False) -> tuple[list[bytes], Mp3Framer]:
    framer = Mp3Framer()
    feed = framer.feed_padded if padded else framer.feed
    out, offset = [], 0
    while offset < len(data):
        for size in sizes:
            out.append(feed(data[offset : offset + size]))
            offset += size
    out.append(framer.flush())
    return out, framer


@pytest.mark.parametrize(
    ("header", "length"),
    [
        (b"\xff\xfb\x90\xc4", 417),  # MPEG-1 Layer III, 128 kbit/s, 44.1 kHz
        (b"\xff\xfb\x92\xc4", 418),  # the same with a padding byte
        (b"\xff\xfb\xb0\xc4", 626),  # 192 kbit/s
        (b"\xff\xf3\x40\xc4", 104),  # MPEG-2 Layer III, 32 kbit/s, 22.05 kHz
        (b"\xff\xf3\x48\xc4", 144),  # MPEG-2 Layer III, 32 kbit/s, 16 kHz
        (b"\xff\xfb\x00\xc4", None),  # free format: no length
        (b"\xff\xfd\x90\xc4", None),  # Layer II
        (b"\xff\xfb\x9c\xc4", None),  # reserved sample rate
        (b"ID3\x04", None),
    ],
)
def test_a_frame_length_comes_from_its_header(header: bytes, length: int | None) -> None:
    assert frame_length(header) == length


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=3000), min_size=1, max_size=30))
def test_any_chunking_passes_every_byte_on_at_frame_boundaries(
    mp3: bytes, sizes: list[int]
) -> None:
    pieces, framer = framed(mp3, sizes)
    assert b"".join(pieces) == mp3
    assert framer.framing and framer.frames > 50
    ends, position = set(), 0
    while position < len(mp3):
        position += frame_length(mp3[position : position + 4]) or len(mp3)
        ends.add(position)
    cut = 0
    for piece in pieces[:-1]:
        cut += len(piece)
        assert piece == b"" or cut in ends, "every piece ends on a frame boundary"


def test_padding_between_frames_decodes_to_the_same_samples(mp3: bytes, mp3_22k: bytes) -> None:
    for data, fmt in ((mp3, "mp3_44100_128"), (mp3_22k, "mp3_22050_32")):
        for sizes in ([700, 1500, 333], [417], [5000], [100_000]):
            pieces, _ = framed(data, sizes, padded=True)
            assert decode(b"".join(pieces), fmt) == decode(data, fmt), (fmt, sizes)
            assert PADDING in b"".join(pieces) or sizes == [100_000]


def test_padding_right_after_the_info_frame_would_lose_audio(mp3: bytes) -> None:
    """Why `feed_padded` waits for two frames: ffmpeg wants a header after the first."""
    first = frame_length(mp3[:4]) or 0
    assert decode(mp3[:first] + PADDING + mp3[first:]) != decode(mp3)


def test_an_id3_tag_and_stray_bytes_pass_through(mp3: bytes) -> None:
    tag = b"ID3\x04\x00\x00\x00\x00\x00\x15" + b"T" * 21  # a 21-byte tag body
    data = tag + b"\x00\x01" + mp3
    pieces, framer = framed(data, [5, 17, 400])
    assert b"".join(pieces) == data and framer.framing


def test_a_stream_it_cannot_size_is_passed_through_unframed(mp3: bytes) -> None:
    boundary = 0
    for _ in range(5):
        boundary += frame_length(mp3[boundary : boundary + 4]) or 0
    free_format = b"\xff\xfb\x00\xc4" + bytes(300)
    framer = Mp3Framer()
    first = framer.feed(mp3[:1000])
    rest = framer.feed(mp3[1000:boundary] + free_format)
    assert not framer.framing
    tail = framer.feed_padded(b"tail") + framer.flush()
    assert first + rest + tail == mp3[:boundary] + free_format + b"tail"


async def test_ffmpeg_decodes_the_first_frames_without_waiting_for_more(mp3: bytes) -> None:
    """The first three frames (1,253 bytes) and padding, stdin left open: ffmpeg decodes them
    now; without the padding it would wait for 2,048 bytes that are not coming."""
    command = ffmpeg_command("ffmpeg", InputFormat.parse("mp3_44100_128"))
    proc = await asyncio.create_subprocess_exec(
        *command,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
    )
    assert proc.stdin is not None and proc.stdout is not None
    framer = Mp3Framer()
    lengths = []
    while len(lengths) < 3:
        lengths.append(frame_length(mp3[sum(lengths) : sum(lengths) + 4]) or 0)
    first = framer.feed_padded(mp3[: sum(lengths) + 100])  # three frames, part of a fourth
    assert first.endswith(PADDING) and len(first) == sum(lengths) + len(PADDING)
    proc.stdin.write(first)
    await proc.stdin.drain()
    try:
        audio = await asyncio.wait_for(proc.stdout.read(65536), 10)
        assert audio, "decoded audio came out while the input is still open"
    finally:
        proc.kill()
        await proc.wait()
