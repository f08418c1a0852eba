"""Opus encoding in worker processes: the same packets as in-process, kept in order, and a
worker that dies fails only what it held."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import os
import signal
import sys
from collections.abc import AsyncIterator

import pytest

from bot.audio import encoder_worker as worker
from bot.audio.encoding import (
    MAX_DEATHS,
    EncoderUnavailableError,
    OpusFrameBuffer,
    ProcessEncoding,
    ThreadEncoding,
)
from bot.audio.frames import FRAME_BYTES
from bot.audio.opus import EncoderSettings, OpusEncoder
from bot.testing.pcm import chirp
from tests.resources import child_pids

SETTINGS = EncoderSettings(complexity=3)


@pytest.fixture
async def workers() -> AsyncIterator[ProcessEncoding]:
    encoding = ProcessEncoding(2)
    await encoding.start()
    yield encoding
    await encoding.aclose()


async def fill(buffer: OpusFrameBuffer, pcm: bytes, chunk: int = 5000) -> list[bytes]:
    """Write `pcm` in uneven chunks while reading packets as a player would, then drain."""
    packets: list[bytes] = []

    async def read_until_done() -> None:
        while True:
            packet = buffer.pop_ready()
            if packet is not None:
                packets.append(packet)
            elif buffer.finished and not len(buffer):
                return
            else:
                await asyncio.sleep(0.001)

    reader = asyncio.create_task(read_until_done())
    for start in range(0, len(pcm), chunk):
        await buffer.write(pcm[start : start + chunk])
    buffer.finish()
    await asyncio.wait_for(reader, 30)
    return packets


def padded(pcm: bytes) -> bytes:
    return pcm + bytes(-len(pcm) % FRAME_BYTES)


async def test_worker_packets_are_the_in_process_packets(workers: ProcessEncoding) -> None:
    pcm = chirp(200, 3000, 3.01)  # 150.5 frames: batches, and an audible last half frame
    sent = await fill(OpusFrameBuffer(encoder=SETTINGS, encoding=workers), pcm)
    # Byte for byte: one encoder's state carried across every batch, in order (the
    # in-process encoder's fidelity is checked in test_opus).
    assert sent == OpusEncoder(SETTINGS).encode_many(padded(pcm))


async def test_buffers_at_once_keep_their_own_encoders(workers: ProcessEncoding) -> None:
    sounds = [chirp(200 + 300 * n, 2500, 1.0) for n in range(5)]
    buffers = [OpusFrameBuffer(encoder=SETTINGS, encoding=workers) for _ in sounds]
    results = await asyncio.gather(
        *(fill(b, s, 3000 + 700 * n) for n, (b, s) in enumerate(zip(buffers, sounds, strict=True)))
    )
    for sound, packets in zip(sounds, results, strict=True):
        assert packets == OpusEncoder(SETTINGS).encode_many(padded(sound))


async def test_the_threads_give_the_same_packets_too() -> None:
    threads = ThreadEncoding(2)
    try:
        pcm = chirp(300, 2000, 1.5)
        sent = await fill(OpusFrameBuffer(encoder=SETTINGS, encoding=threads), pcm, 1234)
        assert sent == OpusEncoder(SETTINGS).encode_many(padded(pcm))
    finally:
        threads.close()


async def test_a_dead_worker_fails_its_buffer_and_a_new_one_takes_over() -> None:
    encoding = ProcessEncoding(1)
    try:
        await encoding.start()
        (pid,) = encoding.pids()
        buffer = OpusFrameBuffer(encoder=SETTINGS, encoding=encoding)
        await buffer.write(chirp(300, 2000, 0.2))  # its encoder now lives in that worker
        os.kill(pid, signal.SIGKILL)
        with pytest.raises(EncoderUnavailableError):
            await buffer.write(chirp(300, 2000, 0.6))  # a whole batch: it goes out at once
        again = await fill(
            OpusFrameBuffer(encoder=SETTINGS, encoding=encoding), chirp(300, 900, 0.4)
        )
        assert len(again) == 20
        assert encoding.pids() and encoding.pids() != [pid]
    finally:
        await encoding.aclose()
    assert not child_pids() & {pid, *encoding.pids()}


async def test_aclose_reaps_the_workers() -> None:
    encoding = ProcessEncoding(2)
    await encoding.start()
    pids = set(encoding.pids())
    assert len(pids) == 2 and pids <= child_pids()
    await encoding.aclose()
    assert not pids & child_pids()
    with pytest.raises(EncoderUnavailableError):
        encoding.open(SETTINGS)


async def test_the_worker_speaks_its_protocol_and_refuses_unknown_encoders() -> None:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot.audio.encoder_worker",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdin is not None and proc.stdout is not None
    frames = chirp(300, 900, 0.04)  # two frames
    proc.stdin.write(worker.HEADER.pack(worker.ENCODE, 7, len(frames)) + frames)
    settings = json.dumps(dataclasses.asdict(SETTINGS)).encode()
    proc.stdin.write(worker.HEADER.pack(worker.OPEN, 8, len(settings)) + settings)
    proc.stdin.write(worker.HEADER.pack(worker.ENCODE, 8, len(frames)) + frames)
    proc.stdin.write(worker.HEADER.pack(worker.CLOSE, 8, 0))
    proc.stdin.write(worker.HEADER.pack(worker.ENCODE, 8, len(frames)) + frames)
    proc.stdin.close()
    answers = []
    while head := await proc.stdout.read(worker.HEADER.size):
        operation, key, length = worker.HEADER.unpack(head)
        answers.append((operation, key, await proc.stdout.readexactly(length)))
    assert await proc.wait() == 0
    assert [(op, key) for op, key, _ in answers] == [
        (worker.FAILED, 7),
        (worker.ENCODED, 8),
        (worker.FAILED, 8),
    ]
    assert worker.unpack_packets(answers[1][2]) == OpusEncoder(SETTINGS).encode_many(frames)


async def test_workers_that_die_at_once_give_way_to_threads() -> None:
    encoding = ProcessEncoding(1, python="/bin/false")  # a worker that exits at once
    try:
        for _ in range(MAX_DEATHS):
            with pytest.raises(EncoderUnavailableError):
                await OpusFrameBuffer(encoder=SETTINGS, encoding=encoding).write(
                    chirp(300, 900, 0.1)
                )
        # From now on the buffers encode on threads, and the audio still comes out.
        packets = await fill(
            OpusFrameBuffer(encoder=SETTINGS, encoding=encoding), chirp(300, 900, 0.2)
        )
        assert len(packets) == 10 and not encoding.pids()
    finally:
        await encoding.aclose()
