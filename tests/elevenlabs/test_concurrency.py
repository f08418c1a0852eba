"""At most `max_concurrency` speech requests at once; a slot is held until the body is read.

The fake counts requests in flight on its side, which is what the service would see.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import pytest

from bot.elevenlabs.client import ElevenLabsClient
from bot.elevenlabs.errors import ServerError, StreamInterruptedError, VoiceNotFoundError
from tests.elevenlabs.conftest import RACHEL, TEXT, MakeClient, read_all
from tests.fakes import speech
from tests.fakes.elevenlabs import FakeElevenLabs


async def poll(condition: Callable[[], bool]) -> None:
    """Wait (bounded) for something the fake records a moment after the client acts."""
    async with asyncio.timeout(5):
        while not condition():  # noqa: ASYNC110 - the fake offers no event to wait on
            await asyncio.sleep(0.01)


async def wait_for_server_idle(fake: FakeElevenLabs) -> None:
    """The fake notices a hang-up a moment after the client; wait for it."""
    await poll(lambda: fake.tts_in_flight == 0)


@pytest.mark.parametrize("limit", [1, 2, 4])
async def test_n_plus_3_calls_never_put_more_than_n_on_the_service(
    fake_elevenlabs_factory: Any, make_client: MakeClient, limit: int
) -> None:
    # The fake answers 429 beyond `limit`, so a breach would also show as an error.
    fake = await fake_elevenlabs_factory(first_byte_delay=0.05, concurrency_limit=limit)
    client = make_client(fake, max_concurrency=limit)
    peak = 0

    async def one(i: int) -> bytes:
        nonlocal peak
        async with client.stream_speech(RACHEL, f"{TEXT} Number {i}.") as stream:
            peak = max(peak, client.in_flight)
            return b"".join([chunk async for chunk in stream])

    results = await asyncio.gather(*(one(i) for i in range(limit + 3)))

    for i, audio in enumerate(results):
        assert (
            audio
            == (await speech.render_speech(RACHEL, f"{TEXT} Number {i}.", "mp3_44100_128")).data
        )
    assert fake.max_tts_in_flight == limit
    assert peak == limit
    assert fake.tts_count == limit + 3  # nobody was refused and retried
    assert all(r.status == 200 for r in fake.tts_requests)
    assert client.in_flight == 0


async def test_the_slot_is_released_when_the_body_is_read_not_when_the_caller_lets_go(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs, make_client: MakeClient
) -> None:
    client = make_client(fake_elevenlabs, max_concurrency=1)
    async with client.stream_speech(RACHEL, TEXT) as held:
        first = b"".join([chunk async for chunk in held])
        assert held.complete
        assert client.in_flight == 0
        # Still inside the first block: the only slot is free for the next utterance.
        async with asyncio.timeout(5):
            _, second = await read_all(client, text="And the next one.")
    assert first and second
    assert fake_elevenlabs.max_tts_in_flight == 1


async def test_open_and_iterate_without_a_block_releases_at_the_end(
    make_client: MakeClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    client = make_client(fake_elevenlabs, max_concurrency=1)
    stream = client.stream_speech(RACHEL, TEXT)
    await stream.open()
    assert client.in_flight == 1

    audio = b"".join([chunk async for chunk in stream])

    assert audio and stream.complete
    assert client.in_flight == 0
    await stream.aclose()  # harmless twice
    assert client.in_flight == 0


async def test_waiting_callers_are_queued_not_refused(
    fake_elevenlabs_factory: Any, make_client: MakeClient
) -> None:
    fake = await fake_elevenlabs_factory(first_byte_delay=0.05)
    client = make_client(fake, max_concurrency=1)

    first = client.stream_speech(RACHEL, TEXT)
    await first.open()
    waiting = asyncio.create_task(read_all(client, text="Second in line."))
    await asyncio.sleep(0.1)
    assert not waiting.done()
    assert fake.tts_count == 1  # the second has not been sent yet

    async for _ in first:
        pass
    _, audio = await asyncio.wait_for(waiting, 5)
    assert audio
    assert fake.max_tts_in_flight == 1


async def test_cancel_while_waiting_for_the_first_byte_releases_the_slot(
    fake_elevenlabs_factory: Any, make_client: MakeClient
) -> None:
    fake = await fake_elevenlabs_factory(first_byte_delay=30)
    client = make_client(fake, max_concurrency=1)
    task = asyncio.create_task(read_all(client))
    await poll(lambda: fake.tts_in_flight > 0)

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert client.in_flight == 0
    await wait_for_server_idle(fake)
    fake.first_byte_delay = 0
    async with asyncio.timeout(5):
        _, audio = await read_all(client)  # the slot really is free
    assert audio


async def test_cancel_while_reading_the_body_releases_the_slot(
    fake_elevenlabs_factory: Any, make_client: MakeClient
) -> None:
    fake = await fake_elevenlabs_factory(pace=0.5)  # half real time: seconds of audio
    client = make_client(fake, max_concurrency=1)
    got_audio = asyncio.Event()

    async def listen() -> None:
        async with client.stream_speech(RACHEL, TEXT) as stream:
            async for _ in stream:
                got_audio.set()

    task = asyncio.create_task(listen())
    await asyncio.wait_for(got_audio.wait(), 5)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert client.in_flight == 0
    await wait_for_server_idle(fake)
    assert fake.tts_requests[0].client_disconnected or fake.tts_requests[0].finished_at


async def test_cancel_while_queued_leaks_no_slot(
    fake_elevenlabs_factory: Any, make_client: MakeClient
) -> None:
    fake = await fake_elevenlabs_factory(first_byte_delay=0.05)
    client = make_client(fake, max_concurrency=2)
    holders = [client.stream_speech(RACHEL, TEXT) for _ in range(2)]
    for stream in holders:
        await stream.open()
    queued = [asyncio.create_task(read_all(client)) for _ in range(3)]
    await asyncio.sleep(0.05)
    for task in queued:
        task.cancel()
    await asyncio.gather(*queued, return_exceptions=True)
    for stream in holders:
        await stream.aclose()

    assert client.in_flight == 0
    fake.reset_records()
    async with asyncio.timeout(5):
        await asyncio.gather(*(read_all(client) for _ in range(4)))
    assert fake.max_tts_in_flight == 2


async def test_errors_release_the_slot(
    make_client: MakeClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    client = make_client(fake_elevenlabs, max_concurrency=1)
    fake_elevenlabs.fail_next(503, times=10)
    with pytest.raises(ServerError):
        await read_all(client)
    fake_elevenlabs.clear_faults()
    with pytest.raises(VoiceNotFoundError):
        await read_all(client, "no-such-voice")
    fake_elevenlabs.cut_next(1000)
    stream = client.stream_speech(RACHEL, TEXT)
    await stream.open()
    with pytest.raises(StreamInterruptedError):
        async for _ in stream:
            pass

    assert client.in_flight == 0
    async with asyncio.timeout(5):
        _, audio = await read_all(client)
    assert audio


async def test_breaking_out_early_releases_on_exit(
    make_client: MakeClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    client = make_client(fake_elevenlabs, max_concurrency=1)
    async with client.stream_speech(RACHEL, TEXT) as stream:
        async for _ in stream:
            break
        assert not stream.complete
    assert client.in_flight == 0
    await wait_for_server_idle(fake_elevenlabs)


async def test_abandoning_the_iteration_after_the_first_chunk_releases(
    make_client: MakeClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    client = make_client(fake_elevenlabs, max_concurrency=1)
    stream = client.stream_speech(RACHEL, TEXT)
    await stream.open()
    chunks = stream.__aiter__()
    assert await anext(chunks)
    await chunks.aclose()  # what `break` plus garbage collection amounts to

    assert client.in_flight == 0
    assert not stream.complete
