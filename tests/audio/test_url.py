"""Plain HTTP audio (voice previews) through the same decoder, with no ElevenLabs key."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from pydantic import SecretStr

from bot.audio.frames import FRAME_BYTES
from bot.audio.url import UrlFetchError, UrlStream
from bot.elevenlabs.client import ElevenLabsClient
from bot.speech import Synthesizer
from bot.testing.pcm import align
from tests.fakes import speech
from tests.fakes.elevenlabs import FakeElevenLabs

VOICE = "21m00Tcm4TlvDq8ikWAM"


async def test_a_preview_url_plays_and_carries_no_key(fake_elevenlabs: FakeElevenLabs) -> None:
    voice = fake_elevenlabs.voice(VOICE)
    assert voice is not None
    text = f"Hello, I am {voice['name']}. {voice.get('description') or ''}".strip()
    reference = await speech.reference_pcm(VOICE, text, channels=2)
    async with aiohttp.ClientSession() as session:
        client = ElevenLabsClient(
            session, SecretStr(fake_elevenlabs.api_key), base_url=fake_elevenlabs.base_url
        )
        job = Synthesizer(client).url_job(session, fake_elevenlabs.preview_url(VOICE))
        task = asyncio.create_task(job.run())
        frames = [frame async for frame in job.frames.frames()]
        await task
    assert frames and all(len(f) == FRAME_BYTES for f in frames)
    assert align(reference, b"".join(frames)).correlation > 0.9
    (request,) = fake_elevenlabs.requests
    assert request.route == "preview"
    assert {k.lower() for k in request.headers}.isdisjoint({"xi-api-key", "authorization"})
    assert not request.api_key_present
    assert job.timings.first_byte_at is not None and job.timings.first_frame_at is not None


async def test_a_missing_preview_is_a_clear_error(fake_elevenlabs: FakeElevenLabs) -> None:
    async with aiohttp.ClientSession() as session:
        stream = UrlStream(session, fake_elevenlabs.url("/previews/nope.mp3"))
        with pytest.raises(UrlFetchError, match="HTTP 404"):
            await stream.open()
        await stream.aclose()


def test_only_http_urls_are_accepted() -> None:
    with pytest.raises(UrlFetchError):
        UrlStream(None, "file:///etc/passwd")  # type: ignore[arg-type]


async def test_an_unreachable_host_is_a_clear_error(unused_tcp_port: int) -> None:
    async with aiohttp.ClientSession() as session:
        stream = UrlStream(session, f"http://127.0.0.1:{unused_tcp_port}/a.mp3")
        with pytest.raises(UrlFetchError, match="could not be downloaded"):
            await stream.open()
