"""A plain HTTP audio URL (voice previews) as an `AudioStream` for the pipeline.

No ElevenLabs key is sent: preview files live on public storage, and a key must
never travel to a host that is not the API.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

import aiohttp

from bot.errors import BotError


class UrlFetchError(BotError):
    pass


class UrlStream:
    def __init__(
        self, session: aiohttp.ClientSession, url: str, *, read_timeout: float = 20.0
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise UrlFetchError("That audio link is not an http(s) URL.")
        self._session = session
        self.url = url
        self._timeout = aiohttp.ClientTimeout(total=None, connect=5.0, sock_read=read_timeout)
        self._response: aiohttp.ClientResponse | None = None
        self._first: bytes = b""
        self.sent_at: float | None = None
        self.first_byte_at: float | None = None

    async def open(self) -> None:
        self.sent_at = time.perf_counter()
        try:
            response = await self._session.get(self.url, timeout=self._timeout)
        except (aiohttp.ClientError, TimeoutError):
            raise UrlFetchError("The audio file could not be downloaded.") from None
        self._response = response
        if response.status != 200:
            response.close()
            raise UrlFetchError(f"The audio file could not be downloaded (HTTP {response.status}).")
        try:
            self._first = await response.content.readany()
        except (aiohttp.ClientError, TimeoutError):
            raise UrlFetchError("The audio download broke off.") from None
        self.first_byte_at = time.perf_counter()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._first:
            first, self._first = self._first, b""
            yield first
        if self._response is None:
            return
        try:
            while chunk := await self._response.content.readany():
                yield chunk
        except (aiohttp.ClientError, TimeoutError):
            raise UrlFetchError("The audio download broke off.") from None

    async def aclose(self) -> None:
        response, self._response = self._response, None
        if response is not None:
            response.close()
