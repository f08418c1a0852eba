"""From "say this text in this voice" to decoded frames: the one path every utterance takes.

`Synthesizer` ties the ElevenLabs client, the process-wide format policy (formats
the plan refused) and the decoder settings together, so the bot, the CLI and the
benchmarks build identical `DecodeJob`s.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import aiohttp

from bot.audio.formats import FormatPolicy
from bot.audio.frames import FrameBuffer
from bot.audio.pipeline import DEFAULT_MAX_BYTES, DecodeJob
from bot.audio.url import UrlStream
from bot.config import Mp3DecoderChoice
from bot.elevenlabs.client import ElevenLabsClient, SpeechStream
from bot.elevenlabs.models import VoiceSettings


@dataclass(frozen=True)
class SpeechRequest:
    """What to say and how; everything ElevenLabs needs for one request."""

    text: str
    voice_id: str
    model_id: str | None = None
    settings: VoiceSettings = field(default_factory=VoiceSettings)
    output_format: str = "mp3_44100_128"
    language_code: str | None = None


HeadersHook = Callable[[SpeechStream], Awaitable[None] | None]


class Synthesizer:
    def __init__(
        self,
        client: ElevenLabsClient,
        *,
        ffmpeg_path: str = "ffmpeg",
        max_bytes: int = DEFAULT_MAX_BYTES,
        policy: FormatPolicy | None = None,
        mp3_decoder: Mp3DecoderChoice = "auto",
    ) -> None:
        self.client = client
        self.ffmpeg_path = ffmpeg_path
        self.mp3_decoder = mp3_decoder
        self.max_bytes = max_bytes
        self.policy = policy or FormatPolicy()

    def job(
        self,
        request: SpeechRequest,
        *,
        frames: FrameBuffer | None = None,
        on_headers: HeadersHook | None = None,
        label: str = "",
    ) -> DecodeJob:
        """A job that synthesises and decodes `request`; await `job.run()` to start it."""

        def open_stream(output_format: str) -> SpeechStream:
            return self.client.stream_speech(
                request.voice_id,
                request.text,
                model_id=request.model_id,
                voice_settings=request.settings,
                output_format=output_format,
                language_code=request.language_code,
                on_headers=on_headers,
            )

        return DecodeJob(
            open_stream,
            request.output_format,
            frames=frames,
            ffmpeg_path=self.ffmpeg_path,
            max_bytes=self.max_bytes,
            policy=self.policy,
            mp3_decoder=self.mp3_decoder,
            label=label or request.voice_id,
        )

    def url_job(
        self,
        session: aiohttp.ClientSession,
        url: str,
        *,
        frames: FrameBuffer | None = None,
        label: str = "",
    ) -> DecodeJob:
        """A job that plays a plain HTTP mp3 (voice previews); no ElevenLabs key is sent."""
        return DecodeJob(
            lambda _fmt: UrlStream(session, url),
            "mp3_44100_128",
            frames=frames,
            ffmpeg_path=self.ffmpeg_path,
            max_bytes=self.max_bytes,
            label=label or "preview",
            mp3_decoder=self.mp3_decoder,
        )
