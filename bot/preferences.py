"""Per-utterance voice and settings, from what users and admins stored; and changing them.

`PreferenceService.resolve` is the one resolution every utterance goes through
(`/speak`, messages read aloud): it reads the user's override, the user's own
settings and the guild's, works out which voices are unusable (gone from the
catalogue, not on the plan, or refused by ElevenLabs at synthesis time), fetches
(and caches) the chosen voice's own settings, and applies `resolve_voice`.

The three stored levels (the user's settings, their override for the guild, the
guild's settings) are cached in memory for `SETTINGS_CACHE_TTL` seconds, so that a
burst of messages does not read the database for each one. Every change made in this
process goes through here (or calls `invalidate_user` / `invalidate_guild`) and applies
at once; a change made by another shard process applies within the time-to-live.

The `/voice` and `/server` commands change those settings through the same
object, so that validation (the voice exists and the plan can use it; the model
exists and can speak) lives in one place and the cogs only render.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any, Final

from bot.elevenlabs import errors as el
from bot.elevenlabs.client import ElevenLabsClient
from bot.elevenlabs.errors import ElevenLabsError
from bot.elevenlabs.models import TTSModel, Voice, VoiceSettings
from bot.errors import BotError
from bot.storage.models import GuildSettings, InvalidSetting, UserGuildOverride, UserSettings
from bot.storage.store import Storage
from bot.ttl_cache import TTLCache
from bot.tts import VoiceChoice
from bot.voice_settings import ResolvedVoice, resolve_voice, resolve_voice_id
from bot.voices.catalog import MAX_CHOICES, VoiceCatalog

log = logging.getLogger(__name__)

VOICE_SETTINGS_TTL = 600.0
"""Seconds a voice's own settings (GET /v1/voices/{id}/settings) are reused."""
MODELS_TTL = 3600.0
"""Seconds the model list (GET /v1/models) is reused; models change rarely."""
VOICE_FAILURE_TTL = 600.0
"""Seconds a voice ElevenLabs refused (gone, or not on the plan) is skipped for everyone.

The catalogue refresh (every 10 minutes) would notice a deleted voice too; this
bridges the gap so that one refusal does not become one refusal per message.
"""

SETTINGS_CACHE_TTL = 60.0
"""Seconds the stored settings levels (user, user-in-guild, guild) are reused.

The bound on staleness for a change made by another shard process (user settings are
global, so a `/voice set` in a guild of another shard changes them); changes made in this
process invalidate the cache at once.
"""
SETTINGS_CACHE_SIZE = 10_000
"""Users, (guild, user) pairs and guilds kept, each (least recently used dropped first)."""

AUTOCOMPLETE_BUDGET = 2.0
"""Seconds an autocomplete waits for the model list (Discord allows 3 s in all)."""
CHOICE_NAME_LIMIT: Final = 100  # Discord's limit for an autocomplete choice's name

USER_VOICE_GONE: Final = (
    "Your chosen voice is no longer available to the bot, so the server's voice was used. "
    "Pick another with /voice set."
)
SERVER_VOICE_GONE: Final = (
    "This server's voice is no longer available to the bot, so the default voice was used. "
    "A server manager can pick another with /server voice."
)
VOICE_LOCKED: Final = (
    "This server uses one voice for everyone, so the voice you asked for was not used."
)


class NothingToChange(BotError):
    def __init__(self) -> None:
        super().__init__("Choose at least one setting to change.")


class SettingRejected(BotError):
    """A value the storage refused (out of range, malformed id), as a sentence."""

    def __init__(self, error: InvalidSetting) -> None:
        super().__init__(f"That {error.field.replace('_', ' ')} was refused: {error.message}.")
        self.field = error.field


class ModelNotFound(BotError):
    def __init__(self, query: str, known: Sequence[TTSModel]) -> None:
        names = ", ".join(model.model_id for model in known[:5])
        hint = f" Models that can speak: {names}." if names else ""
        super().__init__(f"No text-to-speech model is called “{query[:50]}”.{hint}")
        self.query = query


class ModelCannotSpeak(BotError):
    def __init__(self, model: TTSModel) -> None:
        super().__init__(
            f"The model {model.name or model.model_id} cannot turn text into speech; "
            "pick one from the list."
        )
        self.model = model


@dataclass(frozen=True, slots=True)
class Tuning:
    """The tuning options of `/voice tune` and `/server tune`; None means "leave it"."""

    stability: float | None = None
    similarity: float | None = None
    style: float | None = None
    speed: float | None = None
    speaker_boost: bool | None = None

    def changes(self) -> dict[str, Any]:
        return {
            name: value
            for name in ("stability", "similarity", "style", "speed", "speaker_boost")
            if (value := getattr(self, name)) is not None
        }


@dataclass(frozen=True, slots=True)
class UserView:
    """What `/voice show` renders: the effective result and the levels behind it."""

    resolved: ResolvedVoice
    user: UserSettings
    override: UserGuildOverride
    server: GuildSettings


def is_voice_refusal(error: BaseException) -> bool:
    """Whether a synthesis error means "this voice cannot be used", so a fallback may help.

    404 `voice_not_found`, 402 (a paid plan is needed for the voice) and a 403 about the
    voice (not the output format, which no other voice would fix).
    """
    if isinstance(error, el.VoiceNotFoundError | el.PaidPlanRequiredError):
        return True
    if isinstance(error, el.PlanRestrictionError):
        return "format" not in (error.code or "")
    return False


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
        models_ttl: float = MODELS_TTL,
        failure_ttl: float = VOICE_FAILURE_TTL,
        cache_ttl: float = SETTINGS_CACHE_TTL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.storage = storage
        self.catalog = catalog
        self.client = client
        self.default_voice_id = default_voice_id
        self.default_model_id = default_model_id
        self.settings_ttl = settings_ttl
        self.models_ttl = models_ttl
        self.failure_ttl = failure_ttl
        self._clock = clock
        self._voice_settings: dict[str, tuple[float, VoiceSettings | None]] = {}
        self._models: tuple[float, list[TTSModel]] | None = None
        self._models_lock = asyncio.Lock()
        self._failed: dict[str, float] = {}
        self._told: set[tuple[int, str]] = set()
        now = self._now
        size = SETTINGS_CACHE_SIZE
        self._users: TTLCache[int, UserSettings] = TTLCache(ttl=cache_ttl, clock=now, size=size)
        self._overrides: TTLCache[tuple[int, int], UserGuildOverride] = TTLCache(
            ttl=cache_ttl, clock=now, size=size
        )
        self._guilds: TTLCache[int, GuildSettings] = TTLCache(ttl=cache_ttl, clock=now, size=size)

    def _now(self) -> float:
        return self._clock()

    # -- the stored levels (cached) -------------------------------------------------------

    async def levels(
        self, guild_id: int, user_id: int
    ) -> tuple[UserSettings, UserGuildOverride, GuildSettings]:
        """The user's settings, their override here and the guild's: from the cache if fresh."""
        users, guilds = self.storage.users, self.storage.guilds
        user = await self._users.get(user_id, lambda: users.get(user_id))
        override = await self._overrides.get(
            (guild_id, user_id), lambda: users.get_override(guild_id, user_id)
        )
        server = await self._guilds.get(guild_id, lambda: guilds.get(guild_id))
        return user, override, server

    async def _fresh_levels(
        self, guild_id: int, user_id: int
    ) -> tuple[UserSettings, UserGuildOverride, GuildSettings]:
        """The levels read from the database now (for what a command shows), then cached."""
        user, override = await self.storage.users.get_for_guild(guild_id, user_id)
        server = await self.storage.guilds.get(guild_id)
        self._users.put(user_id, user)
        self._overrides.put((guild_id, user_id), override)
        self._guilds.put(guild_id, server)
        return user, override, server

    def invalidate_user(self, user_id: int) -> None:
        """The user's stored settings or overrides changed: read them again next time.

        Anything that writes `user_settings` or `user_guild_overrides` other than this
        service's own methods (the reader's autoread and nickname) must call it.
        """
        self._users.invalidate(user_id)
        self._overrides.invalidate_where(lambda key: key[1] == user_id)

    def invalidate_guild(self, guild_id: int) -> None:
        """The guild's settings (or all of its data) changed: read them again next time.

        Called by the guild lifecycle too (leaving, coming back, the purge).
        """
        self._guilds.invalidate(guild_id)
        self._overrides.invalidate_where(lambda key: key[0] == guild_id)

    # -- which voices cannot be used ----------------------------------------------------

    def unusable_voices(self, *voice_ids: str | None) -> set[str]:
        """The voices among these that vanished, that the plan cannot use, or that
        ElevenLabs refused recently (`voice_failed`)."""
        unusable = set()
        now = self._clock()
        for voice_id in voice_ids:
            if voice_id is None:
                continue
            failed_at = self._failed.get(voice_id)
            if failed_at is not None and now - failed_at < self.failure_ttl:
                unusable.add(voice_id)
                continue
            if not self.catalog.loaded:
                continue
            voice = self.catalog.get(voice_id)
            if voice is None or not self.catalog.usable(voice):
                unusable.add(voice_id)
        return unusable

    def voice_failed(self, voice_id: str) -> None:
        """ElevenLabs refused this voice (gone, or not on the plan): skip it for a while."""
        log.info("voice %s refused by ElevenLabs; skipped for %.0f s", voice_id, self.failure_ttl)
        self._failed[voice_id] = self._clock()
        self._voice_settings.pop(voice_id, None)

    # -- the voice's own settings and the models (cached) -------------------------------------

    async def voice_settings(self, voice_id: str) -> VoiceSettings | None:
        """The voice's own settings (GET /v1/voices/{id}/settings), cached; None if unknown.

        A 404 there means the voice is gone: it is marked failed, so resolution skips it.
        """
        now = self._clock()
        cached = self._voice_settings.get(voice_id)
        if cached is not None and now - cached[0] < self.settings_ttl:
            return cached[1]
        try:
            found: VoiceSettings | None = await self.client.voice_settings(voice_id)
        except el.VoiceNotFoundError:
            self.voice_failed(voice_id)
            return None
        except ElevenLabsError as exc:
            log.info("voice settings of %s unavailable: %s", voice_id, type(exc).__name__)
            found = None
        self._voice_settings[voice_id] = (now, found)
        return found

    async def tts_models(self, *, refresh: bool = False) -> list[TTSModel]:
        """The models that can do text to speech (GET /v1/models), cached for `models_ttl`.

        Raises the client's error when there is no list at all; a failed refresh keeps
        serving the previous list.
        """
        async with self._models_lock:
            now = self._clock()
            if self._models is not None and not refresh and now - self._models[0] < self.models_ttl:
                return self._models[1]
            try:
                models = [m for m in await self.client.models() if m.can_do_text_to_speech]
            except ElevenLabsError:
                if self._models is None:
                    raise
                log.warning("model list refresh failed; keeping the previous list")
                return self._models[1]
            self._models = (now, models)
            return models

    async def model_choices(
        self, current: str, *, budget: float = AUTOCOMPLETE_BUDGET
    ) -> list[tuple[str, str]]:
        """(display name, model id) for autocomplete, best match first; [] when unavailable.

        Discord drops an autocomplete answer after 3 s: a slow first fetch is not waited
        for past `budget` seconds, but it goes on and fills the cache for the next keystroke.
        """
        fetch = asyncio.ensure_future(self.tts_models())
        try:
            models = await asyncio.wait_for(asyncio.shield(fetch), budget)
        except TimeoutError:
            fetch.add_done_callback(_consume)
            return []
        except ElevenLabsError as exc:
            log.info("model autocomplete without models: %s", type(exc).__name__)
            return []
        typed = current.strip().casefold()

        def rank(model: TTSModel) -> tuple[int, str]:
            names = (model.model_id.casefold(), model.name.casefold())
            if typed in names:
                return 0, model.name
            if any(name.startswith(typed) for name in names):
                return 1, model.name
            return 2, model.name

        matching = [m for m in models if not typed or any(typed in n for n in _names(m))]
        matching.sort(key=rank)
        return [(_model_label(m), m.model_id) for m in matching[:MAX_CHOICES]]

    async def find_model(self, query: str) -> TTSModel:
        """The text-to-speech model meant by an id or a name (autocomplete sends the id).

        Autocomplete only suggests: whatever was typed arrives here, so it is checked
        against the live list (refreshed once if it is not found in the cached one).
        """
        typed = query.strip().casefold()
        for refresh in (False, True):
            models = await self.tts_models(refresh=refresh)
            exact = [m for m in models if typed in (m.model_id.casefold(), m.name.casefold())]
            if exact:
                return exact[0]
            prefixed = [m for m in models if any(n.startswith(typed) for n in _names(m))]
            if typed and len(prefixed) == 1:
                return prefixed[0]
        everything = await self.client.models()
        other = next((m for m in everything if m.model_id.casefold() == typed), None)
        if other is not None:
            raise ModelCannotSpeak(other)
        raise ModelNotFound(query, models)

    def voice_name(self, voice_id: str) -> str:
        voice = self.catalog.get(voice_id) if self.catalog.loaded else None
        return voice.name if voice is not None and voice.name else voice_id

    def find_voice(self, query: str) -> Voice:
        """The usable voice meant by a name or an id, or the catalogue's error sentence."""
        return self.catalog.require_usable(self.catalog.resolve(query))

    # -- resolution -----------------------------------------------------------------------------

    async def resolved(
        self, guild_id: int, user_id: int, requested: str | None = None
    ) -> ResolvedVoice:
        """Every field of the utterance's voice and where it came from.

        `requested` (a voice id given to /speak) wins over stored voices, unless the
        server locked its voice.
        """
        user, override, server = await self.levels(guild_id, user_id)
        return await self._resolve_levels(user, override, server, requested)

    async def _resolve_levels(
        self,
        user: UserSettings,
        override: UserGuildOverride,
        server: GuildSettings,
        requested: str | None,
    ) -> ResolvedVoice:
        levels: dict[str, Any] = {"override": override, "user": user, "server": server}
        if server.lock_voice:
            requested = None
        unusable = self.unusable_voices(override.voice_id, user.voice_id, server.voice_id)
        voice_id = (
            requested
            or resolve_voice_id(
                **levels, default_voice_id=self.default_voice_id, unusable_voices=unusable
            )[0]
        )
        settings = await self.voice_settings(voice_id)
        if not requested and voice_id in self.unusable_voices(voice_id) - unusable:
            # Found gone just now, by the settings request: resolve again without it.
            unusable.add(voice_id)
            voice_id = resolve_voice_id(
                **levels, default_voice_id=self.default_voice_id, unusable_voices=unusable
            )[0]
            settings = await self.voice_settings(voice_id)
        resolved = resolve_voice(
            **levels,
            voice_settings=settings,
            default_voice_id=self.default_voice_id,
            default_model_id=self.default_model_id,
            unusable_voices=unusable,
        )
        if requested:
            resolved = replace(resolved, voice_id=requested, replaced_voice_id=None)
        return resolved

    async def resolve(self, guild_id: int, user_id: int, requested: str | None) -> VoiceChoice:
        """The voice for one utterance; `requested` (a /speak option) wins over stored ones."""
        requested_id = None
        if requested:
            voice = self.catalog.resolve(requested) if self.catalog.loaded else None
            if voice is not None:
                self.catalog.require_usable(voice)
            requested_id = voice.voice_id if voice is not None else requested
        user, override, server = await self.levels(guild_id, user_id)
        resolved = await self._resolve_levels(user, override, server, requested_id)
        notice = None
        if requested_id is not None and requested_id != resolved.voice_id:
            notice = VOICE_LOCKED  # only a locked server voice overrules a requested one
        replaced = resolved.replaced_voice_id
        if replaced is not None and (user_id, replaced) not in self._told:
            self._told.add((user_id, replaced))
            own = replaced in (override.voice_id, user.voice_id) and not server.lock_voice
            notice = USER_VOICE_GONE if own else SERVER_VOICE_GONE
        return self._choice(resolved, notice)

    async def fallback(self, guild_id: int, user_id: int, failed_voice_id: str) -> VoiceChoice:
        """The voice to retry with after ElevenLabs refused `failed_voice_id` at synthesis.

        Marks the voice failed (so the next utterances skip it at once) and resolves again;
        the notice tells the user once, as for a voice the catalogue already knew was gone.
        When the refused voice was the last resort (the bot's default), the result is that
        same voice again: the caller should then give up rather than retry.
        """
        self.voice_failed(failed_voice_id)
        choice = await self.resolve(guild_id, user_id, None)
        if choice.notice is None and (user_id, failed_voice_id) not in self._told:
            self._told.add((user_id, failed_voice_id))
            choice = replace(choice, notice=USER_VOICE_GONE)
        return choice

    def _choice(self, resolved: ResolvedVoice, notice: str | None) -> VoiceChoice:
        voice = self.catalog.get(resolved.voice_id) if self.catalog.loaded else None
        return VoiceChoice(
            voice_id=resolved.voice_id,
            model_id=resolved.model_id,
            settings=VoiceSettings(**resolved.voice_settings()),
            voice_name=voice.name if voice is not None else "",
            notice=notice,
        )

    # -- /voice -------------------------------------------------------------------------------

    async def user_view(self, guild_id: int, user_id: int) -> UserView:
        """Everything `/voice show` says, read once (from the database: it is what is stored)."""
        user, override, server = await self._fresh_levels(guild_id, user_id)
        resolved = await self._resolve_levels(user, override, server, None)
        return UserView(resolved=resolved, user=user, override=override, server=server)

    async def set_user_voice(
        self, guild_id: int, user_id: int, query: str, *, here: bool = False
    ) -> Voice:
        """`/voice set`: the voice must exist and be usable on the plan."""
        voice = self.find_voice(query)
        await self._update_user(guild_id, user_id, here, {"voice_id": voice.voice_id})
        self._forget_notices(user_id)
        return voice

    async def tune_user(
        self, guild_id: int, user_id: int, tuning: Tuning, *, here: bool = False
    ) -> dict[str, Any]:
        """`/voice tune`: only the fields given change (one atomic upsert). Returns them."""
        changes = tuning.changes()
        if not changes:
            raise NothingToChange()
        await self._update_user(guild_id, user_id, here, changes)
        return changes

    async def reset_user(self, guild_id: int, user_id: int, *, here: bool = False) -> bool:
        """`/voice reset`; True when settings for this server still apply after it
        (a reset of your own settings keeps your `here` ones)."""
        try:
            if here:
                await self.storage.users.reset(user_id, guild_id=guild_id)
                return False
            await self.storage.users.reset(user_id)
        finally:
            self.invalidate_user(user_id)
        self._forget_notices(user_id)
        return not (await self.storage.users.get_override(guild_id, user_id)).is_empty()

    async def forget_user(self, user_id: int) -> int:
        """`/voice forget`: every stored row about the user, everywhere; and what we
        remember in memory. Returns the number of rows deleted or anonymised."""
        self._forget_notices(user_id)
        try:
            return await self.storage.users.forget_user(user_id)
        finally:
            self.invalidate_user(user_id)

    async def _update_user(
        self, guild_id: int, user_id: int, here: bool, changes: dict[str, Any]
    ) -> None:
        try:
            if here:
                await self.storage.users.update_override(guild_id, user_id, **changes)
            else:
                await self.storage.users.update(user_id, **changes)
        except InvalidSetting as exc:
            raise SettingRejected(exc) from exc
        finally:
            self.invalidate_user(user_id)

    def _forget_notices(self, user_id: int) -> None:
        self._told = {told for told in self._told if told[0] != user_id}

    # -- /server ------------------------------------------------------------------------------

    async def server_settings(self, guild_id: int) -> GuildSettings:
        """What `/server show` renders: read from the database (then cached)."""
        settings = await self.storage.guilds.get(guild_id)
        self._guilds.put(guild_id, settings)
        return settings

    async def set_server_voice(self, guild_id: int, query: str) -> Voice:
        voice = self.find_voice(query)
        await self._update_server(guild_id, {"voice_id": voice.voice_id})
        return voice

    async def set_server_model(self, guild_id: int, query: str) -> TTSModel:
        model = await self.find_model(query)
        await self._update_server(guild_id, {"model_id": model.model_id})
        return model

    async def tune_server(self, guild_id: int, tuning: Tuning) -> dict[str, Any]:
        changes = tuning.changes()
        if not changes:
            raise NothingToChange()
        await self._update_server(guild_id, changes)
        return changes

    async def lock_server_voice(self, guild_id: int, locked: bool) -> GuildSettings:
        try:
            await self.storage.guilds.set_lock_voice(guild_id, locked)
        finally:
            self._guilds.invalidate(guild_id)
        return await self.server_settings(guild_id)

    async def reset_server(self, guild_id: int) -> None:
        try:
            await self.storage.guilds.reset(guild_id)
        finally:
            self._guilds.invalidate(guild_id)

    async def _update_server(self, guild_id: int, changes: dict[str, Any]) -> None:
        try:
            await self.storage.guilds.update(guild_id, **changes)
        except InvalidSetting as exc:
            raise SettingRejected(exc) from exc
        finally:
            self._guilds.invalidate(guild_id)


def _names(model: TTSModel) -> tuple[str, str]:
    return model.model_id.casefold(), model.name.casefold()


def _model_label(model: TTSModel) -> str:
    label = f"{model.name} ({model.model_id})" if model.name else model.model_id
    return label if len(label) <= CHOICE_NAME_LIMIT else label[: CHOICE_NAME_LIMIT - 1] + "…"


def _consume(task: asyncio.Future[Any]) -> None:
    """Retrieve a background fetch's error, so it is logged by us rather than by asyncio."""
    if not task.cancelled() and task.exception() is not None:
        log.info("model list fetch failed: %s", type(task.exception()).__name__)
