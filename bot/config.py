"""Settings: one pydantic-settings class, read from the environment and `.env`.

Nothing here runs at import time: `load_settings()` builds the object and turns
every validation problem into a `ConfigError` whose message is one line per
variable, naming it and never echoing a secret's value.
"""

from __future__ import annotations

import os
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bot.errors import BotError

OUTPUT_FORMATS = (
    "mp3_22050_32",
    "mp3_44100_32",
    "mp3_44100_64",
    "mp3_44100_96",
    "mp3_44100_128",
    "mp3_44100_192",
    "pcm_8000",
    "pcm_16000",
    "pcm_22050",
    "pcm_24000",
    "pcm_44100",
    "pcm_48000",
    "ulaw_8000",
    "alaw_8000",
    "opus_48000_32",
    "opus_48000_64",
    "opus_48000_96",
    "opus_48000_128",
    "opus_48000_192",
)
OutputFormat = Literal[OUTPUT_FORMATS]  # type: ignore[valid-type]

LogLevel = Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"]
Mp3DecoderChoice = Literal["auto", "libmpg123", "ffmpeg"]


class ConfigError(BotError):
    """The settings are missing or malformed; the message says which and how to fix it."""


def _split_ids(value: object) -> object:
    if isinstance(value, str):
        return [part for part in value.replace(",", " ").split() if part]
    return value


class Settings(BaseSettings):
    """Every knob of the bot. `.env.example` documents each one."""

    model_config = SettingsConfigDict(
        env_file=".env",
        env_file_encoding="utf-8",
        extra="ignore",
        case_sensitive=False,
        validate_default=True,
    )

    # Discord
    discord_token: SecretStr | None = None
    discord_api_base: str = "https://discord.com/api/v10"
    shard_count: int | None = Field(default=None, ge=1)
    shard_ids: Annotated[list[int] | None, NoDecode] = None
    dev_guild_id: int | None = None
    owner_ids: Annotated[list[int], NoDecode] = Field(default_factory=list)
    read_messages: bool = True

    # ElevenLabs
    elevenlabs_api_key: SecretStr | None = None
    elevenlabs_base_url: str = "https://api.elevenlabs.io"
    elevenlabs_model: str = "eleven_flash_v2_5"
    elevenlabs_output_format: OutputFormat = "mp3_44100_128"
    elevenlabs_default_voice: str = "21m00Tcm4TlvDq8ikWAM"
    elevenlabs_max_concurrency: int = Field(default=4, ge=1, le=64)
    elevenlabs_connect_timeout: float = Field(default=5.0, gt=0)
    elevenlabs_read_timeout: float = Field(default=20.0, gt=0)
    elevenlabs_max_retries: int = Field(default=3, ge=0, le=10)
    elevenlabs_retry_budget: float = Field(default=8.0, gt=0)

    # Audio and playback
    ffmpeg_path: str = "ffmpeg"
    mp3_decoder: Mp3DecoderChoice = "auto"
    max_audio_bytes: int = Field(default=8 * 1024 * 1024, ge=64 * 1024)
    queue_limit: int = Field(default=20, ge=1, le=500)
    max_text_chars: int = Field(default=500, ge=1, le=6000)
    idle_disconnect_seconds: float = Field(default=300.0, ge=0)
    opus_bitrate_kbps: int = Field(default=64, ge=6, le=510)
    opus_signal_type: Literal["auto", "voice", "music"] = "voice"
    opus_application: Literal["audio", "voip", "lowdelay"] = "audio"
    opus_complexity: int = Field(default=5, ge=0, le=10)
    opus_channels: int = Field(default=1, ge=1, le=2)
    opus_encoder_processes: int = Field(default=0, ge=0, le=32)

    # Storage
    database_url: str = "sqlite+aiosqlite:///data/bot.sqlite3"
    guild_data_grace_days: int = Field(default=30, ge=0, le=3650)

    # Voices
    catalog_refresh_seconds: float = Field(default=600.0, ge=30)

    # Quota (amounts in ElevenLabs credits)
    quota_default_allowance: int = Field(default=20_000, ge=0)
    quota_reservation_ttl_seconds: float = Field(default=600.0, ge=30)
    quota_ledger_retention_days: int = Field(default=400, ge=1)

    log_level: LogLevel = "INFO"

    @field_validator("shard_ids", "owner_ids", mode="before")
    @classmethod
    def _parse_id_list(cls, value: object) -> object:
        return _split_ids(value)

    @field_validator("shard_ids")
    @classmethod
    def _no_empty_shard_list(cls, value: list[int] | None) -> list[int] | None:
        # SHARD_IDS= (empty) means "all shards", as if unset; an empty list would mean none.
        if value is not None and any(shard < 0 for shard in value):
            raise ValueError("shard ids cannot be negative")
        return value or None

    @model_validator(mode="after")
    def _shards_fit_the_count(self) -> Settings:
        if self.shard_ids is None:
            return self
        if self.shard_count is None:
            raise ValueError("SHARD_IDS needs SHARD_COUNT (the total number of shards)")
        if max(self.shard_ids) >= self.shard_count:
            raise ValueError(f"SHARD_IDS must be below SHARD_COUNT ({self.shard_count})")
        return self

    @field_validator("elevenlabs_base_url", "discord_api_base")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        if not value.startswith(("http://", "https://")):
            raise ValueError("must start with http:// or https://")
        return value.rstrip("/")

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.upper() if isinstance(value, str) else value

    def require_elevenlabs_key(self) -> SecretStr:
        if self.elevenlabs_api_key is None or not self.elevenlabs_api_key.get_secret_value():
            raise ConfigError(
                "ELEVENLABS_API_KEY is not set: create a key at "
                "https://elevenlabs.io/app/settings/api-keys and put it in .env"
            )
        return self.elevenlabs_api_key

    def require_discord_token(self) -> SecretStr:
        if self.discord_token is None or not self.discord_token.get_secret_value():
            raise ConfigError(
                "DISCORD_TOKEN is not set: copy the bot token from "
                "https://discord.com/developers/applications (Bot > Reset Token) into .env"
            )
        return self.discord_token


def load_settings(
    env_file: str | os.PathLike[str] | None = ".env", **overrides: object
) -> Settings:
    """Build the settings, or raise `ConfigError` with one line per bad variable."""
    try:
        return Settings(_env_file=env_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors(include_input=False, include_url=False):
        name = str(error["loc"][0]).upper() if error["loc"] else "settings"
        message = error["msg"].removeprefix("Value error, ")
        if error["type"] == "literal_error":
            expected = error.get("ctx", {}).get("expected", "")
            message = f"must be one of {expected}" if expected else message
        # Errors across fields (no location) already name the variables they are about.
        lines.append(f"{name}: {message}" if error["loc"] else message)
    return "; ".join(lines)
