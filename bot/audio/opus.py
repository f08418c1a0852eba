"""Opus encoding ahead of playback, off the event loop and off the thread that sends.

discord.py encodes each 20 ms frame on its player thread, one thread per guild, at
libopus' default complexity (10) and in stereo. ElevenLabs speech is mono, and at a
few hundred guilds those threads fight over the GIL: packets go out late.

Here every item's frames are encoded as they are decoded, in batches, on a small
thread pool (libopus runs without the GIL, so the batches use every core while the
loop goes on), with a complexity and a channel count the operator chooses. The
sending side (`bot.audio.sender`) then only encrypts and sends finished packets.

A mono Opus stream is valid for Discord's stereo decoders: Opus decoders turn mono
packets into both channels.
"""

from __future__ import annotations

import audioop
import ctypes
from dataclasses import dataclass
from typing import Any, Final

import discord.opus

from bot.audio.frames import (
    FRAME_BYTES,
    FRAME_SAMPLES,
    SAMPLE_RATE,
)

OPUS_SILENCE: Final = b"\xf8\xff\xfe"  # one 20 ms frame of silence (discord.py's, too)
MAX_PACKET: Final = 4000  # libopus' recommended output buffer
SILENT_PEAK: Final = 8  # s16 samples this small are inaudible (below -72 dBFS)

# libopus request codes (opus_defines.h); discord.py names some of them, not complexity.
_SET_BITRATE: Final = 4002
_SET_BANDWIDTH: Final = 4008
_SET_COMPLEXITY: Final = 4010
_SET_INBAND_FEC: Final = 4012
_SET_PACKET_LOSS_PERC: Final = 4014
_SET_SIGNAL: Final = 4024

_APPLICATIONS: Final = {"voip": 2048, "audio": 2049, "lowdelay": 2051}
_BANDWIDTHS: Final = {"narrow": 1101, "medium": 1102, "wide": 1103, "superwide": 1104, "full": 1105}
_SIGNALS: Final = {"auto": -1000, "voice": 3001, "music": 3002}


@dataclass(frozen=True)
class EncoderSettings:
    """How speech becomes Opus: the `OPUS_*` settings.

    The defaults are tuned for speech at scale: mono (the speech is mono), 64 kbit/s,
    complexity 5 (half the CPU of libopus' default 10, no audible difference for
    speech at this bitrate), in-band FEC for lossy links.
    """

    application: str = "audio"
    bitrate: int = 64
    signal_type: str = "voice"
    fec: bool = True
    expected_packet_loss: float = 0.15
    bandwidth: str = "full"
    complexity: int = 5
    channels: int = 1

    def __post_init__(self) -> None:
        if self.application not in _APPLICATIONS:
            raise ValueError(f"application must be one of {sorted(_APPLICATIONS)}")
        if self.bandwidth not in _BANDWIDTHS:
            raise ValueError(f"bandwidth must be one of {sorted(_BANDWIDTHS)}")
        if self.signal_type not in _SIGNALS:
            raise ValueError(f"signal_type must be one of {sorted(_SIGNALS)}")
        if not 0 <= self.complexity <= 10:
            raise ValueError("complexity must be between 0 and 10")
        if self.channels not in (1, 2):
            raise ValueError("channels must be 1 or 2")
        if not 6 <= self.bitrate <= 510:
            raise ValueError("bitrate must be between 6 and 510 kbit/s")


def _lib() -> Any:
    discord.opus._OpusStruct.get_opus_version()  # loads libopus, or raises OpusNotLoaded
    return discord.opus._lib


class OpusEncoder:
    """One libopus encoder: 48 kHz stereo s16le frames in, Opus packets out.

    Not thread-safe: one item's frames are encoded in order, one batch at a time.
    """

    def __init__(self, settings: EncoderSettings | None = None) -> None:
        self.settings = settings = settings or EncoderSettings()
        lib = self._lib = _lib()
        error = ctypes.c_int()
        self._state = lib.opus_encoder_create(
            SAMPLE_RATE, settings.channels, _APPLICATIONS[settings.application], ctypes.byref(error)
        )
        ctl = lib.opus_encoder_ctl
        ctl(self._state, _SET_BITRATE, settings.bitrate * 1000)
        ctl(self._state, _SET_COMPLEXITY, settings.complexity)
        ctl(self._state, _SET_INBAND_FEC, 1 if settings.fec else 0)
        ctl(self._state, _SET_PACKET_LOSS_PERC, round(settings.expected_packet_loss * 100))
        ctl(self._state, _SET_BANDWIDTH, _BANDWIDTHS[settings.bandwidth])
        ctl(self._state, _SET_SIGNAL, _SIGNALS[settings.signal_type])
        self._out = ctypes.create_string_buffer(MAX_PACKET)
        self.frames_encoded = 0

    def __del__(self) -> None:
        state = getattr(self, "_state", None)
        if state is not None:
            self._lib.opus_encoder_destroy(state)
            self._state = None

    def encode(self, frame: bytes) -> bytes:
        """One 20 ms frame (3,840 bytes of stereo s16le) to one Opus packet."""
        if len(frame) != FRAME_BYTES:
            raise ValueError(f"a frame is {FRAME_BYTES} bytes, not {len(frame)}")
        pcm = audioop.tomono(frame, 2, 0.5, 0.5) if self.settings.channels == 1 else frame
        pointer = ctypes.cast(pcm, discord.opus.c_int16_ptr)
        size = self._lib.opus_encode(self._state, pointer, FRAME_SAMPLES, self._out, MAX_PACKET)
        self.frames_encoded += 1
        return self._out.raw[:size]

    def encode_many(self, pcm: bytes) -> list[bytes]:
        """Whole frames (a multiple of 3,840 bytes) to one packet each, in order."""
        view = memoryview(pcm)
        return [
            self.encode(bytes(view[start : start + FRAME_BYTES]))
            for start in range(0, len(pcm) - FRAME_BYTES + 1, FRAME_BYTES)
        ]


__all__ = ["OPUS_SILENCE", "SILENT_PEAK", "EncoderSettings", "OpusEncoder"]
