"""Output formats: how each reaches 48 kHz stereo PCM, and which ones the plan refused."""

from __future__ import annotations

import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

FALLBACK_FORMAT = "mp3_44100_128"


@dataclass(frozen=True)
class InputFormat:
    """How to turn one ElevenLabs `output_format` into 48 kHz stereo s16le."""

    name: str
    codec: str  # mp3 | pcm | ulaw | alaw | opus
    sample_rate: int

    @classmethod
    def parse(cls, name: str) -> InputFormat:
        parts = name.split("_")
        if len(parts) < 2 or not parts[1].isdigit():
            raise ValueError(f"unknown output format {name!r}")
        codec = parts[0]
        if codec not in {"mp3", "pcm", "ulaw", "alaw", "opus"}:
            raise ValueError(f"unknown output format {name!r}")
        return cls(name=name, codec=codec, sample_rate=int(parts[1]))

    @property
    def needs_ffmpeg(self) -> bool:
        """Only compressed formats go through ffmpeg; raw ones are converted in Python."""
        return self.codec in ("mp3", "opus")

    def ffmpeg_input_args(self) -> list[str]:
        """Input options that let ffmpeg start decoding from the first bytes.

        Without `-probesize 32 -analyzeduration 0` ffmpeg holds about 2 s of streamed mp3
        before its first output, and raw PCM or μ-law (whose layout is stated, having no
        header) until 5 s of it have arrived or the input ends: every format needs them.
        """
        fast = ["-probesize", "32", "-analyzeduration", "0"]
        if self.codec == "mp3":
            return ["-f", "mp3", *fast]
        if self.codec == "opus":
            return ["-f", "ogg", *fast]
        demuxer = {"pcm": "s16le", "ulaw": "mulaw", "alaw": "alaw"}[self.codec]
        return ["-f", demuxer, "-ar", str(self.sample_rate), "-ac", "1", *fast]


def ffmpeg_command(ffmpeg_path: str, fmt: InputFormat) -> list[str]:
    return [
        ffmpeg_path,
        "-hide_banner",
        "-loglevel",
        "error",
        # No "-fflags nobuffer": with a piped mp3 it garbles the decode (the output stops
        # correlating with the input); `-probesize 32` alone gives the low latency.
        *fmt.ffmpeg_input_args(),
        "-i",
        "pipe:0",
        "-f",
        "s16le",
        "-ar",
        "48000",
        "-ac",
        "2",
        "-flush_packets",
        "1",
        "pipe:1",
    ]


class FormatPolicy:
    """Remembers, for the life of the process, the formats the plan refused (403)."""

    def __init__(self, fallback: str = FALLBACK_FORMAT) -> None:
        self.fallback = fallback
        self._refused: set[str] = set()

    def choose(self, wanted: str) -> str:
        return self.fallback if wanted in self._refused else wanted

    def refuse(self, fmt: str) -> str | None:
        """Record a 403 for `fmt`; the format to try instead, or None when there is none."""
        if fmt == self.fallback:
            return None
        if fmt not in self._refused:
            log.warning("the ElevenLabs plan refused %s; using %s from now on", fmt, self.fallback)
            self._refused.add(fmt)
        return self.fallback

    @property
    def refused(self) -> frozenset[str]:
        return frozenset(self._refused)
