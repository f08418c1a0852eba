"""The per-guild player: a FIFO of speech items played gaplessly through one voice client.

The player hands one `GuildSource` per burst of speech to the process' `VoiceSender`
(`bot.audio.sender`: one thread sends every guild's packets). The source moves from
item to item by itself and ends after a short idle period with nothing queued; the
next item after that starts a new playback as soon as its first packet is ready.

Each item's audio is decoded and encoded to Opus ahead of time, as it arrives
(`OpusFrameBuffer`), and while an item plays the next one is already being
synthesised (prefetch), so consecutive items follow each other with no added silence.

Threads: `GuildSource.read()` runs on the sender's thread. It only pops items from a
locked deque and packets from their buffers, and tells the loop what happened with
`call_soon_threadsafe`; the `after` callback hands back with `run_coroutine_threadsafe`.
Every asyncio object is touched on the loop only.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import itertools
import logging
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import discord

from bot.audio.encoding import Encoding, OpusFrameBuffer, default_encoding
from bot.audio.frames import FRAME_MS, FrameBuffer
from bot.audio.opus import OPUS_SILENCE, EncoderSettings, OpusEncoder
from bot.audio.pipeline import DecodeJob
from bot.audio.sender import Playback, VoiceSender, shared_sender
from bot.errors import BotError

log = logging.getLogger(__name__)

DEFAULT_IDLE_END_MS = 250


class QueueFullError(BotError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"The queue is full ({limit} messages); try again when it has moved on.")
        self.limit = limit


class PlayerClosedError(BotError):
    """The player is shutting down (the bot left voice): nothing more can be queued on it."""

    def __init__(self) -> None:
        super().__init__("I am leaving the voice channel; try again in a moment.")


class DisconnectedError(BotError):
    def __init__(self) -> None:
        super().__init__("I was disconnected from the voice channel before I could say it.")


class Outcome(enum.StrEnum):
    PLAYED = "played"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELLED = "cancelled"  # stopped, removed, or disconnected before it played


@dataclass(frozen=True)
class ItemResult:
    outcome: Outcome
    error: BaseException | None = None
    frames: int = 0
    notice: str | None = None  # e.g. the voice fell back to the server's


JobFactory = Callable[[FrameBuffer], DecodeJob]

_ids = itertools.count(1)


@dataclass(eq=False)
class SpeechItem:
    """One thing to say. `make_job` builds its decode job when the player is ready for it."""

    make_job: JobFactory
    requester_id: int
    origin: str = "speak"  # speak | reader | preview
    text: str = ""  # for /queue; never logged
    voice_name: str = ""
    message_id: int | None = None
    id: int = field(default_factory=lambda: next(_ids))
    frames: FrameBuffer = field(default_factory=FrameBuffer)
    job: DecodeJob | None = None
    task: asyncio.Task[None] | None = None
    error: BaseException | None = None
    skipped: bool = False
    cancelled: bool = False
    left_source: bool = False
    notice: str | None = None
    result: asyncio.Future[ItemResult] | None = None

    def __repr__(self) -> str:
        return f"SpeechItem(id={self.id}, origin={self.origin!r}, requester={self.requester_id})"

    @property
    def started(self) -> bool:
        return self.task is not None

    async def wait(self) -> ItemResult:
        assert self.result is not None, "enqueue the item first"
        return await asyncio.shield(self.result)


class GuildSource(discord.AudioSource):
    """What the sender plays for one burst of speech: item after item, then idle, then end.

    Yields Opus packets: the items' buffers hold packets encoded ahead of time
    (`OpusFrameBuffer`); a plain PCM buffer (a test's, say) is encoded here, on the
    sender's thread.
    """

    def __init__(self, player: GuildPlayer, idle_end_ms: int) -> None:
        self._player = player
        self._current: SpeechItem | None = None
        self._idle_limit = max(1, idle_end_ms // FRAME_MS)
        self._idle_frames = 0
        self._encoder: OpusEncoder | None = None
        self.frames_sent = 0

    def read(self) -> bytes:
        while True:
            item = self._current
            if item is None:
                item = self._player._take_next()
                if item is None:
                    self._idle_frames += 1
                    return b"" if self._idle_frames > self._idle_limit else OPUS_SILENCE
                self._current = item
                self._idle_frames = 0
                self._player._from_thread(self._player._item_started, item)
            frames = item.frames
            frame = frames.read_frame()
            if frame:
                self.frames_sent += 1
                if isinstance(frames, OpusFrameBuffer):
                    return frame
                if self._encoder is None:
                    self._encoder = OpusEncoder(self._player.encoder)
                return self._encoder.encode(frame)
            self._current = None
            self._player._from_thread(self._player._item_left_source, item)

    def is_opus(self) -> bool:
        return True

    def cleanup(self) -> None:
        """The playback ended (stopped, disconnected) with an item half-read: it was cut."""
        item, self._current = self._current, None
        if item is not None:
            self._player._from_thread(self._player._item_interrupted, item)


class GuildPlayer:
    """The only thing that talks to one guild's `VoiceClient`."""

    def __init__(
        self,
        guild_id: int,
        *,
        queue_limit: int = 20,
        prefetch: int = 1,
        idle_end_ms: int = DEFAULT_IDLE_END_MS,
        encoder: EncoderSettings | None = None,
        encoding: Encoding | None = None,
        sender: VoiceSender | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        self.guild_id = guild_id
        self.queue_limit = queue_limit
        self.prefetch = prefetch
        self.idle_end_ms = idle_end_ms
        self.encoder = encoder or EncoderSettings()
        self.encoding = encoding or default_encoding()
        self.sender = sender or shared_sender()
        self._loop = loop or asyncio.get_running_loop()
        self._lock = threading.Lock()
        self._pending: deque[SpeechItem] = deque()  # not yet taken by the source
        self._current: SpeechItem | None = None  # taken by the source, not yet finished
        self._voice: discord.VoiceClient | None = None
        self._source: GuildSource | None = None
        self._playback: Playback | None = None
        self._closed = False
        self.playbacks = 0  # how many play() calls; for tests and metrics

    def __repr__(self) -> str:
        return f"GuildPlayer(guild_id={self.guild_id}, pending={len(self._pending)})"

    # ------------------------------------------------------------------ voice client

    @property
    def voice_client(self) -> discord.VoiceClient | None:
        return self._voice

    def attach(self, voice_client: discord.VoiceClient) -> None:
        """Use this voice client from now on (after a join or a reconnect)."""
        self._voice = voice_client
        self._maybe_start()

    def detach(self) -> None:
        """The voice connection is gone (kicked, left): drop everything."""
        self.stop(outcome_error=DisconnectedError())  # stops discord.py's playback too
        self._voice = None

    @property
    def connected(self) -> bool:
        return self._voice is not None and self._voice.is_connected()

    @property
    def playing(self) -> bool:
        return self._source is not None

    # ------------------------------------------------------------------ queue

    @property
    def current(self) -> SpeechItem | None:
        return self._current

    def pending(self) -> list[SpeechItem]:
        with self._lock:
            return list(self._pending)

    def __len__(self) -> int:
        return len(self._pending) + (1 if self._current else 0)

    @property
    def idle(self) -> bool:
        return not self._pending and self._current is None and self._source is None

    def enqueue(self, item: SpeechItem) -> int:
        """Queue `item`; returns how many items are ahead of it. Raises `QueueFullError`."""
        if self._closed:
            raise PlayerClosedError()
        with self._lock:
            if len(self._pending) >= self.queue_limit:
                raise QueueFullError(self.queue_limit)
            ahead = len(self._pending) + (1 if self._current else 0)
            item.result = self._loop.create_future()
            self._encode_ahead(item)
            self._pending.append(item)
        log.debug("guild %s: queued %r, %d ahead", self.guild_id, item, ahead)
        self._schedule_jobs()
        self._maybe_start()
        return ahead

    def skip(self) -> SpeechItem | None:
        """End the current item (or the next one if nothing plays yet) and move on."""
        item = self._current
        if item is None:
            with self._lock:
                item = self._pending.popleft() if self._pending else None
            if item is None:
                return None
            item.skipped = True
            self._drop(item)
            self._schedule_jobs()
            self._maybe_start()
            return item
        item.skipped = True
        self._abort(item)
        return item

    def stop(self, *, outcome_error: BaseException | None = None) -> int:
        """Clear the queue and the current item. Returns how many items were dropped."""
        with self._lock:
            dropped = list(self._pending)
            self._pending.clear()
        current = self._current
        for item in dropped:
            item.cancelled = True
            item.error = item.error or outcome_error
            self._drop(item)
        if current is not None:
            current.cancelled = True
            current.error = current.error or outcome_error
            self._abort(current)
            dropped.append(current)
        playback = self._playback
        if playback is not None and self._source is not None:
            playback.stop()
        return len(dropped)

    def _packet_buffer(self, capacity: int) -> OpusFrameBuffer:
        return OpusFrameBuffer(capacity, encoder=self.encoder, encoding=self.encoding)

    def _encode_ahead(self, item: SpeechItem) -> None:
        """Give a new item a buffer that encodes to Opus as it is written (`bot.audio.opus`).

        A buffer that already holds audio (filled by a test, say) is kept: the source
        encodes it while it plays.
        """
        frames = item.frames
        untouched = not (frames.frames_written or frames.pending_bytes or frames.finished)
        if type(frames) is FrameBuffer and untouched and item.task is None:
            item.frames = self._packet_buffer(frames.capacity)

    def remove(self, predicate: Callable[[SpeechItem], bool]) -> list[SpeechItem]:
        """Remove matching items; a matching item being spoken stops (deleted messages)."""
        removed: list[SpeechItem] = []
        with self._lock:
            keep = deque()
            for item in self._pending:
                (removed if predicate(item) else keep).append(item)
            self._pending = keep
        for item in removed:
            item.cancelled = True
            self._drop(item)
        current = self._current
        if current is not None and predicate(current):
            current.cancelled = True
            self._abort(current)
            removed.append(current)
        if removed:
            self._schedule_jobs()
        return removed

    def replace(self, predicate: Callable[[SpeechItem], bool], make_job: JobFactory) -> bool:
        """Give a queued item new audio (an edited message) if it has not started playing."""
        with self._lock:
            target = next((item for item in self._pending if predicate(item)), None)
        if target is None:
            return False
        if target.task is not None:
            target.task.cancel()
            target.task = None
            target.job = None
            target.frames.abort()
            target.frames = self._packet_buffer(target.frames.capacity)
        target.make_job = make_job
        self._schedule_jobs()
        return True

    async def aclose(self) -> None:
        """Stop everything and wait until no job is left running."""
        self._closed = True
        tasks = [i.task for i in [*self.pending(), self._current] if i and i.task]
        self.stop(outcome_error=DisconnectedError())
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    # ------------------------------------------------------------------ jobs

    def _schedule_jobs(self) -> None:
        """Start the decode jobs of the current item and the next `prefetch` ones."""
        with self._lock:
            window = list(itertools.islice(self._pending, self.prefetch + 1))
        if self._current is not None:
            window = [self._current, *window][: self.prefetch + 1]
        for item in window:
            if item.task is None and not item.frames.aborted:
                self._start_job(item)

    def _start_job(self, item: SpeechItem) -> None:
        try:
            job = item.make_job(item.frames)
        except Exception as exc:  # a broken item must not take the queue down with it
            log.error("guild %s: %r could not start", self.guild_id, item, exc_info=exc)
            item.error = exc
            item.frames.abort()
            self._loop.call_soon(self._maybe_start)
            return
        item.job = job
        item.frames.on_first_frame = self._maybe_start
        item.task = self._loop.create_task(job.run(), name=f"item {item.id} guild {self.guild_id}")
        item.task.add_done_callback(lambda task, item=item: self._job_done(item, task))

    def _job_done(self, item: SpeechItem, task: asyncio.Task[None]) -> None:
        if item.task is not task:
            return  # replaced (edited) meanwhile
        if not task.cancelled():
            error = task.exception()
            if error is not None:
                item.error = error
                # Whatever the job left in its buffer is all there will be: let the source
                # move on (a job that failed before finishing its frames would stall it).
                if not item.frames.finished:
                    item.frames.abort()
                if isinstance(error, BotError):
                    log.info("guild %s: %r failed: %s", self.guild_id, item, error)
                else:
                    log.error("guild %s: %r failed", self.guild_id, item, exc_info=error)
        self._maybe_finish(item)
        # A failed head item must not hold up the queue while nothing plays.
        self._maybe_start()

    def _drop(self, item: SpeechItem) -> None:
        """An item that never reached the source: cancel its job and resolve it."""
        item.left_source = True
        self._abort(item)
        self._maybe_finish(item)

    def _abort(self, item: SpeechItem) -> None:
        item.frames.abort()
        if item.task is not None and not item.task.done():
            item.task.cancel()

    def _maybe_finish(self, item: SpeechItem) -> None:
        """Resolve the item's result once the source is done with it and its job has ended."""
        if item.result is None or item.result.done():
            return
        if not item.left_source or (item.task is not None and not item.task.done()):
            return
        if item.skipped:
            result = ItemResult(Outcome.SKIPPED, frames=item.frames.frames_read)
        elif item.cancelled:
            result = ItemResult(Outcome.CANCELLED, item.error, frames=item.frames.frames_read)
        elif item.error is not None:
            result = ItemResult(Outcome.FAILED, item.error, frames=item.frames.frames_read)
        else:
            result = ItemResult(Outcome.PLAYED, frames=item.frames.frames_read)
        if item.notice is not None:
            result = replace(result, notice=item.notice)
        item.result.set_result(result)

    # ------------------------------------------------------------------ playback

    def _maybe_start(self) -> None:
        """Start a playback if none runs and the head item has audio (or is dead)."""
        if self._source is not None or self._closed:
            return
        voice = self._voice
        with self._lock:
            while self._pending and self._pending[0].frames.exhausted:
                dead = self._pending.popleft()
                self._loop.call_soon(self._drop_dead, dead)
            head = self._pending[0] if self._pending else None
        if head is None or voice is None or not voice.is_connected():
            return
        if not len(head.frames) and not head.frames.finished:
            return  # nothing decoded yet: start when the first frame arrives
        if voice.is_playing():
            return  # someone else's playback (should not happen): wait for its end
        source = GuildSource(self, self.idle_end_ms)
        self._source = source
        self.playbacks += 1
        try:
            self._playback = self.sender.play(voice, source, self._after)
        except RuntimeError as exc:  # the sender is closed: the bot is shutting down
            log.warning("guild %s: could not start playback: %s", self.guild_id, exc)
            self._source = None

    def _drop_dead(self, item: SpeechItem) -> None:
        item.left_source = True
        self._maybe_finish(item)
        self._schedule_jobs()

    def _after(self, error: Exception | None) -> None:
        """The playback ended (the sender's `after`, on its thread): hand back to the loop."""
        if self._loop.is_closed() or not self._loop.is_running():
            return  # the bot is gone
        coro = self._playback_ended(error)
        try:
            asyncio.run_coroutine_threadsafe(coro, self._loop)
        except RuntimeError:  # the loop closed in between
            coro.close()

    async def _playback_ended(self, error: Exception | None) -> None:
        self._source = None
        self._playback = None
        if error is not None:
            log.error("guild %s: playback failed", self.guild_id, exc_info=error)
        if self._voice is not None and not self._voice.is_connected():
            self.stop(outcome_error=DisconnectedError())
            return
        self._maybe_start()

    # ------------------------------------------------------------------ called from the source

    def _from_thread(self, callback: Callable[[SpeechItem], None], item: SpeechItem) -> None:
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(callback, item)

    def _take_next(self) -> SpeechItem | None:
        with self._lock:
            if not self._pending:
                return None
            item = self._pending.popleft()
            self._current = item
            return item

    def _item_started(self, item: SpeechItem) -> None:
        self._schedule_jobs()

    def _item_interrupted(self, item: SpeechItem) -> None:
        if not item.frames.exhausted and not item.skipped:
            item.cancelled = True
            if not self.connected:
                item.error = item.error or DisconnectedError()
        self._item_left_source(item)

    def _item_left_source(self, item: SpeechItem) -> None:
        item.left_source = True
        if self._current is item:
            self._current = None
        if item.task is not None and not item.task.done() and item.frames.aborted:
            item.task.cancel()
        self._maybe_finish(item)
        self._schedule_jobs()
