"""The one sender thread for every guild, over loopback voice clients (real RTP, encryption).

Timing is checked by driving `VoiceSender._serve` with chosen instants, never by the clock.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import discord
import pytest
from discord.enums import SpeakingState
from discord.voice_state import ConnectionFlowState

from bot.audio.opus import OPUS_SILENCE
from bot.audio.sender import (
    END_SILENCE,
    FRAME_SECONDS,
    GRID_DIVISIONS,
    MAX_CATCH_UP,
    Playback,
    VoiceSender,
)
from bot.testing.loopback import LoopbackVoiceClient
from tests.resources import settle

LoopbackFactory = Callable[..., "asyncio.Future[LoopbackVoiceClient]"]


class Packets(discord.AudioSource):
    """`count` distinct Opus-looking payloads, then the end; or an error at `fail_at`."""

    def __init__(self, count: int, *, fail_at: int | None = None) -> None:
        self.count = count
        self.fail_at = fail_at
        self.read_count = 0
        self.cleaned_up = threading.Event()
        self.read_threads: set[str] = set()

    def read(self) -> bytes:
        self.read_threads.add(threading.current_thread().name)
        if self.fail_at is not None and self.read_count == self.fail_at:
            raise RuntimeError("source broke")
        if self.read_count >= self.count:
            return b""
        self.read_count += 1
        return b"\xfc" + self.read_count.to_bytes(4, "big")

    def is_opus(self) -> bool:
        return True

    def cleanup(self) -> None:
        self.cleaned_up.set()


class Ended:
    """An `after` callback that records its error and the thread it ran on."""

    def __init__(self) -> None:
        self.calls: list[Exception | None] = []
        self.threads: list[str] = []

    def __call__(self, error: Exception | None) -> None:
        self.calls.append(error)
        self.threads.append(threading.current_thread().name)


@pytest.fixture
def sender() -> VoiceSender:
    sender = VoiceSender(name="test-sender")
    yield sender
    sender.close()


async def wait_done(playback: Playback) -> None:
    assert await asyncio.to_thread(playback.wait, 10), "the playback did not end"


async def test_a_source_is_sent_whole_then_silence_the_first_packet_at_once(
    sender: VoiceSender, loopback_voice: LoopbackVoiceClient
) -> None:
    source, ended = Packets(10), Ended()
    playback = sender.play(loopback_voice, source, ended)
    await wait_done(playback)
    sent = [p.opus for p in loopback_voice.packets]
    assert (
        sent
        == [b"\xfc" + n.to_bytes(4, "big") for n in range(1, 11)] + [OPUS_SILENCE] * END_SILENCE
    )
    assert not loopback_voice.rtp_breaks()
    # The first packet left from play()'s caller, before the sender thread even woke up;
    # every later one, and the end, from the sender thread.
    caller = threading.current_thread().name
    threads = [p.thread.name for p in loopback_voice.packets]
    assert threads[0] == caller and set(threads[1:]) == {"test-sender"}
    assert ended.calls == [None] and ended.threads == ["test-sender"]
    assert source.read_threads == {caller, "test-sender"} and source.cleaned_up.is_set()
    assert playback.packets_sent == 10 and sender.packets_sent == 10
    speaking = [SpeakingState.voice, SpeakingState.none]
    assert await settle(lambda: loopback_voice.speaking_states[-2:] == speaking)
    assert loopback_voice.sender_playbacks == [playback]


async def test_one_thread_serves_many_guilds_at_once(
    sender: VoiceSender, loopback_voice_factory: LoopbackFactory
) -> None:
    voices = [await loopback_voice_factory() for _ in range(5)]
    playbacks = [sender.play(voice, Packets(25), Ended()) for voice in voices]
    for playback in playbacks:
        await wait_done(playback)
    for voice in voices:
        assert len(voice.packets) == 25 + END_SILENCE
        assert {p.thread.name for p in voice.packets[1:]} == {"test-sender"}
    assert len(sender) == 0


async def test_stop_ends_a_playback_early(
    sender: VoiceSender, loopback_voice: LoopbackVoiceClient
) -> None:
    source, ended = Packets(10_000), Ended()
    playback = sender.play(loopback_voice, source, ended)
    await loopback_voice.wait_for_packets(3)
    playback.stop()
    await wait_done(playback)
    assert ended.calls == [None] and source.cleaned_up.is_set()
    assert source.read_count < 10_000


async def test_a_broken_source_ends_its_playback_only(
    sender: VoiceSender, loopback_voice_factory: LoopbackFactory
) -> None:
    broken_voice, good_voice = await loopback_voice_factory(), await loopback_voice_factory()
    broken, ended_broken = Packets(100, fail_at=3), Ended()
    good, ended_good = Packets(40), Ended()
    first = sender.play(broken_voice, broken, ended_broken)
    second = sender.play(good_voice, good, ended_good)
    await wait_done(first)
    await wait_done(second)
    assert isinstance(ended_broken.calls[0], RuntimeError)
    assert ended_good.calls == [None] and good.read_count == 40


async def test_a_disconnect_ends_the_playback(
    sender: VoiceSender, loopback_voice: LoopbackVoiceClient
) -> None:
    ended = Ended()
    playback = sender.play(loopback_voice, Packets(10_000), ended)
    await loopback_voice.wait_for_packets(3)
    await loopback_voice.simulate_disconnect()
    await wait_done(playback)
    assert ended.calls == [None]


async def test_only_opus_sources_are_played(
    sender: VoiceSender, loopback_voice: LoopbackVoiceClient
) -> None:
    class Pcm(Packets):
        def is_opus(self) -> bool:
            return False

    with pytest.raises(TypeError):
        sender.play(loopback_voice, Pcm(1), Ended())


async def test_a_closed_sender_refuses_new_playbacks(
    loopback_voice: LoopbackVoiceClient,
) -> None:
    sender = VoiceSender()
    sender.close()
    with pytest.raises(RuntimeError):
        sender.play(loopback_voice, Packets(1), Ended())


async def test_close_ends_every_playback(loopback_voice: LoopbackVoiceClient) -> None:
    sender = VoiceSender()
    ended = Ended()
    playback = sender.play(loopback_voice, Packets(10_000), ended)
    await loopback_voice.wait_for_packets(2)
    await asyncio.to_thread(sender.close)
    assert playback.done and ended.calls == [None]


# ---------------------------------------------------------------------- the clock, by hand


def manual_playback(voice: LoopbackVoiceClient, count: int = 1000) -> tuple[VoiceSender, Playback]:
    """A playback registered with a sender whose thread never runs: `_serve` is called here."""
    sender = VoiceSender()
    sender._closed = True  # no thread: play() is bypassed
    playback = Playback(voice, Packets(count), Ended())
    sender._playbacks.append(playback)
    playback._due = 100.0
    return sender, playback


async def test_a_packet_due_is_sent_and_the_next_is_due_one_frame_later(
    loopback_voice: LoopbackVoiceClient,
) -> None:
    sender, playback = manual_playback(loopback_voice)
    assert sender._serve(playback, 99.0) == 100.0  # not due yet: nothing sent
    assert playback.packets_sent == 0
    assert sender._serve(playback, 100.0) == pytest.approx(100.0 + FRAME_SECONDS)
    assert playback.packets_sent == 1


async def test_clocks_land_on_a_common_grid_after_their_first_packet(
    loopback_voice: LoopbackVoiceClient,
) -> None:
    """Guilds started at any instant share a few wake-ups per 20 ms (a quarter-frame grid)."""
    grid = FRAME_SECONDS / GRID_DIVISIONS
    sender, playback = manual_playback(loopback_voice)
    playback._due = 100.0013  # started off the grid: its first packet still leaves at once
    due = sender._serve(playback, 100.0013)
    assert playback.packets_sent == 1
    assert due is not None and abs(due - (100.0013 + FRAME_SECONDS)) <= grid / 2
    assert due / grid == pytest.approx(round(due / grid), abs=1e-6)
    # Once on the grid, a clock stays on it, one frame at a time.
    assert sender._serve(playback, due) == pytest.approx(due + FRAME_SECONDS)


async def test_a_late_wake_up_is_made_up_by_at_most_a_few_packets(
    loopback_voice: LoopbackVoiceClient,
) -> None:
    sender, playback = manual_playback(loopback_voice)
    # 50 ms late: the packets due at 100.00, 100.02 and 100.04 go out back to back.
    sender._serve(playback, 100.05)
    assert playback.packets_sent == 3 and playback.late_restarts == 0
    # Far too late (a stalled process): one packet, and the clock restarts from now.
    due = sender._serve(playback, 105.0)
    assert playback.packets_sent == 4 and playback.late_restarts == 1
    assert due == pytest.approx(105.0 + FRAME_SECONDS)
    assert MAX_CATCH_UP * FRAME_SECONDS < 5.0


async def test_while_reconnecting_nothing_is_read(loopback_voice: LoopbackVoiceClient) -> None:
    sender, playback = manual_playback(loopback_voice)
    connection = loopback_voice._connection
    # is_connected() false, but the flow state is not "disconnected": a reconnect.
    connection.state = ConnectionFlowState.websocket_connected
    try:
        assert sender._serve(playback, 100.0) == pytest.approx(100.0 + FRAME_SECONDS)
        assert playback.source.read_count == 0 and not playback.done
    finally:
        connection.state = ConnectionFlowState.connected
    # Back: the clock restarts at once, and the speaking state is sent again.
    sender._serve(playback, 100.5)
    assert playback.packets_sent == 1


async def test_a_source_empty_at_once_ends_on_the_caller_without_the_thread(
    sender: VoiceSender, loopback_voice: LoopbackVoiceClient
) -> None:
    ended = Ended()
    playback = sender.play(loopback_voice, Packets(0), ended)
    assert playback.done and ended.calls == [None]
    assert ended.threads == [threading.current_thread().name]
    assert len(sender) == 0
