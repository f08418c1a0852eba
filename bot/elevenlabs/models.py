"""Response models for the parts of the ElevenLabs API the bot uses.

Shaped after ../shared/elevenlabs-api/. Unknown fields are ignored (the API grows
faster than we do) and almost everything is optional, because the documented
examples themselves leave fields out.
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidatorFunctionWrapHandler,
    field_validator,
)

STABILITY_RANGE = (0.0, 1.0)
SIMILARITY_RANGE = (0.0, 1.0)
STYLE_RANGE = (0.0, 1.0)
SPEED_RANGE = (0.7, 1.2)


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", populate_by_name=True, frozen=True)


class VoiceSettings(_Model):
    """Per-request voice settings; every field optional, as in the API."""

    stability: float | None = Field(default=None, ge=0.0, le=1.0)
    similarity_boost: float | None = Field(default=None, ge=0.0, le=1.0)
    style: float | None = Field(default=None, ge=0.0, le=1.0)
    use_speaker_boost: bool | None = None
    speed: float | None = Field(default=None, ge=0.7, le=1.2)

    def to_request(self) -> dict[str, float | bool]:
        """The JSON for a TTS request: only the fields that are set."""
        return self.model_dump(exclude_none=True)


class Voice(_Model):
    voice_id: str
    name: str = ""
    category: str | None = None
    labels: dict[str, str] = Field(default_factory=dict)
    description: str | None = None
    preview_url: str | None = None
    available_for_tiers: list[str] = Field(default_factory=list)
    high_quality_base_model_ids: list[str] = Field(default_factory=list)
    settings: VoiceSettings | None = None
    is_owner: bool | None = None
    created_at_unix: int | None = None

    @field_validator("settings", mode="wrap")
    @classmethod
    def _settings_or_unknown(cls, value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        """Settings we could not send back (the documented example has stability 123) are
        treated as unknown, rather than making the whole voice, or page, unreadable."""
        try:
            return handler(value)
        except ValidationError:
            return None

    def label(self, key: str) -> str | None:
        value = self.labels.get(key)
        return value or None

    def usable_on(self, tier: str | None) -> bool:
        """False when the voice lists the tiers it is for and `tier` is not one."""
        if not tier or not self.available_for_tiers:
            return True
        return tier in self.available_for_tiers


class VoicesPage(_Model):
    voices: list[Voice]
    has_more: bool = False
    total_count: int | None = None
    next_page_token: str | None = None


class ModelRates(_Model):
    character_cost_multiplier: float | None = None


class Language(_Model):
    language_id: str
    name: str = ""


class TTSModel(_Model):
    model_id: str
    name: str = ""
    can_do_text_to_speech: bool = False
    maximum_text_length_per_request: int | None = None
    token_cost_factor: float | None = None
    model_rates: ModelRates | None = None
    languages: list[Language] = Field(default_factory=list)

    @property
    def credits_per_character(self) -> float:
        """What one character costs: the model rate, else the token cost factor, else 1."""
        if self.model_rates and self.model_rates.character_cost_multiplier is not None:
            return self.model_rates.character_cost_multiplier
        if self.token_cost_factor is not None:
            return self.token_cost_factor
        return 1.0


class Subscription(_Model):
    tier: str = ""
    character_count: int = 0
    character_limit: int = 0
    next_character_count_reset_unix: int | None = None
    status: str | None = None

    @property
    def remaining(self) -> int:
        return max(0, self.character_limit - self.character_count)
