"""Loopback voice fixtures: a real discord.py ``VoiceClient`` whose only fake is the UDP send.

See ``bot.testing.loopback`` for what is real and what stands in for Discord.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bot.testing.loopback import LoopbackVoiceClient

LoopbackVoiceFactory = Callable[..., Awaitable[LoopbackVoiceClient]]


async def _close_and_check(voice: LoopbackVoiceClient) -> None:
    await voice.close()
    left = [t.name for t in voice.threads() if t.is_alive()]
    assert not left, f"threads left behind by the loopback voice client: {left}"


@pytest.fixture
async def loopback_voice() -> AsyncIterator[LoopbackVoiceClient]:
    """A connected loopback voice client in its own guild; closed (no thread left) afterwards."""
    voice = await LoopbackVoiceClient.create()
    try:
        yield voice
    finally:
        await _close_and_check(voice)


@pytest.fixture
async def loopback_voice_factory() -> AsyncIterator[LoopbackVoiceFactory]:
    """``await make(**kwargs)`` → ``LoopbackVoiceClient.create(**kwargs)``, all closed afterwards.

    For several guilds, a channel of an existing client (``channel=``), another encryption
    mode, or a faster-than-real-time player (``speed=``).
    """
    created: list[LoopbackVoiceClient] = []

    async def make(**kwargs: Any) -> LoopbackVoiceClient:
        voice = await LoopbackVoiceClient.create(**kwargs)
        created.append(voice)
        return voice

    try:
        yield make
    finally:
        for voice in reversed(created):
            await _close_and_check(voice)
