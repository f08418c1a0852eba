"""/quota show, and the alerts posted when a server nears its allowance. Glue over `QuotaService`.

The service is `bot.quota`, built in `setup_hook` before the cogs load; loading this cog
hands the service its alert hook (`on_alert`), unloading takes it back.
"""

from __future__ import annotations

import logging
from decimal import Decimal
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.errors import BotError
from bot.quota.models import GuildUsage, QuotaAlert, UserUsage
from bot.quota.service import ModelRate, QuotaService, QuotaView, discord_date
from bot.tree import NO_MENTIONS
from cogs._checks import guild_only

if TYPE_CHECKING:
    from bot.app import TTSBot

log = logging.getLogger(__name__)

BAR_WIDTH = 20
BAR_FULL = "█"
BAR_EMPTY = "░"


class QuotaUnavailable(BotError):
    def __init__(self) -> None:
        super().__init__("Usage limits are not available on this bot right now.")


def usage_bar(used: int, allowance: int, width: int = BAR_WIDTH) -> str:
    """A text bar; any use shows at least one cell, and only a full allowance fills it."""
    filled = 0 if allowance <= 0 else round(width * min(used, allowance) / allowance)
    if used > 0 and filled == 0:
        filled = 1
    if used < allowance and filled == width:
        filled = width - 1
    return BAR_FULL * filled + BAR_EMPTY * (width - filled)


def percent(used: int, allowance: int) -> int:
    return used * 100 // allowance if allowance > 0 else 0


def credits(amount: int, rate: ModelRate) -> str:
    """ "1,200 credits (about 2,400 characters)": the unit billed, and the one people type."""
    unit = "credit" if amount == 1 else "credits"
    return f"{amount:,} {unit} (about {rate.characters(amount):,} characters)"


def multiplier_text(value: Decimal) -> str:
    return f"{value.normalize():f}"


def guild_lines(usage: GuildUsage, rate: ModelRate) -> list[str]:
    lines = ["**This server this period**"]
    if usage.unlimited:
        lines.append(f"No monthly limit; {credits(usage.used, rate)} used.")
    else:
        bar = usage_bar(usage.used, usage.allowance)
        lines.append(f"`{bar}` {percent(usage.used, usage.allowance)}%")
        lines.append(
            f"{usage.used:,} of {usage.allowance:,} credits used; "
            f"{credits(usage.remaining or 0, rate)} left."
        )
    if usage.reserved:
        lines.append(f"{usage.reserved:,} more held for speech in progress.")
    lines.append(f"Renews {discord_date(usage.resets_at)} ({discord_date(usage.resets_at, 'R')}).")
    return lines


def user_lines(usage: UserUsage, rate: ModelRate) -> list[str]:
    lines = ["**You today**"]
    if usage.cap is None:
        lines.append(f"{credits(usage.used, rate)} used; no daily limit on this server.")
    else:
        lines.append(
            f"{usage.used:,} of {usage.cap:,} credits used; "
            f"{credits(usage.remaining or 0, rate)} left; "
            f"renews {discord_date(usage.resets_at, 'R')}."
        )
    return lines


def render(view: QuotaView) -> str:
    rate = view.rate
    footer = (
        f"-# Characters at the rate of {rate.name}, the server's model: "
        f"{multiplier_text(rate.multiplier)} credit per character."
    )
    return "\n".join([*guild_lines(view.guild, rate), "", *user_lines(view.user, rate), footer])


def alert_text(alert: QuotaAlert) -> str:
    renews = discord_date(alert.resets_at)
    if alert.threshold >= 100:
        return (
            f"This server has used all of its monthly text-to-speech allowance "
            f"({alert.used:,} of {alert.allowance:,} credits): the bot stays silent here until "
            f"it renews on {renews}. Members with Manage Server can raise the limit."
        )
    return (
        f"This server has used {alert.threshold}% of its monthly text-to-speech allowance "
        f"({alert.used:,} of {alert.allowance:,} credits). It renews on {renews}."
    )


@app_commands.guild_only()
class Quota(commands.GroupCog, group_name="quota", group_description="Text-to-speech usage limits"):
    def __init__(self, bot: TTSBot) -> None:
        self.bot = bot
        super().__init__()

    @property
    def service(self) -> QuotaService:
        service: QuotaService | None = getattr(self.bot, "quota", None)
        if service is None:
            raise QuotaUnavailable()
        return service

    async def cog_load(self) -> None:
        service = getattr(self.bot, "quota", None)
        if service is not None:
            service.on_alert = self.post_alert

    async def cog_unload(self) -> None:
        service = getattr(self.bot, "quota", None)
        if service is not None and service.on_alert == self.post_alert:
            service.on_alert = None

    @app_commands.command(name="show", description="This server's use this period, and yours today")
    @guild_only()
    async def show(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        service = self.service
        # The model's price may need a request to ElevenLabs: answer within Discord's 3 s.
        await interaction.response.defer(ephemeral=True, thinking=True)
        server = await self.bot.preferences.server_settings(interaction.guild_id)
        view = await service.view(interaction.guild_id, interaction.user.id, server.model_id)
        await interaction.followup.send(render(view), ephemeral=True, allowed_mentions=NO_MENTIONS)

    async def post_alert(self, alert: QuotaAlert) -> None:
        """`QuotaService.on_alert`: the alert, in the channel the admins chose (if any)."""
        if alert.channel_id is None:
            return
        channel = self.bot.get_partial_messageable(
            alert.channel_id, guild_id=alert.guild_id, type=discord.ChannelType.text
        )
        try:
            await channel.send(alert_text(alert), allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as exc:
            log.warning(
                "guild %s: quota alert not posted in channel %s: HTTP %s",
                alert.guild_id,
                alert.channel_id,
                exc.status,
            )


async def setup(bot: TTSBot) -> None:
    await bot.add_cog(Quota(bot))
