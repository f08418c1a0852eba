"""Where Opus encoding runs: threads of the bot's process, or worker processes.

libopus runs outside the GIL, but a thread calls it once per 20 ms frame and needs the GIL
back after each call. Next to the event loop and the sender's thread, at a hundred voices
the encoding threads spend more time queueing for the GIL than encoding, and buffers run
dry while cores sit idle. `ProcessEncoding` moves the encoders into worker processes with
GILs of their own: the bot's process only ships PCM batches out and packets back.

Both give each buffer an `EncoderHandle`: `await encode(pcm)` turns whole frames into
packets, in order, with one encoder's state kept across calls (an Opus stream is not a
series of independent frames); `close()` frees it.
"""

from __future__ import annotations

import asyncio
import audioop
import collections
import contextlib
import dataclasses
import itertools
import json
import logging
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Final, Protocol

import discord.opus

from bot.audio import encoder_worker as worker
from bot.audio.frames import DEFAULT_CAPACITY_FRAMES, FRAME_BYTES, FRAME_MS, FrameBuffer
from bot.audio.ogg import opus_packet_ms
from bot.audio.opus import OPUS_SILENCE, SILENT_PEAK, EncoderSettings, OpusEncoder
from bot.errors import BotError

log = logging.getLogger(__name__)

SHORT_OF_AUDIO: Final = 10  # frames ready below which whatever is decoded is encoded at once
MAX_DEATHS: Final = 3  # worker deaths in a row before encoding falls back to threads


class EncoderUnavailableError(BotError):
    def __init__(self) -> None:
        super().__init__("The audio encoder stopped; try again in a moment.")


class EncoderHandle(Protocol):
    async def encode(self, pcm: bytes) -> list[bytes]: ...

    def encode_now(self, frame: bytes) -> bytes | None: ...

    def close(self) -> None: ...


class Encoding(Protocol):
    #: Frames worth gathering before a batch is sent (while the buffer is well stocked).
    batch_frames: int

    def open(self, settings: EncoderSettings) -> EncoderHandle: ...

    def pids(self) -> list[int]: ...

    def close(self) -> None: ...


# ---------------------------------------------------------------------------- threads


class _ThreadHandle:
    def __init__(self, pool: ThreadPoolExecutor, settings: EncoderSettings) -> None:
        self._pool = pool
        self.encoder = OpusEncoder(settings)

    async def encode(self, pcm: bytes) -> list[bytes]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, self.encoder.encode_many, pcm)

    def encode_now(self, frame: bytes) -> bytes | None:
        return self.encoder.encode(frame)

    def close(self) -> None:
        pass  # the encoder goes with the handle


class ThreadEncoding:
    """Encoders in this process, on one thread by default (the default encoding).

    libopus runs outside the GIL, but every frame's Python around it needs the GIL back,
    and so does the sender for every packet: a second encoder thread only adds a
    contender. On 2 vCPUs one thread carried 50 mp3 streams within the sender's 25 ms p99,
    two threads 17-25 (`docs/performance.md`). Beyond one core of encoding, use worker
    processes (`OPUS_ENCODER_PROCESSES`).
    """

    batch_frames = 1

    def __init__(self, workers: int | None = None) -> None:
        self.workers = workers or 1
        self._pool: ThreadPoolExecutor | None = None

    def open(self, settings: EncoderSettings) -> EncoderHandle:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(
                max_workers=self.workers,
                thread_name_prefix="opus-encode",
            )
        return _ThreadHandle(self._pool, settings)

    def pids(self) -> list[int]:
        return []

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


# ---------------------------------------------------------------------------- processes


class _Worker:
    """One encoder process and the answers it owes, in order (it answers in order)."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.waiting: collections.deque[asyncio.Future[list[bytes]]] = collections.deque()
        self.reader = asyncio.get_running_loop().create_task(self._read_answers())

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None and not self.reader.done()

    def send(self, operation: int, key: int, body: bytes) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(worker.HEADER.pack(operation, key, len(body)) + body)

    async def _read_answers(self) -> None:
        stdout = self.proc.stdout
        assert stdout is not None
        try:
            while True:
                head = await stdout.readexactly(worker.HEADER.size)
                operation, _key, length = worker.HEADER.unpack(head)
                body = await stdout.readexactly(length)
                future = self.waiting.popleft()
                if future.done():
                    continue  # its buffer was dropped meanwhile
                if operation == worker.ENCODED:
                    future.set_result(worker.unpack_packets(body))
                else:
                    future.set_exception(EncoderUnavailableError())
                    log.error("Opus encoder process refused a batch: %s", body[:200])
        except (asyncio.IncompleteReadError, ConnectionError):
            pass  # the process ended
        finally:
            while self.waiting:
                future = self.waiting.popleft()
                if not future.done():
                    future.set_exception(EncoderUnavailableError())

    async def close(self) -> None:
        if self.proc.stdin is not None:
            with contextlib.suppress(Exception):
                self.proc.stdin.close()
        try:
            await asyncio.wait_for(self.proc.wait(), 5)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        await asyncio.gather(self.reader, return_exceptions=True)


class _ProcessHandle:
    def __init__(self, encoding: ProcessEncoding, key: int, settings: EncoderSettings) -> None:
        self._encoding = encoding
        self.key = key
        self.settings = settings
        self._worker: _Worker | None = None
        self._closed = False

    async def encode(self, pcm: bytes) -> list[bytes]:
        if self._closed:
            return []
        if self._worker is None:
            self._worker = await self._encoding._worker_for(self.key)
            self._worker.send(worker.OPEN, self.key, _settings_json(self.settings))
        elif not self._worker.alive:
            raise EncoderUnavailableError()  # the encoder and its state died with it
        future: asyncio.Future[list[bytes]] = asyncio.get_running_loop().create_future()
        try:
            self._worker.send(worker.ENCODE, self.key, pcm)
        except (ConnectionError, RuntimeError):  # its pipe is gone: the worker is dying
            self._encoding._died(self._worker)
            raise EncoderUnavailableError() from None
        # Queued after the write, with no await in between: the answer cannot come first.
        self._worker.waiting.append(future)
        try:
            packets = await future
        except EncoderUnavailableError:
            self._encoding._died(self._worker)
            raise
        self._encoding.deaths = 0
        return packets

    def encode_now(self, frame: bytes) -> bytes | None:
        return None  # the encoder's state is in the worker: only `encode()` can reach it

    def close(self) -> None:
        """Free the worker's encoder; safe from any thread (the sender's, at a stop)."""
        if self._closed:
            return
        self._closed = True
        found = self._worker
        if found is not None:
            self._encoding._call_soon(self._send_close, found)

    def _send_close(self, found: _Worker) -> None:
        if found.alive:
            with contextlib.suppress(Exception):
                found.send(worker.CLOSE, self.key, b"")


def _settings_json(settings: EncoderSettings) -> bytes:
    return json.dumps(dataclasses.asdict(settings)).encode()


class ProcessEncoding:
    """Encoders in `workers` processes (`bot.audio.encoder_worker`), fed over pipes by the
    event loop: no thread of this process waits on them. Each buffer's encoder lives in
    one worker, chosen by its key."""

    batch_frames = 25  # 500 ms per round trip while the buffer is well stocked

    def __init__(self, workers: int, *, python: str = sys.executable) -> None:
        if workers < 1:
            raise ValueError("at least one worker process")
        self.workers = workers
        self.python = python
        self._slots: list[_Worker | None] = [None] * workers
        self._starting: list[asyncio.Task[_Worker] | None] = [None] * workers
        self._keys = itertools.count(1)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self.deaths = 0  # worker deaths since the last start that lived
        self._fallback: ThreadEncoding | None = None

    def open(self, settings: EncoderSettings) -> EncoderHandle:
        if self._closed:
            raise EncoderUnavailableError()
        if self.deaths >= MAX_DEATHS:
            # Workers die as soon as they start (no memory, a broken install): encode here
            # rather than fail every message, and say so once.
            if self._fallback is None:
                log.error(
                    "Opus encoder processes keep dying (%d in a row); encoding on threads",
                    self.deaths,
                )
                self._fallback = ThreadEncoding()
            return self._fallback.open(settings)
        return _ProcessHandle(self, next(self._keys), settings)

    async def start(self) -> None:
        """Start every worker now (the first message would otherwise wait for one)."""
        await asyncio.gather(*(self._worker_for(n) for n in range(self.workers)))

    def pids(self) -> list[int]:
        return [w.proc.pid for w in self._slots if w is not None and w.alive]

    async def aclose(self) -> None:
        self._closed = True
        if self._fallback is not None:
            self._fallback.close()
        slots, self._slots = self._slots, [None] * self.workers
        await asyncio.gather(*(w.close() for w in slots if w is not None))

    def close(self) -> None:
        """Synchronous close for `Encoding`; prefer `aclose()` on the loop."""
        self._closed = True
        for found in self._slots:
            if found is not None and found.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    found.proc.kill()

    async def _worker_for(self, key: int) -> _Worker:
        self._loop = asyncio.get_running_loop()
        n = key % self.workers
        found = self._slots[n]
        if found is not None and found.alive:
            return found
        starting = self._starting[n]
        if starting is None or starting.done():
            starting = self._starting[n] = asyncio.ensure_future(self._spawn(n))
        return await asyncio.shield(starting)

    async def _spawn(self, n: int) -> _Worker:
        if self._closed:
            raise EncoderUnavailableError()
        proc = await asyncio.create_subprocess_exec(
            self.python,
            "-m",
            "bot.audio.encoder_worker",
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        found = self._slots[n] = _Worker(proc)
        log.info("Opus encoder process %d started (pid %d)", n, proc.pid)
        return found

    def _died(self, found: _Worker) -> None:
        if found in self._slots:
            self._slots[self._slots.index(found)] = None
            self.deaths += 1
            log.error("an Opus encoder process died; the next message starts another")

    def _call_soon(self, callback: Any, *args: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            callback(*args)
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(callback, *args)


_default: Encoding | None = None


def default_encoding() -> Encoding:
    """Threads of this process: what a player uses when none is given (tests, the CLI)."""
    global _default
    if _default is None:
        _default = ThreadEncoding()
    return _default


def encoding_from_settings(processes: int) -> ThreadEncoding | ProcessEncoding:
    return ProcessEncoding(processes) if processes > 0 else ThreadEncoding()


# ---------------------------------------------------------------------------- the buffer


class OpusFrameBuffer(FrameBuffer):
    """A `FrameBuffer` whose frames are Opus packets, encoded as they are written.

    The writer still writes PCM (48 kHz s16le stereo, any chunking), or Opus packets from
    upstream with `write_opus()`; readers get one packet per 20 ms, `OPUS_SILENCE` on
    underrun, b'' at the end, never blocking.
    """

    silence = OPUS_SILENCE
    accepts_opus = True  # `write_opus()`: Opus packets from upstream, played as they are

    def __init__(
        self,
        capacity: int = DEFAULT_CAPACITY_FRAMES,
        *,
        encoder: EncoderSettings | None = None,
        encoding: Encoding | None = None,
    ) -> None:
        super().__init__(capacity)
        self.settings = encoder or EncoderSettings()
        self.encoding = encoding or default_encoding()
        self._handle: EncoderHandle | None = None  # opened with the first PCM
        self._decoder: discord.opus.Decoder | None = None
        self._finishing: asyncio.Task[None] | None = None
        self.packets_passed = 0  # written by write_opus() as they came
        self.packets_transcoded = 0  # decoded and encoded again (not 20 ms long)

    def _encoder(self) -> EncoderHandle:
        if self._handle is None:
            self._handle = self.encoding.open(self.settings)
        return self._handle

    async def write_opus(self, packets: Sequence[bytes]) -> None:
        """Append Opus packets from upstream (ElevenLabs' `opus_48000_*`).

        20 ms packets are played as they are: no decoding, no encoding. Discord's players
        assume 20 ms per packet, so from the first packet of another duration on, the
        stream is decoded and encoded again in 20 ms frames.
        """
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        for packet in packets:
            if self._aborted:
                return
            if self._decoder is None and opus_packet_ms(packet) == FRAME_MS:
                await self._push_all((packet,))
                self.packets_passed += 1
                continue
            if self._decoder is None:
                self._decoder = discord.opus.Decoder()
            pcm = self._decoder.decode(packet)  # 48 kHz stereo, what write() takes
            self.packets_transcoded += 1
            await self.write(pcm)

    async def write(self, pcm: bytes | bytearray | memoryview) -> None:
        if self._aborted:
            return
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        self._partial += pcm
        ready = len(self._partial) // FRAME_BYTES
        if not ready:
            return
        if ready < self.encoding.batch_frames and len(self._frames) >= SHORT_OF_AUDIO:
            return  # enough is ready to play meanwhile: gather a fuller batch first
        await self._encode_ready()

    async def _encode_ready(self) -> None:
        whole = len(self._partial) // FRAME_BYTES * FRAME_BYTES
        batch = bytes(self._partial[:whole])
        del self._partial[:whole]
        handle = self._encoder()
        if self.frames_written == 0:
            # The item's first packet is what the listener waits for: encoded here, now
            # (a quarter of a millisecond), not after a round trip through the pool, which
            # costs 2-3 ms of thread wake-ups and GIL hand-overs.
            first = handle.encode_now(batch[:FRAME_BYTES])
            if first is not None:
                await self._push_all((first,))
                batch = batch[FRAME_BYTES:]
                if not batch:
                    return
        await self._push_all(await handle.encode(batch))

    async def _push_all(self, packets: Sequence[bytes], *, last: bool = False) -> None:
        for n, packet in enumerate(packets, 1):
            if self._aborted:
                return
            await self._wait_for_space()
            if self._aborted:
                return
            self._push(packet, finishing=last and n == len(packets))

    def finish(self) -> None:
        if self._finished or self._finishing is not None:
            return
        pending = bytes(self._partial)
        self._partial.clear()
        whole = len(pending) - len(pending) % FRAME_BYTES
        tail = pending[whole:]
        if tail and audioop.max(tail[: len(tail) & ~1], 2) > SILENT_PEAK:
            # The last partial frame is padded with silence; a silent one is dropped: it
            # would only add up to 20 ms of silence before the next item.
            pending = pending[:whole] + tail + bytes(FRAME_BYTES - len(tail))
        else:
            pending = pending[:whole]
        if not pending or self._aborted:
            self._done()
            return
        handle = self._encoder()
        packets = [handle.encode_now(f) for f in _frames(pending)]
        if all(p is not None for p in packets):
            # Encoded here: at most a frame (threads never hold whole frames back).
            for n, packet in enumerate(packets, 1):
                self._push(packet, finishing=n == len(packets))  # type: ignore[arg-type]
            self._done()
            return
        # The encoder is in another process: the last frames arrive a moment later.
        assert self._loop is not None, "written before"
        self._finishing = self._loop.create_task(self._finish_later(pending))

    async def _finish_later(self, pending: bytes) -> None:
        try:
            packets = await self._encoder().encode(pending)
            if packets:
                await self._push_all(packets, last=True)
        except Exception as error:  # the worker died at the very end: the rest is lost
            log.warning("the last %d frames could not be encoded: %s", len(pending), error)
        finally:
            self._done()

    def _done(self) -> None:
        with self._lock:
            self._finished = True
        self._data.set()
        if self._handle is not None:
            self._handle.close()

    def abort(self) -> None:
        super().abort()
        if self._handle is not None:
            self._handle.close()


def _frames(pcm: bytes) -> list[bytes]:
    return [pcm[i : i + FRAME_BYTES] for i in range(0, len(pcm), FRAME_BYTES)]
