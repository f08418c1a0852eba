"""Typed ElevenLabs failures, each with a message fit for the person who asked.

Bodies come in two shapes, `{"detail": {"status", "message"}}` and
`{"detail": {"type", "code", "status", "message", "request_id"}}`, and 422s as
`{"detail": [{"loc", "msg", "type"}]}`. `error_from_response` reads all three
and picks the class by `code`/`status` first, then by the HTTP status.
"""

from __future__ import annotations

import json
import time
from email.utils import parsedate_to_datetime
from typing import Any, ClassVar

from bot.errors import BotError


class ElevenLabsError(BotError):
    """Any failure talking to ElevenLabs."""

    default_message: ClassVar[str] = "ElevenLabs could not do that right now."
    retryable: ClassVar[bool] = False

    def __init__(
        self,
        message: str | None = None,
        *,
        status: int | None = None,
        code: str | None = None,
        request_id: str | None = None,
        detail: str | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message or self.default_message)
        self.status = status
        self.code = code
        self.request_id = request_id
        # What ElevenLabs said, for the logs; never shown as-is to users.
        self.detail = detail
        # Seconds the service asked us to wait (Retry-After), on a 429 or a 503 alike.
        self.retry_after = retry_after

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(status={self.status!r}, code={self.code!r}, "
            f"request_id={self.request_id!r})"
        )


class AuthenticationError(ElevenLabsError):
    default_message = (
        "The bot's ElevenLabs API key was refused; the operator needs to check ELEVENLABS_API_KEY."
    )


class QuotaExceededError(ElevenLabsError):
    default_message = "The bot's ElevenLabs credits are used up."


class VoiceNotFoundError(ElevenLabsError):
    default_message = "That voice does not exist (any more) on ElevenLabs."


class TextTooLongError(ElevenLabsError):
    default_message = "That text is longer than the voice model accepts in one request."


class PaidPlanRequiredError(ElevenLabsError):
    default_message = "That needs a paid ElevenLabs plan, which the bot's account does not have."


class PlanRestrictionError(ElevenLabsError):
    """403: the plan does not allow this output format or this voice."""

    default_message = "The bot's ElevenLabs plan does not allow that voice or audio format."


class BadRequestError(ElevenLabsError):
    default_message = "ElevenLabs refused that request."


class RequestValidationError(ElevenLabsError):
    """422: the request did not match the API. That is a bug on our side."""

    default_message = "ElevenLabs rejected the request as malformed; this is a bug in the bot."

    def __init__(self, *args: Any, locations: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.locations = locations or []


class RateLimitedError(ElevenLabsError):
    default_message = "ElevenLabs is busy right now; try again in a moment."
    retryable = True


class ServerError(ElevenLabsError):
    default_message = "ElevenLabs had a problem on its side; try again in a moment."
    retryable = True


class ConnectionFailedError(ElevenLabsError):
    default_message = "The bot could not reach ElevenLabs; try again in a moment."
    retryable = True


class UnexpectedResponseError(ElevenLabsError):
    default_message = "ElevenLabs answered with something that is not audio."


class StreamInterruptedError(ElevenLabsError):
    """The audio stream broke after audio had started; never retried (it would repeat)."""

    default_message = "The speech was cut off: the connection to ElevenLabs broke."


_BY_CODE: dict[str, type[ElevenLabsError]] = {
    "invalid_api_key": AuthenticationError,
    "needs_authorization": AuthenticationError,
    "quota_exceeded": QuotaExceededError,
    "voice_not_found": VoiceNotFoundError,
    "voice_does_not_exist": VoiceNotFoundError,
    "max_character_limit_exceeded": TextTooLongError,
    "paid_plan_required": PaidPlanRequiredError,
    "too_many_concurrent_requests": RateLimitedError,
    "concurrent_limit_exceeded": RateLimitedError,
    "system_busy": RateLimitedError,
    "rate_limit_exceeded": RateLimitedError,
}


def _by_status(status: int) -> type[ElevenLabsError]:
    if status == 401:
        return AuthenticationError
    if status == 402:
        return PaidPlanRequiredError
    if status == 403:
        return PlanRestrictionError
    if status == 404:
        return VoiceNotFoundError
    if status == 422:
        return RequestValidationError
    if status == 429:
        return RateLimitedError
    if status >= 500:
        return ServerError
    return BadRequestError


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Retry-After as seconds to wait: delta-seconds or an HTTP date (RFC 9110, 10.2.3)."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            when = parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:  # not a valid HTTP date, which is always GMT
            return None
        seconds = max(0.0, when.timestamp() - (time.time() if now is None else now))
    return seconds if seconds >= 0 else None


def error_from_response(
    status: int,
    body: bytes,
    *,
    request_id: str | None = None,
    retry_after: str | None = None,
) -> ElevenLabsError:
    """Turn an error response into the matching typed exception."""
    code: str | None = None
    detail_message: str | None = None
    locations: list[str] = []
    try:
        payload = json.loads(body) if body else None
    except (ValueError, UnicodeDecodeError):
        payload = None
    detail = payload.get("detail") if isinstance(payload, dict) else None
    if isinstance(detail, dict):
        code = detail.get("code") or detail.get("status")
        detail_message = detail.get("message")
        request_id = detail.get("request_id") or request_id
    elif isinstance(detail, list):
        for item in detail:
            if isinstance(item, dict):
                loc = item.get("loc") or []
                locations.append(".".join(str(part) for part in loc))
        detail_message = "; ".join(
            f"{loc}: {item.get('msg')}"
            for loc, item in zip(locations, detail, strict=False)
            if isinstance(item, dict)
        )
    elif isinstance(detail, str):
        detail_message = detail

    cls = _BY_CODE.get(code or "") or _by_status(status)
    if cls is VoiceNotFoundError and status not in (400, 404):
        cls = _by_status(status)
    kwargs: dict[str, Any] = {
        "status": status,
        "code": code,
        "request_id": request_id,
        "detail": detail_message,
        "retry_after": parse_retry_after(retry_after),
    }
    if cls is RequestValidationError:
        return RequestValidationError(locations=locations, **kwargs)
    return cls(**kwargs)
