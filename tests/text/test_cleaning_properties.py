"""Properties of cleaning that must hold for any input, found by hypothesis.

Whatever arrives (random Unicode, Discord markup mixed with noise, nested markdown, the
largest messages) the result never raises, stays within the length limit and never hands
the speech engine a ping, a raw mention, a link, a tag or an invisible character.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import UTC, datetime

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.text import Attachment, CleanOptions, MentionNames, clean_message, truncate_speech

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
NAMES = MentionNames(
    users={1: "Alice", 2: "@everyone", 3: "<@1>", 4: "\u202ehttps://evil.com\u200b"},
    roles={5: "<break time='9s'/>", 6: "www.x.org"},
    channels={7: "general", 8: "\u2066"},
)

FORBIDDEN = {
    "raw mention": re.compile(r"<[@#/]|<a?:|<t:"),
    "angle bracket": re.compile(r"[<>]"),
    "ping": re.compile(r"@(?:everyone|here)", re.I),
    "link": re.compile(r"https?://|\bwww\.", re.I),
}
INVISIBLE = {"Cc", "Cf", "Cs", "Co"}

ids = st.sampled_from(["1", "2", "3", "4", "5", "6", "7", "8", "99", "0", "123456789012345678"])
TOKENS = st.one_of(
    st.builds("<@{}>".format, ids),
    st.builds("<@!{}>".format, ids),
    st.builds("<@&{}>".format, ids),
    st.builds("<#{}>".format, ids),
    st.builds("<:{}:{}>".format, st.text("ab_Zé9", min_size=1, max_size=5), ids),
    st.builds("<a:{}:{}>".format, st.text("ab_Zé9", min_size=1, max_size=5), ids),
    st.builds(
        "<t:{}:{}>".format,
        st.integers(-(10**15), 10**15),
        st.sampled_from("tTdDfFRx"),
    ),
    st.builds("</{}:{}>".format, st.sampled_from(["voice set", "tts", "a b c"]), ids),
    st.sampled_from(
        [
            "@everyone",
            "@here",
            "@",
            "everyone",
            "here",
            "@EVERYONE",
            "https://",
            "http://",
            "https://www.example.com/path?q=1",
            "www.",
            "WWW.",
            "www",
            "[",
            "]",
            "(",
            ")",
            "](",
            "[text](https://x.org)",
            "<https://x.org>",
            "```",
            "``",
            "`",
            "||",
            "|",
            "**",
            "*",
            "__",
            "_",
            "~~",
            "~",
            "\\",
            "> ",
            ">>> ",
            "# ",
            "### ",
            "-# ",
            "- ",
            "1. ",
            "\n",
            "\r\n",
            "\t",
            " ",
            "<",
            ">",
            "<b>",
            "</b>",
            '<break time="1s"/>',
            "<phoneme ph='x'>",
            "<3",
            "\u200b",
            "\u200d",
            "\u202e",
            "\u2066",
            "\ufeff",
            "\x00",
            "\x85",
            "\u2028",
            "😂",
            "👍🏽",
            "🇫🇷",
            "1️⃣",
            "\u0301",
            "\U000f0000",
            "\U000ffffe",
            "\U000f0001",
            "ooooooo",
            "!!!!!!",
            "lol lol lol lol",
            ".",
            ",",
            ":",
            "//",
            ":/",
        ]
    ),
)
DISCORDISH = st.lists(st.one_of(TOKENS, st.text(max_size=8)), max_size=40).map("".join)
MARKERS = st.sampled_from(["**", "*", "__", "_", "~~", "||", "`", "```", "> ", "# ", "<i>"])
NESTED = st.recursive(
    st.text(alphabet="ab <@&#>:/.", max_size=6),
    lambda inner: st.one_of(
        st.tuples(MARKERS, inner).map(lambda t: f"{t[0]}{t[1]}{t[0][::-1]}"),
        st.lists(inner, max_size=4).map("".join),
    ),
    max_leaves=30,
)
ANY_TEXT = st.one_of(st.text(), st.text(st.characters(exclude_categories=[])), DISCORDISH, NESTED)
OPTIONS = st.builds(
    CleanOptions,
    max_length=st.integers(20, 600),
    emoji=st.sampled_from(["name", "drop"]),
    spoilers=st.sampled_from(["skip", "read"]),
    max_repeat=st.integers(2, 5),
)
ATTACHMENTS = st.lists(
    st.builds(
        Attachment,
        filename=st.text(max_size=12),
        content_type=st.none() | st.sampled_from(["image/png", "video/mp4", "audio/ogg", "x/y"]),
        voice_message=st.booleans(),
    ),
    max_size=4,
)

FAST = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
FEW = settings(max_examples=8, deadline=None, suppress_health_check=list(HealthCheck))


def assert_speakable(result: str, options: CleanOptions) -> None:
    assert len(result) <= options.max_length
    for name, pattern in FORBIDDEN.items():
        assert not pattern.search(result), (name, result)
    assert not [ch for ch in result if unicodedata.category(ch) in INVISIBLE], result
    assert result == result.strip()
    assert "  " not in result
    assert not re.search(rf"([^\d\s])\1{{{options.max_repeat},}}", result), result
    if result:
        assert any(ch.isalnum() for ch in result)


@FAST
@given(content=ANY_TEXT, options=OPTIONS)
def test_any_text_is_made_speakable(content: str, options: CleanOptions) -> None:
    assert_speakable(clean_message(content, names=NAMES, options=options, now=NOW), options)


@FAST
@given(
    content=DISCORDISH,
    options=OPTIONS,
    attachments=ATTACHMENTS,
    stickers=st.lists(st.one_of(st.text(max_size=10), TOKENS), max_size=2),
)
def test_attachments_and_stickers_are_made_speakable(
    content: str, options: CleanOptions, attachments: list[Attachment], stickers: list[str]
) -> None:
    result = clean_message(
        content,
        names=NAMES,
        attachments=attachments,
        stickers=stickers,
        options=options,
        now=NOW,
    )
    assert_speakable(result, options)
    if attachments or stickers:
        assert "sent" in result or result.endswith("and more")


@FAST
@given(content=ANY_TEXT, options=OPTIONS)
def test_cleaning_is_idempotent(content: str, options: CleanOptions) -> None:
    once = clean_message(content, names=NAMES, options=options, now=NOW)
    assert clean_message(once, names=NAMES, options=options, now=NOW) == once


@FEW
@given(chunk=DISCORDISH.filter(bool), options=OPTIONS)
def test_huge_inputs(chunk: str, options: CleanOptions) -> None:
    content = (chunk * (100_000 // len(chunk) + 1))[:100_000]
    assert_speakable(clean_message(content, names=NAMES, options=options, now=NOW), options)


@FEW
@given(depth=st.integers(1, 5_000), marker=MARKERS, word=st.text(max_size=5))
def test_deeply_nested_markdown(depth: int, marker: str, word: str) -> None:
    content = marker * depth + word + marker[::-1] * depth
    assert_speakable(clean_message(content, names=NAMES, now=NOW), CleanOptions())


@FAST
@given(text=st.text(), max_length=st.integers(0, 400))
def test_truncate_speech_is_bounded(text: str, max_length: int) -> None:
    result = truncate_speech(text, max_length)
    assert len(result) <= max_length
    if len(text.strip()) <= max_length:
        assert result == text.strip()
    elif result:
        assert result.endswith("and more")


@FAST
@given(
    words=st.lists(st.text(alphabet="abcdefghij", min_size=1, max_size=12), min_size=1, max_size=80)
)
def test_truncation_cuts_between_words(words: list[str]) -> None:
    text = " ".join(words)
    result = truncate_speech(text, 60)
    if result.endswith(" and more") and len(text) > 60:
        kept = result.removesuffix(" and more")
        assert text.startswith(kept)
        assert text[len(kept)] == " "
