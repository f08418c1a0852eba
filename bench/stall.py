"""4. Stall: the upstream pauses 300 ms mid-stream.

The fake stops sending for 300 ms after a third of the body, then carries on at real-time pace.
What must happen: the listener hears a gap (the player sends silence while the buffer is
empty), and no packet afterwards leaves faster than real time (a catch-up burst is what a
blocking `AudioSource.read()` causes: discord.py's player then sends the frames it missed
back to back). A packet counts as sent faster than real time when it is part of a run of at
least three consecutive intervals under 10 ms (half a frame): one or two are discord.py's
player making up for a late wake-up of its thread on a loaded machine, which it does whatever
the source. Also reported: every interval under 10 ms. The same stall is played through
discord.py's `FFmpegPCMAudio(pipe=True)` for comparison.
"""

from __future__ import annotations

import asyncio
import itertools
import os
from typing import Any

import aiohttp
import discord
from pydantic import SecretStr

from bench.common import SHORT_TEXT, VOICE, elevenlabs_client, r1
from bot.elevenlabs.client import ElevenLabsClient
from bot.player import GuildPlayer, SpeechItem
from bot.speech import SpeechRequest
from bot.testing.loopback import LoopbackVoiceClient, SentPacket
from tests.fakes import speech
from tests.fakes.elevenlabs import FakeElevenLabs

FORMAT = "mp3_44100_128"
STALL_S = 0.3
BURST_MS = 10.0
BURST_RUN = 3


def burst_packets(gaps_ms: list[float], *, run: int = BURST_RUN) -> int:
    """Packets inside runs of at least `run` consecutive intervals under 10 ms: a catch-up.

    One or two short intervals are discord.py making up for one late wake-up of its thread
    (a loaded machine); a stall that blocked `read()` is followed by a run of them.
    """
    count = length = 0
    for gap in [*gaps_ms, float("inf")]:
        if gap < BURST_MS:
            length += 1
            continue
        if length >= run:
            count += length
        length = 0
    return count


def _figures(packets: list[SentPacket]) -> dict[str, Any]:
    audio = [p for p in packets if not p.is_silence]
    gaps = [(b.sent_at - a.sent_at) * 1000 for a, b in itertools.pairwise(audio)]
    return {
        "packets_sent_faster_than_real_time": burst_packets(gaps),
        "packets_under_10ms_after_previous": sum(g < BURST_MS for g in gaps),
        "max_interval_ms": r1(max(gaps, default=0.0)),
        "audio_packets": len(audio),
    }


async def _bot(fake: FakeElevenLabs, after_bytes: int) -> dict[str, Any]:
    async with elevenlabs_client(fake.base_url, fake.api_key) as synth:
        voice = await LoopbackVoiceClient.create()
        voice.wait_timeout = 60.0
        try:
            player = GuildPlayer(voice.guild.id)
            player.attach(voice)
            fake.stall_next(after_bytes, STALL_S)
            request = SpeechRequest(SHORT_TEXT, VOICE, output_format=FORMAT)
            item = SpeechItem(
                make_job=lambda frames: synth.job(request, frames=frames), requester_id=1
            )
            player.enqueue(item)
            await item.wait()
            await voice.wait_until_done()
            packets = voice.packets
            underruns = item.frames.underruns
            await player.aclose()
        finally:
            await voice.close()
    figures = _figures(packets)
    # The gap the listener hears: frames of silence the player sent while the buffer was empty.
    figures["silence_inserted_ms"] = underruns * 20
    return figures


async def _ffmpeg_pipe(fake: FakeElevenLabs, after_bytes: int) -> dict[str, Any]:
    voice = await LoopbackVoiceClient.create()
    voice.wait_timeout = 60.0
    try:
        async with aiohttp.ClientSession() as session:
            client = ElevenLabsClient(session, SecretStr(fake.api_key), base_url=fake.base_url)
            fake.stall_next(after_bytes, STALL_S)
            stream = client.stream_speech(VOICE, SHORT_TEXT, output_format=FORMAT)
            await stream.open()
            rfd, wfd = os.pipe()
            reader, writer = os.fdopen(rfd, "rb"), os.fdopen(wfd, "wb", buffering=0)
            voice.play(discord.FFmpegPCMAudio(reader, pipe=True))
            try:
                async for chunk in stream:
                    await asyncio.to_thread(writer.write, chunk)
            finally:
                await stream.aclose()
                writer.close()
            await voice.wait_until_done()
            reader.close()
            return _figures(voice.packets)
    finally:
        await voice.close()


async def run() -> dict[str, Any]:
    audio = await speech.render_speech(VOICE, SHORT_TEXT, FORMAT)
    after_bytes = len(audio.data) // 3
    async with FakeElevenLabs(first_byte_delay=0.3, pace=1.0) as fake:
        bot = await _bot(fake, after_bytes)
        baseline = await _ffmpeg_pipe(fake, after_bytes)
    return {
        "stall": {**bot, "ffmpeg_pipe_baseline": baseline},
        "stall_conditions": {
            "format": FORMAT,
            "stall_s": STALL_S,
            "after_bytes": after_bytes,
            "body_bytes": len(audio.data),
            "pace": 1.0,
            "burst_rule": f">= {BURST_RUN} consecutive intervals under {BURST_MS} ms",
        },
    }
