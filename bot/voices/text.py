"""Normalising text so that matching ignores case, punctuation and separators.

Labels arrive as "middle-aged", "middle_aged" or "Middle Aged" depending on who
made the voice; users type any of them. Folding all to lowercase words joined by
single spaces makes filters and name matching agree with what people expect.
"""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W_]+")
ELLIPSIS = "…"


def fold(text: str) -> str:
    """Case-insensitive key that keeps punctuation (for exact and prefix matches)."""
    return " ".join(text.casefold().split())


def words(text: str) -> tuple[str, ...]:
    """Lowercase words, with `_`, `-` and other punctuation as separators."""
    return tuple(_WORD.findall(text.casefold()))


def norm(text: str) -> str:
    """Words joined by one space: "Middle_Aged" and "middle-aged" both give "middle aged"."""
    return " ".join(words(text))


def truncate(text: str, limit: int) -> str:
    """Cut to `limit` characters, marking the cut, for Discord's hard length limits."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - len(ELLIPSIS))].rstrip() + ELLIPSIS
