"""The reading flow: from a gateway message to an item on the guild's player, and after.

`MessageReader` asks the rules (`bot.reader.rules`) with cached configuration
(`bot.reader.cache`), cleans the text, adds "X said", joins the author's channel when autojoin
says so, and queues through `SpeechService.speak`. It tracks each queued message until its item
is resolved, for edits (raw events: spoken as edited if not started), deletions (removed; stopped
if speaking), max wait (dropped rather than read late) and refusals (one reaction).

Privacy: message text is cleaned and handed to `SpeechService.speak`, nothing else. Logs carry
ids and lengths, never text.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass
from typing import Any

import discord

from bot.errors import BotError
from bot.player import DisconnectedError, GuildPlayer, ItemResult, Outcome, SpeechItem
from bot.reader.cache import ReaderConfig, UserCache
from bot.reader.rules import (
    REACT_FAILED,
    REACT_LATE,
    REACT_VOICE,
    GuildView,
    LastSpeakers,
    MessageFacts,
    RateLimiter,
    Skip,
    Verdict,
    clean_options,
    decide,
    said,
)
from bot.storage.models import UserSettings
from bot.storage.reader import ReaderConfigRepository, ReaderOptions
from bot.storage.users import UserSettingsRepository
from bot.text import Attachment, MentionNames, clean_message, clean_name
from bot.tts import Queued, SpeechService, mention_names
from bot.voice import NotConnectedError, VoiceError, VoiceService

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Handled:
    """What became of one message (for logs and tests)."""

    skip: Skip | None = None
    queued: Queued | None = None
    reaction: str | None = None  # set when the message was refused with a reaction


@dataclass(eq=False)
class Tracked:
    """A message on a player's queue, kept until its item is resolved (edits, deletes, expiry).

    Holds the message object (in memory only) to react to it; never stored or logged.
    """

    message: discord.Message
    guild_id: int
    author_id: int
    name: str  # the "X said" name, "" when left out
    queued: Queued
    deadline: float
    timer: asyncio.TimerHandle | None = None
    expired: bool = False

    @property
    def item(self) -> SpeechItem:
        return self.queued.item


Reactor = Callable[[discord.Message, str], Coroutine[Any, Any, None]]


async def add_reaction(message: discord.Message, emoji: str) -> None:
    """React, or give up quietly (no permission, message gone): it is only a hint."""
    try:
        await message.add_reaction(emoji)
    except Exception as error:  # HTTP errors, or the session closing at shutdown
        log.debug("message %s: could not react: %s", message.id, type(error).__name__)


def reaction_for(error: BaseException) -> str:
    if isinstance(error, VoiceError | DisconnectedError):
        return REACT_VOICE
    return REACT_FAILED


def message_facts(message: discord.Message, *, now: float | None = None) -> MessageFacts:
    """The rule inputs from a real message (`now`: epoch seconds, for the message's age)."""
    author = message.author
    channel = message.channel
    voice = getattr(author, "voice", None)
    is_member = isinstance(author, discord.Member)
    now = time.time() if now is None else now
    return MessageFacts(
        channel_id=channel.id,
        parent_id=getattr(channel, "parent_id", None),
        is_thread=isinstance(channel, discord.Thread),
        author_id=author.id,
        author_is_bot=author.bot,
        is_webhook=message.webhook_id is not None,
        is_system=message.is_system(),
        role_ids=frozenset(role.id for role in author.roles) if is_member else frozenset(),
        author_voice_channel_id=voice.channel.id if voice and voice.channel else None,
        content=message.content,
        age=max(0.0, now - message.created_at.timestamp()),
    )


def attachments_of(message: discord.Message) -> list[Attachment]:
    return [
        Attachment(a.filename, a.content_type, a.is_voice_message()) for a in message.attachments
    ]


class MessageReader:
    """Reads bound channels and the bot's voice chat aloud, in each author's voice."""

    def __init__(
        self,
        *,
        config: ReaderConfigRepository,
        users: UserSettingsRepository,
        speech: SpeechService,
        voices: VoiceService,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        react: Reactor = add_reaction,
    ) -> None:
        self.clock = clock
        self.config = ReaderConfig(config, clock=self.now)
        self.users = UserCache(users, clock=self.now)
        self.user_settings = users
        self.speech = speech
        self.voices = voices
        self.wall_clock = wall_clock
        self.react = react
        self.rate = RateLimiter()
        self.speakers = LastSpeakers()
        self.tracked: dict[int, Tracked] = {}  # message id -> queued utterance
        self._guild_locks: dict[int, asyncio.Lock] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def now(self) -> float:
        """Monotonic seconds; tests swap `reader.clock` for a fake one."""
        return self.clock()

    # -- lifecycle --------------------------------------------------------------------------

    async def start(self) -> None:
        await self.config.prime()

    async def close(self) -> None:
        self._closed = True
        for tracked in self.tracked.values():
            if tracked.timer is not None:
                tracked.timer.cancel()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def forget_guild(self, guild_id: int) -> None:
        """The bot left the guild: drop what is cached about it."""
        self.config.forget_guild(guild_id)
        self.speakers.forget(guild_id)
        self._guild_locks.pop(guild_id, None)

    # -- the user side, for /voice autoread, /voice nickname and /voice forget -------------

    async def set_autoread(self, user_id: int, enabled: bool) -> None:
        await self.user_settings.set_autoread(user_id, enabled)
        self.users.invalidate(user_id)

    async def set_nickname(self, user_id: int, nickname: str | None) -> None:
        await self.user_settings.set_nickname(user_id, nickname)
        self.users.invalidate(user_id)

    def forget_user(self, user_id: int) -> None:
        self.users.invalidate(user_id)

    # -- new messages -----------------------------------------------------------------------

    async def view(self, guild: discord.Guild) -> GuildView:
        config = await self.config.get(guild.id)
        channel = VoiceService.connected_channel(guild)
        return GuildView(
            bot_id=guild.me.id,
            options=config.options,
            bound=self.config.bound(guild.id),
            blocked=config.blocked,
            bot_voice_channel_id=channel.id if channel is not None else None,
            afk_channel_id=guild.afk_channel.id if guild.afk_channel else None,
        )

    async def handle_message(self, message: discord.Message) -> Handled:
        guild = message.guild
        if guild is None:
            return Handled(Skip.NOT_A_GUILD)
        channel = message.channel
        connected = VoiceService.connected_channel(guild)
        candidates = (channel.id, getattr(channel, "parent_id", None))
        is_voice_chat = connected is not None and channel.id == connected.id
        if not is_voice_chat and not self.config.might_read(guild.id, candidates):
            return Handled(Skip.NOT_READ_HERE)  # the common case: no database read
        view = await self.view(guild)
        facts = message_facts(message, now=self.wall_clock())
        verdict = decide(facts, view)
        if verdict.read:
            author = message.author
            user = await self.users.get(author.id)
            verdict = decide(facts, view, autoread=user.autoread)
        if not verdict.read:
            return self._skipped(message, verdict.skip)
        return await self._read(message, guild, view.options, user, verdict)

    def _skipped(self, message: discord.Message, skip: Skip | None) -> Handled:
        log.debug("message %s: not read: %s", message.id, skip)
        return Handled(skip)

    async def _read(
        self,
        message: discord.Message,
        guild: discord.Guild,
        options: ReaderOptions,
        user: UserSettings,
        verdict: Verdict,
    ) -> Handled:
        # One message at a time per guild: queued in the order sent, "X said" decided in that
        # order, and a burst of first messages makes one autojoin. Other guilds never wait.
        lock = self._guild_locks.setdefault(guild.id, asyncio.Lock())
        async with lock:
            handled = await self._queue(message, guild, options, user, verdict)
        if handled.reaction is not None:
            await self.react(message, handled.reaction)
        return handled

    async def _queue(
        self,
        message: discord.Message,
        guild: discord.Guild,
        options: ReaderOptions,
        user: UserSettings,
        verdict: Verdict,
    ) -> Handled:
        author = message.author
        now = self.now()
        if not self.rate.allow(guild.id, author.id, options.user_rate_limit, now):
            log.info("guild %s: message %s over %s's rate limit", guild.id, message.id, author.id)
            first = self.rate.first_refusal(guild.id, author.id, now)
            return Handled(Skip.RATE_LIMITED, reaction=REACT_LATE if first else None)

        name = ""
        if options.say_name and self.speakers.needs_name(guild.id, author.id, now):
            name = clean_name(user.nickname or author.display_name, "someone")
        text = self.compose(message, guild, options, name)
        if not text:
            return self._skipped(message, Skip.EMPTY)

        member = author if isinstance(author, discord.Member) else guild.me
        try:
            player = await self._player(guild, verdict, member, options)
            if player is None:
                return self._skipped(message, Skip.NOT_IN_VOICE)
            queued = await self.speech.speak(
                member,
                text,
                origin="reader",
                message_id=message.id,
                player=player,
                clean=False,
            )
        except BotError as error:
            return self._refused(message, error)
        except Exception as error:  # a bug: log it with ids, still tell the author
            log.exception("guild %s: reading message %s failed", guild.id, message.id)
            return self._refused(message, error)

        self.rate.record(guild.id, author.id, now)
        self.speakers.spoke(guild.id, author.id, now)
        self._track(message, guild.id, name, queued, now + options.max_wait_seconds)
        log.info(
            "guild %s: reading message %s from %s (%s, %d chars, item %s, %d ahead)",
            guild.id,
            message.id,
            author.id,
            verdict.source,
            len(text),
            queued.item.id,
            queued.ahead,
        )
        return Handled(queued=queued)

    def compose(
        self, message: discord.Message, guild: discord.Guild, options: ReaderOptions, name: str
    ) -> str:
        """The cleaned text with its "X said", within both the option and the service limit."""
        room = self.speech.max_text_chars - (len(said(name, "")) if name else 0)
        body = clean_message(
            message.content,
            names=self.names(guild),
            attachments=attachments_of(message),
            stickers=[sticker.name for sticker in message.stickers],
            options=clean_options(options, min(options.max_length, room)),
        )
        return said(name, body) if body else ""

    @staticmethod
    def names(guild: discord.Guild) -> MentionNames:
        return mention_names(guild)

    async def _player(
        self,
        guild: discord.Guild,
        verdict: Verdict,
        member: discord.Member,
        options: ReaderOptions,
    ) -> GuildPlayer | None:
        """The guild's player; joins the author's channel first for an autojoin verdict."""
        if verdict.join_channel_id is not None and VoiceService.connected_channel(guild) is None:
            channel = guild.get_channel(verdict.join_channel_id)
            if not isinstance(channel, discord.VoiceChannel | discord.StageChannel):
                return None
            log.info("guild %s: autojoin %s for %s", guild.id, channel.id, member.id)
            await self.voices.join(channel)
        connected = VoiceService.connected_channel(guild)
        if connected is None:
            raise NotConnectedError()
        if options.require_voice and (
            member.voice is None
            or member.voice.channel is None
            or member.voice.channel.id != connected.id
        ):
            return None  # someone else's autojoin took the bot to another channel meanwhile
        voice = guild.voice_client
        player = self.voices.player(guild.id)
        if isinstance(voice, discord.VoiceClient) and player.voice_client is not voice:
            player.attach(voice)
        return player

    def _refused(self, message: discord.Message, error: BaseException) -> Handled:
        log.info("message %s: could not be read: %s", message.id, type(error).__name__)
        return Handled(reaction=reaction_for(error))

    # -- the queue: tracking, expiry, results -----------------------------------------------

    def _track(
        self, message: discord.Message, guild_id: int, name: str, queued: Queued, deadline: float
    ) -> None:
        tracked = Tracked(message, guild_id, message.author.id, name, queued, deadline)
        self.tracked[message.id] = tracked
        loop = asyncio.get_running_loop()
        tracked.timer = loop.call_later(max(0.0, deadline - self.now()), self._expire, tracked)
        result = queued.item.result
        assert result is not None, "speak() enqueues the item"
        result.add_done_callback(lambda future: self._resolved(tracked, future))

    def _resolved(self, tracked: Tracked, future: asyncio.Future[ItemResult]) -> None:
        if self.tracked.get(tracked.message.id) is tracked:
            del self.tracked[tracked.message.id]
        if tracked.timer is not None:
            tracked.timer.cancel()
        if future.cancelled() or tracked.expired:
            return
        result = future.result()
        if result.outcome is Outcome.FAILED:
            self._spawn(self.react(tracked.message, reaction_for(result.error or Exception())))
        elif result.outcome is Outcome.CANCELLED and isinstance(result.error, DisconnectedError):
            self._spawn(self.react(tracked.message, REACT_VOICE))

    def drop_expired(self) -> list[int]:
        """Drop every queued message whose max wait is over and that has not started playing.

        Each message also has a timer for its own deadline; this sweep is for tests and for
        clocks that jump.
        """
        return [
            message_id
            for message_id, tracked in list(self.tracked.items())
            if self._expire(tracked)
        ]

    def _expire(self, tracked: Tracked) -> bool:
        if self.now() < tracked.deadline or tracked.expired:
            return False
        player = self.voices.players.get(tracked.guild_id)
        item = tracked.item
        if player is None or player.current is item or item.left_source:
            return False  # playing (or done): it is not late any more
        tracked.expired = True
        if not player.remove(lambda candidate: candidate is item):
            return False
        message_id = tracked.message.id
        log.info("guild %s: message %s waited too long", tracked.guild_id, message_id)
        self._spawn(self.react(tracked.message, REACT_LATE))
        return True

    def _spawn(self, coro: Coroutine[Any, Any, Any]) -> None:
        if self._closed:
            coro.close()
            return
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # -- edits and deletions (raw gateway events) -------------------------------------------

    async def handle_edit(self, message: discord.Message) -> bool:
        """An edited message not yet spoken is spoken as edited. True if its item changed."""
        tracked = self.tracked.get(message.id)
        guild = message.guild
        if tracked is None or guild is None:
            return False
        player = self.voices.players.get(tracked.guild_id)
        if player is None or player.current is tracked.item:
            return False  # already playing: it is said as it was
        options = (await self.config.get(guild.id)).options
        if options.skip_prefix and message.content.lstrip().startswith(options.skip_prefix):
            return bool(self.remove(tracked.guild_id, [message.id]))
        text = self.compose(message, guild, options, tracked.name)
        if not text:
            return bool(self.remove(tracked.guild_id, [message.id]))
        author_id = message.author.id
        try:
            # Same voice, new text; with quota on, the new text is reserved (and billed) anew.
            make_job = await self.speech.rejob(
                tracked.queued, text, guild_id=tracked.guild_id, user_id=author_id
            )
        except BotError as error:
            self.remove(tracked.guild_id, [message.id])
            await self.react(message, self._refused(message, error).reaction or REACT_FAILED)
            return False
        replaced = player.replace(lambda candidate: candidate is tracked.item, make_job)
        if replaced:
            tracked.item.text = text
            log.info(
                "guild %s: message %s edited before it was read (%d chars)",
                tracked.guild_id,
                message.id,
                len(text),
            )
        return replaced

    def remove(self, guild_id: int | None, message_ids: Iterable[int]) -> list[SpeechItem]:
        """Deleted messages leave the queue; one being spoken stops."""
        by_guild: dict[int, set[SpeechItem]] = {}
        for message_id in message_ids:
            tracked = self.tracked.get(message_id)
            if tracked is None or (guild_id is not None and tracked.guild_id != guild_id):
                continue
            by_guild.setdefault(tracked.guild_id, set()).add(tracked.item)
        removed: list[SpeechItem] = []
        for tracked_guild, items in by_guild.items():
            player = self.voices.players.get(tracked_guild)
            if player is not None:
                removed += player.remove(lambda candidate, items=items: candidate in items)
        for item in removed:
            log.info(
                "guild %s: message %s removed from the queue (item %s)",
                guild_id,
                item.message_id,
                item.id,
            )
        return removed
