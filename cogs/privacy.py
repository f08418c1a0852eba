"""/privacy: what the bot sends, what it keeps, how to delete it. Same text as the README."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.privacy import PRIVACY_NOTICE
from bot.tree import NO_MENTIONS

if TYPE_CHECKING:
    from bot.app import TTSBot


class Privacy(commands.Cog):
    def __init__(self, bot: TTSBot) -> None:
        self.bot = bot

    @app_commands.command(name="privacy", description="What the bot sends, stores and deletes")
    async def privacy(self, interaction: discord.Interaction) -> None:
        embed = discord.Embed(title="Privacy", description=PRIVACY_NOTICE)
        await interaction.response.send_message(
            embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS
        )


async def setup(bot: TTSBot) -> None:
    await bot.add_cog(Privacy(bot))
