"""1. Time to first audio: from `/speak` and from the first upstream byte to the first audio packet.

The bot's path is timed end to end: an INTERACTION_CREATE for `/speak` goes through the real
`TTSBot` (command tree, cog, `SpeechService`, quota, `GuildPlayer`, `DecodeJob`) and the first
packet that is not discord.py's Opus silence frame is stamped by the loopback voice client on
the player thread. The guild is idle before each run (the previous item was stopped and the
player thread has ended), so every run includes a fresh `VoiceClient.play()`.

Two baselines, done the way other bots do it, against the same fake and voice client:
(a) `download_then_play`: read the whole body, write it to a file, `FFmpegPCMAudio(path)`;
(b) `ffmpeg_pipe_at_first_byte`: `FFmpegPCMAudio(pipe, pipe=True)` started when the first byte
arrives, the body written into the pipe as it comes.
For the baselines "command" means the moment the request is sent (no interaction round trip:
that favours them slightly).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
import time
from pathlib import Path
from typing import Any

import discord

from bench.bot_harness import tts_bot
from bench.common import SHORT_TEXT, TTFA_FORMATS, VOICE, p50_p95
from bot.elevenlabs.client import ElevenLabsClient
from bot.testing.loopback import LoopbackVoiceClient
from tests.fakes import speech
from tests.fakes.elevenlabs import FakeElevenLabs

WARMUP = 2


def _first_audio_at(voice: LoopbackVoiceClient) -> float | None:
    for packet in voice.packets:
        if not packet.is_silence:
            return packet.sent_at
    return None


async def _bot_runs(harness: Any, fmt: str, runs: int, warmup: int) -> dict[str, Any]:
    bot = harness.bot
    bot.speech.output_format = fmt
    gid = harness.guild.id
    byte_ms: list[float] = []
    cmd_ms: list[float] = []
    decoded_ms: list[float] = []  # first byte -> its first frame in the buffer (the rest: sending)
    for n in range(warmup + runs):
        voice = harness.guild.guild.voice_client
        if voice is not None:
            voice.clear_packets()
        t0 = time.perf_counter()
        await harness.invoke("speak", text=SHORT_TEXT)
        voice = harness.guild.guild.voice_client
        assert isinstance(voice, LoopbackVoiceClient), "/speak did not join"
        player = bot.voices.players[gid]
        item = player.current or player.pending()[0]
        await voice.wait_until(lambda v=voice: _first_audio_at(v) is not None, what="audio")
        first = _first_audio_at(voice)
        assert first is not None
        timings = item.job.timings
        player.stop()
        await item.wait()
        await voice.wait_until_done()
        if n >= warmup and timings.first_byte_at is not None:
            cmd_ms.append((first - t0) * 1000)
            byte_ms.append((first - timings.first_byte_at) * 1000)
            if timings.first_frame_at is not None:
                decoded_ms.append((timings.first_frame_at - timings.first_byte_at) * 1000)
    return {
        "first_byte_to_first_packet_ms": p50_p95(byte_ms),
        "command_to_first_packet_ms": p50_p95(cmd_ms),
        "first_byte_to_first_frame_ms": p50_p95(decoded_ms),
    }


async def measure_bot(
    fake: FakeElevenLabs, runs: int, formats: tuple[str, ...], warmup: int = WARMUP
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    async with tts_bot(fake.base_url, fake.api_key) as harness:
        for fmt in formats:
            results[fmt] = await _bot_runs(harness, fmt, runs, warmup)
    return results


# ---------------------------------------------------------------------------- baselines


async def _download_then_play(
    client: ElevenLabsClient, voice: LoopbackVoiceClient, tmp: str
) -> tuple[float, float]:
    t0 = time.perf_counter()
    stream = client.stream_speech(VOICE, SHORT_TEXT, output_format="mp3_44100_128")
    await stream.open()
    try:
        body = b"".join([chunk async for chunk in stream])
    finally:
        await stream.aclose()
    first_byte = stream.first_byte_at
    path = os.path.join(tmp, "speech.mp3")
    await asyncio.to_thread(Path(path).write_bytes, body)
    voice.play(discord.FFmpegPCMAudio(path))
    await voice.wait_until(lambda: _first_audio_at(voice) is not None, what="audio")
    first = _first_audio_at(voice)
    assert first is not None and first_byte is not None
    return (first - t0) * 1000, (first - first_byte) * 1000


async def _pipe_at_first_byte(
    client: ElevenLabsClient, voice: LoopbackVoiceClient
) -> tuple[float, float]:
    t0 = time.perf_counter()
    stream = client.stream_speech(VOICE, SHORT_TEXT, output_format="mp3_44100_128")
    await stream.open()  # returns once the first audio byte is in
    first_byte = stream.first_byte_at
    rfd, wfd = os.pipe()
    reader = os.fdopen(rfd, "rb")
    writer = os.fdopen(wfd, "wb", buffering=0)
    voice.play(discord.FFmpegPCMAudio(reader, pipe=True))
    try:
        async for chunk in stream:
            await asyncio.to_thread(writer.write, chunk)
    finally:
        await stream.aclose()
        writer.close()
    await voice.wait_until(lambda: _first_audio_at(voice) is not None, what="audio")
    first = _first_audio_at(voice)
    assert first is not None and first_byte is not None
    voice.stop()
    await voice.wait_until_done()  # discord.py's pipe-writer thread reads until then
    with contextlib.suppress(OSError):
        reader.close()
    return (first - t0) * 1000, (first - first_byte) * 1000


async def measure_baselines(
    fake: FakeElevenLabs, runs: int, warmup: int = WARMUP
) -> dict[str, Any]:
    import aiohttp
    from pydantic import SecretStr

    results: dict[str, Any] = {}
    voice = await LoopbackVoiceClient.create()
    voice.wait_timeout = 60.0
    try:
        async with aiohttp.ClientSession() as session:
            client = ElevenLabsClient(session, SecretStr(fake.api_key), base_url=fake.base_url)
            with tempfile.TemporaryDirectory(prefix="bench-dl-") as tmp:
                for name in ("download_then_play", "ffmpeg_pipe_at_first_byte"):
                    cmd_ms, byte_ms = [], []
                    # Downloading first is dominated by the body's length (4.5 s at real time)
                    # and hardly varies: a third of the runs is enough there.
                    count = max(1, runs // 3) if name == "download_then_play" else runs
                    for n in range(warmup + count):
                        voice.clear_packets()
                        if name == "download_then_play":
                            cmd, byte = await _download_then_play(client, voice, tmp)
                        else:
                            cmd, byte = await _pipe_at_first_byte(client, voice)
                        voice.stop()
                        await voice.wait_until_done()
                        if n >= warmup:
                            cmd_ms.append(cmd)
                            byte_ms.append(byte)
                    results[name] = {
                        "format": "mp3_44100_128",
                        "first_byte_to_first_packet_ms": p50_p95(byte_ms),
                        "command_to_first_packet_ms": p50_p95(cmd_ms),
                    }
    finally:
        await voice.close()
    return results


def ratios(ttfa: dict[str, Any], baselines: dict[str, Any]) -> dict[str, Any]:
    """How many times longer each baseline takes than the bot, for mp3, p50 and p95."""
    bot = ttfa.get("mp3_44100_128")
    out: dict[str, Any] = {}
    if not bot:
        return out
    for name, figures in baselines.items():
        entry = {}
        for key in ("first_byte_to_first_packet_ms", "command_to_first_packet_ms"):
            for p in ("p50", "p95"):
                ours, theirs = bot[key][p], figures[key][p]
                if ours and theirs:
                    entry[f"{key}_{p}"] = round(theirs / ours, 1)
        out[name] = entry
    return out


async def run(
    *,
    runs: int,
    baseline_runs: int,
    warmup: int = WARMUP,
    first_byte_delay: float = 0.3,
    pace: float = 1.0,
) -> dict[str, Any]:
    for fmt in TTFA_FORMATS:
        await speech.render_speech(VOICE, SHORT_TEXT, fmt)  # warm the fake's render cache
    async with FakeElevenLabs(first_byte_delay=first_byte_delay, pace=pace) as fake:
        ttfa = await measure_bot(fake, runs, TTFA_FORMATS, warmup)
        try:
            baselines = await measure_baselines(fake, baseline_runs, warmup)
            error = None
        except Exception as exc:  # keep the bot's figures when a baseline breaks
            baselines, error = {}, f"{type(exc).__name__}: {exc}"
    return {
        "baselines_error": error,
        "ttfa": ttfa,
        "baselines": baselines,
        "baseline_ratios": ratios(ttfa, baselines),
        "ttfa_conditions": {
            "runs_per_format": runs,
            "baseline_runs": baseline_runs,
            "warmup_runs": warmup,
            "first_byte_delay_s": first_byte_delay,
            "pace": pace,
            "text_chars": len(SHORT_TEXT),
        },
    }
