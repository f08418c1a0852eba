"""Ogg Opus (ElevenLabs' `opus_48000_*`) split into Opus packets as the bytes arrive.

discord.py's own parser (`discord.oggparse.OggStream`, behind `FFmpegOpusAudio`) reads a
whole file, yields the OpusHead and OpusTags headers as if they were audio and its
player assumes every packet lasts 20 ms. This one is incremental, drops the headers and
reads each packet's duration from its TOC byte (RFC 6716, section 3.1), so that a stream
in other frame sizes can be re-encoded instead of played at the wrong speed.
"""

from __future__ import annotations

import struct
from typing import Final

# capture pattern, version, header type, granule position, serial, page sequence, CRC,
# number of segments (RFC 3533, section 6)
_PAGE: Final = struct.Struct("<4sBBqIIIB")
HEADERS: Final = (b"OpusHead", b"OpusTags")


class OggError(ValueError):
    """The bytes are not an Ogg stream."""


def opus_packet_ms(packet: bytes) -> float:
    """The duration of one Opus packet (all its frames), from its TOC byte."""
    if not packet:
        raise ValueError("an empty packet has no TOC byte")
    toc = packet[0]
    config = toc >> 3
    if config < 12:  # SILK
        frame = (10.0, 20.0, 40.0, 60.0)[config % 4]
    elif config < 16:  # hybrid
        frame = (10.0, 20.0)[config % 2]
    else:  # CELT
        frame = (2.5, 5.0, 10.0, 20.0)[config % 4]
    code = toc & 3
    if code == 0:
        count = 1
    elif code in (1, 2):
        count = 2
    else:
        count = packet[1] & 0x3F if len(packet) > 1 else 0
    return frame * count


class OggOpusParser:
    """Feed bytes as they arrive (any chunking); get the whole audio packets back.

    A packet is returned as soon as its last byte is in, not when its page is: an Ogg
    page can hold a second of audio (ffmpeg's default), and waiting for its end would
    hold the first audio back by as long. The segment table at the top of each page
    says where every packet on it ends.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()  # from the start of the current page
        self._partial = bytearray()  # a packet continued on the next page
        self._table: bytes | None = None  # the current page's lacing values, once read
        self._next = 0  # the next lacing value to read on the current page
        self._offset = 0  # where its bytes start in `_buffer`
        self.headers_dropped = 0
        self.pages = 0

    def feed(self, data: bytes) -> list[bytes]:
        self._buffer += data
        packets: list[bytes] = []
        while True:
            if self._table is None and not self._read_header():
                return packets
            table = self._table
            assert table is not None
            while self._next < len(table):
                lacing = table[self._next]
                if len(self._buffer) < self._offset + lacing:
                    return packets  # the rest of this segment has not arrived
                self._partial += self._buffer[self._offset : self._offset + lacing]
                self._offset += lacing
                self._next += 1
                if lacing < 255:  # a packet ends here
                    self._emit(packets)
            del self._buffer[: self._offset]
            self._table = None
            self.pages += 1

    def _read_header(self) -> bool:
        """Read the page header and segment table at the top of `_buffer`, if they are in."""
        if len(self._buffer) < _PAGE.size:
            return False
        capture, *_, segments = _PAGE.unpack_from(self._buffer)
        if capture != b"OggS":
            raise OggError("not an Ogg stream")
        table_end = _PAGE.size + segments
        if len(self._buffer) < table_end:
            return False
        self._table = bytes(self._buffer[_PAGE.size : table_end])
        self._next, self._offset = 0, table_end
        return True

    def _emit(self, packets: list[bytes]) -> None:
        packet = bytes(self._partial)
        self._partial.clear()
        if packet.startswith(HEADERS):
            self.headers_dropped += 1
        elif packet:
            packets.append(packet)

    @property
    def pending(self) -> int:
        """Bytes received that are not yet part of a whole packet."""
        return (
            len(self._buffer)
            - (self._offset if self._table is not None else 0)
            + len(self._partial)
        )
