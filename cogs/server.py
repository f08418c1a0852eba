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

from bot.errors import BotError
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
    from bot.quota.service import QuotaService

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

    # -- /server quota ------------------------------------------------------------------------

    quota = app_commands.Group(name="quota", description="This server's text-to-speech budget")

    def _quota(self) -> QuotaService:
        if self.bot.quota is None:
            raise BotError("Usage limits are not available on this bot right now.")
        return self.bot.quota

    @quota.command(name="limit", description="The monthly allowance of this server, in credits")
    @app_commands.describe(
        credits="Credits a month for the whole server (leave out: the bot's default)"
    )
    @manage_guild()
    async def quota_limit(
        self,
        interaction: discord.Interaction,
        credits: app_commands.Range[int, 1, 100_000_000] | None = None,
    ) -> None:
        assert interaction.guild_id is not None
        service = self._quota()
        ceiling = service.ledger.default_allowance
        # The operator pays the bill: admins may lower the allowance, not raise it past the
        # operator's default (unless that default is unlimited).
        if credits is not None and ceiling and credits > ceiling:
            raise BotError(
                f"This bot allows at most {ceiling:,} credits a month per server; "
                "ask the bot's operator for more."
            )
        await service.ledger.set_monthly_allowance(interaction.guild_id, credits)
        if credits is None:
            shown = f"{ceiling:,} credits (the bot's default)" if ceiling else "unlimited"
        else:
            shown = f"{credits:,} credits"
        await self._reply(interaction, f"This server's monthly allowance is now {shown}.")

    @quota.command(name="user-limit", description="Credits each member may use per day")
    @app_commands.describe(credits="Credits per member per UTC day (0 removes the cap)")
    @manage_guild()
    async def quota_user_limit(
        self, interaction: discord.Interaction, credits: app_commands.Range[int, 0, 100_000_000]
    ) -> None:
        assert interaction.guild_id is not None
        await self._quota().ledger.set_user_daily_cap(interaction.guild_id, credits or None)
        text = (
            f"Each member may now use {credits:,} credits a day (UTC)."
            if credits
            else "Members have no daily cap any more: only the server's allowance applies."
        )
        await self._reply(interaction, text)

    @quota.command(name="reset-day", description="The day of the month the allowance renews")
    @app_commands.describe(day="1 to 28 (UTC)")
    @manage_guild()
    async def quota_reset_day(
        self, interaction: discord.Interaction, day: app_commands.Range[int, 1, 28]
    ) -> None:
        assert interaction.guild_id is not None
        await self._quota().ledger.set_reset_day(interaction.guild_id, day)
        await self._reply(
            interaction,
            f"The allowance now renews on day {day} of each month (UTC); what was used so far "
            "this period still counts.",
        )

    @quota.command(name="top", description="Who used the most this period")
    @manage_guild()
    async def quota_top(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        service = self._quota()
        settings = await self.bot.storage.guilds.get(interaction.guild_id)
        rate = await service.model_rate(settings.model_id)
        top = await service.top_users(interaction.guild_id, limit=10)
        if not top:
            await self._reply(interaction, "Nobody has used any credits this period yet.")
            return
        lines = [
            f"{rank}. <@{row.user_id}>: {row.used:,} credits (about "
            f"{rate.characters(row.used):,} characters)"
            if row.user_id is not None
            else f"{rank}. (a deleted user): {row.used:,} credits"
            for rank, row in enumerate(top, start=1)
        ]
        embed = discord.Embed(title="Top users this period", description="\n".join(lines))
        await interaction.response.send_message(
            embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    @quota.command(name="alerts", description="Where to warn at 80 % and 100 % of the allowance")
    @app_commands.describe(channel="The channel for the warnings (leave out: no warnings)")
    @manage_guild()
    async def quota_alerts(
        self, interaction: discord.Interaction, channel: discord.TextChannel | None = None
    ) -> None:
        assert interaction.guild_id is not None and interaction.guild is not None
        if channel is not None:
            perms = channel.permissions_for(interaction.guild.me)
            if not (perms.view_channel and perms.send_messages):
                raise BotError(f"I cannot send messages in {channel.mention}.")
        await self._quota().ledger.set_alerts_channel(
            interaction.guild_id, channel.id if channel else None
        )
        text = (
            f"Warnings at 80 % and 100 % of the allowance go to {channel.mention}."
            if channel
            else "No more warnings about the allowance."
        )
        await self._reply(interaction, text)

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
