"""Plain records the repositories return, and the validation of values they store.

A None field means "not set at this level" (resolution falls through to the next one).
`UNSET` in an update means "leave this field alone", so that None can mean "clear it".
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final

from bot.storage.tables import NICKNAME_LENGTH, TUNING_FIELDS, VOICE_ID_LENGTH

# Ranges accepted by ElevenLabs' voice_settings (speed: "Values range from 0.7 to 1.2",
# /work/shared/elevenlabs-api/voices-list-get-default-settings.txt); the others are 0–1.
UNIT_RANGE: Final = (0.0, 1.0)
SPEED_RANGE: Final = (0.7, 1.2)
FLOAT_RANGES: Final[dict[str, tuple[float, float]]] = {
    "stability": UNIT_RANGE,
    "similarity": UNIT_RANGE,
    "style": UNIT_RANGE,
    "speed": SPEED_RANGE,
}


class _Unset(enum.Enum):
    UNSET = enum.auto()

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset.UNSET
"""Default of every update keyword: the field is not touched."""

Unset = _Unset
"""The type of `UNSET`, for annotations: `stability: float | None | Unset = UNSET`."""


class InvalidSetting(ValueError):
    """A value outside what the field accepts; `field` names it for the user message."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True, kw_only=True)
class VoiceFields:
    """The voice and its tuning, as set at one level (user, override, or guild)."""

    voice_id: str | None = None
    stability: float | None = None
    similarity: float | None = None
    style: float | None = None
    speed: float | None = None
    speaker_boost: bool | None = None

    def is_empty(self) -> bool:
        return all(getattr(self, name) is None for name in TUNING_FIELDS)


@dataclass(frozen=True, slots=True, kw_only=True)
class UserSettings(VoiceFields):
    user_id: int
    autoread: bool = True
    nickname: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class UserGuildOverride(VoiceFields):
    """A user's settings for one guild (`here: true`), over their own settings."""

    guild_id: int
    user_id: int


@dataclass(frozen=True, slots=True, kw_only=True)
class GuildSettings(VoiceFields):
    """The guild's defaults: its voice, model and tuning, and whether the voice is locked."""

    guild_id: int
    model_id: str | None = None
    lock_voice: bool = False
    left_at: datetime | None = None


def validate_voice_fields(changes: dict[str, Any]) -> dict[str, Any]:
    """Check (and normalise) tuning values before they are stored; None always passes."""
    checked: dict[str, Any] = {}
    for name, value in changes.items():
        if value is None:
            checked[name] = None
        elif name == "voice_id":
            checked[name] = validate_identifier(name, value, VOICE_ID_LENGTH)
        elif name == "speaker_boost":
            if not isinstance(value, bool):
                raise InvalidSetting(name, "must be true or false")
            checked[name] = value
        elif name in FLOAT_RANGES:
            checked[name] = validate_float(name, value, *FLOAT_RANGES[name])
        else:  # pragma: no cover - callers pass known names only
            raise InvalidSetting(name, "unknown setting")
    return checked


def validate_float(name: str, value: object, low: float, high: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidSetting(name, "must be a number")
    number = float(value)
    if not math.isfinite(number) or not low <= number <= high:
        raise InvalidSetting(name, f"must be between {low:g} and {high:g}")
    return number


def validate_identifier(name: str, value: object, max_length: int) -> str:
    if not isinstance(value, str) or not value.strip():
        raise InvalidSetting(name, "must be a non-empty id")
    value = value.strip()
    if len(value) > max_length or not value.isprintable() or any(c.isspace() for c in value):
        raise InvalidSetting(name, f"must be an id of at most {max_length} characters")
    return value


def validate_nickname(value: str | None) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidSetting("nickname", "must be text")
    value = " ".join(value.split())
    if not value:
        return None
    if len(value) > NICKNAME_LENGTH:
        raise InvalidSetting("nickname", f"must be at most {NICKNAME_LENGTH} characters")
    return value
