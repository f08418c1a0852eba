"""The reader's rules: plain data in, a verdict out (no Discord objects, no I/O).

`decide` holds every rule of issue 8 about *whether* a message is read; `RateLimiter` and
`LastSpeakers` hold the two pieces of state the rules need over time, with the clock passed in.
"""

from __future__ import annotations

import enum
from collections import deque
from dataclasses import dataclass

from bot.storage.reader import DEFAULT_READER_OPTIONS, ReaderOptions
from bot.text import CleanOptions
from bot.text.cleaning import MIN_MAX_LENGTH

#: "X said" is left out when the same person spoke last less than this many seconds ago.
SAY_NAME_GAP = 60.0
#: The per-user rate limit counts messages over this window (seconds).
RATE_WINDOW = 60.0

#: One reaction on a message that could not be read; never a message in the channel.
REACT_FAILED = "❌"  # too long, quota, queue full, ElevenLabs failed
REACT_VOICE = "🔇"  # cannot join or speak in voice, or disconnected before it was said
REACT_LATE = "⏳"  # waited longer than max wait, or the author's rate limit


class Skip(enum.StrEnum):
    """Why a message is not read (logged at debug level; no reaction)."""

    NOT_A_GUILD = "not in a server"
    SYSTEM = "system message"
    OWN = "the bot's own message"
    NOT_READ_HERE = "channel not read"
    THREADS_OFF = "threads are not read"
    TOO_OLD = "older than max wait"
    BOT_AUTHOR = "bot or webhook"
    BLOCKED = "author blocked"
    MISSING_ROLE = "author lacks the required role"
    SKIP_PREFIX = "starts with the skip prefix"
    NOT_IN_VOICE = "author not in the bot's voice channel"
    NOT_CONNECTED = "bot not connected and autojoin off"
    OPTED_OUT = "author turned autoread off"
    RATE_LIMITED = "author over the rate limit"
    EMPTY = "nothing to say once cleaned"


class Source(enum.StrEnum):
    """Why a channel is read."""

    BOUND = "bound channel"
    THREAD = "thread of a bound channel"
    VOICE_CHAT = "the bot's voice channel chat"


@dataclass(frozen=True, slots=True, kw_only=True)
class MessageFacts:
    """What the rules need to know about one message."""

    channel_id: int
    author_id: int
    parent_id: int | None = None  # the channel a thread belongs to
    is_thread: bool = False
    author_is_bot: bool = False
    is_webhook: bool = False
    is_system: bool = False
    role_ids: frozenset[int] = frozenset()
    author_voice_channel_id: int | None = None
    content: str = ""
    age: float = 0.0  # seconds since the message was sent


@dataclass(frozen=True, slots=True, kw_only=True)
class GuildView:
    """A guild's reader configuration and the bot's voice state there."""

    bot_id: int
    options: ReaderOptions = DEFAULT_READER_OPTIONS
    bound: frozenset[int] = frozenset()
    blocked: frozenset[int] = frozenset()
    bot_voice_channel_id: int | None = None  # None: not connected
    afk_channel_id: int | None = None


@dataclass(frozen=True, slots=True)
class Verdict:
    skip: Skip | None = None
    source: Source | None = None
    join_channel_id: int | None = None  # autojoin: the author's voice channel

    @property
    def read(self) -> bool:
        return self.skip is None


def read_source(facts: MessageFacts, view: GuildView) -> Source | Skip:
    """Whether the message's channel is read at all, and why."""
    if facts.channel_id in view.bound:
        return Source.BOUND
    if facts.is_thread and facts.parent_id in view.bound:
        return Source.THREAD if view.options.read_threads else Skip.THREADS_OFF
    if view.options.read_voice_chat and facts.channel_id == view.bot_voice_channel_id:
        return Source.VOICE_CHAT
    return Skip.NOT_READ_HERE


def decide(facts: MessageFacts, view: GuildView, *, autoread: bool = True) -> Verdict:
    """Every rule of issue 8 but the rate limit and empty text, cheapest first.

    `autoread` is the author's own setting; the reader looks it up (a cached read) only once
    every other rule has passed, and asks again with the real value.
    """
    options = view.options
    if facts.is_system:
        return Verdict(Skip.SYSTEM)
    if facts.author_id == view.bot_id:
        return Verdict(Skip.OWN)
    source = read_source(facts, view)
    if isinstance(source, Skip):
        return Verdict(source)
    if facts.age > options.max_wait_seconds:
        return Verdict(Skip.TOO_OLD, source)
    if (facts.author_is_bot or facts.is_webhook) and not options.read_bots:
        return Verdict(Skip.BOT_AUTHOR, source)
    if facts.author_id in view.blocked:
        return Verdict(Skip.BLOCKED, source)
    if options.required_role_id is not None and options.required_role_id not in facts.role_ids:
        return Verdict(Skip.MISSING_ROLE, source)
    if options.skip_prefix and facts.content.lstrip().startswith(options.skip_prefix):
        return Verdict(Skip.SKIP_PREFIX, source)
    author_channel = facts.author_voice_channel_id
    if author_channel is not None and author_channel == view.afk_channel_id:
        author_channel = None  # idle people are not read, and the bot never joins AFK
    join: int | None = None
    if view.bot_voice_channel_id is not None:
        if options.require_voice and author_channel != view.bot_voice_channel_id:
            return Verdict(Skip.NOT_IN_VOICE, source)
    elif author_channel is None:
        return Verdict(Skip.NOT_IN_VOICE, source)
    elif not options.autojoin:
        return Verdict(Skip.NOT_CONNECTED, source)
    else:
        join = author_channel
    if not autoread:
        return Verdict(Skip.OPTED_OUT, source)
    return Verdict(None, source, join)


def said(name: str, body: str) -> str:
    """The "X said" form: the name and the text in one request, in the author's voice."""
    return f"{name} said, {body}" if name else body


def clean_options(options: ReaderOptions, max_length: int) -> CleanOptions:
    return CleanOptions(
        max_length=max(MIN_MAX_LENGTH, max_length),
        emoji="drop" if options.emoji_mode == "drop" else "name",
        spoilers="read" if options.spoilers_mode == "read" else "skip",
    )


class RateLimiter:
    """At most `limit` messages per user per guild in any `RATE_WINDOW` seconds."""

    def __init__(self, window: float = RATE_WINDOW, *, prune_above: int = 4096) -> None:
        self.window = window
        self.prune_above = prune_above
        self._times: dict[tuple[int, int], deque[float]] = {}
        self._warned: dict[tuple[int, int], float] = {}

    def allow(self, guild_id: int, user_id: int, limit: int, now: float) -> bool:
        if limit <= 0:
            return True
        times = self._recent((guild_id, user_id), now)
        return times is None or len(times) < limit

    def record(self, guild_id: int, user_id: int, now: float) -> None:
        key = (guild_id, user_id)
        self._recent(key, now)
        self._times.setdefault(key, deque()).append(now)
        if len(self._times) > self.prune_above:
            self.prune(now)

    def prune(self, now: float) -> None:
        """Forget users with nothing left in the window (one-off authors would pile up)."""
        for key in list(self._times):
            self._recent(key, now)
        for key, warned in list(self._warned.items()):
            if now - warned >= self.window:
                del self._warned[key]

    def first_refusal(self, guild_id: int, user_id: int, now: float) -> bool:
        """True once per window: the author gets one reaction, not one per message."""
        key = (guild_id, user_id)
        last = self._warned.get(key)
        if last is not None and now - last < self.window:
            return False
        self._warned[key] = now
        return True

    def _recent(self, key: tuple[int, int], now: float) -> deque[float] | None:
        times = self._times.get(key)
        if times is None:
            return None
        while times and now - times[0] >= self.window:
            times.popleft()
        if not times:
            del self._times[key]
            self._warned.pop(key, None)
            return None
        return times


class LastSpeakers:
    """Who was last queued in each guild, and when: decides whether "X said" is needed."""

    def __init__(self, gap: float = SAY_NAME_GAP) -> None:
        self.gap = gap
        self._last: dict[int, tuple[int, float]] = {}

    def needs_name(self, guild_id: int, user_id: int, now: float) -> bool:
        last = self._last.get(guild_id)
        return last is None or last[0] != user_id or now - last[1] >= self.gap

    def spoke(self, guild_id: int, user_id: int, now: float) -> None:
        self._last[guild_id] = (user_id, now)

    def forget(self, guild_id: int) -> None:
        self._last.pop(guild_id, None)
