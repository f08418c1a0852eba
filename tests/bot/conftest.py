"""The real bot, logged in against the fake Discord REST, speaking through the fake ElevenLabs
into loopback voice clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from bot.app import TTSBot
from bot.config import Settings, load_settings
from bot.testing.loopback import LoopbackVoiceClient
from tests.fakes.discord import DiscordHarness, FakeDiscordREST
from tests.fakes.elevenlabs import FakeElevenLabs

BotFactory = Callable[..., Awaitable[DiscordHarness]]


def bot_settings(
    rest: FakeDiscordREST, fake: FakeElevenLabs, tmp_path: Any, **overrides: Any
) -> Settings:
    values: dict[str, Any] = {
        "discord_token": rest.token,
        "discord_api_base": rest.api_base,
        "elevenlabs_api_key": fake.api_key,
        "elevenlabs_base_url": fake.base_url,
        "elevenlabs_output_format": "pcm_48000",
        "database_url": f"sqlite+aiosqlite:///{tmp_path}/bot.sqlite3",
        "log_level": "DEBUG",
    }
    values.update(overrides)
    return load_settings(None, **values)


@pytest.fixture
async def tts_factory(
    discord_harness_factory: Any,
    discord_rest: FakeDiscordREST,
    fake_elevenlabs: FakeElevenLabs,
    tmp_path: Any,
) -> AsyncIterator[BotFactory]:
    """`await make(voice={"alice": "lounge"}, **settings)`: a harness around a real TTSBot."""

    async def make(*, voice: dict[str, str] | None = None, **overrides: Any) -> DiscordHarness:
        settings = bot_settings(discord_rest, fake_elevenlabs, tmp_path, **overrides)
        bot = TTSBot(settings, voice_client_cls=LoopbackVoiceClient)
        harness = await discord_harness_factory(bot, voice=voice)
        await bot.catalog.refresh()
        return harness

    yield make


@pytest.fixture
async def tts(tts_factory: BotFactory) -> DiscordHarness:
    """The bot with alice in the `lounge` voice channel."""
    return await tts_factory(voice={"alice": "lounge"})
