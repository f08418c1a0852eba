"""MP3 decoded inside the bot's process by libmpg123, chunk by chunk as it arrives.

Starting ffmpeg for every message costs about 70 ms of CPU and 10 MB of memory before it
decodes anything: under a reader burst, one process per message was most of the CPU of
the machine (`docs/performance.md`). libmpg123 (a dependency of Debian's ffmpeg, and a
package of its own: `libmpg123-0`) decodes a stream fed in pieces of any size, frame by
frame, at about 1,000 times real time, with no process and no pipe. Its feed API is
called through `ctypes.PyDLL`, which keeps the GIL: a call lasts microseconds, and letting
the GIL go would make the event loop queue behind the encoder and sender threads to get it
back, several times per chunk.

`Mp3ToDiscord` turns the MP3 bytes into 48 kHz s16le stereo like the other converters in
`bot.audio.frames`: libmpg123 gives mono 16-bit samples at the stream's own rate (it mixes
stereo down), and `audioop.ratecv` resamples them (the same output as ffmpeg to within a
correlation of 0.998, checked in tests). ffmpeg stays the decoder where libmpg123 cannot
be loaded, and `MP3_DECODER=ffmpeg` chooses it.
"""

from __future__ import annotations

import audioop
import ctypes
import ctypes.util
import functools
import logging
from typing import Any, Final

from bot.audio.frames import SAMPLE_RATE, SAMPLE_WIDTH
from bot.errors import BotError

log = logging.getLogger(__name__)

# mpg123.h
_OK: Final = 0
_NEED_MORE: Final = -10
_NEW_FORMAT: Final = -11
_DONE: Final = -12
_ADD_FLAGS: Final = 2
_FLAG_MONO_MIX: Final = 0x4
_FLAG_QUIET: Final = 0x20
_FLAG_GAPLESS: Final = 0x40
_MONO: Final = 1
_ENC_SIGNED_16: Final = 0xD0
_RATES: Final = (8000, 11025, 12000, 16000, 22050, 24000, 32000, 44100, 48000)

OUT_SIZE: Final = 64 * 1024  # bytes of PCM per read; a chunk loops until all is out


class Mp3DecoderUnavailableError(BotError):
    def __init__(self) -> None:
        super().__init__(
            "libmpg123 could not be loaded: install it (apt-get install libmpg123-0) "
            "or set MP3_DECODER=ffmpeg."
        )


@functools.cache
def _library() -> Any | None:
    """libmpg123 with its prototypes, or None when it is not installed."""
    name = ctypes.util.find_library("mpg123") or "libmpg123.so.0"
    try:
        lib = ctypes.PyDLL(name)
    except OSError:
        log.info("libmpg123 not found: mp3 is decoded by ffmpeg")
        return None
    handle, size_p = ctypes.c_void_p, ctypes.POINTER(ctypes.c_size_t)
    lib.mpg123_init.restype = ctypes.c_int
    lib.mpg123_new.restype = handle
    lib.mpg123_new.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_int)]
    lib.mpg123_delete.argtypes = [handle]
    lib.mpg123_param.argtypes = [handle, ctypes.c_int, ctypes.c_long, ctypes.c_double]
    lib.mpg123_format_none.argtypes = [handle]
    lib.mpg123_format.argtypes = [handle, ctypes.c_long, ctypes.c_int, ctypes.c_int]
    lib.mpg123_open_feed.argtypes = [handle]
    lib.mpg123_feed.argtypes = [handle, ctypes.c_char_p, ctypes.c_size_t]
    lib.mpg123_read.argtypes = [handle, ctypes.c_void_p, ctypes.c_size_t, size_p]
    lib.mpg123_getformat.argtypes = [
        handle,
        ctypes.POINTER(ctypes.c_long),
        ctypes.POINTER(ctypes.c_int),
        ctypes.POINTER(ctypes.c_int),
    ]
    lib.mpg123_plain_strerror.restype = ctypes.c_char_p
    lib.mpg123_plain_strerror.argtypes = [ctypes.c_int]
    if lib.mpg123_init() != _OK:  # a no-op since 1.27; required before
        return None
    return lib


def available() -> bool:
    return _library() is not None


class Mp3DecodeError(Exception):
    """libmpg123 refused the stream (the pipeline reports a `DecoderError`)."""


class Mp3Decoder:
    """One MP3 stream, fed in pieces; `decode()` returns mono s16le at `rate`."""

    def __init__(self) -> None:
        self._handle: int | None = None
        lib = _library()
        if lib is None:
            raise Mp3DecoderUnavailableError()
        self._lib = lib
        error = ctypes.c_int(0)
        self._handle = lib.mpg123_new(None, ctypes.byref(error))
        if not self._handle:
            raise Mp3DecodeError(self._message(error.value))
        try:
            flags = _FLAG_QUIET | _FLAG_GAPLESS | _FLAG_MONO_MIX
            self._check(lib.mpg123_param(self._handle, _ADD_FLAGS, flags, 0.0))
            self._check(lib.mpg123_format_none(self._handle))
            for rate in _RATES:
                self._check(lib.mpg123_format(self._handle, rate, _MONO, _ENC_SIGNED_16))
            self._check(lib.mpg123_open_feed(self._handle))
        except BaseException:
            self.close()
            raise
        self.rate: int | None = None  # known from the first decoded frame
        self._out = ctypes.create_string_buffer(OUT_SIZE)
        self._done = ctypes.c_size_t(0)

    def _message(self, code: int) -> str:
        return self._lib.mpg123_plain_strerror(code).decode(errors="replace")

    def _check(self, code: int) -> None:
        if code != _OK:
            raise Mp3DecodeError(self._message(code))

    def decode(self, chunk: bytes | memoryview) -> bytes:
        """Feed `chunk`; every sample now decodable, as mono s16le at `self.rate`."""
        if self._handle is None:
            raise Mp3DecodeError("decoder closed")
        lib, handle, out, done = self._lib, self._handle, self._out, self._done
        if chunk:
            data = bytes(chunk) if isinstance(chunk, memoryview) else chunk
            self._check(lib.mpg123_feed(handle, data, len(data)))
        pieces: list[bytes] = []
        while True:
            code = lib.mpg123_read(handle, out, OUT_SIZE, ctypes.byref(done))
            if done.value:
                pieces.append(ctypes.string_at(out, done.value))
            if code == _NEW_FORMAT:
                self._read_format()
            elif code in (_NEED_MORE, _DONE):
                return b"".join(pieces)
            elif code != _OK:
                raise Mp3DecodeError(self._message(code))

    def _read_format(self) -> None:
        assert self._handle is not None
        rate, channels, encoding = ctypes.c_long(), ctypes.c_int(), ctypes.c_int()
        self._check(
            self._lib.mpg123_getformat(
                self._handle, ctypes.byref(rate), ctypes.byref(channels), ctypes.byref(encoding)
            )
        )
        self.rate = rate.value

    def close(self) -> None:
        handle, self._handle = self._handle, None
        if handle:
            self._lib.mpg123_delete(handle)

    def __del__(self) -> None:
        self.close()


class Mp3ToDiscord:
    """MP3 bytes to 48 kHz s16le stereo, the interface of `bot.audio.frames.RawToDiscord`."""

    def __init__(self) -> None:
        self.decoder = Mp3Decoder()
        self._rate: int | None = None
        self._state: tuple[Any, ...] | None = None

    def convert(self, chunk: bytes | memoryview) -> bytes:
        mono = self.decoder.decode(chunk)
        if not mono:
            return b""
        rate = self.decoder.rate or SAMPLE_RATE
        if rate != self._rate:  # the first frame, or a stream that changed its rate
            self._rate, self._state = rate, None
        if rate != SAMPLE_RATE:
            mono, self._state = audioop.ratecv(
                mono, SAMPLE_WIDTH, 1, rate, SAMPLE_RATE, self._state
            )
        return audioop.tostereo(mono, SAMPLE_WIDTH, 1, 1)

    def close(self) -> None:
        self.decoder.close()
