"""`python -m bot say`: speak a text through the bot's own audio path, without Discord.

It is how operators try voices and settings, and how the path is measured: the
WAV holds exactly the 48 kHz stereo 16-bit frames the bot would hand to Discord.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
import wave
from collections.abc import AsyncIterator
from pathlib import Path

from pydantic import ValidationError

from bot.audio.frames import CHANNELS, FRAME_MS, SAMPLE_RATE, SAMPLE_WIDTH
from bot.cli.common import cli_settings, elevenlabs_client
from bot.config import OUTPUT_FORMATS
from bot.elevenlabs.client import ElevenLabsClient
from bot.elevenlabs.models import SPEED_RANGE, Voice, VoiceSettings
from bot.errors import BotError
from bot.speech import SpeechRequest, Synthesizer


def add_parser(sub: argparse._SubParsersAction) -> None:
    from bot.cli import ranged

    parser = sub.add_parser("say", help="speak a text into a WAV file, as the bot would")
    parser.add_argument("text", help="what to say")
    parser.add_argument("--voice", required=True, help="voice id, or a name (or unique prefix)")
    parser.add_argument("--model", help="model id (default: ELEVENLABS_MODEL)")
    parser.add_argument("--format", choices=OUTPUT_FORMATS, metavar="FORMAT", help="output format")
    parser.add_argument("--stability", type=ranged(0, 1), help="0–1")
    parser.add_argument("--similarity", type=ranged(0, 1), help="0–1")
    parser.add_argument("--style", type=ranged(0, 1), help="0–1")
    parser.add_argument("--speed", type=ranged(*SPEED_RANGE), help="0.7–1.2")
    parser.add_argument(
        "--speaker-boost", action=argparse.BooleanOptionalAction, default=None, help="on or off"
    )
    parser.add_argument("--out", type=Path, help="write the frames to this WAV file")
    parser.add_argument("--json", action="store_true", help="print timings as one JSON object")
    parser.add_argument("-v", "--verbose", action="store_true", help="log to stderr")
    parser.set_defaults(handler=run)


async def resolve_voice_id(client: ElevenLabsClient, query: str) -> str:
    """A voice id from an id or a name: exact name first, then a unique prefix.

    The list is loaded here rather than by `VoiceCatalog.refresh()`, which swallows
    failures (right for the bot's background refresh): a bad key or a network
    failure must be reported as such, not as "the voice list has not loaded yet".
    """
    from bot.voices.catalog import VoiceCatalog

    voices = [voice async for voice in client.iter_voices()]

    async def load() -> AsyncIterator[Voice]:
        for voice in voices:
            yield voice

    catalog = VoiceCatalog(load=load)
    await catalog.refresh()
    return catalog.resolve(query).voice_id


async def run(args: argparse.Namespace) -> int:
    if not args.text.strip():
        raise BotError("There is nothing to say: the text is empty.")
    try:
        voice_settings = VoiceSettings(
            stability=args.stability,
            similarity_boost=args.similarity,
            style=args.style,
            speed=args.speed,
            use_speaker_boost=args.speaker_boost,
        )
    except ValidationError as exc:  # argparse checks ranges already; belt and braces
        raise BotError(f"Invalid voice settings: {exc.errors()[0]['msg']}") from None
    settings = cli_settings(verbose=args.verbose)
    async with elevenlabs_client(settings) as client:
        voice_id = await resolve_voice_id(client, args.voice)
        synthesizer = Synthesizer(
            client,
            ffmpeg_path=settings.ffmpeg_path,
            max_bytes=settings.max_audio_bytes,
            mp3_decoder=settings.mp3_decoder,
        )
        request = SpeechRequest(
            text=args.text,
            voice_id=voice_id,
            model_id=args.model or settings.elevenlabs_model,
            settings=voice_settings,
            output_format=args.format or settings.elevenlabs_output_format,
        )
        job = synthesizer.job(request, label="say")
        pcm = bytearray()
        task = asyncio.create_task(job.run())
        try:
            async for frame in job.frames.frames():
                pcm += frame
            await task
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        done_at = time.perf_counter()

    frames = len(pcm) // (SAMPLE_WIDTH * CHANNELS * SAMPLE_RATE * FRAME_MS // 1000)
    if args.out:
        write_wav(args.out, bytes(pcm))
    stream = job.stream
    timings = job.timings
    summary = {
        "voice_id": voice_id,
        "output_format": job.output_format,
        "request_id": getattr(stream, "request_id", None),
        "characters": len(args.text),
        "character_cost": getattr(stream, "character_cost", None),
        "first_byte_ms": timings.ms("first_byte_at"),
        "first_frame_ms": timings.ms("first_frame_at"),
        "total_ms": round((done_at - timings.sent_at) * 1000, 1) if timings.sent_at else None,
        "frames": frames,
        "audio_ms": frames * FRAME_MS,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        where = f" to {args.out}" if args.out else ""
        print(
            f"{summary['audio_ms'] / 1000:.2f} s of audio{where}; first audio byte after "
            f"{summary['first_byte_ms']} ms, first frame after {summary['first_frame_ms']} ms; "
            f"{summary['character_cost']} credits (request {summary['request_id']})"
        )
    return 0


def write_wav(path: Path, pcm: bytes) -> None:
    try:
        with wave.open(str(path), "wb") as out:
            out.setnchannels(CHANNELS)
            out.setsampwidth(SAMPLE_WIDTH)
            out.setframerate(SAMPLE_RATE)
            out.writeframes(pcm)
    except OSError as exc:
        raise BotError(f"Cannot write {path}: {exc.strerror}") from None
