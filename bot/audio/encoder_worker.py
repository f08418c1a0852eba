"""An Opus encoder process: `python -m bot.audio.encoder_worker`, driven over its stdin/stdout.

The bot's process (`bot.audio.encoding.ProcessEncoding`) writes requests, the worker
answers encode requests in the order they came. Every message is a header
(`HEADER`: operation, buffer key, body length) and a body:

- OPEN: the encoder settings as JSON; no answer.
- ENCODE: whole 20 ms frames of 48 kHz s16le stereo PCM; answered with ENCODED: each
  packet as a 2-byte little-endian length and its bytes, in order. An unknown key or
  a broken body is answered with FAILED and a reason.
- CLOSE: forget the encoder; no answer.

The worker ends at the end of its input (the bot closed it or is gone).
"""

from __future__ import annotations

import json
import struct
import sys
from typing import BinaryIO, Final

HEADER: Final = struct.Struct("<BII")  # operation, key, body length
OPEN: Final = 1
ENCODE: Final = 2
CLOSE: Final = 3
ENCODED: Final = 4
FAILED: Final = 5
PACKET_LENGTH: Final = struct.Struct("<H")


def read_exact(stream: BinaryIO, size: int) -> bytes | None:
    """`size` bytes, or None at the end of the input."""
    data = b""
    while len(data) < size:
        chunk = stream.read(size - len(data))
        if not chunk:
            return None
        data += chunk
    return data


def pack_packets(packets: list[bytes]) -> bytes:
    return b"".join(PACKET_LENGTH.pack(len(p)) + p for p in packets)


def unpack_packets(body: bytes) -> list[bytes]:
    packets = []
    offset = 0
    while offset < len(body):
        (length,) = PACKET_LENGTH.unpack_from(body, offset)
        offset += PACKET_LENGTH.size
        packets.append(body[offset : offset + length])
        offset += length
    return packets


def serve(stdin: BinaryIO, stdout: BinaryIO) -> int:
    from bot.audio.opus import EncoderSettings, OpusEncoder

    encoders: dict[int, OpusEncoder] = {}
    while True:
        head = read_exact(stdin, HEADER.size)
        if head is None:
            return 0
        operation, key, length = HEADER.unpack(head)
        body = read_exact(stdin, length) if length else b""
        if body is None:
            return 0
        if operation == OPEN:
            encoders[key] = OpusEncoder(EncoderSettings(**json.loads(body)))
        elif operation == CLOSE:
            encoders.pop(key, None)
        elif operation == ENCODE:
            encoder = encoders.get(key)
            try:
                if encoder is None:
                    raise KeyError(f"no encoder {key}")
                answer = ENCODED, pack_packets(encoder.encode_many(body))
            except (KeyError, ValueError) as error:
                answer = FAILED, str(error).encode()
            stdout.write(HEADER.pack(answer[0], key, len(answer[1])) + answer[1])
            stdout.flush()


def main() -> int:
    try:
        return serve(sys.stdin.buffer, sys.stdout.buffer)
    except (BrokenPipeError, KeyboardInterrupt):
        return 0


if __name__ == "__main__":
    sys.exit(main())
