"""/join and /leave, and the voice-state events the voice service follows."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.tree import NO_MENTIONS, guild_only
from bot.voice import NotConnectedError

if TYPE_CHECKING:
    from bot.app import TTSBot


class VoiceChannel(commands.Cog):
    def __init__(self, bot: TTSBot) -> None:
        self.bot = bot

    @app_commands.command(name="join", description="Bring the bot into a voice channel")
    @app_commands.describe(channel="The channel (default: the one you are in)")
    @guild_only()
    async def join(
        self,
        interaction: discord.Interaction,
        channel: discord.VoiceChannel | discord.StageChannel | None = None,
    ) -> None:
        assert isinstance(interaction.user, discord.Member)
        voices = self.bot.voices
        target = channel or voices.caller_channel(interaction.user)
        current = voices.connected_channel(interaction.user.guild)
        if current is not None and current.id == target.id:
            await interaction.response.send_message(
                f"I am already in {target.mention}.", ephemeral=True, allowed_mentions=NO_MENTIONS
            )
            return
        voices.require_control(interaction.user)
        voices.check_can_join(target)
        # Joining voice with the DAVE handshake can take over 3 s: answer first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        await voices.join(target)
        await interaction.followup.send(
            f"Joined {target.mention}.", ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    @app_commands.command(name="leave", description="Make the bot leave its voice channel")
    @guild_only()
    async def leave(self, interaction: discord.Interaction) -> None:
        assert isinstance(interaction.user, discord.Member)
        voices = self.bot.voices
        guild = interaction.user.guild
        if voices.connected_channel(guild) is None and guild.id not in voices.players:
            raise NotConnectedError()
        voices.require_control(interaction.user)
        if not await voices.leave(guild):
            raise NotConnectedError()
        await interaction.response.send_message(
            "Left the voice channel.", ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    @commands.Cog.listener()
    async def on_voice_state_update(
        self, member: discord.Member, before: discord.VoiceState, after: discord.VoiceState
    ) -> None:
        self.bot.voices.on_voice_state_update(member, before, after)


async def setup(bot: TTSBot) -> None:
    await bot.add_cog(VoiceChannel(bot))
