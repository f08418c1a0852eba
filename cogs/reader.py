"""Reading channels aloud: the gateway listeners and `/setup`. Thin glue over `bot.reader`.

Edits and deletions come as raw events: the message cache does not hold every message.
`/setup` is for Manage Server, twice over (see `cogs._checks`).
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.reader import MessageReader
from bot.storage.models import InvalidSetting
from bot.storage.reader import OPTION_SPECS, ReaderOptions, parse_option_value
from bot.tree import NO_MENTIONS
from cogs._checks import manage_guild

if TYPE_CHECKING:
    from bot.app import TTSBot

log = logging.getLogger(__name__)

ReadableChannel = discord.TextChannel | discord.VoiceChannel | discord.StageChannel | discord.Thread
RESET_WORDS = frozenset({"default", "reset"})
NONE_WORDS = frozenset({"none", "off"})  # "no skip prefix"


def show_value(name: str, value: object) -> str:
    if isinstance(value, bool):
        return "on" if value else "off"
    if name == "required_role_id":
        return "none" if value is None else f"<@&{value}>"
    if name == "skip_prefix":
        return f"`{value}`" if value else "none"
    if name == "max_wait_seconds":
        return f"{value} s"
    return str(value)


@app_commands.guild_only()
@app_commands.default_permissions(manage_guild=True)
class Reader(
    commands.GroupCog,
    group_name="setup",
    group_description="Which channels are read aloud, and how (Manage Server)",
):
    """The listeners that feed `MessageReader`, and the `/setup` commands that configure it."""

    remove = app_commands.Group(name="remove", description="Stop reading a channel")

    def __init__(self, bot: TTSBot) -> None:
        self.bot = bot
        # Built and started in setup_hook, closed in close(): the bot owns its lifecycle.
        self.reader: MessageReader = bot.reader
        super().__init__()

    # -- gateway events -----------------------------------------------------------------------

    @commands.Cog.listener()
    async def on_message(self, message: discord.Message) -> None:
        if message.guild is None or not self.bot.intents.message_content:
            return
        await self.reader.handle_message(message)

    @commands.Cog.listener()
    async def on_raw_message_edit(self, payload: discord.RawMessageUpdateEvent) -> None:
        if payload.message_id in self.reader.tracked and "content" in payload.data:
            await self.reader.handle_edit(payload.message)

    @commands.Cog.listener()
    async def on_raw_message_delete(self, payload: discord.RawMessageDeleteEvent) -> None:
        self.reader.remove(payload.guild_id, [payload.message_id])

    @commands.Cog.listener()
    async def on_raw_bulk_message_delete(self, payload: discord.RawBulkMessageDeleteEvent) -> None:
        self.reader.remove(payload.guild_id, payload.message_ids)

    @commands.Cog.listener()
    async def on_guild_remove(self, guild: discord.Guild) -> None:
        self.reader.forget_guild(guild.id)

    # -- /setup -------------------------------------------------------------------------------

    async def _reply(
        self, interaction: discord.Interaction, content: str = "", **kwargs: object
    ) -> None:
        await interaction.response.send_message(
            content, ephemeral=True, allowed_mentions=NO_MENTIONS, **kwargs
        )

    @app_commands.command(name="channel", description="Read a channel aloud")
    @app_commands.describe(channel="A text channel, thread, or voice channel chat")
    @manage_guild()
    async def channel(self, interaction: discord.Interaction, channel: ReadableChannel) -> None:
        assert interaction.guild_id is not None
        added = await self.reader.config.bind(interaction.guild_id, channel.id)
        if added:
            text = f"I now read {channel.mention} aloud to the people in my voice channel."
        else:
            text = f"I already read {channel.mention}."
        await self._reply(interaction, text)

    @remove.command(name="channel", description="Stop reading a channel aloud")
    @app_commands.describe(channel="A channel read aloud now")
    @manage_guild()
    async def remove_channel(
        self, interaction: discord.Interaction, channel: ReadableChannel
    ) -> None:
        assert interaction.guild_id is not None
        removed = await self.reader.config.unbind(interaction.guild_id, channel.id)
        text = (
            f"I no longer read {channel.mention}."
            if removed
            else (f"{channel.mention} was not read aloud.")
        )
        await self._reply(interaction, text)

    @app_commands.command(name="show", description="The channels read aloud and every option")
    @manage_guild()
    async def show(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        repository = self.reader.config.repository
        guild_id = interaction.guild_id
        channels = await repository.bound_channels(guild_id)
        blocked = await repository.blocked_users(guild_id)
        changed = await repository.get_changed_options(guild_id)
        options = await repository.get_options(guild_id)
        await self._reply(interaction, embed=self.embed(channels, blocked, options, changed))

    @staticmethod
    def embed(
        channels: list[int], blocked: list[int], options: ReaderOptions, changed: dict[str, object]
    ) -> discord.Embed:
        embed = discord.Embed(title="Reading aloud")
        embed.add_field(
            name="Channels",
            value=", ".join(f"<#{c}>" for c in channels) or "none (add one with /setup channel)",
            inline=False,
        )
        embed.add_field(
            name="Not read (blocked)",
            value=", ".join(f"<@{u}>" for u in blocked) or "nobody",
            inline=False,
        )
        lines = []
        for name, spec in OPTION_SPECS.items():
            value = show_value(name, getattr(options, name))
            mark = "" if name in changed else " (default)"
            lines.append(f"`{name}`: {value}{mark} · {spec.description}")
        embed.add_field(name="Options", value="\n".join(lines), inline=False)
        return embed

    @app_commands.command(name="option", description="Change how messages are read aloud")
    @app_commands.describe(
        name="The option (start typing to see them all)",
        value='The new value: on/off, a number, a role, text; "default" resets it',
    )
    @manage_guild()
    async def option(
        self,
        interaction: discord.Interaction,
        name: app_commands.Range[str, 1, 40],
        value: app_commands.Range[str, 1, 100],
    ) -> None:
        assert interaction.guild_id is not None
        spec = OPTION_SPECS.get(name)
        if spec is None:
            await self._reply(
                interaction, f"There is no option `{name[:40]}`: pick one from the list."
            )
            return
        try:
            if value.strip().lower() in RESET_WORDS:
                options = await self.reader.config.reset_option(interaction.guild_id, name)
            else:
                parsed = (
                    ""
                    if spec.kind is str and not spec.choices and value.lower() in NONE_WORDS
                    else parse_option_value(name, value)
                )
                options = await self.reader.config.set_option(interaction.guild_id, name, parsed)
        except InvalidSetting as error:
            await self._reply(interaction, f"That value does not work: `{name}` {error.message}.")
            return
        shown = show_value(name, getattr(options, name))
        await self._reply(interaction, f"`{name}` is now {shown}.")

    @option.autocomplete("name")
    async def _option_names(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        current = current.lower()
        return [
            app_commands.Choice(name=f"{name}: {spec.description}"[:100], value=name)
            for name, spec in OPTION_SPECS.items()
            if current in name or current in spec.description.lower()
        ][:25]

    @app_commands.command(name="block", description="Never read this member's messages")
    @app_commands.describe(user="The member not to read")
    @manage_guild()
    async def block(self, interaction: discord.Interaction, user: discord.Member) -> None:
        assert interaction.guild_id is not None
        added = await self.reader.config.block(interaction.guild_id, user.id)
        text = (
            f"I no longer read {user.mention}'s messages here."
            if added
            else f"{user.mention} was already not read."
        )
        await self._reply(interaction, text)

    @app_commands.command(name="unblock", description="Read this member's messages again")
    @app_commands.describe(user="A member blocked with /setup block")
    @manage_guild()
    async def unblock(self, interaction: discord.Interaction, user: discord.Member) -> None:
        assert interaction.guild_id is not None
        removed = await self.reader.config.unblock(interaction.guild_id, user.id)
        text = (
            f"I read {user.mention}'s messages again."
            if removed
            else f"{user.mention} was not blocked."
        )
        await self._reply(interaction, text)


async def setup(bot: TTSBot) -> None:
    await bot.add_cog(Reader(bot))
