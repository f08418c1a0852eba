"""Per-utterance voice and settings, from what users and admins stored.

`PreferenceService.resolve` is the one resolution every utterance goes through
(`/speak`, messages read aloud): it reads the user's override, the user's own
settings and the guild's, asks the catalogue which voices are unusable, fetches
(and caches) the chosen voice's own settings, and applies `resolve_voice`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from typing import Any

from bot.elevenlabs.client import ElevenLabsClient
from bot.elevenlabs.errors import ElevenLabsError
from bot.elevenlabs.models import VoiceSettings
from bot.storage.store import Storage
from bot.tts import VoiceChoice
from bot.voice_settings import ResolvedVoice, resolve_voice, resolve_voice_id
from bot.voices.catalog import VoiceCatalog

log = logging.getLogger(__name__)

VOICE_SETTINGS_TTL = 600.0


class PreferenceService:
    def __init__(
        self,
        storage: Storage,
        catalog: VoiceCatalog,
        client: ElevenLabsClient,
        *,
        default_voice_id: str,
        default_model_id: str,
        settings_ttl: float = VOICE_SETTINGS_TTL,
    ) -> None:
        self.storage = storage
        self.catalog = catalog
        self.client = client
        self.default_voice_id = default_voice_id
        self.default_model_id = default_model_id
        self.settings_ttl = settings_ttl
        self._voice_settings: dict[str, tuple[float, VoiceSettings | None]] = {}
        self._told: set[tuple[int, str]] = set()

    def unusable_voices(self, *voice_ids: str | None) -> set[str]:
        """The voices among these that vanished from the account or that the plan cannot use."""
        if not self.catalog.loaded:
            return set()
        unusable = set()
        for voice_id in voice_ids:
            if voice_id is None:
                continue
            voice = self.catalog.get(voice_id)
            if voice is None or not self.catalog.usable(voice):
                unusable.add(voice_id)
        return unusable

    async def voice_settings(self, voice_id: str) -> VoiceSettings | None:
        """The voice's own settings (GET /v1/voices/{id}/settings), cached; None if unknown."""
        now = time.monotonic()
        cached = self._voice_settings.get(voice_id)
        if cached is not None and now - cached[0] < self.settings_ttl:
            return cached[1]
        try:
            found: VoiceSettings | None = await self.client.voice_settings(voice_id)
        except ElevenLabsError as exc:
            log.info("voice settings of %s unavailable: %s", voice_id, type(exc).__name__)
            found = None
        self._voice_settings[voice_id] = (now, found)
        return found

    async def resolved(
        self, guild_id: int, user_id: int, requested: str | None = None
    ) -> ResolvedVoice:
        user, override = await self.storage.users.get_for_guild(guild_id, user_id)
        server = await self.storage.guilds.get(guild_id)
        unusable = self.unusable_voices(override.voice_id, user.voice_id, server.voice_id)
        levels: dict[str, Any] = {"override": override, "user": user, "server": server}
        voice_id, _ = resolve_voice_id(
            **levels, default_voice_id=self.default_voice_id, unusable_voices=unusable
        )
        if requested:
            voice_id = requested
        resolved = resolve_voice(
            **levels,
            voice_settings=await self.voice_settings(voice_id),
            default_voice_id=self.default_voice_id,
            default_model_id=self.default_model_id,
            unusable_voices=unusable,
        )
        if requested:
            resolved = replace(resolved, voice_id=requested)
        return resolved

    async def resolve(self, guild_id: int, user_id: int, requested: str | None) -> VoiceChoice:
        """The voice for one utterance; `requested` (a /speak option) wins over stored ones."""
        requested_id = None
        if requested:
            voice = self.catalog.resolve(requested) if self.catalog.loaded else None
            if voice is not None:
                self.catalog.require_usable(voice)
            requested_id = voice.voice_id if voice is not None else requested
        resolved = await self.resolved(guild_id, user_id, requested_id)
        notice = None
        replaced = resolved.replaced_voice_id
        if replaced is not None and (user_id, replaced) not in self._told:
            self._told.add((user_id, replaced))
            notice = (
                "Your chosen voice is no longer available to the bot, so the server's voice "
                "was used. Pick another with /voice set."
            )
        voice = self.catalog.get(resolved.voice_id) if self.catalog.loaded else None
        return VoiceChoice(
            voice_id=resolved.voice_id,
            model_id=resolved.model_id,
            settings=VoiceSettings(**resolved.voice_settings()),
            voice_name=voice.name if voice is not None else "",
            notice=notice,
        )
