"""Time from the first upstream audio byte to the first decoded frame, per output format.

Runs the strict fake ElevenLabs in this process with a first-byte delay and a realtime
pace, and the bot's own path (`Synthesizer.job` → `DecodeJob` → `FrameBuffer`) against it.
ffmpeg is spawned when the request is sent, as in the bot, so its start-up overlaps the
wait for the first byte; what is left is the decoder's own latency.

    .venv/bin/python -m bench.ttff                       # defaults below
    .venv/bin/python -m bench.ttff --runs 50 --first-byte-delay 0.3 --pace 1.0
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import aiohttp
from pydantic import SecretStr

from bot.elevenlabs.client import ElevenLabsClient
from bot.speech import SpeechRequest, Synthesizer
from tests.fakes import speech
from tests.fakes.elevenlabs import FakeElevenLabs

VOICE = "21m00Tcm4TlvDq8ikWAM"
TEXT = "Hello there! This is a short sentence, about as long as a chat message."
FORMATS = ("mp3_44100_128", "pcm_48000", "pcm_24000")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * p / 100
    low, high = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (k - low)


async def one(synth: Synthesizer, fmt: str) -> tuple[float, float, float]:
    job = synth.job(SpeechRequest(TEXT, VOICE, output_format=fmt))
    task = asyncio.create_task(job.run())
    async for _ in job.frames.frames():
        break  # the first frame is what is measured: skip the rest (as a skip would)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    t = job.timings
    assert t.first_byte_at and t.first_frame_at and t.sent_at
    return (
        (t.first_frame_at - t.first_byte_at) * 1000,
        (t.first_byte_at - t.sent_at) * 1000,
        (t.first_frame_at - t.sent_at) * 1000,
    )


async def main(args: argparse.Namespace) -> None:
    for fmt in args.formats:
        await speech.render_speech(VOICE, TEXT, fmt)  # warm the fake's render cache
    fake = FakeElevenLabs(first_byte_delay=args.first_byte_delay, pace=args.pace)
    async with fake, aiohttp.ClientSession() as session:
        client = ElevenLabsClient(session, SecretStr(fake.api_key), base_url=fake.base_url)
        synth = Synthesizer(client)
        print(
            f"fake: first_byte_delay={args.first_byte_delay}s pace={args.pace} "
            f"chunks={fake.chunk_size_range}; {args.runs} runs per format (+2 warm-up)"
        )
        print(f"{'format':<15} {'byte→frame p50':>15} {'p95':>7} {'max':>7}  "
              f"{'send→byte p50':>14} {'send→frame p50':>15}")  # fmt: skip
        for fmt in args.formats:
            for _ in range(2):
                await one(synth, fmt)
            results = [await one(synth, fmt) for _ in range(args.runs)]
            ttff = [r[0] for r in results]
            print(
                f"{fmt:<15} {percentile(ttff, 50):>12.1f} ms {percentile(ttff, 95):>7.1f}"
                f" {max(ttff):>7.1f}  {statistics.median(r[1] for r in results):>11.1f} ms"
                f" {statistics.median(r[2] for r in results):>12.1f} ms"
            )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--first-byte-delay", type=float, default=0.3)
    parser.add_argument("--pace", type=float, default=1.0, help="realtime factor of the body")
    parser.add_argument("--formats", nargs="+", default=list(FORMATS))
    asyncio.run(main(parser.parse_args()))
