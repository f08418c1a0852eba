"""/server: the server's default voice, model and tuning, and the voice lock.

Manage Server twice over (see `cogs._checks`): `default_permissions` on the group hides
it from members without the permission, and `manage_guild()` on every subcommand
refuses them anyway, since a server's admins can change who sees a command.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.preferences import Tuning
from bot.storage.models import GuildSettings
from bot.tree import NO_MENTIONS
from bot.voice_settings import TUNING
from cogs._checks import manage_guild
from cogs._tuning import (
    LABELS,
    TUNING_DESCRIPTIONS,
    VOICE_DESCRIPTION,
    Speed,
    Unit,
    bold,
    describe_changes,
    format_value,
)

if TYPE_CHECKING:
    from bot.app import TTSBot

NOT_SET = "not set"


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class Server(
    commands.GroupCog,
    group_name="server",
    group_description="The server's voice and settings (Manage Server)",
):
    def __init__(self, bot: TTSBot) -> None:
        self.bot = bot
        super().__init__()

    async def _reply(self, interaction: discord.Interaction, content: str) -> None:
        await interaction.response.send_message(
            content, ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    @app_commands.command(name="voice", description="Set the voice everyone speaks with by default")
    @app_commands.describe(voice=VOICE_DESCRIPTION)
    @manage_guild()
    async def voice(self, interaction: discord.Interaction, voice: str) -> None:
        assert interaction.guild_id is not None
        chosen = await self.bot.preferences.set_server_voice(interaction.guild_id, voice)
        await self._reply(
            interaction,
            f"The server's voice is now {bold(chosen.name or chosen.voice_id)}. "
            "Members who chose their own voice keep it, unless the voice is locked.",
        )

    @voice.autocomplete("voice")
    async def _voice_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=name, value=value)
            for name, value in self.bot.catalog.autocomplete(current)
        ]

    @app_commands.command(name="model", description="Set the ElevenLabs model used here")
    @app_commands.describe(model="A text-to-speech model (start typing to search)")
    @manage_guild()
    async def model(self, interaction: discord.Interaction, model: str) -> None:
        assert interaction.guild_id is not None
        # The model list may need a request to ElevenLabs: answer within Discord's 3 s.
        await interaction.response.defer(ephemeral=True, thinking=True)
        chosen = await self.bot.preferences.set_server_model(interaction.guild_id, model)
        name = f"{chosen.name} ({chosen.model_id})" if chosen.name else chosen.model_id
        await interaction.followup.send(
            f"This server now speaks with the model {bold(name)}.",
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @model.autocomplete("model")
    async def _model_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=name, value=value)
            for name, value in await self.bot.preferences.model_choices(current)
        ]

    @app_commands.command(name="tune", description="Set the default tuning for everyone here")
    @app_commands.describe(**TUNING_DESCRIPTIONS)
    @manage_guild()
    async def tune(
        self,
        interaction: discord.Interaction,
        stability: Unit | None = None,
        similarity: Unit | None = None,
        style: Unit | None = None,
        speed: Speed | None = None,
        speaker_boost: bool | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        tuning = Tuning(
            stability=stability,
            similarity=similarity,
            style=style,
            speed=speed,
            speaker_boost=speaker_boost,
        )
        changes = await self.bot.preferences.tune_server(interaction.guild_id, tuning)
        await self._reply(
            interaction,
            f"The server's default settings are updated: {describe_changes(changes)}. "
            "Members' own settings still come first.",
        )

    @app_commands.command(
        name="lock-voice", description="Make everyone here speak with the server's voice"
    )
    @app_commands.describe(on="True: one voice for everyone; False: members choose their own")
    @manage_guild()
    async def lock_voice(self, interaction: discord.Interaction, on: bool) -> None:
        assert interaction.guild_id is not None
        preferences = self.bot.preferences
        settings = await preferences.lock_server_voice(interaction.guild_id, on)
        if on:
            voice = preferences.voice_name(settings.voice_id or preferences.default_voice_id)
            text = f"Everyone here now speaks with {bold(voice)}, whatever voice they chose."
            if settings.voice_id is None:
                text += " Pick the server's voice with /server voice."
        else:
            text = "Members can speak with their own voices here again."
        await self._reply(interaction, text)

    @app_commands.command(name="show", description="The server's voice and default settings")
    @manage_guild()
    async def show(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        settings = await self.bot.preferences.server_settings(interaction.guild_id)
        await interaction.response.send_message(
            embed=self.embed(settings), ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    @app_commands.command(name="reset", description="Clear the server's voice, model and tuning")
    @manage_guild()
    async def reset(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        await self.bot.preferences.reset_server(interaction.guild_id)
        await self._reply(
            interaction,
            "The server's voice, model and settings are cleared and the voice is unlocked: "
            "the bot's defaults apply here again.",
        )

    def embed(self, settings: GuildSettings) -> discord.Embed:
        preferences = self.bot.preferences
        embed = discord.Embed(title="This server's voice and settings")
        if settings.voice_id is not None:
            voice = discord.utils.escape_markdown(preferences.voice_name(settings.voice_id))
        else:
            default = preferences.voice_name(preferences.default_voice_id)
            voice = f"{NOT_SET} (the bot's default, {discord.utils.escape_markdown(default)})"
        embed.add_field(name=LABELS["voice_id"], value=voice, inline=False)
        model = (
            settings.model_id or f"{NOT_SET} (the bot's default, {preferences.default_model_id})"
        )
        embed.add_field(name=LABELS["model_id"], value=model, inline=False)
        for name in TUNING:
            value = getattr(settings, name)
            shown = format_value(name, value) if value is not None else f"{NOT_SET} (the voice's)"
            embed.add_field(name=LABELS[name], value=shown)
        locked = "on: everyone speaks with the server's voice" if settings.lock_voice else "off"
        embed.add_field(name="Voice lock", value=locked, inline=False)
        return embed


async def setup(bot: TTSBot) -> None:
    await bot.add_cog(Server(bot))
