"""A thin async ElevenLabs client on the bot's one shared aiohttp session.

Three promises the rest of the bot relies on:
- at most `max_concurrency` speech requests are in flight per process; a slot is
  held from sending a request until its body has been read (not until the audio
  has played), and extra requests wait their turn;
- failures before the first audio byte (429, 5xx, connection errors) are retried
  with jittered exponential backoff, bounded in count and time; after the first
  byte nothing is retried, because that would repeat audio and billing;
- the API key travels in the `xi-api-key` header and nowhere else: not in logs,
  exceptions or reprs.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, Self, TypeVar
from urllib.parse import quote

import aiohttp
from pydantic import BaseModel, SecretStr, ValidationError

from bot.elevenlabs.errors import (
    ConnectionFailedError,
    ElevenLabsError,
    RequestValidationError,
    StreamInterruptedError,
    UnexpectedResponseError,
    error_from_response,
)
from bot.elevenlabs.models import Subscription, TTSModel, Voice, VoiceSettings, VoicesPage

log = logging.getLogger(__name__)

DEFAULT_BASE_URL = "https://api.elevenlabs.io"
MAX_PAGE_SIZE = 100

M = TypeVar("M", bound=BaseModel)


def _parse(model: type[M], payload: Any, what: str) -> M:
    """A response model, or UnexpectedResponseError: a changed API must not become a traceback."""
    try:
        return model.model_validate(payload)
    except ValidationError as exc:
        raise UnexpectedResponseError(
            detail=f"{what}: {exc.error_count()} field(s) did not match {model.__name__}"
        ) from None


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try before the first byte."""

    max_retries: int = 3
    budget: float = 8.0  # seconds, total, including waiting
    base_delay: float = 0.25
    max_delay: float = 4.0

    def delay(self, attempt: int, retry_after: float | None, rng: Callable[[], float]) -> float:
        """Exponential backoff with jitter (half to all of the step), never shorter than
        the server's Retry-After: waiting less would only earn another 429."""
        ceiling = min(self.max_delay, self.base_delay * (2**attempt))
        jittered = ceiling * (0.5 + rng() / 2)
        return max(jittered, retry_after or 0.0)


class ElevenLabsClient:
    """Every ElevenLabs call the bot makes."""

    def __init__(
        self,
        session: aiohttp.ClientSession,
        api_key: SecretStr,
        *,
        base_url: str = DEFAULT_BASE_URL,
        max_concurrency: int = 4,
        connect_timeout: float = 5.0,
        read_timeout: float = 20.0,
        retry: RetryPolicy | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self._session = session
        self._api_key = api_key
        self.base_url = base_url.rstrip("/")
        self.max_concurrency = max_concurrency
        self._slots = asyncio.Semaphore(max_concurrency)
        self._in_flight = 0
        # No total timeout: aiohttp's default 300 s would cut long audio.
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            connect=connect_timeout,
            sock_connect=connect_timeout,
            sock_read=read_timeout,
        )
        self.retry = retry or RetryPolicy()
        self._rng = rng

    @classmethod
    def from_settings(cls, settings: Any, session: aiohttp.ClientSession) -> ElevenLabsClient:
        return cls(
            session,
            settings.require_elevenlabs_key(),
            base_url=settings.elevenlabs_base_url,
            max_concurrency=settings.elevenlabs_max_concurrency,
            connect_timeout=settings.elevenlabs_connect_timeout,
            read_timeout=settings.elevenlabs_read_timeout,
            retry=RetryPolicy(
                max_retries=settings.elevenlabs_max_retries, budget=settings.elevenlabs_retry_budget
            ),
        )

    def __repr__(self) -> str:
        return f"ElevenLabsClient(base_url={self.base_url!r}, slots={self.max_concurrency})"

    @property
    def in_flight(self) -> int:
        """Speech requests holding a slot right now."""
        return self._in_flight

    # ------------------------------------------------------------------ JSON endpoints

    def _headers(self, accept: str = "application/json") -> dict[str, str]:
        return {"xi-api-key": self._api_key.get_secret_value(), "Accept": accept}

    async def _get_json(self, path: str, params: Mapping[str, Any] | None = None) -> Any:
        async def attempt() -> Any:
            async with self._session.get(
                self.base_url + path,
                params=_query(params or {}),
                headers=self._headers(),
                timeout=self._timeout,
            ) as response:
                body = await response.read()
                if response.status >= 400:
                    raise error_from_response(
                        response.status,
                        body,
                        request_id=response.headers.get("request-id"),
                        retry_after=response.headers.get("Retry-After"),
                    )
                try:
                    return await response.json(content_type=None)
                except ValueError:
                    raise UnexpectedResponseError(
                        status=response.status, detail=f"non-JSON body from {path}"
                    ) from None

        return await self._with_retries(attempt, what=f"GET {path}")

    async def search_voices(
        self,
        search: str | None = None,
        *,
        page_size: int = 10,
        next_page_token: str | None = None,
        sort: str | None = None,
        sort_direction: str | None = None,
        voice_type: str | None = None,
        category: str | None = None,
        fine_tuning_state: str | None = None,
        collection_id: str | None = None,
        include_total_count: bool = True,
        voice_ids: list[str] | None = None,
    ) -> VoicesPage:
        """One page of GET /v2/voices."""
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        params = {
            "search": search,
            "page_size": page_size,
            "next_page_token": next_page_token,
            "sort": sort,
            "sort_direction": sort_direction,
            "voice_type": voice_type,
            "category": category,
            "fine_tuning_state": fine_tuning_state,
            "collection_id": collection_id,
            "include_total_count": include_total_count,
            "voice_ids": voice_ids,
        }
        return _parse(VoicesPage, await self._get_json("/v2/voices", params), "GET /v2/voices")

    async def iter_voices(
        self, search: str | None = None, *, page_size: int = MAX_PAGE_SIZE, **filters: Any
    ) -> AsyncIterator[Voice]:
        """Every voice matching the filters, across all pages."""
        token: str | None = None
        seen_tokens: set[str] = set()
        filters.setdefault("include_total_count", False)
        while True:
            page = await self.search_voices(
                search, page_size=page_size, next_page_token=token, **filters
            )
            for voice in page.voices:
                yield voice
            token = page.next_page_token
            if not page.has_more or not token or token in seen_tokens:
                return
            seen_tokens.add(token)

    async def get_voice(self, voice_id: str) -> Voice:
        path = f"/v1/voices/{_segment(voice_id)}"
        return _parse(Voice, await self._get_json(path), f"GET {path}")

    async def default_voice_settings(self) -> VoiceSettings:
        path = "/v1/voices/settings/default"
        return _parse(VoiceSettings, await self._get_json(path), f"GET {path}")

    async def voice_settings(self, voice_id: str) -> VoiceSettings:
        path = f"/v1/voices/{_segment(voice_id)}/settings"
        return _parse(VoiceSettings, await self._get_json(path), f"GET {path}")

    async def models(self) -> list[TTSModel]:
        payload = await self._get_json("/v1/models")
        if not isinstance(payload, list):
            raise UnexpectedResponseError(detail="GET /v1/models did not return a list")
        return [_parse(TTSModel, item, "GET /v1/models") for item in payload]

    async def subscription(self) -> Subscription:
        path = "/v1/user/subscription"
        return _parse(Subscription, await self._get_json(path), f"GET {path}")

    # ------------------------------------------------------------------ speech

    def stream_speech(
        self,
        voice_id: str,
        text: str,
        *,
        model_id: str | None = None,
        voice_settings: VoiceSettings | None = None,
        output_format: str = "mp3_44100_128",
        language_code: str | None = None,
        seed: int | None = None,
        previous_text: str | None = None,
        next_text: str | None = None,
        apply_text_normalization: str | None = None,
        on_headers: Callable[[SpeechStream], Awaitable[None] | None] | None = None,
    ) -> SpeechStream:
        """POST /v1/text-to-speech/{voice_id}/stream, as an async context manager.

        Entering sends the request (retrying as allowed) and returns once the first
        audio byte has arrived; iterating yields the audio as it arrives.
        `on_headers` is called once per attempt whose response headers say 200.
        """
        body: dict[str, Any] = {"text": text}
        optional = {
            "model_id": model_id,
            "language_code": language_code,
            "seed": seed,
            "previous_text": previous_text,
            "next_text": next_text,
            "apply_text_normalization": apply_text_normalization,
        }
        body.update({key: value for key, value in optional.items() if value is not None})
        if voice_settings is not None:
            settings_json = voice_settings.to_request()
            if settings_json:
                body["voice_settings"] = settings_json
        return SpeechStream(
            self,
            voice_id=voice_id,
            body=body,
            output_format=output_format,
            on_headers=on_headers,
        )

    async def _with_retries(self, attempt: Callable[[], Awaitable[Any]], *, what: str) -> Any:
        started = time.monotonic()
        tries = 0
        while True:
            try:
                return await attempt()
            except ElevenLabsError as exc:
                error = exc
            except (aiohttp.ClientError, TimeoutError) as exc:
                error = ConnectionFailedError(detail=f"{type(exc).__name__}: {exc}")
            if isinstance(error, RequestValidationError):
                # Our bug, not the user's: say where the request was wrong.
                log.error(
                    "%s rejected as malformed (request_id=%s) at %s: %s",
                    what,
                    error.request_id,
                    ", ".join(error.locations) or "?",
                    error.detail,
                )
            if not error.retryable or tries >= self.retry.max_retries:
                raise error
            delay = self.retry.delay(tries, error.retry_after, self._rng)
            if time.monotonic() - started + delay > self.retry.budget:
                raise error
            tries += 1
            log.info(
                "%s failed (%s, status=%s, code=%s, request_id=%s); retry %d in %.2fs",
                what,
                type(error).__name__,
                error.status,
                error.code,
                error.request_id,
                tries,
                delay,
            )
            await asyncio.sleep(delay)


class SpeechStream:
    """One speech request: headers, timings, and the audio body as it arrives."""

    def __init__(
        self,
        client: ElevenLabsClient,
        *,
        voice_id: str,
        body: dict[str, Any],
        output_format: str,
        on_headers: Callable[[SpeechStream], Awaitable[None] | None] | None,
    ) -> None:
        self._client = client
        self.voice_id = voice_id
        self._body = body
        self.output_format = output_format
        self._on_headers = on_headers
        self._response: aiohttp.ClientResponse | None = None
        self._first_chunk: bytes | None = None
        self._holding_slot = False
        self._finished = False
        self.characters = len(body["text"])
        self.attempts = 0
        self.status: int | None = None
        self.content_type: str | None = None
        self.request_id: str | None = None
        self.character_cost: int | None = None
        self.history_item_id: str | None = None
        self.current_concurrent_requests: int | None = None
        self.maximum_concurrent_requests: int | None = None
        # perf_counter() instants; None until they happen.
        self.sent_at: float | None = None
        self.headers_at: float | None = None
        self.first_byte_at: float | None = None
        self.finished_at: float | None = None
        self.bytes_received = 0

    def __repr__(self) -> str:
        return (
            f"SpeechStream(voice_id={self.voice_id!r}, format={self.output_format!r}, "
            f"request_id={self.request_id!r}, characters={self.characters})"
        )

    @property
    def headers_received(self) -> bool:
        return self.headers_at is not None

    async def __aenter__(self) -> Self:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def open(self) -> None:
        """Send the request; return when the first audio byte has arrived."""
        if self.attempts or self._holding_slot:
            raise RuntimeError("a SpeechStream can be opened only once")
        await self._client._slots.acquire()
        self._holding_slot = True
        self._client._in_flight += 1
        try:
            await self._client._with_retries(self._attempt, what=f"TTS {self.voice_id}")
        except BaseException:
            await self.aclose()
            raise

    async def _attempt(self) -> None:
        await self._close_response()
        self.attempts += 1
        url = f"{self._client.base_url}/v1/text-to-speech/{_segment(self.voice_id)}/stream"
        if self.sent_at is None:
            self.sent_at = time.perf_counter()
        response = await self._client._session.post(
            url,
            params={"output_format": self.output_format},
            json=self._body,
            headers=self._client._headers(accept="*/*"),
            timeout=self._client._timeout,
        )
        self._response = response
        if response.status >= 400:
            body = await response.read()
            await self._close_response()
            raise error_from_response(
                response.status,
                body,
                request_id=response.headers.get("request-id"),
                retry_after=response.headers.get("Retry-After"),
            )
        self._read_headers(response)
        if self.content_type == "application/json" or self.content_type.startswith("text/"):
            body = await response.read()
            await self._close_response()
            error = error_from_response(response.status, body, request_id=self.request_id)
            raise UnexpectedResponseError(
                status=response.status,
                code=error.code,
                request_id=self.request_id,
                detail=f"{self.content_type} body on a {response.status}: {error.detail}",
            )
        if self._on_headers is not None:
            result = self._on_headers(self)
            if asyncio.iscoroutine(result):
                await result
        first = await response.content.readany()  # b"" only at the end of the body
        if not first:
            await self._close_response()
            raise ConnectionFailedError(
                detail="the audio stream ended before any audio", request_id=self.request_id
            )
        self.first_byte_at = time.perf_counter()
        self._first_chunk = first
        self.bytes_received = len(first)

    def _read_headers(self, response: aiohttp.ClientResponse) -> None:
        headers = response.headers
        self.status = response.status
        self.headers_at = time.perf_counter()
        self.content_type = (headers.get("Content-Type") or "").split(";")[0].strip().lower()
        self.request_id = headers.get("request-id")
        self.character_cost = _int_header(headers.get("character-cost"))
        if self.character_cost is None:
            self.character_cost = _int_header(headers.get("x-character-count"))
        self.history_item_id = headers.get("history-item-id")
        self.current_concurrent_requests = _int_header(headers.get("current-concurrent-requests"))
        self.maximum_concurrent_requests = _int_header(headers.get("maximum-concurrent-requests"))

    async def __aiter__(self) -> AsyncIterator[bytes]:
        if self._response is None and self._first_chunk is None:
            raise RuntimeError("enter the SpeechStream before iterating it")
        first, self._first_chunk = self._first_chunk, None
        try:
            if first:
                yield first
            response = self._response
            if response is None:
                return
            while True:
                try:
                    chunk = await response.content.readany()
                except (aiohttp.ClientError, TimeoutError) as exc:
                    raise StreamInterruptedError(
                        request_id=self.request_id, detail=f"{type(exc).__name__}: {exc}"
                    ) from None
                if not chunk:
                    break
                self.bytes_received += len(chunk)
                yield chunk
            self.finished_at = time.perf_counter()
            self._finished = True
        finally:
            # Complete, broken, cancelled or abandoned: the slot goes back either way, even
            # if the caller keeps the stream object (or never leaves its `async with`).
            await self.aclose()

    @property
    def complete(self) -> bool:
        """True once the whole body has been received."""
        return self._finished

    async def _close_response(self) -> None:
        response, self._response = self._response, None
        if response is None:
            return
        if self._finished:
            response.release()  # body fully read: the connection can be reused
        else:
            response.close()  # mid-body: drop the connection, stop the download

    async def aclose(self) -> None:
        """Close the response and give the slot back. Safe to call twice."""
        await self._close_response()
        if self._holding_slot:
            self._holding_slot = False
            self._client._in_flight -= 1
            self._client._slots.release()


def _int_header(value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(float(value))
    except ValueError:
        return None


def _segment(value: str) -> str:
    """A path segment that cannot escape its place in the URL."""
    return quote(value, safe="")


def _query(params: Mapping[str, Any]) -> list[tuple[str, str]]:
    """aiohttp query pairs: None dropped, booleans lowercase, lists repeated."""
    pairs: list[tuple[str, str]] = []
    for key, value in params.items():
        if value is None:
            continue
        if isinstance(value, bool):
            pairs.append((key, "true" if value else "false"))
        elif isinstance(value, list | tuple):
            pairs.extend((key, str(item)) for item in value)
        else:
            pairs.append((key, str(value)))
    return pairs
