"""/admin: the operator's commands, registered only in DEV_GUILD_ID and only for OWNER_IDS."""

from __future__ import annotations

from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.tree import NO_MENTIONS

if TYPE_CHECKING:
    from bot.app import TTSBot


class NotOwner(app_commands.CheckFailure):
    def __str__(self) -> str:
        return "Only the bot's operators can use this."


def owner_only():
    async def predicate(interaction: discord.Interaction) -> bool:
        bot: TTSBot = interaction.client  # type: ignore[assignment]
        if interaction.user.id in bot.settings.owner_ids:
            return True
        raise NotOwner()

    return app_commands.check(predicate)


@app_commands.default_permissions(administrator=True)
class Admin(commands.GroupCog, group_name="admin", group_description="Operator commands"):
    def __init__(self, bot: TTSBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="sync", description="Sync the slash commands with Discord")
    @app_commands.describe(scope="global: every server (slow to appear); here: this server only")
    @app_commands.choices(
        scope=[
            app_commands.Choice(name="global", value="global"),
            app_commands.Choice(name="here", value="here"),
        ]
    )
    @owner_only()
    async def sync(self, interaction: discord.Interaction, scope: str = "global") -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        guild = interaction.guild if scope == "here" else None
        synced = await self.bot.sync_commands(guild=guild)
        where = "this server" if guild else "every server"
        await interaction.followup.send(
            f"Synced {len(synced)} commands for {where}.",
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )


async def setup(bot: TTSBot) -> None:
    guild_id = bot.settings.dev_guild_id
    if guild_id is None:
        return  # no developer server: the owner commands exist nowhere
    await bot.add_cog(Admin(bot), guilds=[discord.Object(guild_id)])
