"""Opus from ElevenLabs (`opus_48000_*`, Ogg) sent as is: no ffmpeg, no decode, no re-encode.

Not in the bot yet; measured here to size the idea. discord.py's own Ogg parser
(`discord.oggparse.OggStream`, used by `FFmpegOpusAudio`) yields the OpusHead and OpusTags
headers as if they were audio packets, and its player assumes every packet is 20 ms: this
parser drops the headers and checks each packet's duration from its TOC byte (RFC 6716 §3.1).
"""

from __future__ import annotations

import collections
import struct
import threading

import discord
from discord.player import OPUS_SILENCE

_HEADER = struct.Struct("<4sBBqIIIB")  # capture, version, type, granule, serial, seq, crc, nsegs


def opus_packet_ms(packet: bytes) -> float:
    """Duration of one Opus packet from its TOC byte."""
    toc = packet[0]
    config = toc >> 3
    if config < 12:  # SILK
        frame = (10, 20, 40, 60)[config % 4]
    elif config < 16:  # hybrid
        frame = (10, 20)[config % 2]
    else:  # CELT
        frame = (2.5, 5, 10, 20)[config % 4]
    code = toc & 3
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    else:
        count = packet[1] & 0x3F if len(packet) > 1 else 1
    return frame * count


class OggOpusParser:
    """Incremental Ogg demuxer: feed bytes as they arrive, get whole Opus packets back."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._partial = bytearray()
        self.headers_dropped = 0
        self.durations_ms: collections.Counter[float] = collections.Counter()

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        packets: list[bytes] = []
        while len(self._buffer) >= _HEADER.size:
            capture, _v, _t, _g, _s, _q, _c, nsegs = _HEADER.unpack_from(self._buffer)
            if capture != b"OggS":
                raise ValueError("not an Ogg stream")
            table_end = _HEADER.size + nsegs
            if len(self._buffer) < table_end:
                break
            table = self._buffer[_HEADER.size : table_end]
            page_end = table_end + sum(table)
            if len(self._buffer) < page_end:
                break
            offset = table_end
            for lacing in table:
                self._partial += self._buffer[offset : offset + lacing]
                offset += lacing
                if lacing < 255:
                    packet = bytes(self._partial)
                    self._partial.clear()
                    if packet.startswith((b"OpusHead", b"OpusTags")):
                        self.headers_dropped += 1
                    else:
                        self.durations_ms[opus_packet_ms(packet)] += 1
                        packets.append(packet)
            del self._buffer[:page_end]
        return packets


class OpusPassthroughSource(discord.AudioSource):
    """Plays Opus packets pushed from the loop; Opus silence on underrun, never blocks."""

    def __init__(self) -> None:
        self._packets: collections.deque[bytes] = collections.deque()
        self._lock = threading.Lock()
        self.finished = False
        self.underruns = 0

    def push(self, packets: list[bytes]) -> None:
        with self._lock:
            self._packets.extend(packets)

    def read(self) -> bytes:
        with self._lock:
            if self._packets:
                return self._packets.popleft()
        if self.finished:
            return b""
        self.underruns += 1
        return OPUS_SILENCE

    def is_opus(self) -> bool:
        return True
