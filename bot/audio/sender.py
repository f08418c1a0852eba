"""One thread sends the audio of every guild, each on its own 20 ms clock.

discord.py's `VoiceClient.play()` starts an `AudioPlayer` thread per guild. Each
wakes every 20 ms and needs the GIL to send: at a hundred guilds the wake-ups
queue behind each other and packets leave late. Here one thread serves every
playback: it wakes when the next packet is due, sends every packet due within the
next 2 ms (an encrypted, already encoded Opus frame: a few microseconds each), and
sleeps again. The playbacks wait in a heap ordered by their next packet, so a wake-up
touches only the guilds it sends for, and every clock runs on a common grid of 5 ms:
four wake-ups per 20 ms, however many guilds speak. Packets are encoded ahead of time
(`bot.audio.opus`).

Timing follows discord.py's player: each playback has its own clock (its first
packet leaves at once), a late wake-up is made up by sending the packets that are
due back to back, but never more than `MAX_CATCH_UP` of them: beyond that the
clock restarts, so a stalled process never bursts. While the voice connection is
down the playback waits (no packet is read) and it gives up after the voice
client's timeout, as discord.py does; the `after` callback runs on this thread. Only a
playback's first packet leaves from the thread that calls `play()`, at once.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import discord
from discord.enums import SpeakingState
from discord.voice_state import ConnectionFlowState

from bot.audio.opus import OPUS_SILENCE

log = logging.getLogger(__name__)

FRAME_SECONDS: Final = 0.020
MAX_CATCH_UP: Final = 3  # packets sent back to back after a late wake-up, at most
EARLY: Final = 0.002  # a packet due this soon goes out with the current wake-up
UNPACED_BURST: Final = 50  # packets per wake-up for an unpaced playback (tests)
END_SILENCE: Final = 5  # Opus silence frames after the last packet (as discord.py sends)
GRID_DIVISIONS: Final = 4  # packet clocks fall on a grid of a quarter of their interval

After = Callable[[Exception | None], Any]


class Playback:
    """One source playing on one voice client. `stop()` may be called from any thread."""

    def __init__(self, voice: discord.VoiceClient, source: discord.AudioSource, after: After):
        if not source.is_opus():
            raise TypeError("the sender plays Opus sources only")
        self.voice = voice
        self.source = source
        self.after = after
        # A voice client may ask for another pace (the loopback test client plays faster
        # than real time with `speed`); 0 sends as fast as the source gives packets.
        self.interval = max(0.0, float(getattr(voice, "packet_interval", FRAME_SECONDS)))
        self.packets_sent = 0
        self.late_restarts = 0
        self._due = 0.0  # perf_counter() instant the next packet is due
        self._stopping = threading.Event()
        self._done = threading.Event()
        self._disconnected_at: float | None = None

    def stop(self) -> None:
        """End this playback at the sender's next wake-up (its `after` then runs)."""
        self._stopping.set()

    @property
    def done(self) -> bool:
        return self._done.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._done.wait(timeout)


class VoiceSender:
    """The thread that sends every guild's packets. `play()` and `stop()` are thread-safe."""

    def __init__(self, *, name: str = "voice-sender") -> None:
        self.name = name
        self._playbacks: list[Playback] = []
        # (due instant, tie-break, playback): the thread pops the ones due, in order.
        self._schedule: list[tuple[float, int, Playback]] = []
        self._order = itertools.count()
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self._closed = False
        # Counters, for tests, logs and benchmarks.
        self.packets_sent = 0
        self.late_restarts = 0

    def __len__(self) -> int:
        with self._lock:
            return len(self._playbacks)

    def play(
        self, voice: discord.VoiceClient, source: discord.AudioSource, after: After
    ) -> Playback:
        """Start sending `source` (Opus packets) on `voice`; its first packet leaves at once.

        That first packet is sent here, on the calling thread (the event loop's, for the
        player): waking the sender thread and waiting for it to get the GIL from a busy
        loop cost 2-5 ms of time to first audio. Every later packet, and `after`, come
        from the sender thread (unless the source ends at its very first read).
        """
        if self._closed:
            raise RuntimeError("the voice sender is closed")
        playback = Playback(voice, source, after)
        playback._due = time.perf_counter()
        _speak(voice, SpeakingState.voice)
        observe = getattr(voice, "on_sender_playback", None)
        if observe is not None:  # the loopback test client records its playbacks
            observe(playback)
        with self._lock:
            self._playbacks.append(playback)
        # Not in the schedule yet, so the thread cannot be sending for it meanwhile.
        if voice.is_connected() and self._serve(playback, playback._due) is None:
            return playback  # it ended at its first read (its `after` has run)
        with self._lock:
            heapq.heappush(self._schedule, (playback._due, next(self._order), playback))
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
        self._wake.set()
        return playback

    def close(self, timeout: float = 2.0) -> None:
        """Stop every playback and the thread (each `after` runs)."""
        self._closed = True
        with self._lock:
            playbacks = list(self._playbacks)
        for playback in playbacks:
            playback.stop()
        self._wake.set()
        thread = self._thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout)

    # ------------------------------------------------------------------ the thread

    def _run(self) -> None:
        while True:
            # Cleared before looking: a play() from now on wakes the wait below at once.
            self._wake.clear()
            now = time.perf_counter()
            due: list[Playback] = []
            with self._lock:
                if not self._playbacks and self._closed:
                    self._thread = None
                    return
                # Only the playbacks with a packet due: each wake-up costs what it sends,
                # not a look at every guild (at 250 guilds that was most of the thread).
                while self._schedule and self._schedule[0][0] <= now + EARLY:
                    due.append(heapq.heappop(self._schedule)[2])
            for playback in due:
                next_due = self._serve(playback, now)
                if next_due is not None:
                    with self._lock:
                        heapq.heappush(self._schedule, (next_due, next(self._order), playback))
            with self._lock:
                next_at = self._schedule[0][0] if self._schedule else None
            if next_at is None:
                self._wake.wait(FRAME_SECONDS if self._playbacks else None)
                continue
            delay = next_at - time.perf_counter()
            if delay > 0:
                self._wake.wait(delay)

    def _serve(self, playback: Playback, now: float) -> float | None:
        """Send what `playback` has due; the instant it is due next, or None once it ended."""
        try:
            if playback._stopping.is_set():
                self._end(playback, None)
                return None
            voice = playback.voice
            if not voice.is_connected():
                return self._wait_for_connection(playback, now)
            if playback._disconnected_at is not None:
                playback._disconnected_at = None
                playback._due = now
                _speak(voice, SpeakingState.voice)
            interval = playback.interval
            if interval and now - playback._due > MAX_CATCH_UP * interval:
                playback._due = now  # too late to make up: restart the clock, no burst
                playback.late_restarts += 1
                self.late_restarts += 1
            burst = MAX_CATCH_UP + 1 if interval else UNPACED_BURST
            while playback._due <= now + EARLY and burst:
                data = playback.source.read()
                if not data:
                    self._end(playback, None)
                    return None
                voice.send_audio_packet(data, encode=False)
                playback.packets_sent += 1
                self.packets_sent += 1
                playback._due += interval
                burst -= 1
            if interval:
                # Every clock on a common grid of a quarter packet: guilds that started at
                # any instant share a few wake-ups per 20 ms instead of one each. Moves a
                # clock once, by 5 ms at most, after its first packet or a restart.
                grid = interval / GRID_DIVISIONS
                playback._due = round(playback._due / grid) * grid
            return playback._due
        except Exception as error:  # one broken guild must not silence the others
            self._end(playback, error)
            return None

    def _wait_for_connection(self, playback: Playback, now: float) -> float | None:
        if _disconnected_for_good(playback.voice):
            # Left, kicked, or the reconnection failed: discord.py stops its own player
            # here (`VoiceClient.stop()` from its disconnect); so do we.
            self._end(playback, None)
            return None
        if playback._disconnected_at is None:
            playback._disconnected_at = now
        timeout = getattr(playback.voice, "timeout", 60.0)
        if now - playback._disconnected_at > timeout:
            log.debug("voice still disconnected after %.0f s: playback aborted", timeout)
            self._end(playback, None)
            return None
        return now + FRAME_SECONDS

    def _end(self, playback: Playback, error: Exception | None) -> None:
        with self._lock:
            if playback in self._playbacks:
                self._playbacks.remove(playback)
            else:
                return
        voice = playback.voice
        if voice.is_connected():
            try:
                for _ in range(END_SILENCE):
                    voice.send_audio_packet(OPUS_SILENCE, encode=False)
            except Exception:  # a socket error at the very end changes nothing
                pass
            _speak(voice, SpeakingState.none)
        try:
            if playback.after is not None:
                playback.after(error)
            elif error is not None:
                log.error("voice playback failed", exc_info=error)
        except Exception:
            log.exception("the playback's after callback failed")
        finally:
            try:
                playback.source.cleanup()
            finally:
                playback._done.set()


def _disconnected_for_good(voice: discord.VoiceClient) -> bool:
    """Not reconnecting: the connection's flow state is back to `disconnected`."""
    connection = getattr(voice, "_connection", None)
    return getattr(connection, "state", None) is ConnectionFlowState.disconnected


def _speak(voice: discord.VoiceClient, state: SpeakingState) -> None:
    """Tell Discord we (stopped) speaking, on the voice client's loop, from any thread."""
    try:
        loop = voice.client.loop
        if loop.is_closed():
            return
        asyncio.run_coroutine_threadsafe(voice.ws.speak(state), loop)
    except Exception:  # no websocket (disconnecting), or no loop any more
        log.debug("speaking state %s not sent", state, exc_info=True)


_shared: VoiceSender | None = None


def shared_sender() -> VoiceSender:
    """The process' sender (its thread starts with the first playback and idles between)."""
    global _shared
    if _shared is None or _shared._closed:
        _shared = VoiceSender()
    return _shared
