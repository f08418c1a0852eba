"""One item's audio path: HTTP body -> compressed buffer -> decoder -> `FrameBuffer`.

Three stages run as tasks on the event loop:
1. fetch: reads the HTTP body as fast as it arrives into the item's own buffer
   (capped), so the ElevenLabs concurrency slot is released as soon as synthesis
   ends, however slowly the audio plays;
2. feed: writes that buffer into ffmpeg's stdin (or decodes MP3 in the process with
   libmpg123, converts raw PCM and μ/A-law in Python, or splits Ogg Opus into packets
   for a buffer that takes them as they are: no ffmpeg at all for those);
3. drain: reads ffmpeg's stdout into the `FrameBuffer`, whose bound is the only
   back-pressure: it stops ffmpeg, which stops the feed, never the fetch.

ffmpeg is spawned when the request is sent, so its ~90 ms start-up overlaps the
wait for the first byte. Cancelling `run()` at any moment kills and reaps
ffmpeg, closes the HTTP response and aborts the buffer: no zombie, no open fd.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol

from bot.audio import mpg123
from bot.audio.formats import FormatPolicy, InputFormat, ffmpeg_command
from bot.audio.frames import FrameBuffer, RawToDiscord
from bot.audio.mp3 import Mp3Framer
from bot.audio.ogg import OggError, OggOpusParser
from bot.config import Mp3DecoderChoice
from bot.elevenlabs.errors import PlanRestrictionError
from bot.errors import BotError

log = logging.getLogger(__name__)

DEFAULT_MAX_BYTES = 8 * 1024 * 1024
READ_SIZE = 16 * 1024
MP3_FEED_BYTES = 1024  # compressed bytes decoded per step: 64 ms at 128 kbit/s


class AudioStream(Protocol):
    """What the pipeline reads: an ElevenLabs `SpeechStream` or a plain URL stream."""

    sent_at: float | None
    first_byte_at: float | None

    async def open(self) -> None: ...

    def __aiter__(self) -> AsyncIterator[bytes]: ...

    async def aclose(self) -> None: ...


class AudioTooLongError(BotError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"That audio is longer than the bot plays ({limit // 1024} KB at most).")


class DecoderError(BotError):
    def __init__(self, detail: str) -> None:
        super().__init__("The audio could not be decoded.")
        self.detail = detail


class FFmpegNotFoundError(BotError):
    def __init__(self, path: str) -> None:
        super().__init__(
            f"ffmpeg was not found at {path!r}: "
            "install it (apt-get install ffmpeg) or set FFMPEG_PATH."
        )


class PlaybackAbortedError(Exception):
    """The frames were dropped by their reader (skip, stop): decoding has no purpose."""


@dataclass
class JobTimings:
    """perf_counter() instants of one item, for logs, `say --json` and the benchmarks."""

    started_at: float
    sent_at: float | None = None
    first_byte_at: float | None = None
    first_frame_at: float | None = None
    body_done_at: float | None = None
    finished_at: float | None = None

    def ms(self, attr: str, since: str = "sent_at") -> float | None:
        end, start = getattr(self, attr), getattr(self, since)
        if end is None or start is None:
            return None
        return round((end - start) * 1000, 1)


class ByteFifo:
    """The item's compressed audio: unbounded up to `limit`, filled as fast as it arrives."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.total = 0
        self._chunks: deque[bytes] = deque()
        self._closed = False
        self._ready = asyncio.Event()

    def put(self, chunk: bytes) -> None:
        self.total += len(chunk)
        if self.total > self.limit:
            raise AudioTooLongError(self.limit)
        self._chunks.append(chunk)
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    async def get(self) -> bytes:
        """The next chunk, or b'' once closed and empty."""
        while not self._chunks:
            if self._closed:
                return b""
            self._ready.clear()
            await self._ready.wait()
        return self._chunks.popleft()


class DecodeJob:
    """Fetches and decodes one item into `frames`. Await `run()`; cancel it to stop."""

    def __init__(
        self,
        open_stream: Callable[[str], AudioStream],
        output_format: str,
        *,
        frames: FrameBuffer | None = None,
        ffmpeg_path: str = "ffmpeg",
        max_bytes: int = DEFAULT_MAX_BYTES,
        policy: FormatPolicy | None = None,
        label: str = "",
        mp3_decoder: Mp3DecoderChoice = "auto",
    ) -> None:
        self._open_stream = open_stream
        self.requested_format = output_format
        self.output_format = output_format
        self.frames = frames if frames is not None else FrameBuffer()
        self.ffmpeg_path = ffmpeg_path
        self.max_bytes = max_bytes
        self.policy = policy
        self.label = label
        self.mp3_decoder = mp3_decoder
        self.stream: AudioStream | None = None
        self.timings = JobTimings(started_at=time.perf_counter())
        self.bytes_in = 0
        self._proc: asyncio.subprocess.Process | None = None
        self._stderr_tail = ""
        self._decoded = False
        self._frames_before = 0

    async def run(self) -> None:
        """Fetch and decode until the last frame is in the buffer; raise on failure.

        When the upstream breaks off mid-stream, what was received is still decoded and
        the buffer is finished (that audio plays) before the error is raised; on any
        other failure or on cancellation the buffer is aborted.
        """
        self._decoded = False
        try:
            await self._run()
        except PlaybackAbortedError:
            log.debug("%s: frames dropped by the player; decoding stopped", self.label)
        finally:
            await self._cleanup()
            if self._decoded:
                self.frames.finish()
            else:
                self.frames.abort()
            self.timings.finished_at = time.perf_counter()

    async def _run(self) -> None:
        fmt_name = self.policy.choose(self.output_format) if self.policy else self.output_format
        while True:
            self.output_format = fmt_name
            fmt = InputFormat.parse(fmt_name)
            # Before the request: a missing decoder must not cost a billed synthesis.
            if self._decoder_needed(fmt) and shutil.which(self.ffmpeg_path) is None:
                raise FFmpegNotFoundError(self.ffmpeg_path)
            if fmt.codec == "mp3" and self.mp3_decoder == "libmpg123" and not mpg123.available():
                raise mpg123.Mp3DecoderUnavailableError()
            self.stream = self._open_stream(fmt_name)
            try:
                # Spawn the decoder while the request is on its way.
                spawn = self._spawn(fmt) if self._decoder_needed(fmt) else _noop()
                results = await asyncio.gather(spawn, self.stream.open(), return_exceptions=True)
            except BaseException:
                await self._cleanup()
                raise
            errors = [r for r in results if isinstance(r, BaseException)]
            if errors:
                await self._cleanup()
                error = next((e for e in errors if not isinstance(e, Exception)), errors[-1])
                if _is_format_refusal(error) and self.policy is not None:
                    fallback = self.policy.refuse(fmt_name)
                    if fallback is not None and fallback != fmt_name:
                        fmt_name = fallback
                        continue
                raise error
            break
        self.timings.sent_at = self.stream.sent_at
        self.timings.first_byte_at = self.stream.first_byte_at
        await self._pump(fmt)

    def _passes_opus(self, fmt: InputFormat) -> bool:
        """Ogg Opus into a buffer that takes Opus packets: no decoder at all."""
        return fmt.codec == "opus" and getattr(self.frames, "accepts_opus", False)

    def _decodes_mp3_in_process(self, fmt: InputFormat) -> bool:
        if fmt.codec != "mp3" or self.mp3_decoder == "ffmpeg":
            return False
        return self.mp3_decoder == "libmpg123" or mpg123.available()

    def _decoder_needed(self, fmt: InputFormat) -> bool:
        """Whether this format needs an ffmpeg process."""
        return (
            fmt.needs_ffmpeg
            and not self._passes_opus(fmt)
            and not self._decodes_mp3_in_process(fmt)
        )

    async def _spawn(self, fmt: InputFormat) -> None:
        try:
            self._proc = await asyncio.create_subprocess_exec(
                *ffmpeg_command(self.ffmpeg_path, fmt),
                stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
        except (FileNotFoundError, PermissionError):
            raise FFmpegNotFoundError(self.ffmpeg_path) from None

    async def _pump(self, fmt: InputFormat) -> None:
        fifo = ByteFifo(self.max_bytes)
        self._frames_before = self.frames.frames_written
        fetch = asyncio.create_task(self._fetch(fifo), name=f"fetch {self.label}")
        proc = self._proc
        if proc is None and self._passes_opus(fmt):
            workers = [asyncio.create_task(self._unwrap(fifo), name=f"ogg {self.label}")]
        elif proc is None:
            workers = [asyncio.create_task(self._convert(fifo, fmt), name=f"convert {self.label}")]
        else:
            workers = [
                asyncio.create_task(self._feed(fifo, fmt), name=f"feed {self.label}"),
                asyncio.create_task(self._drain(), name=f"drain {self.label}"),
                asyncio.create_task(self._stderr(), name=f"stderr {self.label}"),
            ]
        tasks = [fetch, *workers]
        try:
            # The decoder runs until the fifo is closed, which the fetch does even when it
            # fails: so an upstream error still lets everything received be decoded. A
            # decoder failure, on the other hand, stops everything at once (otherwise the
            # feed could wait forever on a pipe nobody drains).
            await asyncio.wait(workers, return_when=asyncio.FIRST_EXCEPTION)
            for task in workers:
                if task.done() and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            if not fetch.done():
                # ffmpeg ended before the body did (it broke the pipe): nothing more can be
                # decoded, so stop downloading; its exit code says why.
                fetch.cancel()
            await asyncio.gather(fetch, return_exceptions=True)
            code = await proc.wait() if proc is not None else 0
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
        fetch_error = None if fetch.cancelled() else fetch.exception()
        if fetch_error is None and code != 0:
            raise DecoderError(f"ffmpeg exited with {code}: {self._stderr_tail.strip()}")
        produced = self.frames.frames_written > self._frames_before or bool(
            self.frames.pending_bytes
        )
        if fetch_error is None and not produced and self.bytes_in:
            raise DecoderError(f"no audio decoded from {self.bytes_in} bytes of {fmt.name}")
        # From here the frames in the buffer are good and will play.
        self._decoded = True
        if fetch_error is not None:
            raise fetch_error

    async def _fetch(self, fifo: ByteFifo) -> None:
        assert self.stream is not None
        try:
            async for chunk in self.stream:
                self.bytes_in += len(chunk)
                fifo.put(chunk)
            self.timings.body_done_at = time.perf_counter()
        finally:
            # Stream first (the slot goes back at once), then the fifo: once the decoder
            # sees the end of its input, this task has nothing left to do.
            try:
                await self.stream.aclose()
            finally:
                fifo.close()

    async def _feed(self, fifo: ByteFifo, fmt: InputFormat) -> None:
        assert self._proc is not None and self._proc.stdin is not None
        stdin = self._proc.stdin
        # MP3 goes in whole frames, each batch followed by padding the parser skips: ffmpeg
        # then decodes what has arrived instead of waiting for 1,024 bytes (bot.audio.mp3).
        framer = Mp3Framer() if fmt.codec == "mp3" else None
        try:
            while chunk := await fifo.get():
                if framer is not None:
                    chunk = framer.feed_padded(chunk)
                stdin.write(chunk)
                await stdin.drain()
            if framer is not None:
                stdin.write(framer.flush())
                await stdin.drain()
        except (BrokenPipeError, ConnectionResetError):
            return  # ffmpeg gave up; _drain and the exit code tell why
        finally:
            with contextlib.suppress(BrokenPipeError, ConnectionResetError, RuntimeError):
                stdin.close()

    async def _drain(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        stdout = self._proc.stdout
        while data := await stdout.read(READ_SIZE):
            await self._deliver(data)

    async def _stderr(self) -> None:
        assert self._proc is not None and self._proc.stderr is not None
        while line := await self._proc.stderr.readline():
            self._stderr_tail = (self._stderr_tail + line.decode(errors="replace"))[-500:]

    async def _convert(self, fifo: ByteFifo, fmt: InputFormat) -> None:
        if fmt.codec == "mp3":
            await self._decode_mp3(fifo)
            return
        converter = RawToDiscord(fmt.codec, fmt.sample_rate)
        while chunk := await fifo.get():
            await self._deliver(converter.convert(chunk))

    async def _decode_mp3(self, fifo: ByteFifo) -> None:
        converter: mpg123.Mp3ToDiscord | None = None
        try:
            converter = mpg123.Mp3ToDiscord()
            while chunk := await fifo.get():
                # A chunk can hold seconds of audio (the upstream sends faster than real
                # time): decoded at once, it would go to the encoders as one batch that
                # every other guild's batches queue behind. About 60 ms at a time instead,
                # as ffmpeg's pipe delivered it.
                view = memoryview(chunk)
                for at in range(0, len(view), MP3_FEED_BYTES):
                    await self._deliver(converter.convert(view[at : at + MP3_FEED_BYTES]))
        except mpg123.Mp3DecodeError as error:
            raise DecoderError(f"libmpg123: {error}") from None
        finally:
            if converter is not None:
                converter.close()

    async def _unwrap(self, fifo: ByteFifo) -> None:
        parser = OggOpusParser()
        write_opus = self.frames.write_opus  # type: ignore[attr-defined]
        try:
            while chunk := await fifo.get():
                await self._delivered(write_opus(parser.feed(chunk)))
        except OggError:
            raise DecoderError("the Opus stream is not Ogg") from None

    async def _deliver(self, pcm: bytes) -> None:
        await self._delivered(self.frames.write(pcm))

    async def _delivered(self, writing: Coroutine[Any, Any, None]) -> None:
        if self.frames.aborted:
            writing.close()
            raise PlaybackAbortedError()
        await writing
        if self.timings.first_frame_at is None and self.frames.frames_written > self._frames_before:
            # This job's own first frame (the buffer may have carried earlier items).
            self.timings.first_frame_at = time.perf_counter()
        if self.frames.aborted:
            raise PlaybackAbortedError()

    async def _cleanup(self) -> None:
        """Close the stream and reap ffmpeg. Idempotent; safe under cancellation."""
        stream = self.stream
        proc, self._proc = self._proc, None
        await asyncio.shield(self._reap(stream, proc))

    async def _reap(
        self, stream: AudioStream | None, proc: asyncio.subprocess.Process | None
    ) -> None:
        if stream is not None:
            with contextlib.suppress(Exception):
                await stream.aclose()
        if proc is None:
            return
        if proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
        if proc.stdin is not None:
            with contextlib.suppress(Exception):
                proc.stdin.close()
        # Reading both pipes to their end lets asyncio close their transports.
        with contextlib.suppress(Exception):
            await asyncio.gather(_read_to_end(proc.stdout), _read_to_end(proc.stderr), proc.wait())


async def _read_to_end(reader: asyncio.StreamReader | None) -> None:
    if reader is None:
        return
    while await reader.read(READ_SIZE):
        pass


def _is_format_refusal(error: BaseException) -> bool:
    """A 403 about the output format, not about the voice (that one no format can fix)."""
    if not isinstance(error, PlanRestrictionError):
        return False
    code = (error.code or "").lower()
    return not code or "format" in code


async def _noop() -> None:
    return None
