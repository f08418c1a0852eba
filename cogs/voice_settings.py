"""/voice: each member's own voice and tuning. Thin glue over `bot.preferences`."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import discord
from discord import app_commands
from discord.ext import commands

from bot.preferences import Tuning, UserView
from bot.text import clean_name
from bot.tree import NO_MENTIONS
from bot.voice_settings import TUNING, Source
from cogs._checks import guild_only
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

log = logging.getLogger(__name__)

FORGET_TIMEOUT = 60.0  # seconds the /voice forget buttons wait for an answer
FORGET_CONFIRM_ID = "voice-forget:confirm"
FORGET_CANCEL_ID = "voice-forget:cancel"
HERE_DESCRIPTION = "Only in this server (default: every server)"
PRECEDENCE = " › ".join(source.value for source in Source)


def where(here: bool) -> str:
    return "in this server" if here else "everywhere"


def show_embed(view: UserView, voice_name: str, replaced_name: str | None) -> discord.Embed:
    resolved = view.resolved
    embed = discord.Embed(title="Your voice in this server")
    embed.add_field(
        name=LABELS["voice_id"],
        value=f"{discord.utils.escape_markdown(voice_name)} ({resolved.sources['voice_id']})",
        inline=False,
    )
    embed.add_field(
        name=LABELS["model_id"],
        value=f"{resolved.model_id} ({resolved.sources['model_id']})",
        inline=False,
    )
    for name in TUNING:
        value = format_value(name, getattr(resolved, name))
        embed.add_field(name=LABELS[name], value=f"{value} ({resolved.sources[name]})")
    notes: list[str] = []
    if view.server.lock_voice:
        notes.append("This server uses one voice for everyone.")
    if replaced_name is not None:
        notes.append(f"{bold(replaced_name)} is no longer available, so it is skipped.")
    if notes:
        embed.description = " ".join(notes)
    embed.set_footer(text=f"Each value comes from the first of: {PRECEDENCE}.")
    return embed


class ForgetView(discord.ui.View):
    """Ask before deleting: /voice forget cannot be undone."""

    def __init__(self, bot: TTSBot, interaction: discord.Interaction) -> None:
        super().__init__(timeout=FORGET_TIMEOUT)
        self.bot = bot
        self.origin = interaction
        self.user_id = interaction.user.id

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        return interaction.user.id == self.user_id

    @discord.ui.button(
        label="Delete everything", style=discord.ButtonStyle.danger, custom_id=FORGET_CONFIRM_ID
    )
    async def confirm(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.stop()
        rows = await self.bot.preferences.forget_user(self.user_id)
        if self.bot.reader is not None:
            self.bot.reader.forget_user(self.user_id)
        text = (
            "Done: everything the bot stored about you is deleted."
            if rows
            else "Done: the bot had nothing stored about you."
        )
        await interaction.response.edit_message(
            content=text, view=None, allowed_mentions=NO_MENTIONS
        )

    @discord.ui.button(
        label="Cancel", style=discord.ButtonStyle.secondary, custom_id=FORGET_CANCEL_ID
    )
    async def cancel(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        self.stop()
        await interaction.response.edit_message(
            content="Nothing was deleted.", view=None, allowed_mentions=NO_MENTIONS
        )

    async def on_timeout(self) -> None:
        try:
            await self.origin.edit_original_response(
                content="Nothing was deleted: no answer within a minute.",
                view=None,
                allowed_mentions=NO_MENTIONS,
            )
        except discord.HTTPException as exc:  # the message was dismissed
            log.debug("forget prompt not updated after timeout: %s", exc)


@app_commands.guild_only()
class VoiceSettings(
    commands.GroupCog, group_name="voice", group_description="Your voice and how it sounds"
):
    def __init__(self, bot: TTSBot) -> None:
        self.bot = bot
        super().__init__()

    async def _reply(self, interaction: discord.Interaction, content: str) -> None:
        await interaction.response.send_message(
            content, ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    @app_commands.command(name="set", description="Choose the voice you speak with")
    @app_commands.describe(voice=VOICE_DESCRIPTION, here=HERE_DESCRIPTION)
    @guild_only()
    async def set_voice(
        self, interaction: discord.Interaction, voice: str, here: bool = False
    ) -> None:
        assert interaction.guild_id is not None
        preferences = self.bot.preferences
        chosen = await preferences.set_user_voice(
            interaction.guild_id, interaction.user.id, voice, here=here
        )
        text = f"You now speak with {bold(chosen.name or chosen.voice_id)} {where(here)}."
        server = await preferences.server_settings(interaction.guild_id)
        if server.lock_voice:
            text += (
                " This server uses one voice for everyone, so here you still speak with "
                f"{bold(preferences.voice_name(server.voice_id or preferences.default_voice_id))}."
            )
        await self._reply(interaction, text)

    @set_voice.autocomplete("voice")
    async def _voice_autocomplete(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return [
            app_commands.Choice(name=name, value=value)
            for name, value in self.bot.catalog.autocomplete(current)
        ]

    @app_commands.command(name="tune", description="Adjust how your voice sounds")
    @app_commands.describe(**TUNING_DESCRIPTIONS, here=HERE_DESCRIPTION)
    @guild_only()
    async def tune(
        self,
        interaction: discord.Interaction,
        stability: Unit | None = None,
        similarity: Unit | None = None,
        style: Unit | None = None,
        speed: Speed | None = None,
        speaker_boost: bool | None = None,
        here: bool = False,
    ) -> None:
        assert interaction.guild_id is not None
        tuning = Tuning(
            stability=stability,
            similarity=similarity,
            style=style,
            speed=speed,
            speaker_boost=speaker_boost,
        )
        changes = await self.bot.preferences.tune_user(
            interaction.guild_id, interaction.user.id, tuning, here=here
        )
        await self._reply(
            interaction, f"Your settings {where(here)} are updated: {describe_changes(changes)}."
        )

    @app_commands.command(name="show", description="Your voice and settings here, and why")
    @guild_only()
    async def show(self, interaction: discord.Interaction) -> None:
        assert interaction.guild_id is not None
        preferences = self.bot.preferences
        view = await preferences.user_view(interaction.guild_id, interaction.user.id)
        replaced = view.resolved.replaced_voice_id
        embed = show_embed(
            view,
            preferences.voice_name(view.resolved.voice_id),
            preferences.voice_name(replaced) if replaced else None,
        )
        await interaction.response.send_message(
            embed=embed, ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    @app_commands.command(name="reset", description="Go back to the server's voice and settings")
    @app_commands.describe(here="Only clear your settings for this server")
    @guild_only()
    async def reset(self, interaction: discord.Interaction, here: bool = False) -> None:
        assert interaction.guild_id is not None
        still_here = await self.bot.preferences.reset_user(
            interaction.guild_id, interaction.user.id, here=here
        )
        if here:
            text = "Your settings for this server are cleared; your own settings apply here again."
        else:
            text = "Your voice and settings are back to the defaults everywhere."
            if still_here:
                text += (
                    " Your settings for this server still apply here; "
                    "clear them with /voice reset here: True."
                )
        await self._reply(interaction, text)

    @app_commands.command(
        name="forget", description="Delete everything the bot stores about you, everywhere"
    )
    @guild_only()
    async def forget(self, interaction: discord.Interaction) -> None:
        view = ForgetView(self.bot, interaction)
        await interaction.response.send_message(
            "This deletes everything the bot stores about you, in every server: your voice, "
            "your settings, your nickname and your usage counts. It cannot be undone.",
            view=view,
            ephemeral=True,
            allowed_mentions=NO_MENTIONS,
        )

    @app_commands.command(name="autoread", description="Whether your messages are read aloud")
    @app_commands.describe(enabled="off: the bot no longer reads your messages in any server")
    @guild_only()
    async def autoread(self, interaction: discord.Interaction, enabled: bool) -> None:
        reader = self.bot.reader
        assert reader is not None
        await reader.set_autoread(interaction.user.id, enabled)
        self.bot.preferences.invalidate_user(interaction.user.id)
        text = (
            "Your messages are read aloud again where the bot reads channels."
            if enabled
            else "Your messages are no longer read aloud, in any server. /speak still works."
        )
        await self._reply(interaction, text)

    @app_commands.command(name="nickname", description="The name read before your messages")
    @app_commands.describe(name='Said as "<name> said"; leave out to use your display name')
    @guild_only()
    async def nickname(
        self, interaction: discord.Interaction, name: app_commands.Range[str, 1, 32] | None = None
    ) -> None:
        reader = self.bot.reader
        assert reader is not None
        cleaned = clean_name(name) if name else None
        if name and not cleaned:
            await self._reply(interaction, "That nickname has nothing that can be read aloud.")
            return
        await reader.set_nickname(interaction.user.id, cleaned)
        self.bot.preferences.invalidate_user(interaction.user.id)
        text = (
            f"Your messages are introduced as \u201c{cleaned} said\u201d."
            if cleaned
            else "Your messages are introduced with your display name."
        )
        await self._reply(interaction, text)


async def setup(bot: TTSBot) -> None:
    await bot.add_cog(VoiceSettings(bot))
