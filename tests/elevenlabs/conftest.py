"""Fixtures for the client tests: one aiohttp session per test and clients bound to a fake."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.elevenlabs.client import ElevenLabsClient, RetryPolicy
from tests.fakes.elevenlabs import FakeElevenLabs

RACHEL = "21m00Tcm4TlvDq8ikWAM"
TEXT = "Hello there, this is a test."

# Retries without waiting: tiny delays, and a jitter source that always says "the least".
FAST_RETRY = RetryPolicy(max_retries=3, budget=5.0, base_delay=0.001, max_delay=0.004)


def no_jitter() -> float:
    return 0.0


MakeClient = Callable[..., ElevenLabsClient]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
def make_client(http: aiohttp.ClientSession) -> MakeClient:
    """`make_client(fake, **kwargs)`: a client on the shared session, retrying fast."""

    def make(fake: FakeElevenLabs, **kwargs: Any) -> ElevenLabsClient:
        kwargs.setdefault("retry", FAST_RETRY)
        kwargs.setdefault("rng", no_jitter)
        api_key = kwargs.pop("api_key", fake.api_key)
        return ElevenLabsClient(http, SecretStr(api_key), base_url=fake.base_url, **kwargs)

    return make


@pytest.fixture
def client(fake_elevenlabs: FakeElevenLabs, make_client: MakeClient) -> ElevenLabsClient:
    return make_client(fake_elevenlabs)


async def read_all(client: ElevenLabsClient, voice_id: str = RACHEL, text: str = TEXT, **kw: Any):
    """Stream one utterance to the end: (stream, audio bytes)."""
    async with client.stream_speech(voice_id, text, **kw) as stream:
        audio = b"".join([chunk async for chunk in stream])
    return stream, audio
