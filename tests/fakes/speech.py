"""Real speech for the fake ElevenLabs: espeak-ng renders it, ffmpeg encodes it.

Why real audio: the bot decodes what ElevenLabs sends with ffmpeg and hands 20 ms frames to
Discord. Random bytes or silence would let a broken decoder, a truncated stream or a resampling
bug pass unnoticed; real speech can be decoded, measured and correlated.

The pipeline, for one (voice_id, text):

1. espeak-ng speaks the text with a voice, pitch and speed derived from ``voice_id`` (a hash, so
   the same voice always sounds the same and different voices sound different).
2. ffmpeg turns espeak's WAV into the **reference PCM**: 48 kHz, signed 16-bit little-endian,
   mono (``REFERENCE_RATE``, ``REFERENCE_CHANNELS``). :func:`reference_pcm` returns it (or a
   stereo copy with ``channels=2``, which is what Discord is fed: 3,840 bytes per 20 ms).
3. ffmpeg encodes the reference PCM into the requested ElevenLabs ``output_format``.

Every encoded format starts from the same reference, so a test can decode the bot's output and
correlate it with :func:`reference_pcm`.

Renders are cached in memory and on disk (``CACHE_DIR``), so a test suite pays for each
(voice, text, format) once per machine. Every subprocess is an asyncio subprocess: the fake's
event loop never blocks, and a cancelled render kills its process.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import tempfile
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "CACHE_DIR",
    "OUTPUT_FORMATS",
    "REFERENCE_CHANNELS",
    "REFERENCE_RATE",
    "AudioFormat",
    "EspeakVoice",
    "RenderError",
    "SpeechAudio",
    "clear_memory_cache",
    "espeak_voice_for",
    "reference_pcm",
    "reference_pcm_blocking",
    "render_speech",
]

REFERENCE_RATE = 48_000
"""Sample rate of the reference PCM (Hz): Discord's rate, so no resampling is needed to compare."""
REFERENCE_CHANNELS = 1
"""The reference PCM is mono; ``reference_pcm(..., channels=2)`` duplicates it to stereo."""
REFERENCE_SAMPLE_WIDTH = 2
"""Signed 16-bit little-endian samples."""

# Bump when the pipeline changes so stale disk-cache entries are ignored.
_PIPELINE_VERSION = "1"

CACHE_DIR = Path(
    os.environ.get("FAKE_ELEVENLABS_CACHE_DIR")
    or Path(tempfile.gettempdir()) / f"fake-elevenlabs-speech-{os.getuid()}"
)
"""Where renders are kept between test runs. Override with FAKE_ELEVENLABS_CACHE_DIR."""

_MIN_REFERENCE_BYTES = REFERENCE_RATE * REFERENCE_SAMPLE_WIDTH // 10  # 100 ms


class RenderError(RuntimeError):
    """espeak-ng or ffmpeg failed: a broken test environment, not a bot bug."""


@dataclass(frozen=True)
class AudioFormat:
    """One documented ElevenLabs ``output_format`` and how to produce it.

    ``content_type`` choices, since ElevenLabs documents none: ``audio/mpeg`` for mp3,
    ``audio/ogg`` for Ogg Opus, ``audio/pcm`` for raw s16le mono PCM, ``audio/basic`` for
    μ-law (its registered type) and ``audio/alaw`` for A-law. All raw formats are mono.
    """

    name: str
    codec: str  # "mp3" | "pcm" | "ulaw" | "alaw" | "opus"
    sample_rate: int
    bitrate_kbps: int | None
    content_type: str

    @property
    def bytes_per_second(self) -> int | None:
        """Exact byte rate for raw formats (pcm, ulaw, alaw); None for compressed ones."""
        if self.codec == "pcm":
            return self.sample_rate * 2
        if self.codec in ("ulaw", "alaw"):
            return self.sample_rate
        return None

    def ffmpeg_output_args(self) -> list[str]:
        """ffmpeg arguments after the input, up to (not including) the output target."""
        common = ["-ac", "1", "-ar", str(self.sample_rate), "-map_metadata", "-1"]
        if self.codec == "mp3":
            return [
                *common,
                "-c:a",
                "libmp3lame",
                "-b:a",
                f"{self.bitrate_kbps}k",
                "-id3v2_version",
                "0",
                "-write_xing",
                "0",
                "-f",
                "mp3",
            ]
        if self.codec == "opus":
            return [*common, "-c:a", "libopus", "-b:a", f"{self.bitrate_kbps}k", "-f", "ogg"]
        if self.codec == "pcm":
            return [*common, "-f", "s16le"]
        if self.codec == "ulaw":
            return [*common, "-f", "mulaw"]
        if self.codec == "alaw":
            return [*common, "-f", "alaw"]
        raise ValueError(f"unknown codec {self.codec!r}")


def _formats() -> dict[str, AudioFormat]:
    table: list[AudioFormat] = [AudioFormat("mp3_22050_32", "mp3", 22050, 32, "audio/mpeg")]
    for kbps in (32, 64, 96, 128, 192):
        table.append(AudioFormat(f"mp3_44100_{kbps}", "mp3", 44100, kbps, "audio/mpeg"))
    for rate in (8000, 16000, 22050, 24000, 44100, 48000):
        table.append(AudioFormat(f"pcm_{rate}", "pcm", rate, None, "audio/pcm"))
    table.append(AudioFormat("ulaw_8000", "ulaw", 8000, None, "audio/basic"))
    table.append(AudioFormat("alaw_8000", "alaw", 8000, None, "audio/alaw"))
    for kbps in (32, 64, 96, 128, 192):
        table.append(AudioFormat(f"opus_48000_{kbps}", "opus", 48000, kbps, "audio/ogg"))
    return {f.name: f for f in table}


OUTPUT_FORMATS: dict[str, AudioFormat] = _formats()
"""Every ``output_format`` the documentation lists, by name."""


@dataclass(frozen=True)
class EspeakVoice:
    """How espeak-ng speaks for one ElevenLabs voice id."""

    voice: str  # e.g. "en-us+f3"
    pitch: int  # 0..99
    speed: int  # words per minute


_ESPEAK_BASES = ("en-us", "en-gb", "en-gb-x-rp", "en-gb-scotland", "en-029")
_ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m7", "f1", "f2", "f3", "f4", "f5")


def espeak_voice_for(voice_id: str) -> EspeakVoice:
    """The espeak-ng voice for an ElevenLabs voice id: deterministic, and varied across ids."""
    digest = hashlib.sha256(voice_id.encode()).digest()
    base = _ESPEAK_BASES[digest[0] % len(_ESPEAK_BASES)]
    variant = _ESPEAK_VARIANTS[digest[1] % len(_ESPEAK_VARIANTS)]
    return EspeakVoice(f"{base}+{variant}", pitch=30 + digest[2] % 41, speed=155 + digest[3] % 31)


@dataclass(frozen=True)
class SpeechAudio:
    """Encoded speech ready to stream, with its playback duration (for pacing)."""

    data: bytes
    format: AudioFormat
    duration: float  # seconds of audio, from the reference PCM

    @property
    def content_type(self) -> str:
        return self.format.content_type


_MEMORY_LIMIT = 256
_memory: OrderedDict[tuple[str, str, str], bytes] = OrderedDict()


def clear_memory_cache() -> None:
    """Forget in-memory renders (the disk cache stays); for tests of the cache itself."""
    _memory.clear()


def _cache_key(voice_id: str, text: str, what: str) -> str:
    voice = espeak_voice_for(voice_id)
    material = "\x00".join([_PIPELINE_VERSION, voice.voice, str(voice.pitch), str(voice.speed)])
    material += "\x00" + voice_id + "\x00" + text + "\x00" + what
    return hashlib.sha256(material.encode()).hexdigest()


def _disk_read(key: str) -> bytes | None:
    try:
        return (CACHE_DIR / key).read_bytes()
    except OSError:
        return None


def _disk_write(key: str, data: bytes) -> None:
    """Write atomically, so a concurrent reader never sees half a file."""
    try:
        CACHE_DIR.mkdir(parents=True, exist_ok=True)
        tmp = CACHE_DIR / f".{key}.{os.getpid()}.tmp"
        tmp.write_bytes(data)
        os.replace(tmp, CACHE_DIR / key)
    except OSError:
        pass  # the cache is an optimisation; a read-only tmp must not fail a test


async def _cached(
    voice_id: str, text: str, what: str, produce: Callable[[], Awaitable[bytes]]
) -> bytes:
    mem_key = (voice_id, text, what)
    if (hit := _memory.get(mem_key)) is not None:
        _memory.move_to_end(mem_key)
        return hit
    key = _cache_key(voice_id, text, what)
    data = _disk_read(key)
    if data is None:
        data = await produce()
        _disk_write(key, data)
    _memory[mem_key] = data
    while len(_memory) > _MEMORY_LIMIT:
        _memory.popitem(last=False)
    return data


async def _run(args: list[str], stdin: bytes) -> bytes:
    """Run a process to completion; kill and reap it if we are cancelled."""
    try:
        proc = await asyncio.create_subprocess_exec(
            *args,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
    except FileNotFoundError as exc:
        raise RenderError(f"{args[0]} is not installed") from exc
    try:
        out, err = await proc.communicate(stdin)
    except BaseException:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        raise
    if proc.returncode != 0:
        raise RenderError(f"{args[0]} exited {proc.returncode}: {err.decode(errors='replace')}")
    return out


async def _render_reference(voice_id: str, text: str) -> bytes:
    voice = espeak_voice_for(voice_id)
    wav = await _run(
        [
            "espeak-ng",
            "-v",
            voice.voice,
            "-p",
            str(voice.pitch),
            "-s",
            str(voice.speed),
            "--stdout",
            "--stdin",
        ],
        text.encode(),
    )
    pcm = await _run(
        [
            "ffmpeg",
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-f",
            "wav",
            "-i",
            "pipe:0",
            "-ac",
            "1",
            "-ar",
            str(REFERENCE_RATE),
            "-f",
            "s16le",
            "pipe:1",
        ],
        wav,
    )
    if len(pcm) < _MIN_REFERENCE_BYTES:  # text espeak says nothing for ("..."): still audio
        pcm += bytes(_MIN_REFERENCE_BYTES - len(pcm))
    return pcm


async def reference_pcm(voice_id: str, text: str, *, channels: int = 1) -> bytes:
    """What the fake says for (voice_id, text), as 48 kHz s16le PCM, mono or stereo.

    ``channels=1`` (default) is the reference itself; ``channels=2`` duplicates each sample to
    both channels, the layout Discord frames use (3,840 bytes per 20 ms).
    """
    if channels not in (1, 2):
        raise ValueError("channels must be 1 or 2")
    mono = await _cached(voice_id, text, "reference", lambda: _render_reference(voice_id, text))
    return mono if channels == 1 else _mono_to_stereo(mono)


def reference_pcm_blocking(voice_id: str, text: str, *, channels: int = 1) -> bytes:
    """:func:`reference_pcm` for synchronous code; must not be called from a running loop."""
    return asyncio.run(reference_pcm(voice_id, text, channels=channels))


def _mono_to_stereo(mono: bytes) -> bytes:
    out = bytearray(len(mono) * 2)
    view = memoryview(mono)
    for start in (0, 2):
        # Left samples at 0,4,8..; right at 2,6,10..: copy 2-byte samples into both slots.
        out[start::4] = view[0::2]
        out[start + 1 :: 4] = view[1::2]
    return bytes(out)


async def _encode(reference: bytes, fmt: AudioFormat) -> bytes:
    return await _run(
        [
            "ffmpeg",
            "-nostdin",
            "-hide_banner",
            "-loglevel",
            "error",
            "-fflags",
            "+bitexact",
            "-f",
            "s16le",
            "-ar",
            str(REFERENCE_RATE),
            "-ac",
            "1",
            "-i",
            "pipe:0",
            "-flags:a",
            "+bitexact",
            *fmt.ffmpeg_output_args(),
            "pipe:1",
        ],
        reference,
    )


async def render_speech(voice_id: str, text: str, output_format: str) -> SpeechAudio:
    """Speech for (voice_id, text) encoded as ``output_format`` (a key of OUTPUT_FORMATS)."""
    fmt = OUTPUT_FORMATS[output_format]
    reference = await reference_pcm(voice_id, text)
    data = await _cached(voice_id, text, fmt.name, lambda: _encode(reference, fmt))
    duration = len(reference) / (REFERENCE_RATE * REFERENCE_SAMPLE_WIDTH * REFERENCE_CHANNELS)
    return SpeechAudio(data=data, format=fmt, duration=duration)
