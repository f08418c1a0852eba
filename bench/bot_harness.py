"""The real `TTSBot`, logged in against the fake Discord REST, voicing through loopback clients.

The same wiring as `tests/bot/conftest.py`, outside pytest: the benchmarks time `/speak` and the
message reader through the bot's own command tree, cogs, services and player.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import AsyncIterator
from typing import Any

from bot.app import TTSBot
from bot.config import load_settings
from bot.runtime import tune_for_serving
from bot.testing.loopback import LoopbackVoiceClient
from tests.fakes.discord import DiscordHarness, FakeDiscordREST, login_bot, use_discord_api_base


@contextlib.asynccontextmanager
async def tts_bot(
    base_url: str,
    api_key: str,
    *,
    voice_client_cls: type[LoopbackVoiceClient] = LoopbackVoiceClient,
    seed: bool = True,
    **overrides: Any,
) -> AsyncIterator[DiscordHarness]:
    """A logged-in TTSBot with one seeded guild (alice in `lounge`), closed on exit."""
    with tempfile.TemporaryDirectory(prefix="bench-bot-") as tmp:
        async with FakeDiscordREST() as rest:
            with use_discord_api_base(rest.api_base):
                values: dict[str, Any] = {
                    "discord_token": rest.token,
                    "discord_api_base": rest.api_base,
                    "elevenlabs_api_key": api_key,
                    "elevenlabs_base_url": base_url,
                    "database_url": f"sqlite+aiosqlite:///{tmp}/bot.sqlite3",
                    "log_level": "WARNING",
                    "quota_default_allowance": 100_000_000,
                }
                values.update(overrides)
                tune_for_serving()  # as `python -m bot run` does
                bot = TTSBot(load_settings(None, **values), voice_client_cls=voice_client_cls)
                harness = DiscordHarness(bot, rest, timeout=30.0)
                try:
                    await login_bot(bot, rest)
                    if seed:
                        await harness.seed_guild(voice={"alice": "lounge"})
                    await bot.catalog.refresh()
                    yield harness
                finally:
                    await bot.close()
