"""Which voice and settings an utterance uses, and why: one pure function for every caller.

The rule (issue 6), field by field, first level that has a value wins:

1. the user's override for this server (`/voice ... here: true`),
2. the user's own choice (`/voice set`, `/voice tune`),
   - levels 1 and 2 are skipped *for the voice* (not the tuning) when the server locked it,
3. the server default (`/server voice`, `/server tune`, `/server model`),
4. the voice's own settings (GET /v1/voices/{voice_id}/settings, fetched and cached by
   the caller; not used for the voice id or the model),
5. the documented defaults below (for the voice: the bot-wide default voice; for the
   model: the bot-wide default model).

Documented defaults (/work/shared/elevenlabs-api/): speed 1.0 ("Values range from 0.7 to
1.2, with 1.0 being the default speed", voices-list-get-default-settings.txt, voice
settings); style 0 (the same page: style "might increase latency if set to anything other
than 0", and GET /v1/voices/settings/default answers `"style": 0`); use_speaker_boost true
(GET /v1/voices/settings/default answers `"use_speaker_boost": true`); stability 0.5
(api-overview-guide.txt's request example, which calls them "good default values").
similarity_boost 0.75 is ElevenLabs' long-standing web-app default: the shared pages show
examples only (0.8 in the overview guide, 1 in the default-settings example), not a
documented value, so 0.75 is our choice, kept here in one place.

A voice that vanished (`voice_not_found`) or that the plan cannot use (402/403) is passed
in `unusable_voices`: the levels naming it are skipped for the voice, which falls back to
the server default (then the bot default) for that utterance; `replaced_voice_id` says
which voice was passed over, so the caller can tell the user once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final, Protocol


class Source(StrEnum):
    """Where a resolved value came from, as `/voice show` words it."""

    OVERRIDE = "your setting here"
    USER = "your setting"
    SERVER = "server default"
    VOICE = "voice default"
    DEFAULT = "default"


class VoiceLevel(Protocol):
    """One level of settings: `bot.storage.models.VoiceFields` and its subclasses fit."""

    @property
    def voice_id(self) -> str | None: ...
    @property
    def stability(self) -> float | None: ...
    @property
    def similarity(self) -> float | None: ...
    @property
    def style(self) -> float | None: ...
    @property
    def speed(self) -> float | None: ...
    @property
    def speaker_boost(self) -> bool | None: ...


class ServerLevel(VoiceLevel, Protocol):
    """The server's level: `bot.storage.models.GuildSettings` fits."""

    @property
    def model_id(self) -> str | None: ...
    @property
    def lock_voice(self) -> bool: ...


@dataclass(frozen=True, slots=True)
class Defaults:
    """The last level: documented defaults (see the module docstring)."""

    stability: float = 0.5
    similarity: float = 0.75
    style: float = 0.0
    speed: float = 1.0
    speaker_boost: bool = True


DOCUMENTED_DEFAULTS: Final = Defaults()

#: Our field name -> the API's name in voice settings (GET .../settings, TTS requests).
API_NAMES: Final[dict[str, str]] = {
    "stability": "stability",
    "similarity": "similarity_boost",
    "style": "style",
    "speed": "speed",
    "speaker_boost": "use_speaker_boost",
}
TUNING: Final = tuple(API_NAMES)


@dataclass(frozen=True, slots=True)
class ResolvedVoice:
    voice_id: str
    model_id: str
    stability: float
    similarity: float
    style: float
    speed: float
    speaker_boost: bool
    #: Field name ("voice_id", "model_id", "stability", ...) -> where its value came from.
    sources: Mapping[str, Source] = field(default_factory=dict)
    #: The user's (or server's) voice that was passed over because it is unusable.
    replaced_voice_id: str | None = None

    def voice_settings(self) -> dict[str, float | bool]:
        """The `voice_settings` object of a TTS request, in the API's names."""
        return {api: getattr(self, name) for name, api in API_NAMES.items()}


def resolve_voice_id(
    *,
    override: VoiceLevel | None,
    user: VoiceLevel | None,
    server: ServerLevel | None,
    default_voice_id: str,
    unusable_voices: Collection[str] = (),
) -> tuple[str, Source]:
    """The voice alone: the caller needs it first, to fetch that voice's own settings."""
    locked = server is not None and server.lock_voice
    levels: list[tuple[Source, VoiceLevel | None]] = []
    if not locked:
        levels += [(Source.OVERRIDE, override), (Source.USER, user)]
    levels.append((Source.SERVER, server))
    for source, level in levels:
        voice_id = level.voice_id if level is not None else None
        if voice_id is not None and voice_id not in unusable_voices:
            return voice_id, source
    return default_voice_id, Source.DEFAULT


def resolve_voice(
    *,
    override: VoiceLevel | None,
    user: VoiceLevel | None,
    server: ServerLevel | None,
    voice_settings: Mapping[str, Any] | object | None,
    default_voice_id: str,
    default_model_id: str,
    defaults: Defaults = DOCUMENTED_DEFAULTS,
    unusable_voices: Collection[str] = (),
) -> ResolvedVoice:
    """Resolve every field by the rule in the module docstring.

    `voice_settings` is the resolved voice's own settings in the API's names
    (`similarity_boost`, `use_speaker_boost`, ...), as a mapping or an object with those
    attributes (the client's `VoiceSettings`); None when unknown.
    """
    voice_id, voice_source = resolve_voice_id(
        override=override,
        user=user,
        server=server,
        default_voice_id=default_voice_id,
        unusable_voices=unusable_voices,
    )
    sources: dict[str, Source] = {"voice_id": voice_source}
    values: dict[str, Any] = {}

    model_id = server.model_id if server is not None else None
    sources["model_id"] = Source.SERVER if model_id is not None else Source.DEFAULT
    values["model_id"] = model_id if model_id is not None else default_model_id

    levels: tuple[tuple[Source, VoiceLevel | None], ...] = (
        (Source.OVERRIDE, override),
        (Source.USER, user),
        (Source.SERVER, server),
    )
    for name, api_name in API_NAMES.items():
        value, source = _first_set(name, levels)
        if value is None:
            value = _read(voice_settings, api_name)
            source = Source.VOICE
        if value is None:
            value, source = getattr(defaults, name), Source.DEFAULT
        values[name], sources[name] = value, source

    replaced = _first_unusable(override, user, server, unusable_voices)
    return ResolvedVoice(
        voice_id=voice_id,
        sources=sources,
        replaced_voice_id=replaced,
        **values,
    )


def _first_set(
    name: str, levels: tuple[tuple[Source, VoiceLevel | None], ...]
) -> tuple[Any, Source]:
    for source, level in levels:
        value = getattr(level, name, None) if level is not None else None
        if value is not None:
            return value, source
    return None, Source.DEFAULT


def _read(settings: Mapping[str, Any] | object | None, api_name: str) -> Any:
    if settings is None:
        return None
    if isinstance(settings, Mapping):
        return settings.get(api_name)
    return getattr(settings, api_name, None)


def _first_unusable(
    override: VoiceLevel | None,
    user: VoiceLevel | None,
    server: ServerLevel | None,
    unusable_voices: Collection[str],
) -> str | None:
    if not unusable_voices:
        return None
    locked = server is not None and server.lock_voice
    chosen = [] if locked else [override, user]
    for level in [*chosen, server]:
        voice_id = level.voice_id if level is not None else None
        if voice_id is not None:
            return voice_id if voice_id in unusable_voices else None
    return None
