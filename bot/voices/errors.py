"""Errors a user can act on when a voice cannot be found or used.

Each `str()` is a sentence to show as it is (the command tree and the CLI print
it). User input quoted back is cut short so one long query cannot flood a reply;
escaping Discord markdown stays the job of whoever renders it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

from bot.elevenlabs.models import Voice
from bot.errors import BotError
from bot.voices.text import truncate

MAX_LISTED = 5
"""How many names an error message lists: enough to jog memory, short enough to read."""

_QUOTE_LIMIT = 50


class VoiceError(BotError):
    """Base for every failure of the voice catalogue, so a handler can catch them together."""


class CatalogNotReady(VoiceError):
    """The first load has not finished (or failed), so names cannot be checked yet."""

    def __init__(self) -> None:
        super().__init__("The voice list has not loaded yet; try again in a minute.")


class VoiceNotFound(VoiceError):
    """No voice has this id, name or name prefix; `suggestions` are the nearest names."""

    def __init__(self, query: str, suggestions: Sequence[Voice] = ()) -> None:
        self.query = query
        self.suggestions: tuple[Voice, ...] = tuple(suggestions[:MAX_LISTED])
        if not query.strip():
            message = "Give the name or the id of a voice."
        elif self.suggestions:
            names = _or_list(_labels(self.suggestions))
            message = f"No voice is called {_quote(query)}. Did you mean {names}?"
        else:
            message = f"No voice is called {_quote(query)}, and none has a name close to it."
        super().__init__(message)


class AmbiguousVoice(VoiceError):
    """Several voices fit; `candidates` holds all of them, the message lists the first few."""

    def __init__(self, query: str, candidates: Sequence[Voice]) -> None:
        self.query = query
        self.candidates: tuple[Voice, ...] = tuple(candidates)
        shown = _labels(self.candidates[:MAX_LISTED])
        hidden = len(self.candidates) - len(shown)
        listed = ", ".join(shown) + (f" and {hidden} more" if hidden else "")
        super().__init__(
            f"{_quote(query)} could be {len(self.candidates)} voices: {listed}. "
            "Type more of the name, or use the voice id."
        )


class VoiceNotOnPlan(VoiceError):
    """The voice exists but the account's subscription tier cannot speak with it."""

    def __init__(self, voice: Voice) -> None:
        self.voice = voice
        name = voice.name or voice.voice_id
        super().__init__(f"The voice {name} is not available on this account's plan.")


def _quote(text: str) -> str:
    return f"“{truncate(' '.join(text.split()), _QUOTE_LIMIT)}”"


def _labels(voices: Sequence[Voice]) -> list[str]:
    """Names, with the id added where two listed voices share a name (the only way to pick)."""
    counts = Counter(v.name.casefold() for v in voices)
    return [
        f"{v.name} ({v.voice_id})" if counts[v.name.casefold()] > 1 or not v.name else v.name
        for v in voices
    ]


def _or_list(items: list[str]) -> str:
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + f" or {items[-1]}"
