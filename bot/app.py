"""The Discord bot: lifecycle in one place.

`setup_hook` builds everything that needs the event loop (the HTTP session, the
ElevenLabs client, the voice service, the catalogue) and loads every cog;
`close()` stops every player, leaves voice and closes the session. Nothing is
built at import time.
"""

from __future__ import annotations

import gc
import logging
import pkgutil
from typing import Any

import aiohttp
import discord
from discord.ext import commands
from pydantic import SecretStr

import cogs
from bot.audio.encoding import ProcessEncoding, encoding_from_settings
from bot.config import ConfigError, Settings
from bot.elevenlabs.client import ElevenLabsClient
from bot.player import EncoderSettings
from bot.preferences import PreferenceService
from bot.quota.service import AccountExhausted, QuotaService, QuotaSettings
from bot.reader import MessageReader
from bot.speech import Synthesizer
from bot.storage.store import Storage
from bot.tree import BotTree
from bot.tts import SpeechService
from bot.voice import VoiceService
from bot.voices.catalog import VoiceCatalog

log = logging.getLogger(__name__)

INVITE_PERMISSIONS = discord.Permissions(
    view_channel=True,
    send_messages=True,
    embed_links=True,
    add_reactions=True,
    read_message_history=True,
    connect=True,
    speak=True,
)
INVITE_SCOPES = ("bot", "applications.commands")


def build_intents(settings: Settings) -> discord.Intents:
    intents = discord.Intents.none()
    intents.guilds = True
    intents.voice_states = True
    intents.guild_messages = True
    intents.guild_reactions = True
    intents.message_content = settings.read_messages
    return intents


def invite_url(application_id: int) -> str:
    return discord.utils.oauth_url(
        application_id, permissions=INVITE_PERMISSIONS, scopes=INVITE_SCOPES
    )


def cog_modules() -> list[str]:
    """Every module of the `cogs` package, each an extension with `setup(bot)`."""
    return sorted(
        f"{cogs.__name__}.{info.name}"
        for info in pkgutil.iter_modules(cogs.__path__)
        if not info.name.startswith("_")
    )


def apply_discord_api_base(base: str) -> None:
    """Point discord.py's REST calls at `base` (a rate-limit proxy, or a test fake)."""
    discord.http.Route.BASE = base.rstrip("/")


class TTSBot(commands.AutoShardedBot):
    """The ElevenLabs text-to-speech bot."""

    def __init__(
        self,
        settings: Settings,
        *,
        voice_client_cls: type[discord.VoiceClient] = discord.VoiceClient,
        start_services: bool = True,
        **options: Any,
    ) -> None:
        if settings.shard_ids is not None and settings.shard_count is None:
            raise ConfigError("SHARD_IDS needs SHARD_COUNT: set both, or neither")
        apply_discord_api_base(settings.discord_api_base)
        super().__init__(
            command_prefix=commands.when_mentioned,
            help_command=None,
            intents=build_intents(settings),
            tree_cls=BotTree,
            allowed_mentions=discord.AllowedMentions.none(),
            shard_count=settings.shard_count,
            shard_ids=settings.shard_ids,
            chunk_guilds_at_startup=False,
            member_cache_flags=discord.MemberCacheFlags.from_intents(build_intents(settings)),
            **options,
        )
        self.settings = settings
        self.voice_client_cls = voice_client_cls
        # False for `python -m bot sync`: the commands are needed, not ElevenLabs.
        self.start_services = start_services
        self.http_session: aiohttp.ClientSession | None = None
        self.elevenlabs: ElevenLabsClient
        self.synthesizer: Synthesizer
        self.voices: VoiceService
        self.catalog: VoiceCatalog
        self.speech: SpeechService
        self.storage: Storage | None = None
        self.preferences: PreferenceService
        self.quota: QuotaService | None = None
        self.reader: MessageReader | None = None

    async def setup_hook(self) -> None:
        settings = self.settings
        self.http_session = aiohttp.ClientSession()
        if self.start_services:
            self.elevenlabs = ElevenLabsClient.from_settings(settings, self.http_session)
        else:
            self.elevenlabs = ElevenLabsClient(
                self.http_session, SecretStr(""), base_url=settings.elevenlabs_base_url
            )
        self.synthesizer = Synthesizer(
            self.elevenlabs,
            ffmpeg_path=settings.ffmpeg_path,
            max_bytes=settings.max_audio_bytes,
            mp3_decoder=settings.mp3_decoder,
        )
        # Threads by default; worker processes (started now, not at the first message) when
        # OPUS_ENCODER_PROCESSES asks for them.
        self.encoding = encoding_from_settings(settings.opus_encoder_processes)
        if isinstance(self.encoding, ProcessEncoding):
            await self.encoding.start()
        self.voices = VoiceService(
            voice_client_cls=self.voice_client_cls,
            queue_limit=settings.queue_limit,
            encoding=self.encoding,
            encoder=EncoderSettings(
                application=settings.opus_application,
                bitrate=settings.opus_bitrate_kbps,
                signal_type=settings.opus_signal_type,
                complexity=settings.opus_complexity,
                channels=settings.opus_channels,
            ),
            idle_timeout=settings.idle_disconnect_seconds,
        )
        client = self.elevenlabs
        self.catalog = VoiceCatalog(
            lambda: client.iter_voices(),
            tier=self._subscription_tier,
            refresh_interval=settings.catalog_refresh_seconds,
        )
        if self.start_services:
            self.catalog.start()
        self.storage = await Storage.open(settings.database_url)
        self.preferences = PreferenceService(
            self.storage,
            self.catalog,
            self.elevenlabs,
            default_voice_id=settings.elevenlabs_default_voice,
            default_model_id=settings.elevenlabs_model,
        )
        self.quota = QuotaService(
            QuotaSettings.from_settings(settings).ledger(self.storage.engine),
            client=self.elevenlabs,
            default_model=settings.elevenlabs_model,
            on_account_exhausted=self._tell_owners_credits_exhausted,
        )
        if self.start_services:
            self.quota.start()
        self.speech = SpeechService(
            synthesizer=self.synthesizer,
            voices=self.voices,
            resolver=self.preferences,
            output_format=settings.elevenlabs_output_format,
            max_text_chars=settings.max_text_chars,
            http_session=self.http_session,
            charge=self.quota.charge,
        )
        self.reader = MessageReader(
            config=self.storage.reader,
            users=self.storage.users,
            speech=self.speech,
            voices=self.voices,
        )
        if self.start_services:
            await self.reader.start()
        for module in cog_modules():
            await self.load_extension(module)
        log.info("loaded %d cogs", len(self.cogs))

    async def sync_commands(self, guild: discord.abc.Snowflake | None = None) -> list[Any]:
        """Sync the tree: global commands, or one guild's (its own plus the global ones).

        The developer server also gets the owner-only commands registered there.
        """
        saved = self.tree.get_commands(guild=guild) if guild is not None else []
        if guild is not None:
            self.tree.copy_global_to(guild=guild)
        try:
            synced = await self.tree.sync(guild=guild)
        finally:
            if guild is not None:
                # copy_global_to changed the tree for good: put the guild's own commands back.
                self.tree.clear_commands(guild=guild)
                for command in saved:
                    self.tree.add_command(command, guild=guild)
        dev = self.settings.dev_guild_id
        if guild is None and dev is not None:
            await self.tree.sync(guild=discord.Object(dev))
        return synced

    async def _tell_owners_credits_exhausted(self, notice: AccountExhausted) -> None:
        """ElevenLabs' own credits ran out: the operator must act, so tell them once."""
        log.warning("the ElevenLabs account is out of credits")
        for owner_id in self.settings.owner_ids:
            try:
                user = await self.fetch_user(owner_id)
                await user.send(notice.describe(), allowed_mentions=discord.AllowedMentions.none())
            except discord.HTTPException as exc:
                log.warning("could not tell owner %s: HTTP %s", owner_id, exc.status)

    async def _subscription_tier(self) -> str | None:
        return (await self.elevenlabs.subscription()).tier

    async def on_ready(self) -> None:
        log.info("ready as %s in %d guilds", self.user, len(self.guilds))
        # What is alive now (modules, the guild cache) lives as long as the process: out of
        # the garbage collector's full passes, which would otherwise walk it every few
        # seconds while every guild's audio waits for the GIL (docs/performance.md).
        gc.collect()
        gc.freeze()

    async def close(self) -> None:
        log.info("shutting down")
        for extension in list(self.extensions):
            try:
                await self.unload_extension(extension)
            except Exception:  # one broken cog must not keep the others running
                log.exception("unloading %s failed", extension)
        if self.reader is not None:
            await self.reader.close()
        voices = getattr(self, "voices", None)
        if voices is not None:
            await voices.aclose()
        encoding = getattr(self, "encoding", None)
        if isinstance(encoding, ProcessEncoding):
            await encoding.aclose()
        elif encoding is not None:
            encoding.close()
        speech = getattr(self, "speech", None)
        if speech is not None:
            # The dropped items' quota charges are settling: let them write before the
            # database closes, or the engine's dispose cuts a write in half.
            await speech.aclose()
        catalog = getattr(self, "catalog", None)
        if catalog is not None:
            await catalog.aclose()
        if self.quota is not None:
            await self.quota.aclose()
        await super().close()
        if self.storage is not None:
            await self.storage.close()
        if self.http_session is not None:
            await self.http_session.close()
