"""/speak, /skip, /stop, /queue: thin glue over `bot.tts.SpeechService` and the player."""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import BotError
from bot.player import GuildPlayer, SpeechItem
from bot.tree import NO_MENTIONS, guild_only, interaction_context
from bot.voice import NotConnectedError
from cogs._followups import follow_up_on_result

if TYPE_CHECKING:
    from bot.app import TTSBot
    from bot.tts import Queued

log = logging.getLogger(__name__)

TEXT_OPTION_MAX = 6000  # Discord's limit for a string option
QUEUE_LINES = 15  # a /queue reply stays well under Discord's 2,000 characters
NOTHING_QUEUED = "Nothing is being said, and nothing is waiting."


def place(ahead: int) -> str:
    if ahead == 0:
        return "Speaking now."
    if ahead == 1:
        return "Queued: one message ahead of yours."
    return f"Queued: {ahead} messages ahead of yours."


class Speech(commands.Cog):
    def __init__(self, bot: TTSBot) -> None:
        self.bot = bot
        self._watchers: set[asyncio.Task[None]] = set()

    async def voice_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        try:
            pairs = self.bot.catalog.autocomplete(current)
        except BotError as exc:  # the catalogue is not loaded yet: no suggestions, no error
            log.debug("voice autocomplete: %s", exc)
            return []
        # Discord refuses the whole answer if one name or value is over 100 characters.
        return [
            app_commands.Choice(name=name[:100], value=value)
            for name, value in pairs[:25]
            if len(value) <= 100
        ]

    @app_commands.command(name="speak", description="Say something in your voice channel")
    @app_commands.describe(text="What to say", voice="A voice name or id (default: yours)")
    @guild_only()
    async def speak(
        self,
        interaction: discord.Interaction,
        text: app_commands.Range[str, 1, TEXT_OPTION_MAX],
        voice: str | None = None,
    ) -> None:
        assert isinstance(interaction.user, discord.Member)
        # Joining voice with the DAVE handshake can take over 3 s: answer first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        queued = await self.bot.speech.speak(interaction.user, text, voice=voice)
        message = place(queued.ahead)
        if queued.choice.notice:
            message += f"\n{queued.choice.notice}"
        await interaction.followup.send(message, ephemeral=True, allowed_mentions=NO_MENTIONS)
        self._report_failure(interaction, queued)

    @speak.autocomplete("voice")
    async def _speak_voice(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return await self.voice_autocomplete(interaction, current)

    def _report_failure(self, interaction: discord.Interaction, queued: Queued) -> None:
        follow_up_on_result(
            interaction,
            queued,
            failure_prefix="I could not say that",
            context=f"{interaction_context(interaction)} item={queued.item.id}",
            tasks=self._watchers,
        )

    def _player(self, interaction: discord.Interaction) -> GuildPlayer:
        """The guild's player, when the caller may control it."""
        assert isinstance(interaction.user, discord.Member)
        player = self.bot.voices.players.get(interaction.user.guild.id)
        if player is None or not player.connected:
            raise NotConnectedError()
        self.bot.voices.require_control(interaction.user)
        return player

    @app_commands.command(name="skip", description="Skip the message being spoken")
    @guild_only()
    async def skip(self, interaction: discord.Interaction) -> None:
        skipped = self._player(interaction).skip()
        text = "Skipped." if skipped else "Nothing is being said."
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="stop", description="Stop speaking and clear the queue")
    @guild_only()
    async def stop(self, interaction: discord.Interaction) -> None:
        dropped = self._player(interaction).stop()
        if dropped == 0:
            text = NOTHING_QUEUED
        else:
            text = f"Stopped; {dropped} message{'s' if dropped != 1 else ''} dropped."
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @app_commands.command(name="queue", description="What is being spoken and what is waiting")
    @guild_only()
    async def queue(self, interaction: discord.Interaction) -> None:
        assert interaction.guild is not None
        player = self.bot.voices.players.get(interaction.guild.id)
        lines: list[str] = []
        if player is not None and player.current is not None:
            lines.append(f"Speaking: {describe(player.current)}")
        pending = player.pending() if player is not None else []
        for number, item in enumerate(pending[:QUEUE_LINES], start=1):
            lines.append(f"{number}. {describe(item)}")
        if len(pending) > QUEUE_LINES:
            lines.append(f"…and {len(pending) - QUEUE_LINES} more.")
        text = "\n".join(lines) if lines else NOTHING_QUEUED
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)


def describe(item: SpeechItem) -> str:
    """One queue line: who asked (a mention that never pings), the voice, the start of the text."""
    preview = item.text if len(item.text) <= 60 else item.text[:59] + "…"
    preview = discord.utils.escape_markdown(discord.utils.escape_mentions(preview))
    voice = f" ({item.voice_name})" if item.voice_name else ""
    return f"<@{item.requester_id}>{voice}: {preview}"


async def setup(bot: TTSBot) -> None:
    await bot.add_cog(Speech(bot))
