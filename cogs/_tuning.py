"""Option types, descriptions and wording shared by /voice and /server (not a cog)."""

from __future__ import annotations

from typing import Any

import discord
from discord import app_commands

from bot.storage.models import SPEED_RANGE, UNIT_RANGE

LABELS: dict[str, str] = {
    "voice_id": "Voice",
    "model_id": "Model",
    "stability": "Stability",
    "similarity": "Similarity",
    "style": "Style",
    "speed": "Speed",
    "speaker_boost": "Speaker boost",
}

Unit = app_commands.Range[float, UNIT_RANGE[0], UNIT_RANGE[1]]
Speed = app_commands.Range[float, SPEED_RANGE[0], SPEED_RANGE[1]]

TUNING_DESCRIPTIONS: dict[str, str] = {
    "stability": "0 = more expressive, 1 = steadier and more monotone",
    "similarity": "How closely to stick to the original voice, 0 to 1",
    "style": "Style exaggeration, 0 to 1 (0 is the fastest to generate)",
    "speed": f"{SPEED_RANGE[0]:g} (slower) to {SPEED_RANGE[1]:g} (faster); 1 is normal",
    "speaker_boost": "Boost the resemblance to the original speaker",
}
VOICE_DESCRIPTION = "A voice name or id (start typing to search)"


def format_value(name: str, value: Any) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float | int):
        return f"{value:.2f}"
    return str(value)


def describe_changes(changes: dict[str, Any]) -> str:
    return ", ".join(f"{LABELS[k].lower()} {format_value(k, v)}" for k, v in changes.items())


def bold(text: str) -> str:
    return f"**{discord.utils.escape_markdown(text)}**"
