"""What someone searched for, in one value the cog, the embed and the CLI share.

`/voices search` and `python -m bot voices` take the same filters; keeping them in
one object means the embed can say what was asked, the cog can hand them to
`VoiceCatalog.search`, and the CLI, which streams voices page by page instead of
loading them all, can test each voice with exactly the catalogue's rule.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.elevenlabs.models import Voice
from bot.voices.snapshot import make_entry
from bot.voices.text import norm, truncate

QUOTE_LIMIT = 50
"""Typed text quoted back in a title or summary is cut to this, so it cannot crowd out results."""


@dataclass(frozen=True, slots=True)
class SearchFilters:
    """A free-text query and label filters; empty strings count as not given."""

    query: str | None = None
    category: str | None = None
    gender: str | None = None
    accent: str | None = None

    def traits(self) -> dict[str, str]:
        """The label filters given, as keyword arguments of `VoiceCatalog.search`."""
        given = {"category": self.category, "gender": self.gender, "accent": self.accent}
        return {kind: value for kind, value in given.items() if value and norm(value)}

    def matches(self, voice: Voice) -> bool:
        """Whether `voice` passes the label filters (not the query), by the catalogue's rule.

        The catalogue keeps, per voice, its category and labels normalised (case,
        `-`, `_` and spaces ignored) and filters on equality with the normalised
        value asked for; this applies the same precomputed traits to one voice.
        """
        wanted = self.traits()
        if not wanted:
            return True
        traits = make_entry(voice, None).traits
        return all(traits.get(kind) == norm(value) for kind, value in wanted.items())

    def describe(self) -> str:
        """A summary like “calm” · category premade · accent British; "" if nothing was asked."""
        parts = [f"“{truncate(' '.join(self.query.split()), QUOTE_LIMIT)}”"] if self.query else []
        parts += [
            f"{kind} {truncate(' '.join(value.split()), QUOTE_LIMIT)}"
            for kind, value in self.traits().items()
        ]
        return " · ".join(p for p in parts if p.strip("“” "))
