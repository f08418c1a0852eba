"""PCM frames as discord.py wants them, and the buffer between asyncio and its player thread.

discord.py's `AudioPlayer` thread calls `AudioSource.read()` every 20 ms and
expects 3,840 bytes: 20 ms of 48 kHz, signed 16-bit little-endian, stereo. A
`read()` that blocks (as `FFmpegPCMAudio` does on a pipe) makes the player fall
behind and then send the missed frames in a burst. `FrameBuffer.read_frame()`
never blocks: it hands out the next frame, or silence on underrun, so the player
keeps real time and nothing is ever sent faster than real time afterwards.
"""

from __future__ import annotations

import asyncio
import audioop  # discord.py depends on it too (audioop-lts from Python 3.13)
import contextlib
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Callable

import discord

SAMPLE_RATE = 48_000
CHANNELS = 2
SAMPLE_WIDTH = 2
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000  # 960 per channel
FRAME_BYTES = FRAME_SAMPLES * CHANNELS * SAMPLE_WIDTH  # 3,840
SILENCE = bytes(FRAME_BYTES)

DEFAULT_CAPACITY_FRAMES = 100  # 2 s of decoded audio ahead of the player


def frames_to_ms(frames: int) -> int:
    return frames * FRAME_MS


class FrameBuffer:
    """A bounded FIFO of 20 ms frames: filled on the event loop, read on any thread.

    The writer (`write()`, `finish()`) runs on the event loop and waits when the
    buffer is full; that wait is the only back-pressure in the audio path. The
    player thread calls `read_frame()`, which never blocks. The loop can also
    consume frames with `async for frame in buffer.frames()` (the CLI does, to
    write a WAV as fast as the audio is decoded).
    """

    silence = SILENCE  # what a reader gets on underrun

    def __init__(self, capacity: int = DEFAULT_CAPACITY_FRAMES) -> None:
        if capacity < 1:
            raise ValueError("capacity must be at least one frame")
        self.capacity = capacity
        # A waiting writer is woken when the reader has taken the buffer down to this, not
        # at every frame: one wake-up of the loop per half buffer instead of one per 20 ms.
        self.low_water = capacity // 2
        self._frames: deque[bytes] = deque()
        self._partial = bytearray()
        self._finished = False
        self._aborted = False
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._space = asyncio.Event()
        self._data = asyncio.Event()
        self._writer_waiting = False
        self._reader_waiting = False
        # Counters: for tests, logs and benchmarks.
        self.frames_written = 0
        self.frames_read = 0
        self.underruns = 0
        self.first_frame_at: float | None = None
        # Called on the event loop (soon after) when the first frame is ready.
        self.on_first_frame: Callable[[], None] | None = None

    # ------------------------------------------------------------------ writer side (event loop)

    async def write(self, pcm: bytes | bytearray | memoryview) -> None:
        """Append PCM bytes; whole frames become readable, the remainder waits."""
        if self._aborted:
            return
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._partial += pcm
        while len(self._partial) >= FRAME_BYTES and not self._aborted:
            await self._wait_for_space()
            frame = bytes(self._partial[:FRAME_BYTES])
            del self._partial[:FRAME_BYTES]
            self._push(frame)

    def finish(self) -> None:
        """No more input: pad the last partial frame with silence and let readers drain."""
        if self._finished:
            return
        if self._partial and not self._aborted:
            # Pushed and marked finished under one lock: a reader that finds the deque empty
            # must not then see `finished` and end playback before this last frame.
            self._push(
                bytes(self._partial) + bytes(FRAME_BYTES - len(self._partial)), finishing=True
            )
            self._partial.clear()
        else:
            with self._lock:
                self._finished = True
        self._data.set()

    def abort(self) -> None:
        """Drop everything now: `read_frame()` returns b'' from here on."""
        self._aborted = True
        with self._lock:
            self._finished = True
            self._frames.clear()
        self._partial.clear()
        # Often called from the player thread (`BufferSource.cleanup()`): asyncio events
        # must be set on their loop, or the waiting writer is never woken.
        self._notify(self._data)
        self._notify(self._space)

    def _notify(self, event: asyncio.Event) -> None:
        loop = self._loop
        try:
            running: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if loop is None or running is loop:
            event.set()
            return
        # RuntimeError: the loop is closed, so nobody is waiting any more.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(event.set)

    async def _wait_for_space(self) -> None:
        while len(self._frames) >= self.capacity and not self._aborted:
            self._writer_waiting = True
            self._space.clear()
            if len(self._frames) < self.capacity:
                self._writer_waiting = False
                break
            await self._space.wait()

    def _push(self, frame: bytes, *, finishing: bool = False) -> None:
        with self._lock:
            self._frames.append(frame)
            if finishing:
                self._finished = True
        if self.first_frame_at is None:
            self.first_frame_at = time.perf_counter()
            if self.on_first_frame is not None and self._loop is not None:
                self._loop.call_soon(self.on_first_frame)
        self.frames_written += 1
        self._data.set()

    # ------------------------------------------------------------------ reader side (any thread)

    @property
    def finished(self) -> bool:
        """True when no more frames will be written."""
        return self._finished

    @property
    def aborted(self) -> bool:
        return self._aborted

    @property
    def exhausted(self) -> bool:
        """True when finished and every frame has been read."""
        return self._finished and not self._frames

    def __len__(self) -> int:
        return len(self._frames)

    @property
    def pending_bytes(self) -> int:
        """Bytes written but not yet a whole frame (`finish()` pads them into one)."""
        return len(self._partial)

    def read_frame(self) -> bytes:
        """The next frame; `SILENCE` on underrun; b'' once finished and drained. Never blocks."""
        with self._lock:
            frame = self._frames.popleft() if self._frames else None
            # Read under the lock: `finish()` appends its last frame and sets this together.
            finished = self._finished
        if frame is None:
            if finished:
                return b""
            self.underruns += 1
            return self.silence
        self.frames_read += 1
        if self._writer_waiting and self._loop is not None and len(self._frames) <= self.low_water:
            self._writer_waiting = False
            # RuntimeError: the loop is closed, so nobody is waiting any more.
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self._space.set)
        return frame

    def pop_ready(self) -> bytes | None:
        """The next frame if one is ready, else None (no silence, no counting of underruns)."""
        with self._lock:
            frame = self._frames.popleft() if self._frames else None
        if frame is not None:
            self.frames_read += 1
            if self._writer_waiting and len(self._frames) <= self.low_water:
                self._writer_waiting = False
                self._space.set()
        return frame

    async def frames(self) -> AsyncIterator[bytes]:
        """Every frame as soon as it is decoded, on the event loop."""
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        while True:
            frame = self.pop_ready()
            if frame is not None:
                yield frame
                continue
            if self._finished:
                return
            self._data.clear()
            if self._frames or self._finished:
                continue
            await self._data.wait()


class MonoToStereo:
    """s16le mono to s16le stereo, keeping sample alignment across chunk boundaries."""

    def __init__(self) -> None:
        self._odd = b""

    def convert(self, chunk: bytes) -> bytes:
        data = self._odd + chunk
        usable = len(data) - (len(data) % 2)
        self._odd = data[usable:]
        mono = memoryview(data)[:usable]
        out = bytearray(usable * 2)
        # Interleave each 2-byte sample into both channels.
        out[0::4] = mono[0::2]
        out[1::4] = mono[1::2]
        out[2::4] = mono[0::2]
        out[3::4] = mono[1::2]
        return bytes(out)

    @property
    def pending(self) -> int:
        return len(self._odd)


class RawToDiscord:
    """Raw mono audio (s16le, μ-law or A-law) at any rate to 48 kHz s16le stereo, in Python.

    ffmpeg's raw demuxers wait for 1,024 samples before their first packet (43 ms of
    pcm_24000 arriving in real time) and cost a process per message; `audioop` converts
    each chunk as it arrives, keeping sample alignment and the resampler's state across
    chunk boundaries.
    """

    def __init__(self, codec: str, sample_rate: int) -> None:
        if codec not in ("pcm", "ulaw", "alaw"):
            raise ValueError(f"not a raw codec: {codec}")
        self.codec = codec
        self.sample_rate = sample_rate
        self._odd = b""
        self._state: tuple | None = None
        self._stereo = MonoToStereo()

    def convert(self, chunk: bytes) -> bytes:
        if self.codec == "ulaw":
            linear = audioop.ulaw2lin(chunk, SAMPLE_WIDTH)
        elif self.codec == "alaw":
            linear = audioop.alaw2lin(chunk, SAMPLE_WIDTH)
        else:
            data = self._odd + chunk
            usable = len(data) - (len(data) % 2)
            self._odd = data[usable:]
            linear = data[:usable]
        if self.sample_rate != SAMPLE_RATE and linear:
            linear, self._state = audioop.ratecv(
                linear, SAMPLE_WIDTH, 1, self.sample_rate, SAMPLE_RATE, self._state
            )
        return audioop.tostereo(linear, SAMPLE_WIDTH, 1, 1) if linear else b""

    @property
    def pending(self) -> int:
        return len(self._odd)


class BufferSource(discord.AudioSource):
    """A discord.py `AudioSource` over one `FrameBuffer`: plays it, then ends."""

    def __init__(self, buffer: FrameBuffer) -> None:
        self.buffer = buffer

    def read(self) -> bytes:
        return self.buffer.read_frame()

    def is_opus(self) -> bool:
        return False

    def cleanup(self) -> None:
        self.buffer.abort()
