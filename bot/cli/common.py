"""What the CLI commands share: settings, logging, and a client on one session."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator

import aiohttp

from bot.config import Settings, load_settings
from bot.elevenlabs.client import ElevenLabsClient
from bot.logging_setup import configure_logging


def cli_settings(*, verbose: bool = False) -> Settings:
    """Settings for a CLI command; logs stay quiet unless asked, and never hold secrets."""
    settings = load_settings()
    configure_logging(
        "DEBUG" if verbose else "WARNING",
        secrets=(settings.discord_token, settings.elevenlabs_api_key),
    )
    return settings


@contextlib.asynccontextmanager
async def elevenlabs_client(settings: Settings) -> AsyncIterator[ElevenLabsClient]:
    """A client on its own session, closed on the way out; ConfigError when no key is set."""
    settings.require_elevenlabs_key()  # before opening a session for nothing
    async with aiohttp.ClientSession() as session:
        yield ElevenLabsClient.from_settings(settings, session)
