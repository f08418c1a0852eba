"""One page of search results as plain data: an embed's text and a select menu's options.

Kept free of discord.py so the limits Discord enforces (and answers with a 400
that loses the whole reply) can be tested with plain values: title 256,
description 4096, at most 25 fields of name 256 and value 1024, footer 2048,
6000 characters in all; select options 100 characters each and at most 25.
Voice names, descriptions and labels are chosen by whoever made the voice, so
every one is cut to fit and escaped (the cog passes Discord's markdown escape).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import datetime

from bot.elevenlabs.models import Voice
from bot.voices.filters import SearchFilters
from bot.voices.paging import Page
from bot.voices.snapshot import NOT_ON_PLAN
from bot.voices.text import ELLIPSIS, truncate

TITLE_LIMIT = 256
DESCRIPTION_LIMIT = 4096
FIELD_COUNT_LIMIT = 25
FIELD_NAME_LIMIT = 256
FIELD_VALUE_LIMIT = 1024
FOOTER_LIMIT = 2048
EMBED_TOTAL_LIMIT = 6000
OPTION_LIMIT = 25
OPTION_TEXT_LIMIT = 100
"""Discord's limits for an embed and for a select menu's options."""

PER_PAGE = 10
"""Voices per page: ten fields read comfortably and leave room in the 6,000 characters."""
NAME_LIMIT = 100
DESCRIPTION_CUT = 100
"""A voice's own description is cut to about this many characters: a taste, not the text."""
LABELS_LIMIT = 200

LABEL_ORDER = ("accent", "gender", "age", "description", "use_case")
"""Known labels first, in the order people describe a voice; any others follow by key."""

Escape = Callable[[str], str]


def _same(text: str) -> str:
    return text


@dataclass(frozen=True, slots=True)
class EmbedField:
    name: str
    value: str
    inline: bool = False


@dataclass(frozen=True, slots=True)
class MenuOption:
    """One select option: the value is the voice id, which every command accepts."""

    label: str
    value: str
    description: str = ""


@dataclass(frozen=True, slots=True)
class ResultsPage:
    """What one page of `/voices search` shows; the cog turns it into an embed and menus."""

    title: str
    description: str
    fields: tuple[EmbedField, ...]
    footer: str
    choices: tuple[MenuOption, ...]
    """The page's voices, for "use this voice"."""
    previews: tuple[MenuOption, ...]
    """The page's voices that have a preview file."""
    number: int
    count: int
    has_previous: bool
    has_next: bool

    def embed_length(self) -> int:
        """Characters Discord counts against the 6,000 of one embed."""
        return (
            len(self.title)
            + len(self.description)
            + len(self.footer)
            + sum(len(f.name) + len(f.value) for f in self.fields)
        )


def fit(text: str, limit: int, escape: Escape = _same) -> str:
    """`text` escaped and within `limit`: cut before escaping, so no escape is split, and
    cut again by the overshoot when escaping made it longer."""
    cut = truncate(text, limit)
    escaped = escape(cut)
    while len(escaped) > limit:
        cut = truncate(cut.removesuffix(ELLIPSIS), max(0, len(cut) - (len(escaped) - limit) - 1))
        escaped = escape(cut)
    return escaped


def one_line(text: str | None) -> str:
    """Whitespace, newlines included, folded to single spaces: one voice, one line."""
    return " ".join((text or "").split())


def label_text(voice: Voice) -> str:
    """Category and labels on one line, like "premade · American · female · narration"."""
    known = [voice.labels.get(key) for key in LABEL_ORDER]
    others = [voice.labels[key] for key in sorted(voice.labels) if key not in LABEL_ORDER]
    values = [one_line(v) for v in (voice.category, *known, *others) if v and one_line(v)]
    return " · ".join(dict.fromkeys(values))


def voice_name(voice: Voice) -> str:
    return one_line(voice.name) or voice.voice_id


def render_page(
    page: Page[Voice],
    filters: SearchFilters,
    *,
    usable: Callable[[Voice], bool],
    escape: Escape = _same,
    loaded_at: datetime | None = None,
) -> ResultsPage:
    """The embed text and menu options for `page` of the results of `filters`."""
    voices = page.items[: min(FIELD_COUNT_LIMIT, OPTION_LIMIT)]
    asked = filters.describe()
    title = fit(f"Voices matching {asked}" if asked else "Voices", TITLE_LIMIT, escape)
    first = page.first_index + 1
    lines = [f"Voices {first}–{first + len(voices) - 1} of {page.total}." if voices else ""]
    if not all(usable(v) for v in voices):
        lines.append(f"Voices marked{NOT_ON_PLAN} cannot speak on this account's plan.")
    lines.append("Pick one below to make it your voice, or to hear its preview.")
    description = truncate("\n".join(line for line in lines if line), DESCRIPTION_LIMIT)
    footer = f"Page {page.number} of {page.count}"
    if loaded_at is not None:
        footer += f" · voice list as of {loaded_at:%Y-%m-%d %H:%M} UTC"
    fields = tuple(
        _field(first + i, v, usable(v), escape, BUDGETS[0]) for i, v in enumerate(voices)
    )
    rendered = ResultsPage(
        title=title,
        description=description,
        fields=fields,
        footer=truncate(footer, FOOTER_LIMIT),
        choices=tuple(_option(v, usable(v)) for v in voices),
        previews=tuple(_option(v, True) for v in voices if v.preview_url),
        number=page.number,
        count=page.count,
        has_previous=page.has_previous,
        has_next=page.has_next,
    )
    return _within_total(rendered, first, voices, usable, escape)


@dataclass(frozen=True, slots=True)
class Budget:
    """How much of each voice a field shows; smaller budgets when a page would not fit."""

    name: int = NAME_LIMIT
    labels: int = LABELS_LIMIT
    description: int = DESCRIPTION_CUT


BUDGETS = (
    Budget(),
    Budget(description=DESCRIPTION_CUT // 2),
    Budget(labels=LABELS_LIMIT // 2, description=0),
    Budget(name=60, labels=60, description=0),
    Budget(name=30, labels=30, description=0),
    Budget(name=15, labels=0, description=0),
)
"""Tried in turn: descriptions go first, then labels, and names last, since a name is
what someone needs to pick a voice."""


def _field(number: int, voice: Voice, usable: bool, escape: Escape, budget: Budget) -> EmbedField:
    mark = "" if usable else NOT_ON_PLAN
    name = f"{number}. {fit(voice_name(voice), budget.name, escape)}{mark}"
    lines = [fit(label_text(voice), budget.labels, escape) if budget.labels else ""]
    if budget.description and (description := one_line(voice.description)):
        lines.append(fit(description, budget.description, escape))
    lines.append(f"`{voice.voice_id.replace('`', '')[:NAME_LIMIT]}`")
    value = "\n".join(line for line in lines if line)
    return EmbedField(
        name=truncate(name, FIELD_NAME_LIMIT), value=truncate(value, FIELD_VALUE_LIMIT)
    )


def _option(voice: Voice, usable: bool) -> MenuOption:
    suffix = "" if usable else NOT_ON_PLAN
    traits = (voice.category, voice.label("accent"), voice.label("gender"))
    details = " · ".join(one_line(x) for x in traits if x and one_line(x))
    return MenuOption(
        label=truncate(voice_name(voice), OPTION_TEXT_LIMIT),
        value=voice.voice_id,
        description=(truncate(details, OPTION_TEXT_LIMIT - len(suffix)) + suffix).strip(),
    )


def _within_total(
    rendered: ResultsPage,
    first: int,
    voices: Iterable[Voice],
    usable: Callable[[Voice], bool],
    escape: Escape,
) -> ResultsPage:
    """Smaller budgets until the embed fits Discord's 6,000 characters.

    Ten voices fit the first budget; long pages, or an escape that lengthens long
    texts, need less per voice. Shrinking beats losing the whole reply to a 400.
    """
    voices = tuple(voices)
    for budget in BUDGETS[1:]:
        if rendered.embed_length() <= EMBED_TOTAL_LIMIT:
            break
        fields = tuple(
            _field(first + i, v, usable(v), escape, budget) for i, v in enumerate(voices)
        )
        rendered = replace(rendered, fields=fields)
    return rendered
