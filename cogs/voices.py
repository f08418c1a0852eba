"""/voices search: browse the catalogue in pages, pick a voice, hear its preview.

Thin glue: the catalogue searches (`bot.voices`), `bot.voices.view_model` lays a
page out within Discord's limits, `bot.preferences` stores the choice and
`bot.speech` plays the preview. This module only turns those into an embed,
menus and buttons, and clicks back into calls.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import discord
from discord import app_commands
from discord.ext import commands

from bot.elevenlabs.models import Voice
from bot.errors import BotError
from bot.tree import NO_MENTIONS, explain, reply_ephemeral
from bot.voice import NotInVoiceError
from bot.voices import CatalogNotReady, FacetKind, VoiceCatalog, VoiceNotFound
from bot.voices.filters import SearchFilters
from bot.voices.view_model import PER_PAGE, MenuOption, ResultsPage, render_page
from cogs._checks import guild_only
from cogs._followups import follow_up_on_result
from cogs._tuning import bold

if TYPE_CHECKING:
    from bot.app import TTSBot
    from bot.tts import Queued

log = logging.getLogger(__name__)

VIEW_TIMEOUT = 600.0
"""Seconds the buttons work, counted from the command: the interaction token that
lets the bot disable them afterwards lives 15 minutes, so this must stay below."""

USE_ID = "voices:use"
PREVIEW_ID = "voices:preview"
PREVIOUS_ID = "voices:previous"
NEXT_ID = "voices:next"
PAGE_ID = "voices:page"

NOT_YOURS = "These buttons belong to whoever ran this /voices search; run the command yourself."
NO_MATCH = "No voices match that search."
CHOICE_LIMIT = 100  # Discord's limit for an autocomplete choice's name and value


def embed_of(page: ResultsPage) -> discord.Embed:
    embed = discord.Embed(title=page.title, description=page.description)
    for field in page.fields:
        embed.add_field(name=field.name, value=field.value, inline=field.inline)
    embed.set_footer(text=page.footer)
    return embed


def select_options(options: Sequence[MenuOption]) -> list[discord.SelectOption]:
    return [
        discord.SelectOption(label=o.label, value=o.value, description=o.description or None)
        for o in options
    ]


class SearchView(discord.ui.View):
    """Pages of one search's results, usable by the person who searched only.

    The results are kept as they were when searched: paging does not reshuffle
    under a refresh. The deadline is absolute (discord.py would restart the
    timeout on every click), because disabling the components at the end needs
    the command's interaction token, which expires 15 minutes after the command.
    """

    def __init__(
        self,
        bot: TTSBot,
        origin: discord.Interaction,
        results: Sequence[Voice],
        filters: SearchFilters,
        *,
        timeout: float = VIEW_TIMEOUT,
    ) -> None:
        super().__init__(timeout=timeout)
        self.bot = bot
        self.origin = origin
        self.owner_id = origin.user.id
        self.results = tuple(results)
        self.filters = filters
        self.number = 1
        self.deadline = time.monotonic() + timeout
        self._watchers: set[asyncio.Task[None]] = set()
        self.page = self.render()

    @property
    def catalog(self) -> VoiceCatalog:
        return self.bot.catalog

    def render(self) -> ResultsPage:
        """Lay out page `self.number` and set the components to match it."""
        page = render_page(
            self.catalog.page(self.results, self.number, PER_PAGE),
            self.filters,
            usable=self.catalog.usable,
            escape=discord.utils.escape_markdown,
            loaded_at=self.catalog.loaded_at,
        )
        self.number = page.number
        self.use_voice.options = select_options(page.choices)
        self.preview.options = select_options(page.previews) or [
            discord.SelectOption(label="No previews on this page", value="-")
        ]
        self.preview.disabled = not page.previews
        self.previous_page.disabled = not page.has_previous
        self.next_page.disabled = not page.has_next
        self.page_indicator.label = f"Page {page.number}/{page.count}"
        self.page = page
        return page

    @property
    def embed(self) -> discord.Embed:
        return embed_of(self.page)

    # -- who may press, for how long ----------------------------------------------------

    async def interaction_check(self, interaction: discord.Interaction) -> bool:
        if interaction.user.id == self.owner_id:
            return True
        await reply_ephemeral(interaction, NOT_YOURS)
        return False

    def _keep_deadline(self) -> None:
        """Undo discord.py's restart of the timeout on this click (see the class docstring)."""
        self.timeout = max(self.deadline - time.monotonic(), 0.001)

    async def on_timeout(self) -> None:
        for item in self.children:
            if isinstance(item, discord.ui.Button | discord.ui.Select):
                item.disabled = True
        try:
            await self.origin.edit_original_response(view=self, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as exc:  # dismissed, or the token is gone
            log.debug("voices search view not disabled after timeout: %s", exc)

    async def on_error(
        self, interaction: discord.Interaction, error: Exception, item: discord.ui.Item[Any]
    ) -> None:
        """The command tree's table, so a click fails in the same words as a command."""
        custom_id = getattr(item, "custom_id", None) or type(item).__name__
        context = (
            f"/voices search {custom_id} guild={interaction.guild_id} "
            f"user={interaction.user.id} interaction={interaction.id}"
        )
        await reply_ephemeral(interaction, explain(error, context))

    # -- components ---------------------------------------------------------------------

    @discord.ui.select(custom_id=USE_ID, placeholder="Use a voice as yours…", row=0)
    async def use_voice(self, interaction: discord.Interaction, select: discord.ui.Select) -> None:
        self._keep_deadline()
        assert interaction.guild_id is not None
        preferences = self.bot.preferences
        chosen = await preferences.set_user_voice(
            interaction.guild_id, interaction.user.id, self._voice(select.values[0]).voice_id
        )
        text = f"You now speak with {bold(chosen.name or chosen.voice_id)} everywhere."
        server = await preferences.server_settings(interaction.guild_id)
        if server.lock_voice:
            locked = preferences.voice_name(server.voice_id or preferences.default_voice_id)
            text += (
                f" This server uses one voice for everyone, so here you still speak with "
                f"{bold(locked)}."
            )
        await interaction.response.send_message(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    @discord.ui.select(custom_id=PREVIEW_ID, placeholder="Hear a voice's preview…", row=1)
    async def preview(self, interaction: discord.Interaction, select: discord.ui.Select) -> None:
        self._keep_deadline()
        voice = self._voice(select.values[0])
        name = voice.name or voice.voice_id
        if not voice.preview_url:
            # Not offered in the menu; only a stale or forged click gets here.
            raise BotError(f"The voice {name} has no preview.")
        assert isinstance(interaction.user, discord.Member)
        # Joining voice (with the DAVE handshake) can take over 3 s: answer first.
        await interaction.response.defer(ephemeral=True, thinking=True)
        try:
            queued = await self.bot.speech.preview(
                interaction.user, voice.preview_url, voice_name=name
            )
        except NotInVoiceError:
            text = (
                f"You are not in a voice channel, so here is the preview of {bold(name)}: "
                f"{voice.preview_url}"
            )
        else:
            ahead = queued.ahead
            text = (
                f"Playing the preview of {bold(name)}."
                if ahead == 0
                else f"The preview of {bold(name)} plays after {ahead} queued message"
                f"{'s' if ahead != 1 else ''}."
            )
            self._report_failure(interaction, queued, name)
        await interaction.followup.send(text, ephemeral=True, allowed_mentions=NO_MENTIONS)

    def _report_failure(self, interaction: discord.Interaction, queued: Queued, name: str) -> None:
        """Say so if the preview fails while playing (its file gone, say), as /speak does."""
        follow_up_on_result(
            interaction,
            queued,
            failure_prefix=f"I could not play the preview of {bold(name)}",
            context=(
                f"/voices search preview guild={interaction.guild_id} "
                f"user={interaction.user.id} interaction={interaction.id} item={queued.item.id}"
            ),
            tasks=self._watchers,
        )

    @discord.ui.button(
        custom_id=PREVIOUS_ID, label="Previous", style=discord.ButtonStyle.secondary, row=2
    )
    async def previous_page(
        self, interaction: discord.Interaction, button: discord.ui.Button
    ) -> None:
        await self._turn(interaction, -1)

    @discord.ui.button(
        custom_id=PAGE_ID,
        label="Page 1/1",
        style=discord.ButtonStyle.secondary,
        disabled=True,
        row=2,
    )
    async def page_indicator(
        self, interaction: discord.Interaction, button: discord.ui.Button
    ) -> None:
        await interaction.response.defer()  # disabled: only a stale client can press it

    @discord.ui.button(custom_id=NEXT_ID, label="Next", style=discord.ButtonStyle.primary, row=2)
    async def next_page(self, interaction: discord.Interaction, button: discord.ui.Button) -> None:
        await self._turn(interaction, +1)

    async def _turn(self, interaction: discord.Interaction, step: int) -> None:
        self._keep_deadline()
        self.number += step
        self.render()
        await interaction.response.edit_message(
            embed=self.embed, view=self, allowed_mentions=NO_MENTIONS
        )

    def _voice(self, voice_id: str) -> Voice:
        """A voice of these results (the menus only offer those), by id."""
        for voice in self.results:
            if voice.voice_id == voice_id:
                return voice
        raise VoiceNotFound(voice_id)


FILTER_DESCRIPTIONS = {
    "query": "Words to look for in names, descriptions and labels",
    "category": "premade, cloned, generated, professional…",
    "gender": "A gender label, e.g. female",
    "accent": "An accent label, e.g. British",
}


class Voices(commands.GroupCog, group_name="voices", group_description="Find voices and hear them"):
    def __init__(self, bot: TTSBot) -> None:
        self.bot = bot
        super().__init__()

    @app_commands.command(name="search", description="Browse the voices, filter them, try them")
    @app_commands.describe(**FILTER_DESCRIPTIONS)
    @guild_only()
    async def search(
        self,
        interaction: discord.Interaction,
        query: app_commands.Range[str, 1, 100] | None = None,
        category: app_commands.Range[str, 1, 100] | None = None,
        gender: app_commands.Range[str, 1, 100] | None = None,
        accent: app_commands.Range[str, 1, 100] | None = None,
    ) -> None:
        catalog = self.bot.catalog
        if not catalog.loaded:
            raise CatalogNotReady()
        filters = SearchFilters(query=query, category=category, gender=gender, accent=accent)
        results = catalog.search(filters.query, **filters.traits())
        if not results:
            asked = filters.describe()
            text = f"No voices match {discord.utils.escape_markdown(asked)}." if asked else NO_MATCH
            await interaction.response.send_message(
                text, ephemeral=True, allowed_mentions=NO_MENTIONS
            )
            return
        view = SearchView(self.bot, interaction, results, filters, timeout=VIEW_TIMEOUT)
        await interaction.response.send_message(
            embed=view.embed, view=view, ephemeral=True, allowed_mentions=NO_MENTIONS
        )

    def _facet_choices(self, kind: FacetKind, current: str) -> list[app_commands.Choice[str]]:
        values = self.bot.catalog.facets().complete(kind, current)
        return [
            app_commands.Choice(name=value, value=value)
            for value in values
            if len(value) <= CHOICE_LIMIT
        ]

    @search.autocomplete("category")
    async def _category(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return self._facet_choices("category", current)

    @search.autocomplete("gender")
    async def _gender(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return self._facet_choices("gender", current)

    @search.autocomplete("accent")
    async def _accent(
        self, interaction: discord.Interaction, current: str
    ) -> list[app_commands.Choice[str]]:
        return self._facet_choices("accent", current)


async def setup(bot: TTSBot) -> None:
    await bot.add_cog(Voices(bot))
