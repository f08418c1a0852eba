"""Discord message content -> text fit to be spoken by ElevenLabs.

Pure functions: the cog adapts a `discord.Message` into a string, a `MentionNames` table,
`Attachment` values and sticker names. Nothing here logs, because message text is private.

How it works. Discord constructs that must not be read literally (code, links, mentions,
emoji, timestamps, slash commands) are replaced by a *hold*: one private-use character that
stands for already-cleaned words. Holds keep those words (a user's display name, a domain)
out of the markdown rules that run afterwards, and they cannot be split or merged. Private-use
characters are stripped from the input first, so a hold can never be forged. After the
markdown pass the holds are restored and the whole text goes through `_sanitize`, which
enforces the guarantees on any string: no control/bidi characters, no `<` or `>` (so no tag,
raw mention or SSML), no link, no `@everyone`/`@here`, no character repeated more than
`max_repeat` times. All regexes are compiled once and built to run in linear time.

Decisions:
- Unicode emoji are dropped (always): the engine either ignores them or makes odd sounds, and
  every character counts against the ElevenLabs quota. Custom emoji `<:name:id>` are read as
  their name, or dropped with `emoji="drop"`.
- `@everyone` / `@here` lose their `@` and are read as the plain words "everyone" / "here".
- Links read "a link to <domain>" ("www." removed); a masked link `[text](url)` reads as its
  text, as chat shows it, unless the text is empty or is itself a link (a classic trick to
  disguise the target), then it reads "a link to <domain of the real target>".
- A code block reads "a code block"; inline code reads its text.
- Spoilers are skipped by default, or read with `spoilers="read"`.
- Underscores, pipes and backslashes become spaces (`snake_case` -> "snake case"); `*`,
  backticks and `~~` are dropped. Lone `~` stays.
- Numbered list markers ("1. ") are kept: the number carries meaning. Bullets are dropped.
- Digits are never shortened by the repeat rule ("1000000" stays); a word repeated more than
  `max_repeat` times in a row is cut too ("lol lol lol lol" -> "lol lol lol").
- Lines are joined with a comma (a short pause) unless a line already ends in punctuation.
- A result with no letter or digit is "" (nothing to speak).
- Absolute timestamps are read in UTC, 12-hour clock; relative ones against `now`.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal

from bot.text.attachments import Attachment, describe_attachments
from bot.text.timestamps import describe_timestamp

__all__ = [
    "DEFAULT_OPTIONS",
    "MIN_MAX_LENGTH",
    "MORE",
    "NO_NAMES",
    "CleanOptions",
    "MentionNames",
    "clean_message",
    "clean_name",
    "clean_text",
    "truncate_speech",
]

MORE = "and more"
MIN_MAX_LENGTH = 20
_SUFFIX = f" {MORE}"


@dataclass(frozen=True, slots=True)
class CleanOptions:
    """Per-guild reader settings that change how text is cleaned."""

    max_length: int = 300
    emoji: Literal["name", "drop"] = "name"
    spoilers: Literal["skip", "read"] = "skip"
    max_repeat: int = 3

    def __post_init__(self) -> None:
        if self.max_length < MIN_MAX_LENGTH:
            raise ValueError(f"max_length must be at least {MIN_MAX_LENGTH}")
        if self.emoji not in ("name", "drop"):
            raise ValueError("emoji must be 'name' or 'drop'")
        if self.spoilers not in ("skip", "read"):
            raise ValueError("spoilers must be 'skip' or 'read'")
        if self.max_repeat < 2:  # 1 would mangle ordinary double letters ("good")
            raise ValueError("max_repeat must be at least 2")


@dataclass(frozen=True, slots=True)
class MentionNames:
    """Names for the ids mentioned in a message; any Mapping works (a lazy one too).

    Ids missing here are read as a neutral word, never as the number.
    """

    users: Mapping[int, str] = field(default_factory=dict)
    roles: Mapping[int, str] = field(default_factory=dict)
    channels: Mapping[int, str] = field(default_factory=dict)


DEFAULT_OPTIONS = CleanOptions()
NO_NAMES = MentionNames()

# --- characters -------------------------------------------------------------------------

_NEWLINES = re.compile(r"\r\n?|[\x85\u2028\u2029]")
# ASCII controls: whitespace-like ones become a space, the rest vanish; "\n" is kept for
# the line-based markdown rules and becomes a pause or a space later.
_ASCII_CONTROLS = {
    i: (" " if chr(i).isspace() else None) for i in [*range(0x20), 0x7F] if i != 0x0A
}
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Cs", "Co"})
# Emoji and pictographs (always dropped), fillers that render as nothing, and floods of
# combining marks ("zalgo") that would make the engine stutter.
_SYMBOLS = re.compile(
    r"[\U0001F000-\U0001FAFF\u2300-\u23FF\u25A0-\u25FF\u2600-\u27BF\u2B00-\u2BFF"
    r"\uFE00-\uFE0F\u20E3\u3030\u303D\u3297\u3299\U000E0100-\U000E01EF"
    r"\u034F\u115F\u1160\u17B4\u17B5\u2800\u3164\uFFA0\U000FFFFE\U000FFFFF]+"
    r"|[\u0300-\u036F\u1AB0-\u1AFF\u1DC0-\u1DFF\u20D0-\u20FF\uFE20-\uFE2F]{4,}"
)

# --- holds ------------------------------------------------------------------------------

_HOLD_FIRST = 0xF0000
_HOLD_COUNT = 0x10FFFE - _HOLD_FIRST  # both supplementary private-use planes
_HOLD_CHARS = "\U000f0000-\U0010fffd"
_HOLD = re.compile(f"[{_HOLD_CHARS}]")

# --- patterns, in the order they run ---------------------------------------------------

_CODE_BLOCK = re.compile(r"```.*?```", re.S)
_INLINE_CODE = re.compile(r"(`{1,2})([^`]+)\1")
_SPOILER = re.compile(r"\|\|(.+?)\|\|", re.S)
_LINK_START = r"(?:https?://|\bwww\.)"
_MASKED_LINK = re.compile(
    r"\[(?P<text>[^\[\]\n]{0,256})\]\(\s*<?(?P<url>" + _LINK_START + r"[^\s()<>]*)>?\s*\)",
    re.I,
)
_LINK = re.compile(
    r"<(?P<bracketed>" + _LINK_START + r"[^\s<>]*)>|" + _LINK_START + r"[^\s<>]*", re.I
)
_URL_TRAILING = ".,;:!?'\")]}*_~|`"
_DISCORD_TOKEN = re.compile(
    r"<@!?(?P<user>\d{1,20})>"
    r"|<@&(?P<role>\d{1,20})>"
    r"|<#(?P<channel>\d{1,20})>"
    r"|<a?:(?P<emoji>\w{1,32}):\d{1,20}>"
    r"|<t:(?P<epoch>-?\d{1,16})(?::(?P<style>\w))?>"
    r"|</(?P<command>[^<>:/\n]{1,100}):\d{1,20}>"
)
_LINE_MARK = re.compile(r"[ \t]*(?:>>>[ \t]|>[ \t]|#{1,3}[ \t]|-#[ \t]|[-*+•][ \t])")
_MARKERS = re.compile(r"[*`]+|~~+")
_SPACERS = re.compile(r"[_|\\]+")
_TAG = re.compile(f"<[^<>{_HOLD_CHARS}]*>")
_ANGLE = re.compile(r"[<>]+")
_PING = re.compile(r"@+(?=everyone|here)", re.I)
_WWW_WORD = re.compile(r"\bwww\b", re.I)
_HOST_JUNK = re.compile(r"[^\w.-]+")
_DOTS = re.compile(r"\.{2,}")

_SPACES = re.compile(r"\s+")
_SPACE_BEFORE_PUNCT = re.compile(r" (?=[,.!?;:])")
_COMMAS = re.compile(r"([,;:])(?: ?[,;:])+")
# Leading list-like marks go too, so that a second cleaning finds nothing more to strip.
_EDGES = re.compile(r"^(?:[ ,;:.]|[-+•]+ |#{1,3} |-# )+|[ ,;:]+$")
_SENTENCE_END = ".,!?;:…"


@lru_cache(maxsize=16)
def _repeat_patterns(limit: int) -> tuple[re.Pattern[str], re.Pattern[str]]:
    characters = re.compile(rf"([^\d\s])\1{{{limit},}}")
    words = re.compile(rf"\b(\w+)(?:\s+\1\b){{{limit},}}")
    return characters, words


def _drop_invisible(text: str) -> str:
    """Remove control, format (zero-width, bidi), surrogate and private-use characters."""
    text = _NEWLINES.sub("\n", text).translate(_ASCII_CONTROLS)
    if not text.isascii():
        category = unicodedata.category
        text = "".join(
            ch
            if ch < "\x80" or category(ch) not in _INVISIBLE_CATEGORIES
            else (" " if ch.isspace() else "")
            for ch in text
        )
    return _SYMBOLS.sub("", text)


def _tidy(text: str) -> str:
    text = _SPACES.sub(" ", text)
    text = _SPACE_BEFORE_PUNCT.sub("", text)
    text = _COMMAS.sub(r"\1", text)
    return _EDGES.sub("", text)


def _link_words(url: str) -> str:
    """'a link to example.com' from any URL-ish string; never raises."""
    rest = url.split("://", 1)[-1]
    host = re.split(r"[/?#\\]", rest, maxsplit=1)[0]
    host = host.rpartition("@")[2].partition(":")[0]
    host = _HOST_JUNK.sub("", host).lower()
    host = _DOTS.sub(".", _WWW_WORD.sub("", host)).strip(".-_")
    host = _DOTS.sub(".", host)
    if not host or len(host) > 64 or not any(ch.isalnum() for ch in host):
        return "a link"
    return f"a link to {host}"


def _replace_links(text: str, emit: Callable[[str], str]) -> str:
    def replace(match: re.Match[str]) -> str:
        if match["bracketed"] is not None:
            return emit(_link_words(match["bracketed"]))
        url = match[0].rstrip(_URL_TRAILING)
        return emit(_link_words(url)) + match[0][len(url) :]

    return _LINK.sub(replace, text)


def _padded(words: str) -> str:
    return f" {words} "


def _sanitize(text: str, max_repeat: int) -> str:
    """Enforce every output guarantee on any string; idempotent."""
    text = _drop_invisible(text)
    text = _ANGLE.sub(" ", _TAG.sub(" ", text))
    text = _tidy(text)
    characters, words = _repeat_patterns(max_repeat)
    # Order matters: each step must not recreate what an earlier one removed.
    text = characters.sub(lambda m: m[1] * max_repeat, text)
    text = _PING.sub(" ", text)
    text = _replace_links(text, _padded)
    text = words.sub(lambda m: " ".join([m[1]] * max_repeat), text)
    return _tidy(text)


def _markdown_free(text: str) -> str:
    return _SPACERS.sub(" ", _MARKERS.sub("", text))


@lru_cache(maxsize=1024)
def clean_name(name: str, fallback: str = "", *, max_repeat: int = 3) -> str:
    """A user-chosen name (display name, role, channel, sticker) made safe to speak."""
    cleaned = _sanitize(_markdown_free(_drop_invisible(name)).replace("-", " "), max_repeat)
    return cleaned if any(ch.isalnum() for ch in cleaned) else fallback


@lru_cache(maxsize=1024)
def _inline_code(code: str, max_repeat: int) -> str:
    return _sanitize(_markdown_free(code), max_repeat)


class _Holds:
    """Stand-in characters for finished words, restored once markdown is gone."""

    def __init__(self) -> None:
        self._words: list[str] = []

    def hold(self, words: str) -> str:
        if not words:
            return " "
        if len(self._words) >= _HOLD_COUNT:
            return _padded(words)
        self._words.append(words)
        return _padded(chr(_HOLD_FIRST + len(self._words) - 1))

    def restore(self, text: str) -> str:
        def word(match: re.Match[str]) -> str:
            index = ord(match[0]) - _HOLD_FIRST
            return self._words[index] if index < len(self._words) else " "

        return _HOLD.sub(word, text)


def _strip_line_marks(line: str) -> str:
    position = 0
    while match := _LINE_MARK.match(line, position):
        position = match.end()
    return line[position:].strip()


def _join_lines(text: str) -> str:
    lines: list[str] = []
    for raw in text.split("\n"):
        line = _strip_line_marks(raw)
        if not line:
            continue
        if lines and lines[-1][-1] not in _SENTENCE_END:
            lines[-1] += ","
        lines.append(line)
    return " ".join(lines)


def clean_text(
    content: str,
    *,
    names: MentionNames = NO_NAMES,
    options: CleanOptions = DEFAULT_OPTIONS,
    now: datetime | None = None,
) -> str:
    """The cleaned words of `content`, with no length limit; '' when nothing is speakable.

    `now` (timezone-aware) anchors relative timestamps; the current time when omitted.
    """
    repeat = options.max_repeat
    holds = _Holds()
    text = _drop_invisible(content)

    text = _CODE_BLOCK.sub(lambda _: holds.hold("a code block"), text)
    text = _INLINE_CODE.sub(lambda m: holds.hold(_inline_code(m[2], repeat)), text)
    if options.spoilers == "skip":
        text = _SPOILER.sub(" ", text)
    else:
        text = _SPOILER.sub(lambda m: f" {m[1]} ", text)

    def masked_link(match: re.Match[str]) -> str:
        label = match["text"]
        if not any(ch.isalnum() for ch in label) or _LINK.search(label):
            return holds.hold(_link_words(match["url"]))
        return f" {label} "

    text = _MASKED_LINK.sub(masked_link, text)
    text = _replace_links(text, holds.hold)

    def token(match: re.Match[str]) -> str:
        kind = match.lastgroup
        if kind == "user":
            words = clean_name(
                names.users.get(int(match["user"]), ""), "someone", max_repeat=repeat
            )
        elif kind == "role":
            words = clean_name(names.roles.get(int(match["role"]), ""), "a role", max_repeat=repeat)
        elif kind == "channel":
            name = names.channels.get(int(match["channel"]), "")
            words = clean_name(name, "a channel", max_repeat=repeat)
        elif kind == "emoji":
            words = clean_name(match["emoji"], max_repeat=repeat) if options.emoji == "name" else ""
        elif kind in ("epoch", "style"):
            moment = now or datetime.now(UTC)
            words = describe_timestamp(int(match["epoch"]), match["style"], moment)
        else:
            words = "slash " + clean_name(match["command"], max_repeat=repeat)
        return holds.hold(words)  # every branch above yields words that are already safe

    text = _DISCORD_TOKEN.sub(token, text)
    # Anything still in angle brackets is markup the engine could interpret (SSML).
    text = _ANGLE.sub(" ", _TAG.sub(" ", text))
    text = _join_lines(_markdown_free(text))
    text = _sanitize(holds.restore(text), repeat)
    return text if any(ch.isalnum() for ch in text) else ""


def truncate_speech(text: str, max_length: int) -> str:
    """Cut `text` at a word boundary so that it, plus ' and more', fits in `max_length`."""
    if max_length < 0:
        raise ValueError("max_length must not be negative")
    text = text.strip()
    if len(text) <= max_length:
        return text
    budget = max_length - len(_SUFFIX)
    if budget <= 0:
        return MORE if len(MORE) <= max_length else ""
    head = text[: budget + 1]
    boundary = max(head.rfind(" "), head.rfind("\n"), head.rfind("\t"))
    head = head[:boundary] if boundary > 0 else head[:budget]
    head = head.rstrip(" \t\n,;:-–—")
    return f"{head}{_SUFFIX}" if head else MORE


def clean_message(
    content: str,
    *,
    names: MentionNames = NO_NAMES,
    attachments: Iterable[Attachment] = (),
    stickers: Iterable[str] = (),
    options: CleanOptions = DEFAULT_OPTIONS,
    now: datetime | None = None,
) -> str:
    """Everything to speak for one message, at most `options.max_length` characters.

    Returns '' when there is nothing to speak. The "<name> said" prefix is the reader's job.
    """
    body = clean_text(content, names=names, options=options, now=now)
    sticker_names = [clean_name(name, max_repeat=options.max_repeat) for name in stickers]
    extra = describe_attachments(attachments, sticker_names)
    if not extra:
        return truncate_speech(body, options.max_length)
    if not body:
        return truncate_speech(extra, options.max_length)
    separator = " and " if body[-1] in ".!?…" else ", and "
    budget = options.max_length - len(separator) - len(extra)
    if budget >= MIN_MAX_LENGTH:
        return truncate_speech(body, budget) + separator + extra
    return truncate_speech(body + separator + extra, options.max_length)
