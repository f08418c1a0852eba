"""/admin: the operator's commands, registered only in DEV_GUILD_ID and only for OWNER_IDS."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import BotError
from bot.tree import NO_MENTIONS

if TYPE_CHECKING:
    from bot.app import TTSBot

log = logging.getLogger(__name__)

T = TypeVar("T")


class NotOwner(app_commands.CheckFailure, BotError):
    """A check failure with its own sentence (the tree's table shows `BotError`s as they are)."""

    def __init__(self) -> None:
        BotError.__init__(self, "Only the bot's operators can use this.")


class SyncFailedError(BotError):
    def __init__(self, status: int) -> None:
        super().__init__(
            f"Discord refused the sync (HTTP {status}); try again in a few minutes."
            if status != 429
            else "Discord refused the sync: too many syncs lately; try again in a few minutes."
        )


def owner_only() -> Callable[[T], T]:
    """Only OWNER_IDS, checked on every call: Discord's default permissions only hide it."""

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
    @app_commands.describe(
        scope="global: every server (the default); here: this server only, at once"
    )
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
        try:
            synced = await (self._sync_here(guild) if guild else self.bot.sync_commands())
        except discord.HTTPException as exc:
            log.warning("command sync failed: HTTP %s %s", exc.status, exc.text)
            raise SyncFailedError(exc.status) from None
        where = "this server" if guild else "every server"
        log.info("synced %d commands to %s", len(synced), guild.id if guild else "every server")
        await interaction.followup.send(
            f"Synced {len(synced)} commands to {where}.",
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    async def _sync_here(self, guild: discord.Guild) -> list[app_commands.AppCommand]:
        """This server's commands plus copies of the global ones, for testing at once.

        `copy_global_to` changes the tree for good; in a running bot the copies would then
        go out with every later sync of this server. So the server's own list is put back.
        """
        tree = self.bot.tree
        own = tree.get_commands(guild=guild)
        tree.copy_global_to(guild=guild)
        try:
            return await tree.sync(guild=guild)
        finally:
            tree.clear_commands(guild=guild)
            for command in own:
                tree.add_command(command, guild=guild)

    @app_commands.command(name="account", description="The ElevenLabs plan, credits and reset")
    @owner_only()
    async def account(self, interaction: discord.Interaction) -> None:
        await interaction.response.defer(ephemeral=True, thinking=True)
        sub = await self.bot.elevenlabs.subscription()
        embed = discord.Embed(title="ElevenLabs account")
        embed.add_field(name="Plan", value=sub.tier or "unknown")
        embed.add_field(
            name="Credits",
            value=f"{sub.character_count:,} used of {sub.character_limit:,} "
            f"({sub.remaining:,} left)",
        )
        if sub.next_character_count_reset_unix:
            embed.add_field(name="Resets", value=f"<t:{sub.next_character_count_reset_unix}:D>")
        await interaction.followup.send(embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS)


async def setup(bot: TTSBot) -> None:
    guild_id = bot.settings.dev_guild_id
    if guild_id is None:
        return  # no developer server: the owner commands exist nowhere
    await bot.add_cog(Admin(bot), guilds=[discord.Object(guild_id)])
