"""MP3 handed to ffmpeg frame by frame, so that it decodes what has arrived.

ffmpeg's mp3 demuxer reads its input in packets of 1,024 bytes and waits until a whole
packet is there. At 128 kbit/s streamed in real time that is up to 64 ms of audio held
back before the first frame is decoded (and again whenever the upstream pauses). The
pipeline therefore writes whole MP3 frames followed by `PADDING`: zero bytes, which the
mp3 parser skips while looking for the next frame header, so the decoded audio is the
same to the bit (checked in tests) and the pending read always completes at once. The
first Opus frame needs 20 ms of audio, which is the third MP3 frame (the first is the
Info tag, and the decoder skips the encoder's delay): without padding ffmpeg waits for
2,048 bytes, with it for 1,253, 50 ms sooner at 128 kbit/s streamed in real time.
"""

from __future__ import annotations

from typing import Final

PADDING: Final = bytes(1024)
SAFE_AFTER_FRAMES: Final = 2

# Layer III bitrates (kbit/s) by header index, for MPEG-1 and for MPEG-2/2.5.
_BITRATES_V1: Final = (0, 32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 0)
_BITRATES_V2: Final = (0, 8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160, 0)
_SAMPLE_RATES: Final = {3: (44100, 48000, 32000), 2: (22050, 24000, 16000), 0: (11025, 12000, 8000)}


def frame_length(header: bytes) -> int | None:
    """The length in bytes of the Layer III frame starting with these 4 bytes, or None
    when they are not a frame header this framer knows (then it stops framing)."""
    if len(header) < 4 or header[0] != 0xFF or header[1] & 0xE0 != 0xE0:
        return None
    version = (header[1] >> 3) & 3
    layer = (header[1] >> 1) & 3
    bitrate_index = header[2] >> 4
    rate_index = (header[2] >> 2) & 3
    if version == 1 or layer != 1 or rate_index == 3:
        return None  # reserved version, not Layer III, reserved sample rate
    bitrates = _BITRATES_V1 if version == 3 else _BITRATES_V2
    bitrate = bitrates[bitrate_index] * 1000
    if not bitrate:
        return None  # free format or a bad index: lengths cannot be known
    sample_rate = _SAMPLE_RATES[version][rate_index]
    padding = (header[2] >> 1) & 1
    per_frame = 144 if version == 3 else 72
    return per_frame * bitrate // sample_rate + padding


def _id3_length(data: bytes | bytearray) -> int | None:
    """The length of an ID3v2 tag at the start of `data` (None until its header is in)."""
    if len(data) < 10:
        return None
    size = 0
    for byte in data[6:10]:
        size = (size << 7) | (byte & 0x7F)
    footer = 10 if data[5] & 0x10 else 0
    return 10 + size + footer


class Mp3Framer:
    """Splits an MP3 byte stream at frame boundaries, whatever the chunking.

    `feed()` returns the bytes that end on a frame boundary (tags and stray bytes pass
    through untouched); the rest waits for the next chunk. Anything it does not
    understand (free format, another layer) turns framing off: from then on bytes pass
    straight through, as they would without it.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self.framing = True
        self.frames = 0

    def feed(self, chunk: bytes) -> bytes:
        if not self.framing:
            return chunk
        self._buffer += chunk
        buffer = self._buffer
        end = 0  # bytes of `buffer` that are ready
        while end < len(buffer):
            if buffer.startswith(b"ID3", end) or (end == 0 and len(buffer) < 3):
                tag = _id3_length(buffer[end:])
                if tag is None or end + tag > len(buffer):
                    break
                end += tag
                continue
            sync = buffer.find(b"\xff", end)
            if sync < 0:
                end = len(buffer)  # no header in sight: stray bytes, pass them on
                break
            if sync > end:
                end = sync  # stray bytes before a possible header
            if len(buffer) - end < 4:
                break
            length = frame_length(bytes(buffer[end : end + 4]))
            if length is None:
                if buffer[end + 1] & 0xE0 == 0xE0:
                    # A real header this framer cannot size: stop framing altogether.
                    self.framing = False
                    out = bytes(buffer)
                    buffer.clear()
                    return out
                end += 1  # a lone 0xFF byte
                continue
            if end + length > len(buffer):
                break
            end += length
            self.frames += 1
        out = bytes(buffer[:end])
        del buffer[:end]
        return out

    def feed_padded(self, chunk: bytes) -> bytes:
        """`feed()`, followed by `PADDING` when it gave whole frames and padding is safe.

        Never right after the first frame: that one may be the Xing/Info frame, and ffmpeg
        checks that the next frame header follows it directly (padding there loses a frame
        of audio, as a test shows).
        """
        out = self.feed(chunk)
        if out and self.framing and self.frames >= SAFE_AFTER_FRAMES:
            out += PADDING
        return out

    def flush(self) -> bytes:
        """Whatever is left (a partial last frame): the decoder gets it as it is."""
        out = bytes(self._buffer)
        self._buffer.clear()
        return out
