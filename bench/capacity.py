"""3. Capacity: how many guilds can speak at once in one process, and what each stream costs.

One step runs N guilds at once: N loopback voice clients (one `discord.Client`, N guilds), N
`GuildPlayer`s, each playing one long item through the bot's own path (`Synthesizer` job →
ffmpeg or the in-Python pcm_48000 path → `FrameBuffer` → discord.py's `AudioPlayer` thread →
Opus → encryption). The fake ElevenLabs runs in its own process (its CPU is not the bot's)
and streams as fast as it can, as the real service mostly does. Once every guild is playing,
a window is measured: the inter-packet gaps of every stream, the CPU of this process and of
its ffmpeg children, their memory, and the event-loop lag.

A step passes when the pooled p99 gap is ≤ 25 ms, no gap exceeds 60 ms, every stream sent
at least 95 % of the packets real time asks for, and no stream ran dry during the window (a
packet leaves every 20 ms whatever happens: silence sent because decoding or encoding fell
behind is counted from the buffers' underruns). N grows until a step fails, then the last
interval is bisected once.
"""

from __future__ import annotations

import asyncio
import gc
import itertools
import os
import time
import tracemalloc
from dataclasses import asdict
from typing import Any

from bench.common import (
    DEFAULT_ENCODER,
    DISCORD_PY_ENCODER,
    LONG_TEXT,
    SPEECH_ENCODER,
    VOICE,
    CpuSnapshot,
    GuildFarm,
    LoopLag,
    TimingVoiceClient,
    children_pss_kb,
    elevenlabs_client,
    percentile,
    r1,
    rss_kb,
    thread_cpu,
    thread_cpu_pct,
)
from bot.audio.encoding import Encoding, ProcessEncoding, encoding_from_settings
from bot.player import EncoderSettings, GuildPlayer, SpeechItem
from bot.runtime import tune_for_serving
from bot.speech import SpeechRequest, Synthesizer
from tests.fakes import speech

P99_LIMIT_MS = 25.0
MAX_LIMIT_MS = 60.0
PASSTHROUGH_FORMAT = "opus_48000_64"


async def _wait(predicate: Any, limit: float) -> bool:
    deadline = time.perf_counter() + limit
    while not predicate():
        if time.perf_counter() > deadline:
            return False
        await asyncio.sleep(0.05)
    return True


async def step(
    synth: Synthesizer,
    n: int,
    *,
    fmt: str,
    encoder: EncoderSettings,
    encoding: Encoding,
    window: float,
) -> dict[str, Any]:
    """N guilds speaking at once; the figures of one measurement window."""
    gc.collect()
    farm = GuildFarm()
    voices: list[TimingVoiceClient] = []
    players: list[GuildPlayer] = []
    tasks: list[asyncio.Task[None]] = []
    stats: dict[str, Any] = {}
    try:
        for _ in range(n):
            voice = await farm.voice(TimingVoiceClient)
            voices.append(voice)
            player = GuildPlayer(voice.guild.id, encoder=encoder, encoding=encoding)
            player.attach(voice)
            players.append(player)
        gc.freeze()  # as the bot does once it is ready (bot.app.TTSBot.on_ready)
        rss_idle = rss_kb()
        started = time.perf_counter()
        request = SpeechRequest(LONG_TEXT, VOICE, output_format=fmt)
        items: list[SpeechItem] = []
        for i in range(n):
            item = SpeechItem(
                make_job=lambda frames: synth.job(request, frames=frames), requester_id=1
            )
            players[i].enqueue(item)
            items.append(item)

        def downloaded(i: SpeechItem) -> bool:
            return i.job is not None and i.job.timings.body_done_at is not None

        def started_or_failed() -> bool:
            # An item that ended before the window (an upstream error) fails the step at once.
            ended = any(i.result is not None and i.result.done() for i in items)
            broken = any(t.done() and t.exception() is not None for t in tasks)
            # Playing, and every body downloaded: the fake sends as fast as it can (35 s of
            # pcm_48000 is 3.4 MB a guild), a start-up burst the window must not include.
            steady = all(v.packet_count for v in voices) and all(map(downloaded, items))
            return ended or broken or steady

        await _wait(started_or_failed, 120)
        all_playing = all(v.packet_count for v in voices)
        failed = [i.error for i in items if i.error is not None]
        failed += [t.exception() for t in tasks if t.done() and t.exception()]
        if failed:
            stats["errors"] = sorted({f"{type(e).__name__}: {e}" for e in failed})
            all_playing = False
        startup = time.perf_counter() - started
        await asyncio.sleep(1.0)  # let the start-up burst (ffmpeg spawns, downloads) settle
        for voice in voices:
            voice.clear_packets()
        lag = LoopLag()
        lag.start()
        underruns0 = [i.frames.underruns for i in items]
        cpu0, threads0 = CpuSnapshot.take(), thread_cpu()
        await asyncio.sleep(window)
        cpu1, threads1 = CpuSnapshot.take(), thread_cpu()
        # Silence sent because the audio was not decoded and encoded in time: a packet
        # leaves every 20 ms all the same, but that stream is not real time.
        starved = sum(i.frames.underruns > u for i, u in zip(items, underruns0, strict=True))
        underrun_frames = sum(
            i.frames.underruns - u for i, u in zip(items, underruns0, strict=True)
        )
        lags = await lag.stop()
        rss_busy = rss_kb()
        pss_children = children_pss_kb()
        gaps: list[float] = []
        short = 0
        for voice in voices:
            times = list(voice.sent_at)
            gaps.extend((b - a) * 1000 for a, b in itertools.pairwise(times))
            if len(times) < 0.95 * window / 0.020:
                short += 1
    finally:
        for player in players:
            await player.aclose()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for voice in voices:
            await voice.close()
        await farm.close()
    own, children = cpu1.pct_since(cpu0)
    p99 = percentile(gaps, 99) or 0.0
    worst = max(gaps, default=0.0)
    ok = (
        all_playing
        and short == 0
        and starved == 0
        and p99 <= P99_LIMIT_MS
        and worst <= MAX_LIMIT_MS
    )
    result = {
        "streams": n,
        "ok": ok,
        "p50_gap_ms": r1(percentile(gaps, 50)),
        "p99_gap_ms": r1(p99),
        "max_gap_ms": r1(worst),
        "streams_short_of_real_time": short,
        "streams_starved": starved,
        "underrun_frames": underrun_frames,
        "startup_s": round(startup, 1),
        "cpu_pct_process": r1(own),
        "cpu_pct_children": r1(children),  # ffmpeg decoders and encoder processes
        "cpu_pct_per_stream": r1((own + children) / n),
        "cpu_pct_by_thread": thread_cpu_pct(threads0, threads1, cpu1.at - cpu0.at),
        "rss_mb_per_stream": round(((rss_busy - rss_idle) + pss_children) / 1024 / n, 2),
        "children_pss_mb_per_stream": round(pss_children / 1024 / n, 2),
        "loop_lag_p99_ms": r1(percentile(lags, 99)),
        "loop_lag_max_ms": r1(max(lags, default=0.0)),
    }
    if "errors" in stats:
        result["errors"] = stats["errors"]
    passed = sum(getattr(i.frames, "packets_passed", 0) for i in items)
    if passed:  # Opus from upstream, sent as it came
        result["opus_packets_passed_per_stream"] = passed // n
    return result


async def search(
    synth: Synthesizer,
    *,
    fmt: str,
    encoder: EncoderSettings,
    encoding: Encoding,
    ladder: list[int],
    window: float,
    attempts: int = 1,
    log: Any = print,
) -> dict[str, Any]:
    """Climb `ladder` until a step fails (`attempts` times), then bisect the last interval."""
    steps: list[dict[str, Any]] = []
    best: dict[str, Any] | None = None
    failed_at: int | None = None
    for n in ladder:
        for _ in range(attempts):  # other load on the machine only ever makes a step worse
            result = await step(
                synth,
                n,
                fmt=fmt,
                encoder=encoder,
                encoding=encoding,
                window=window,
            )
            label = "passthrough" if fmt.startswith("opus") else encoder.application
            label += f" {type(encoding).__name__}"
            log(f"  capacity {fmt} {label} c={encoder.complexity}: {result}")
            steps.append(result)
            if result["ok"]:
                break
        if result["ok"]:
            best = result
        else:
            failed_at = n
            break
    if best is not None and failed_at is not None and failed_at - best["streams"] > 10:
        n = (best["streams"] + failed_at) // 2
        result = await step(
            synth,
            n,
            fmt=fmt,
            encoder=encoder,
            encoding=encoding,
            window=window,
        )
        log(f"  capacity {fmt} bisect: {result}")
        steps.append(result)
        if result["ok"]:
            best = result
    return {
        "format": fmt,
        "encoder": "opus passthrough" if fmt.startswith("opus") else asdict(encoder),
        "streams": best["streams"] if best else 0,
        "at_best": best,
        "limit_not_reached": failed_at is None,
        "steps": steps,
    }


async def idle_player_kb(count: int) -> dict[str, Any]:
    """Memory of one idle guild: its `GuildPlayer`, and with a connected voice client."""
    farm = GuildFarm()
    await farm.voice()  # build the client before measuring
    voices: list[Any] = []
    players: list[GuildPlayer] = []
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.take_snapshot()
        for i in range(count):
            players.append(GuildPlayer(10_000 + i))
        gc.collect()
        after_players = tracemalloc.take_snapshot()
        for player in players:
            voice = await farm.voice()
            player.attach(voice)
            voices.append(voice)
        gc.collect()
        after_voices = tracemalloc.take_snapshot()
    finally:
        tracemalloc.stop()
        for voice in voices:
            await voice.close()
        await farm.close()

    def diff(a: Any, b: Any) -> float:
        return sum(s.size_diff for s in b.compare_to(a, "filename")) / 1024 / count

    return {
        "player_only_kb": round(diff(base, after_players), 2),
        "player_and_voice_client_kb": round(diff(base, after_voices), 1),
    }


async def run(
    base_url: str,
    api_key: str,
    *,
    ladder: list[int],
    window: float,
    variants: list[str],
    attempts: int = 1,
    log: Any = print,
) -> dict[str, Any]:
    for fmt in ("mp3_44100_128", "pcm_48000", PASSTHROUGH_FORMAT):
        await speech.render_speech(VOICE, LONG_TEXT, fmt)
    workers = os.cpu_count() or 1
    configs: dict[str, tuple[str, EncoderSettings, int]] = {
        # (format, encoder settings, OPUS_ENCODER_PROCESSES); mp3 is decoded by libmpg123
        # in the process, except in the `_ffmpeg` variant (MP3_DECODER=ffmpeg).
        "mp3_default_encoder": ("mp3_44100_128", DEFAULT_ENCODER, 0),
        "mp3_default_encoder_ffmpeg": ("mp3_44100_128", DEFAULT_ENCODER, 0),
        "mp3_speech_encoder": ("mp3_44100_128", SPEECH_ENCODER, 0),
        "pcm48_default_encoder": ("pcm_48000", DEFAULT_ENCODER, 0),
        "pcm48_speech_encoder": ("pcm_48000", SPEECH_ENCODER, 0),
        # discord.py's own encoding (stereo, complexity 10), through the bot's sender.
        "mp3_discord_py_encoder": ("mp3_44100_128", DISCORD_PY_ENCODER, 0),
        # The encoders in one worker process per core instead of threads.
        "mp3_default_encoder_processes": ("mp3_44100_128", DEFAULT_ENCODER, workers),
        "mp3_speech_encoder_processes": ("mp3_44100_128", SPEECH_ENCODER, workers),
        "pcm48_speech_encoder_processes": ("pcm_48000", SPEECH_ENCODER, workers),
        # ElevenLabs' Ogg Opus sent as it comes: no ffmpeg, no decoding, no encoding.
        "opus_passthrough": (PASSTHROUGH_FORMAT, DEFAULT_ENCODER, 0),
    }
    out: dict[str, Any] = {}
    tune_for_serving()  # as `python -m bot run` does
    async with elevenlabs_client(base_url, api_key) as synth:
        for name in variants:
            fmt, encoder, processes = configs[name]
            synth.mp3_decoder = "ffmpeg" if name.endswith("_ffmpeg") else "auto"
            encoding = encoding_from_settings(processes)
            if isinstance(encoding, ProcessEncoding):
                await encoding.start()
            try:
                out[name] = await search(
                    synth,
                    fmt=fmt,
                    encoder=encoder,
                    encoding=encoding,
                    ladder=ladder,
                    window=window,
                    attempts=attempts,
                    log=log,
                )
            finally:
                if isinstance(encoding, ProcessEncoding):
                    await encoding.aclose()
                else:
                    encoding.close()
            out[name]["encoder_processes"] = processes
            out[name]["mp3_decoder"] = synth.mp3_decoder if fmt.startswith("mp3") else None
    out["idle"] = await idle_player_kb(20)
    return out
