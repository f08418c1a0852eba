"""Table-driven tests of message cleaning: one row per rule, then realistic Discord messages."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pytest

from bot.text import (
    MORE,
    Attachment,
    CleanOptions,
    MentionNames,
    clean_message,
    clean_name,
    describe_attachments,
    truncate_speech,
)
from bot.text.timestamps import relative_phrase

EPOCH = 1_700_000_000  # 2023-11-14 22:13:20 UTC, a Tuesday
NOW = datetime.fromtimestamp(EPOCH, tz=UTC)
NAMES = MentionNames(
    users={111: "Alice", 222: "Bob_the_Builder", 333: "\u202eevil\u200b", 444: "@everyone"},
    roles={555: "Moderators", 556: "<break time='5s'/>"},
    channels={777: "off-topic", 778: "🎮-gaming"},
)


def clean(content: str, **options: object) -> str:
    return clean_message(content, names=NAMES, now=NOW, options=CleanOptions(**options))


RULES = [
    # mentions
    ("user", "hi <@111>", "hi Alice"),
    ("user nick form", "hi <@!111>", "hi Alice"),
    ("user underscores", "<@222> is here", "Bob the Builder is here"),
    ("user unknown", "ask <@999>", "ask someone"),
    ("user name with bidi", "<@333> says", "evil says"),
    ("user named @everyone", "<@444>!", "everyone!"),
    ("role", "<@&555> help", "Moderators help"),
    ("role unknown", "<@&1> help", "a role help"),
    ("role name is markup", "<@&556> help", "a role help"),
    ("channel", "see <#777>", "see off topic"),
    ("channel with emoji", "see <#778>", "see gaming"),
    ("channel unknown", "see <#1>", "see a channel"),
    ("everyone", "@everyone game night", "everyone game night"),
    ("here", "@here look", "here look"),
    ("everyone escaped with zero width", "@\u200beveryone hi", "everyone hi"),
    ("everyone in code", "`@everyone`", "everyone"),
    # custom emoji
    ("custom emoji", "gg <:pepe_laugh:123456>", "gg pepe laugh"),
    ("animated emoji", "<a:dance:42> party", "dance party"),
    ("emoji repeated", "<:pog:1><:pog:1><:pog:1><:pog:1><:pog:1>", "pog pog pog"),
    # timestamps
    ("timestamp default", f"<t:{EPOCH}>", "November 14, 2023 at 10:13 PM UTC"),
    ("timestamp f", f"<t:{EPOCH}:f>", "November 14, 2023 at 10:13 PM UTC"),
    ("timestamp F", f"<t:{EPOCH}:F>", "Tuesday, November 14, 2023 at 10:13 PM UTC"),
    ("timestamp d", f"<t:{EPOCH}:d>", "November 14, 2023"),
    ("timestamp D", f"<t:{EPOCH}:D>", "November 14, 2023"),
    ("timestamp t", f"<t:{EPOCH}:t>", "10:13 PM UTC"),
    ("timestamp T", f"<t:{EPOCH}:T>", "10:13:20 PM UTC"),
    ("timestamp R future", f"starts <t:{EPOCH + 3 * 3600}:R>", "starts in 3 hours"),
    ("timestamp R past", f"<t:{EPOCH - 86400}:R>", "a day ago"),
    ("timestamp R now", f"<t:{EPOCH}:R>", "a few seconds ago"),
    ("timestamp out of range", "<t:9999999999999999>", "a date"),
    ("timestamp midnight", "<t:0:t>", "12:00 AM UTC"),
    # slash commands
    ("slash command", "use </voice set:1234>", "use slash voice set"),
    ("slash command dashes", "</tts-say:1>", "slash tts say"),
    # links
    ("link", "look https://example.com/a?b=c", "look a link to example.com"),
    ("link www dropped", "https://www.youtube.com/watch?v=x", "a link to youtube.com"),
    ("link bare www", "go to www.Example.org/page", "go to a link to example.org"),
    ("link trailing punctuation", "see https://x.io/a.", "see a link to x.io."),
    ("link suppressed embed", "<https://discord.com/channels/1/2/3>", "a link to discord.com"),
    ("link with credentials and port", "http://u:p@host.net:8080/", "a link to host.net"),
    ("link no host", "https:// nothing", "a link nothing"),
    ("link upper case", "HTTPS://EXAMPLE.COM", "a link to example.com"),
    ("masked link", "[the docs](https://docs.python.org/3/)", "the docs"),
    ("masked link suppressed", "read [this](<https://x.org>) now", "read this now"),
    ("masked link empty text", "[](https://x.org)", "a link to x.org"),
    ("masked link disguised", "[https://google.com](https://evil.com)", "a link to evil.com"),
    ("masked link with markdown", "[**bold**](https://x.org)", "bold"),
    # code
    ("code block", "```py\nprint('hi')\n```", "a code block"),
    ("code block mid text", "try this:\n```\nrm -rf /\n```\nok?", "try this: a code block, ok?"),
    ("code block hides mentions", "```<@111> @everyone https://x.org```", "a code block"),
    ("inline code", "run `pip install -U bot`", "run pip install -U bot"),
    ("inline code double", "``a b``", "a b"),
    ("unclosed code fence", "```oops", "oops"),
    # spoilers
    ("spoiler skipped", "the killer is ||the butler|| lol", "the killer is lol"),
    ("spoiler only", "||secret||", ""),
    ("spoiler multiline", "||line one\nline two|| after", "after"),
    # markdown
    ("bold", "**bold** move", "bold move"),
    ("italics", "*so* _very_", "so very"),
    ("bold italics underline", "***__wow__***", "wow"),
    ("strike", "~~no~~ yes", "no yes"),
    ("escaped", r"\*not italic\*", "not italic"),
    ("header", "# Big news", "Big news"),
    ("header 3", "### Smaller", "Smaller"),
    ("hashtag is not a header", "#1 fan", "#1 fan"),
    ("subtext", "-# small print", "small print"),
    ("block quote", "> quoted\nreply", "quoted, reply"),
    ("multi-line quote", ">>> a\nb", "a, b"),
    ("bullets", "- eggs\n* milk\n+ bread", "eggs, milk, bread"),
    ("numbered list kept", "1. eggs\n2. milk", "1. eggs, 2. milk"),
    ("nested markers", "> - # **hi**", "hi"),
    ("snake case", "my_var_name", "my var name"),
    # markup for the speech engine
    ("ssml break", 'wait <break time="3s"/> now', "wait now"),
    ("ssml phoneme", '<phoneme alphabet="ipa" ph="x">tomato</phoneme>', "tomato"),
    ("any tag", "<b>bold</b> <script>", "bold"),
    ("lone brackets", "a < b > c", "a c"),
    ("heart", "love you <3", "love you 3"),
    ("broken mention", "<@abc", "@abc"),
    # repeats
    ("letters", "sooooooo good", "sooo good"),
    ("exclamation", "wow!!!!!!!", "wow!!!"),
    ("exactly the limit", "sooo", "sooo"),
    ("digits untouched", "$1000000", "$1000000"),
    ("words", "lol lol lol lol lol", "lol lol lol"),
    # invisible characters
    ("zero width", "a\u200bb\u200c\u200d\ufeffc", "abc"),
    ("bidi override", "\u202eesrever\u202c ok", "esrever ok"),
    ("isolates", "\u2066a\u2069 \u2067b\u2068", "a b"),
    ("controls", "a\x00b\x07c\x1bd", "abcd"),
    ("tabs and newlines", "a\tb\r\nc", "a b, c"),
    ("soft hyphen", "co\u00adop", "coop"),
    ("hangul filler name", "\u3164", ""),
    # emoji and whitespace
    ("unicode emoji dropped", "nice 👍🏽 😂🔥", "nice"),
    ("flag and keycap", "🇫🇷 1️⃣", "1"),
    ("zwj family", "👨\u200d👩\u200d👧 hi", "hi"),
    ("whitespace collapsed", "  a   \n\n\n  b  ", "a, b"),
    ("non-breaking spaces", "a\u00a0\u00a0b\u3000c", "a b c"),
    # empty
    ("empty", "", ""),
    ("blank", " \n\t ", ""),
    ("only punctuation", "...", ""),
    ("only emoji", "😂😂😂", ""),
    ("only a ping", "@everyone", "everyone"),
]


@pytest.mark.parametrize(("content", "expected"), [r[1:] for r in RULES], ids=[r[0] for r in RULES])
def test_rules(content: str, expected: str) -> None:
    assert clean(content) == expected


MESSAGES = [
    (
        "hey **<@111>**, are you coming to <#777> tonight?? <t:1700003600:R>",
        "hey Alice, are you coming to off topic tonight?? in an hour",
    ),
    (
        "@everyone NEW VIDEO!!!!!! https://youtu.be/dQw4w9WgXcQ 🔥🔥🔥",
        "everyone NEW VIDEO!!! a link to youtu.be",
    ),
    (
        "> can someone help\nsure, try `git stash` then ```bash\ngit pull\n```",
        "can someone help, sure, try git stash then a code block",
    ),
    (
        "# Patch notes\n- fixed **crash** on join\n"
        "- ~~removed~~ tweaked </tts:99>\n-# thanks <@&555>",
        "Patch notes, fixed crash on join, removed tweaked slash tts, thanks Moderators",
    ),
    (
        "noooooooo <:sadge:812> the ending was ||they all die|| i can't",
        "nooo sadge the ending was i can't",
    ),
    (
        "check [my stream](https://twitch.tv/someone) <a:wave:3> at <t:1700000000:t>",
        "check my stream wave at 10:13 PM UTC",
    ),
    ("brb", "brb"),
    ("ok.\n\nthanks!", "ok. thanks!"),
]


@pytest.mark.parametrize(("content", "expected"), MESSAGES)
def test_realistic_messages(content: str, expected: str) -> None:
    assert clean(content) == expected


OPTION_CASES = [
    ("emoji drop", "gg <:pepe_laugh:1> wp", {"emoji": "drop"}, "gg wp"),
    (
        "spoilers read",
        "the killer is ||the butler||",
        {"spoilers": "read"},
        "the killer is the butler",
    ),
    (
        "spoilers read still cleans",
        "||<@111> https://x.org||",
        {"spoilers": "read"},
        "Alice a link to x.org",
    ),
    ("max repeat 2", "heyyy!!!", {"max_repeat": 2}, "heyy!!"),
    ("max repeat 5", "heyyyyyyy", {"max_repeat": 5}, "heyyyyy"),
    ("max length", "one two three four five six seven", {"max_length": 20}, "one two and more"),
]


@pytest.mark.parametrize(
    ("content", "options", "expected"),
    [c[1:] for c in OPTION_CASES],
    ids=[c[0] for c in OPTION_CASES],
)
def test_options(content: str, options: dict[str, object], expected: str) -> None:
    result = clean(content, **options)
    assert result == expected
    assert len(result) <= CleanOptions(**options).max_length


@pytest.mark.parametrize(
    "options",
    [{"max_length": 19}, {"emoji": "say"}, {"spoilers": "hide"}, {"max_repeat": 1}],
)
def test_invalid_options(options: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        CleanOptions(**options)


IMAGE = Attachment("cat.png", "image/png")
ATTACHMENT_CASES = [
    ("one image", [IMAGE], [], "sent an image"),
    ("three images", [IMAGE] * 3, [], "sent 3 images"),
    ("video", [Attachment("clip.mp4", "video/mp4")], [], "sent a video"),
    ("gif", [Attachment("x.gif", "image/gif")], [], "sent a GIF"),
    ("audio", [Attachment("song.mp3", "audio/mpeg")], [], "sent an audio file"),
    (
        "voice message",
        [Attachment("voice-message.ogg", "audio/ogg", True)],
        [],
        "sent a voice message",
    ),
    ("file", [Attachment("notes.pdf", "application/pdf")], [], "sent a file"),
    ("extension fallback", [Attachment("photo.JPG")], [], "sent an image"),
    ("no extension", [Attachment("README")], [], "sent a file"),
    ("mixed", [IMAGE, Attachment("a.zip"), IMAGE], [], "sent 2 images and a file"),
    ("sticker", [], ["Wave"], "sent a sticker Wave"),
    ("sticker without name", [], [""], "sent a sticker"),
    ("everything", [IMAGE, Attachment("a.mp4")], ["Hi"], "sent an image, a video and a sticker Hi"),
    ("nothing", [], [], ""),
]


@pytest.mark.parametrize(
    ("attachments", "stickers", "expected"),
    [c[1:] for c in ATTACHMENT_CASES],
    ids=[c[0] for c in ATTACHMENT_CASES],
)
def test_describe_attachments(
    attachments: list[Attachment], stickers: list[str], expected: str
) -> None:
    assert describe_attachments(attachments, stickers) == expected


def test_attachments_follow_the_text() -> None:
    assert clean_message("look", attachments=[IMAGE]) == "look, and sent an image"
    assert clean_message("look!", attachments=[IMAGE]) == "look! and sent an image"
    assert clean_message("||hidden||", attachments=[IMAGE]) == "sent an image"


def test_sticker_names_are_cleaned() -> None:
    result = clean_message("", stickers=["<@1> https://x.org \u202e@here"])
    assert result == "sent a sticker a link to x.org here"


def test_long_text_keeps_the_attachment_description() -> None:
    result = clean_message(
        " ".join(map(str, range(200))), attachments=[IMAGE], options=CleanOptions(max_length=60)
    )
    assert result.endswith(f"{MORE}, and sent an image")
    assert len(result) <= 60


def test_attachment_description_alone_is_bounded() -> None:
    result = clean_message("x " * 100, stickers=["y" * 100], options=CleanOptions(max_length=20))
    assert len(result) <= 20


TRUNCATE_CASES = [
    ("short", "hello world", 20, "hello world"),
    ("exact", "a" * 20, 20, "a" * 20),
    ("word boundary", "the quick brown fox jumps over", 24, "the quick brown and more"),
    ("word boundary earlier", "the quick brown fox jumps over", 23, "the quick and more"),
    ("boundary right after budget", "aaaa bbbbbbbbbb cc", 14, "aaaa and more"),
    ("one long word", "x" * 50, 20, "x" * 11 + " and more"),
    ("trailing comma dropped", "one, two, three, four", 18, "one, two and more"),
    ("tiny limit", "some long sentence here", 8, "and more"),
    ("tinier limit", "some long sentence here", 3, ""),
]


@pytest.mark.parametrize(
    ("text", "limit", "expected"),
    [c[1:] for c in TRUNCATE_CASES],
    ids=[c[0] for c in TRUNCATE_CASES],
)
def test_truncate_speech(text: str, limit: int, expected: str) -> None:
    result = truncate_speech(text, limit)
    assert result == expected
    assert len(result) <= limit


def test_truncate_rejects_negative_length() -> None:
    with pytest.raises(ValueError):
        truncate_speech("x", -1)


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "a few seconds ago"),
        (30, "in a few seconds"),
        (60, "in a minute"),
        (-150, "2 minutes ago"),
        (3600, "in an hour"),
        (-2 * 86400, "2 days ago"),
        (45 * 86400, "in a month"),
        (-800 * 86400, "2 years ago"),
    ],
)
def test_relative_phrase(seconds: int, expected: str) -> None:
    assert relative_phrase(seconds) == expected


def test_relative_timestamp_uses_the_current_time_by_default() -> None:
    soon = int((datetime.now(UTC) + timedelta(hours=2, minutes=5)).timestamp())
    assert clean_message(f"<t:{soon}:R>") == "in 2 hours"


@pytest.mark.parametrize(
    ("name", "expected"),
    [("Alice", "Alice"), ("🎮", ""), ("**x**", "x"), ("<b>", ""), ("a\u200b-b", "a b")],
)
def test_clean_name(name: str, expected: str) -> None:
    assert clean_name(name) == expected


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(
            ("hey **<@111>** https://x.org ||s|| `c` <:e:1> 😂 sooooo\n" * 200)[:6000],
            id="6000 chars",
        ),
        pytest.param("**__~~||*" * 10_000 + "x" + "*||~~__**" * 10_000, id="nested markdown"),
        pytest.param("*a " * 33_000, id="unclosed italics"),
        pytest.param("```" + "x" * 100_000, id="unclosed code block"),
        pytest.param("`" * 100_000, id="backticks"),
        pytest.param("<a" * 50_000, id="unclosed tags"),
        pytest.param("[a](" * 25_000, id="unclosed masked links"),
        pytest.param("<@111>" * 16_000, id="many mentions"),
        pytest.param("> " * 50_000, id="quote markers"),
        pytest.param("www." * 25_000, id="www"),
        pytest.param("ab " * 33_000, id="words"),
        pytest.param("a" + "\u0301" * 100_000, id="combining marks"),
    ],
)
def test_large_inputs_are_fast(content: str) -> None:
    started = time.perf_counter()
    result = clean(content)
    assert time.perf_counter() - started < 2.0
    assert len(result) <= 300


def test_private_use_characters_cannot_forge_held_words() -> None:
    assert clean("\U000f0000 hi \U000ffffe \U0010fffd") == "hi"


def test_more_constructs_than_stand_in_characters() -> None:
    result = clean("`a`" * 70_000 + " <@111>")
    assert result.startswith("a a a")
    assert len(result) <= 300


@pytest.mark.parametrize(
    "content",
    ["<b>+ x", "\\<b>.", "www .", "here here here @here", ". - x", "@@everyone", "a\u2028b"],
)
def test_cleaning_twice_changes_nothing(content: str) -> None:
    once = clean(content)
    assert clean(once) == once
