"""A strict fake of the ElevenLabs HTTP API, for tests and benchmarks.

Why a real server and why strict: the client under test must speak HTTP the way it will speak to
``api.elevenlabs.io``. A fake that accepts anything proves nothing, so this one refuses what the
documentation (../shared/elevenlabs-api/ and issue 2) says the service refuses, in the shapes the
service uses, and it serves real speech (see :mod:`tests.fakes.speech`).

Use it in tests through the ``fake_elevenlabs`` fixture (or ``fake_elevenlabs_factory`` for
knobs), or anywhere else as an async context manager::

    async with FakeElevenLabs(first_byte_delay=0.2, pace=1.0) as fake:
        client = ElevenLabsClient(base_url=fake.base_url, api_key=fake.api_key)

Deliberate choices where the documentation is silent:

- Built-in errors use ``error_shape`` (default ``"new"``:
  ``{"detail":{"type","code","status","message","request_id"}}``), except the 401 for a missing
  or wrong key, which is always ``{"detail":{"status":"invalid_api_key","message":"Invalid API
  key"}}``.
- Unknown query parameters and unknown JSON body fields are refused with 422 (stricter than the
  service for query parameters: a misspelt ``output_format`` must not silently become mp3).
- An unknown voice is 404 ``voice_not_found`` on every endpoint.
- A voice whose ``available_for_tiers`` is non-empty and lacks the fake's tier is refused by TTS:
  402 ``paid_plan_required`` on the free tier, 403 ``voice_not_available_for_tier`` otherwise.
- ``language_code`` with a model that cannot enforce a language, or a language the model lacks:
  400 ``unsupported_language``. ``apply_text_normalization="on"`` with a v2.5 flash/turbo
  model: 400 ``text_normalization_not_supported``. A plan refusing a format: 403
  ``output_format_not_allowed``. A model that cannot do TTS: 400
  ``model_can_not_do_text_to_speech``.
- Previews (``GET /previews/{voice_id}.mp3``) need no key, like the public storage they stand for.
- Times recorded on requests are ``time.monotonic()`` seconds.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import copy
import hashlib
import json
import logging
import math
import random
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

import pytest_asyncio
from aiohttp import web
from multidict import MultiDict

from tests.fakes import speech

__all__ = [
    "DEFAULT_API_KEY",
    "ErrorFault",
    "FakeElevenLabs",
    "RecordedRequest",
    "build_models",
    "build_voices",
    "fake_elevenlabs",
    "fake_elevenlabs_factory",
]

log = logging.getLogger(__name__)

DEFAULT_API_KEY = "test-key-0123456789abcdef"
DEFAULT_MODEL_ID = "eleven_multilingual_v2"
DEFAULT_OUTPUT_FORMAT = "mp3_44100_128"
TIERS = ("free", "starter", "creator", "pro", "scale", "business", "enterprise")

ErrorShape = Literal["old", "new", "text"]
Json = Any

# --------------------------------------------------------------------------------------------
# Catalogue: voices and models
# --------------------------------------------------------------------------------------------

_RACHEL: dict[str, Json] = {
    "voice_id": "21m00Tcm4TlvDq8ikWAM",
    "name": "Rachel",
    "category": "professional",
    "labels": {
        "accent": "American",
        "age": "middle-aged",
        "description": "expressive",
        "gender": "female",
        "use_case": "social media",
    },
    "available_for_tiers": ["creator", "enterprise"],
    "high_quality_base_model_ids": [
        "eleven_v2_flash",
        "eleven_flash_v2",
        "eleven_turbo_v2_5",
        "eleven_multilingual_v2",
        "eleven_v2_5_flash",
        "eleven_flash_v2_5",
        "eleven_turbo_v2",
    ],
    "samples": [
        {
            "sample_id": "DCwhRBWXzGAHq8TQ4Fs18",
            "file_name": "sample.mp3",
            "mime_type": "audio/mpeg",
            "size_bytes": 1000000,
            "hash": "1234567890",
        }
    ],
    "fine_tuning": {
        "is_allowed_to_fine_tune": True,
        "state": {"eleven_multilingual_v2": "fine_tuned"},
        "verification_failures": ["verification_failures"],
        "verification_attempts_count": 2,
        "manual_verification_requested": False,
    },
    "description": "A warm, expressive voice with a touch of humor.",
    "preview_url": None,  # filled with the fake's own URL
    "settings": {
        "stability": 1,
        "similarity_boost": 1,
        "style": 0,
        "use_speaker_boost": True,
        "speed": 1,
    },
    "sharing": {
        "status": "enabled",
        "date_unix": 1714204800,
        "whitelisted_emails": ["example@example.com"],
        "public_owner_id": "DCwhRBWXzGAHq8TQ4Fs18",
        "original_voice_id": "DCwhRBWXzGAHq8TQ4Fs18",
        "financial_rewards_enabled": True,
        "free_users_allowed": True,
        "live_moderation_enabled": True,
        "notice_period": 30,
        "voice_mixing_allowed": False,
        "featured": True,
        "category": "professional",
        "liked_by_count": 100,
        "cloned_by_count": 50,
        "name": "Rachel",
        "labels": {"accent": "American", "gender": "female"},
        "review_status": "allowed",
        "enabled_in_library": True,
        "history_item_sample_id": "DCwhRBWXzGAHq8TQ4Fs18",
        "rate": 0.05,
        "disable_at_unix": 1714204800,
        "reader_app_enabled": True,
        "description": "A female voice with a soft and friendly tone.",
        "moderation_check": {
            "date_checked_unix": 1714204800,
            "name_value": "Rachel",
            "name_check": True,
            "description_value": "A female voice with a soft and friendly tone.",
            "description_check": True,
            "sample_ids": ["sample1", "sample2"],
            "sample_checks": [0.95, 0.98],
            "captcha_ids": ["captcha1", "captcha2"],
            "captcha_checks": [0.95, 0.98],
        },
        "reader_restricted_on": [{"resource_type": "read", "resource_id": "FCwhRBWXzGAHq8TQ4Fs18"}],
    },
    "verified_languages": [
        {"language": "en", "model_id": "eleven_turbo_v2_5", "accent": "American"}
    ],
    "safety_control": "NONE",
    "voice_verification": {
        "requires_verification": False,
        "is_verified": True,
        "verification_failures": ["verification_failures"],
        "verification_attempts_count": 0,
        "language": "en",
        "verification_attempts": [
            {
                "text": "Hello, how are you?",
                "date_unix": 1714204800,
                "accepted": True,
                "similarity": 0.95,
                "levenshtein_distance": 2,
                "recording": {
                    "recording_id": "CwhRBWXzGAHq8TQ4Fs17",
                    "mime_type": "audio/mpeg",
                    "size_bytes": 1000000,
                    "upload_date_unix": 1714204800,
                    "transcription": "Hello, how are you?",
                },
            }
        ],
    },
    "permission_on_resource": "permission_on_resource",
    "is_owner": False,
    "is_legacy": False,
    "is_mixed": False,
    "created_at_unix": 1,
}

# (name, category); labels and the rest are drawn from a seeded RNG.
_VOICE_TABLE: tuple[tuple[str, str], ...] = (
    ("Adam", "premade"),
    ("Antoni", "premade"),
    ("Arnold", "premade"),
    ("Bella", "premade"),
    ("Callum", "premade"),
    ("Charlotte", "premade"),
    ("Clyde", "premade"),
    ("Daniel", "premade"),
    ("Dorothy", "premade"),
    ("Elli", "premade"),
    ("Emily", "premade"),
    ("Fin", "premade"),
    ("Freya", "premade"),
    ("George", "premade"),
    ("Grace", "premade"),
    ("Josh", "cloned"),
    ("Lily", "cloned"),
    ("Matilda", "cloned"),
    ("Michael", "cloned"),
    ("Mimi", "cloned"),
    ("Nicole", "cloned"),
    ("Patrick", "cloned"),
    ("Sam", "generated"),
    ("Serena", "generated"),
    ("Thomas", "generated"),
    ("Zoe", "generated"),
    ("Old Sailor", "generated"),
    ("Robot Butler", "generated"),
    ("Ana-María", "generated"),
    ("Brian", "professional"),
    ("Chris", "professional"),
    ("Dave", "professional"),
    ("Ethan", "professional"),
    ("Gigi", "professional"),
    ("Glinda", "professional"),
    ("Harry", "professional"),
    ("James", "professional"),
    ("Jessie", "professional"),
    ("Liam", "professional"),
)

_ACCENTS = ("American", "British", "Australian", "Irish", "Scottish", "Indian", "Swedish")
_AGES = ("young", "middle-aged", "old")
_GENDERS = ("female", "male", "neutral")
_DESCRIPTIONS = ("calm", "warm", "raspy", "crisp", "deep", "soft", "confident", "gentle")
_USE_CASES = ("narration", "news", "conversational", "characters", "audiobook", "meditation")
_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
_UNAVAILABLE_TIERS = ["pro", "scale", "business", "enterprise"]


def _voice_id_for(name: str) -> str:
    """A 20-character id like the service's, stable for a name."""
    digest = hashlib.sha256(f"fake-voice:{name}".encode()).digest()
    return "".join(_ALPHABET[b % len(_ALPHABET)] for b in digest[:20])


def _generated_voice(index: int, name: str, category: str, rng: random.Random) -> dict[str, Json]:
    gender, accent, age = rng.choice(_GENDERS), rng.choice(_ACCENTS), rng.choice(_AGES)
    tone, use_case = rng.choice(_DESCRIPTIONS), rng.choice(_USE_CASES)
    voice_id = _voice_id_for(name)
    professional = category == "professional"
    # Every other professional voice needs a higher plan than the fake's default tier.
    locked = professional and index % 2 == 1
    owned = category in ("cloned", "generated") or (professional and index % 3 == 0)
    shared = professional and not owned and index % 4 != 2
    created = 1_600_000_000 + index * 2_592_000 + rng.randrange(86_400)
    settings = {
        "stability": round(rng.uniform(0.3, 0.8), 2),
        "similarity_boost": round(rng.uniform(0.5, 0.9), 2),
        "style": round(rng.choice((0.0, 0.0, 0.2, 0.4)), 2),
        "use_speaker_boost": rng.random() < 0.7,
        "speed": round(rng.uniform(0.9, 1.1), 2),
    }
    ft_state = (
        {"eleven_multilingual_v2": rng.choice(("fine_tuned", "fine_tuned", "fine_tuning"))}
        if professional
        else {}
    )
    samples = (
        [
            {
                "sample_id": _voice_id_for(f"{name}-sample"),
                "file_name": f"{name.lower().replace(' ', '_')}.mp3",
                "mime_type": "audio/mpeg",
                "size_bytes": rng.randrange(200_000, 2_000_000),
                "hash": hashlib.md5(name.encode()).hexdigest(),
            }
        ]
        if category in ("cloned", "professional")
        else None
    )
    sharing = None
    if shared:
        sharing = {
            "status": "enabled",
            "date_unix": created,
            "whitelisted_emails": [],
            "public_owner_id": _voice_id_for(f"{name}-owner"),
            "original_voice_id": _voice_id_for(f"{name}-original"),
            "financial_rewards_enabled": True,
            "free_users_allowed": not locked,
            "live_moderation_enabled": False,
            "notice_period": 30,
            "voice_mixing_allowed": False,
            "featured": index % 5 == 0,
            "category": "professional",
            "liked_by_count": rng.randrange(10_000),
            "cloned_by_count": rng.randrange(5_000),
            "name": name,
            "labels": {"accent": accent, "gender": gender},
            "review_status": "allowed",
            "enabled_in_library": True,
            "description": f"A {tone} {gender} voice.",
        }
    return {
        "voice_id": voice_id,
        "name": name,
        "samples": samples,
        "category": category,
        "fine_tuning": {
            "is_allowed_to_fine_tune": professional,
            "state": ft_state,
            "verification_failures": [],
            "verification_attempts_count": 1 if professional else 0,
            "manual_verification_requested": False,
        },
        "labels": {
            "accent": accent,
            "description": tone,
            "age": age,
            "gender": gender,
            "use_case": use_case,
        },
        "description": f"A {tone}, {age} {gender} voice with a {accent} accent for {use_case}.",
        "preview_url": None,
        "available_for_tiers": list(_UNAVAILABLE_TIERS) if locked else [],
        "settings": settings,
        "sharing": sharing,
        "high_quality_base_model_ids": ["eleven_multilingual_v2", "eleven_flash_v2_5"],
        "verified_languages": [
            {
                "language": "en",
                "model_id": "eleven_multilingual_v2",
                "accent": accent.lower(),
                "locale": "en-US" if accent == "American" else "en-GB",
                "preview_url": None,
            }
        ],
        "safety_control": None,
        "voice_verification": {
            "requires_verification": False,
            "is_verified": professional,
            "verification_failures": [],
            "verification_attempts_count": 0,
            "language": "en" if professional else None,
            "verification_attempts": None,
        },
        "permission_on_resource": "admin" if owned else ("viewer" if not shared else None),
        "is_owner": owned,
        "is_legacy": False,
        "is_mixed": False,
        "created_at_unix": created,
    }


def build_voices() -> list[dict[str, Json]]:
    """The default catalogue: Rachel (the documented example) plus 39 seeded voices.

    Premade, cloned, generated and professional voices; every other professional voice is
    only for higher tiers than ``creator`` (the fake's default tier), so TTS with it is refused.
    """
    rng = random.Random(11_11_2026)
    voices = [copy.deepcopy(_RACHEL)]
    voices += [_generated_voice(i, n, c, rng) for i, (n, c) in enumerate(_VOICE_TABLE)]
    return voices


def voice_type_of(voice: dict[str, Json]) -> str:
    """Which ``voice_type`` filter of /v2/voices a voice answers to (besides non-default)."""
    if voice.get("category") == "premade":
        return "default"
    if voice.get("is_owner"):
        return "personal"
    if voice.get("sharing"):
        return "community"
    return "workspace"


def _languages(*codes: str) -> list[dict[str, str]]:
    names = {
        "en": "English",
        "ja": "Japanese",
        "zh": "Chinese",
        "de": "German",
        "hi": "Hindi",
        "fr": "French",
        "ko": "Korean",
        "pt": "Portuguese",
        "it": "Italian",
        "es": "Spanish",
        "pl": "Polish",
        "nl": "Dutch",
        "sv": "Swedish",
        "tr": "Turkish",
        "vi": "Vietnamese",
    }
    return [{"language_id": c, "name": names[c]} for c in codes]


_MANY_LANGS = ("en", "ja", "zh", "de", "hi", "fr", "ko", "pt", "it", "es", "pl", "nl", "sv", "tr")


def _model(
    model_id: str,
    name: str,
    *,
    tts: bool,
    max_chars: int,
    multiplier: float,
    languages: Iterable[str],
    description: str,
) -> dict[str, Json]:
    return {
        "model_id": model_id,
        "name": name,
        "can_be_finetuned": True,
        "can_do_text_to_speech": tts,
        "can_do_voice_conversion": not tts,
        "can_use_style": model_id == "eleven_multilingual_v2",
        "can_use_speaker_boost": True,
        "serves_pro_voices": True,
        "token_cost_factor": multiplier,
        "description": description,
        "requires_alpha_access": False,
        "max_characters_request_free_user": min(max_chars, 2_500),
        "max_characters_request_subscribed_user": max_chars,
        "maximum_text_length_per_request": max_chars,
        "languages": _languages(*languages),
        "model_rates": {"character_cost_multiplier": multiplier},
        "concurrency_group": "standard",
    }


def build_models() -> list[dict[str, Json]]:
    """GET /v1/models: three TTS models and one speech-to-speech model (not usable for TTS)."""
    return [
        _model(
            "eleven_multilingual_v2",
            "Eleven Multilingual v2",
            tts=True,
            max_chars=10_000,
            multiplier=1.0,
            languages=_MANY_LANGS,
            description="Our most lifelike model with rich emotional expression.",
        ),
        _model(
            "eleven_flash_v2_5",
            "Eleven Flash v2.5",
            tts=True,
            max_chars=40_000,
            multiplier=0.5,
            languages=(*_MANY_LANGS, "vi"),
            description="Our ultra low latency model.",
        ),
        _model(
            "eleven_turbo_v2_5",
            "Eleven Turbo v2.5",
            tts=True,
            max_chars=40_000,
            multiplier=0.5,
            languages=(*_MANY_LANGS, "vi"),
            description="High quality, low latency model.",
        ),
        _model(
            "eleven_english_sts_v2",
            "Eleven English v2 (speech to speech)",
            tts=False,
            max_chars=10_000,
            multiplier=1.0,
            languages=("en",),
            description="Speech to speech in English.",
        ),
    ]


# Models that enforce language_code and refuse apply_text_normalization="on".
_V25_MODELS = frozenset({"eleven_flash_v2_5", "eleven_turbo_v2_5"})

# --------------------------------------------------------------------------------------------
# Error bodies
# --------------------------------------------------------------------------------------------

_ERROR_TYPES = {
    400: "invalid_request",
    401: "authentication_error",
    402: "payment_required",
    403: "authorization_error",
    404: "not_found",
    422: "validation_error",
    429: "rate_limit_error",
}

_DEFAULT_CODES = {
    400: "invalid_request",
    401: "invalid_api_key",
    402: "paid_plan_required",
    403: "forbidden",
    404: "voice_not_found",
    422: "validation_error",
    429: "too_many_concurrent_requests",
    500: "internal_server_error",
    502: "bad_gateway",
    503: "service_unavailable",
}

_DEFAULT_MESSAGES = {
    "invalid_api_key": "Invalid API key",
    "needs_authorization": (
        "Neither authorization header nor xi-api-key received, please provide one."
    ),
    "quota_exceeded": "This request exceeds your quota. You have 0 credits remaining.",
    "voice_not_found": "A voice with the given voice_id was not found.",
    "voice_does_not_exist": "The voice does not exist.",
    "max_character_limit_exceeded": "The text is longer than the model allows per request.",
    "paid_plan_required": (
        "Free users cannot use library voices via the API. Please upgrade your subscription."
    ),
    "too_many_concurrent_requests": (
        "Too many concurrent requests for your subscription. Please try again later."
    ),
    "concurrent_limit_exceeded": "Concurrent request limit exceeded.",
    "system_busy": "We are experiencing heavy traffic, please try again shortly.",
    "rate_limit_exceeded": "Rate limit exceeded. Please slow down.",
}


def _error_type(status: int) -> str:
    return _ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request")


def _new_request_id() -> str:
    return uuid.uuid4().hex


def error_body(
    status: int, code: str, message: str, *, shape: ErrorShape, request_id: str
) -> dict[str, Json]:
    """The JSON error body in one of the two shapes the service uses."""
    if shape == "old":
        return {"detail": {"status": code, "message": message}}
    return {
        "detail": {
            "type": _error_type(status),
            "code": code,
            "status": code,
            "message": message,
            "request_id": request_id,
        }
    }


def _json_response(
    status: int, body: Json, request_id: str, headers: dict[str, str] | None = None
) -> web.Response:
    all_headers = {"request-id": request_id, **(headers or {})}
    return web.json_response(body, status=status, headers=all_headers)


def _validation_response(errors: list[dict[str, Json]], request_id: str) -> web.Response:
    return _json_response(422, {"detail": errors}, request_id)


# --------------------------------------------------------------------------------------------
# Faults
# --------------------------------------------------------------------------------------------


@dataclass
class ErrorFault:
    """Answer with an error status and body instead of serving the request."""

    status: int
    code: str
    message: str
    shape: ErrorShape = "new"
    retry_after: float | None = None
    loc: tuple[str | int, ...] = ("body", "text")  # for 422


@dataclass
class DropFault:
    """Close the connection before any header is sent."""


@dataclass
class JsonOkFault:
    """Answer 200 with a JSON body (application/json) where audio was expected."""

    body: Json


@dataclass
class CutFault:
    """Close the connection after ``after_bytes`` of body (the chunked body never completes)."""

    after_bytes: int


@dataclass
class StallFault:
    """Send nothing for ``seconds`` after ``after_bytes`` of body, then carry on."""

    after_bytes: int
    seconds: float


PreFault = ErrorFault | DropFault | JsonOkFault
StreamFault = CutFault | StallFault


@dataclass
class _Scripted:
    fault: Any
    endpoint: str
    remaining: int


class FaultScript:
    """Queues of scripted faults, consumed in order by the requests they match.

    Pre-response faults (errors, drops, JSON-on-200) are taken when a matching request arrives;
    stream faults (cut, stall) only when a TTS request actually starts streaming audio, so an
    invalid request never uses one up.
    """

    def __init__(self) -> None:
        self._pre: list[_Scripted] = []
        self._stream: list[_Scripted] = []

    def add_pre(self, fault: PreFault, endpoint: str, times: int) -> None:
        self._pre.append(_Scripted(fault, endpoint, times))

    def add_stream(self, fault: StreamFault, times: int) -> None:
        self._stream.append(_Scripted(fault, "tts", times))

    def clear(self) -> None:
        self._pre.clear()
        self._stream.clear()

    @property
    def pending(self) -> int:
        return sum(s.remaining for s in self._pre + self._stream)

    def take_pre(self, route: str, path: str) -> PreFault | None:
        return self._take(self._pre, route, path)

    def take_stream(self) -> StreamFault | None:
        return self._take(self._stream, "tts", "")

    @staticmethod
    def _take(queue: list[_Scripted], route: str, path: str) -> Any:
        for item in queue:
            if _endpoint_matches(item.endpoint, route, path):
                item.remaining -= 1
                if item.remaining <= 0:
                    queue.remove(item)
                return item.fault
        return None


def _endpoint_matches(endpoint: str, route: str, path: str) -> bool:
    if endpoint == "any":
        return route != "preview"
    if endpoint.startswith("/"):
        return path.startswith(endpoint)
    return endpoint == route


# --------------------------------------------------------------------------------------------
# Recording
# --------------------------------------------------------------------------------------------


@dataclass
class RecordedRequest:
    """One request as the fake saw it, and what it did with it. Times: time.monotonic()."""

    method: str
    path: str
    route: str  # "tts", "voices_v2", "voice", "voice_settings", "default_settings", ...
    query: MultiDict[str]
    headers: dict[str, str]  # the xi-api-key value is replaced by "<redacted>"
    body: bytes
    json: Json | None
    received_at: float
    api_key_present: bool
    api_key_valid: bool
    request_id: str = field(default_factory=_new_request_id)
    status: int | None = None
    fault: str | None = None  # class name of the scripted fault applied, if any
    headers_sent_at: float | None = None
    first_byte_at: float | None = None
    finished_at: float | None = None
    bytes_sent: int = 0
    chunk_sizes: list[int] = field(default_factory=list)
    client_disconnected: bool = False


# --------------------------------------------------------------------------------------------
# TTS request validation
# --------------------------------------------------------------------------------------------

_TTS_BODY_FIELDS = frozenset(
    {
        "text",
        "model_id",
        "language_code",
        "voice_settings",
        "pronunciation_dictionary_locators",
        "seed",
        "previous_text",
        "next_text",
        "previous_request_ids",
        "next_request_ids",
        "apply_text_normalization",
        "apply_language_text_normalization",
        "use_pvc_as_ivc",
    }
)
_TTS_QUERY_PARAMS = frozenset({"output_format", "enable_logging", "optimize_streaming_latency"})
_VOICE_SETTING_RANGES: dict[str, tuple[float, float]] = {
    "stability": (0.0, 1.0),
    "similarity_boost": (0.0, 1.0),
    "style": (0.0, 1.0),
    "speed": (0.7, 1.2),
}
_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})


def _err(loc: Sequence[str | int], msg: str, type_: str) -> dict[str, Json]:
    return {"loc": list(loc), "msg": msg, "type": type_}


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _check_optional_str(body: dict[str, Json], name: str, errors: list[dict[str, Json]]) -> None:
    if name in body and body[name] is not None and not isinstance(body[name], str):
        errors.append(_err(["body", name], "Input should be a valid string", "string_type"))


def _check_id_list(body: dict[str, Json], name: str, errors: list[dict[str, Json]]) -> None:
    value = body.get(name)
    if value is None:
        return
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        errors.append(_err(["body", name], "Input should be a valid list of strings", "list_type"))
    elif len(value) > 3:
        errors.append(
            _err(["body", name], "List should have at most 3 items", "too_long"),
        )


def _check_voice_settings(value: Json, errors: list[dict[str, Json]]) -> None:
    if value is None:
        return
    if not isinstance(value, dict):
        errors.append(
            _err(["body", "voice_settings"], "Input should be a valid dictionary", "dict_type")
        )
        return
    for key, setting in value.items():
        loc = ["body", "voice_settings", key]
        if key == "use_speaker_boost":
            if setting is not None and not isinstance(setting, bool):
                errors.append(_err(loc, "Input should be a valid boolean", "bool_type"))
        elif key in _VOICE_SETTING_RANGES:
            low, high = _VOICE_SETTING_RANGES[key]
            if setting is None:
                continue
            if not _is_number(setting):
                errors.append(_err(loc, "Input should be a valid number", "float_type"))
            elif not low <= setting <= high:
                errors.append(_err(loc, f"Input should be between {low} and {high}", "value_error"))
        else:
            errors.append(_err(loc, "Extra inputs are not permitted", "extra_forbidden"))


def _check_locators(value: Json, errors: list[dict[str, Json]]) -> None:
    if value is None:
        return
    loc = ["body", "pronunciation_dictionary_locators"]
    if not isinstance(value, list):
        errors.append(_err(loc, "Input should be a valid list", "list_type"))
        return
    if len(value) > 3:
        errors.append(_err(loc, "List should have at most 3 items", "too_long"))
    for i, item in enumerate(value):
        ok = (
            isinstance(item, dict)
            and isinstance(item.get("pronunciation_dictionary_id"), str)
            and isinstance(item.get("version_id"), str | None)
            and set(item) <= {"pronunciation_dictionary_id", "version_id"}
        )
        if not ok:
            errors.append(
                _err([*loc, i], "Invalid pronunciation dictionary locator", "value_error")
            )


def validate_tts_body(body: Json) -> list[dict[str, Json]]:
    """FastAPI-style validation errors for a TTS JSON body; empty when the body is valid."""
    if not isinstance(body, dict):
        return [_err(["body"], "Input should be a valid dictionary or object", "model_type")]
    errors: list[dict[str, Json]] = []
    for name in body:
        if name not in _TTS_BODY_FIELDS:
            errors.append(_err(["body", name], "Extra inputs are not permitted", "extra_forbidden"))
    text = body.get("text")
    if "text" not in body:
        errors.append(_err(["body", "text"], "Field required", "missing"))
    elif not isinstance(text, str):
        errors.append(_err(["body", "text"], "Input should be a valid string", "string_type"))
    elif not text.strip():
        errors.append(
            _err(["body", "text"], "String should have at least 1 character", "string_too_short")
        )
    for name in ("model_id", "language_code", "previous_text", "next_text"):
        _check_optional_str(body, name, errors)
    _check_voice_settings(body.get("voice_settings"), errors)
    _check_locators(body.get("pronunciation_dictionary_locators"), errors)
    _check_id_list(body, "previous_request_ids", errors)
    _check_id_list(body, "next_request_ids", errors)
    seed = body.get("seed")
    if seed is not None and (not isinstance(seed, int) or isinstance(seed, bool)):
        errors.append(_err(["body", "seed"], "Input should be a valid integer", "int_type"))
    elif seed is not None and not 0 <= seed <= 4_294_967_295:
        errors.append(
            _err(["body", "seed"], "Input should be between 0 and 4294967295", "value_error")
        )
    normalization = body.get("apply_text_normalization", "auto")
    if normalization not in ("auto", "on", "off"):
        errors.append(
            _err(
                ["body", "apply_text_normalization"],
                "Input should be 'auto', 'on' or 'off'",
                "enum",
            )
        )
    for name in ("apply_language_text_normalization", "use_pvc_as_ivc"):
        if name in body and not isinstance(body[name], bool):
            errors.append(_err(["body", name], "Input should be a valid boolean", "bool_type"))
    return errors


def validate_tts_request(
    query: MultiDict[str], content_type: str, body: Json | None
) -> list[dict[str, Json]]:
    """FastAPI-style 422 errors for a TTS request's query string and body; empty when valid."""
    errors = _unknown_query_errors(query, _TTS_QUERY_PARAMS)
    fmt = query.get("output_format", DEFAULT_OUTPUT_FORMAT)
    if fmt not in speech.OUTPUT_FORMATS:
        allowed = ", ".join(speech.OUTPUT_FORMATS)
        errors.append(_err(["query", "output_format"], f"Input should be one of {allowed}", "enum"))
    _parse_bool(query, "enable_logging", errors)
    latency = _parse_int(query, "optimize_streaming_latency", errors)
    if latency is not None and not 0 <= latency <= 4:
        errors.append(
            _err(["query", "optimize_streaming_latency"], "Input should be 0 to 4", "enum")
        )
    if not content_type.lower().startswith("application/json"):
        errors.append(
            _err(["body"], "Content-Type must be application/json", "model_attributes_type")
        )
    elif body is None:
        errors.append(_err(["body"], "JSON decode error", "json_invalid"))
    else:
        errors += validate_tts_body(body)
    return errors


def _unknown_query_errors(query: MultiDict[str], known: Iterable[str]) -> list[dict[str, Json]]:
    known = set(known)
    return [
        _err(["query", name], "Extra inputs are not permitted", "extra_forbidden")
        for name in dict.fromkeys(query.keys())
        if name not in known
    ]


def _parse_bool(query: MultiDict[str], name: str, errors: list[dict[str, Json]]) -> bool | None:
    if name not in query:
        return None
    raw = query[name].lower()
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    errors.append(_err(["query", name], "Input should be a valid boolean", "bool_parsing"))
    return None


def _parse_int(query: MultiDict[str], name: str, errors: list[dict[str, Json]]) -> int | None:
    if name not in query:
        return None
    raw = query[name]
    if not re.fullmatch(r"[+-]?\d+", raw):
        errors.append(_err(["query", name], "Input should be a valid integer", "int_parsing"))
        return None
    return int(raw)


def _parse_choice(
    query: MultiDict[str], name: str, choices: Sequence[str], errors: list[dict[str, Json]]
) -> str | None:
    if name not in query:
        return None
    value = query[name]
    if value not in choices:
        allowed = ", ".join(repr(c) for c in choices)
        errors.append(_err(["query", name], f"Input should be one of {allowed}", "enum"))
        return None
    return value


# --------------------------------------------------------------------------------------------
# /v2/voices search
# --------------------------------------------------------------------------------------------

_V2_VOICES_PARAMS = (
    "search",
    "page_size",
    "next_page_token",
    "sort",
    "sort_direction",
    "voice_type",
    "category",
    "fine_tuning_state",
    "collection_id",
    "include_total_count",
    "voice_ids",
)
_VOICE_TYPES = ("personal", "community", "default", "workspace", "non-default")
_CATEGORIES = ("premade", "cloned", "generated", "professional")
_FINE_TUNING_STATES = (
    "draft",
    "not_verified",
    "not_started",
    "queued",
    "fine_tuning",
    "fine_tuned",
    "failed",
    "delayed",
)


def _filters_fingerprint(query: MultiDict[str]) -> str:
    """Binds a page token to the search it came from; page_size may change between pages."""
    items = sorted((k, v) for k, v in query.items() if k not in ("page_size", "next_page_token"))
    return hashlib.sha256(json.dumps(items).encode()).hexdigest()[:16]


def encode_page_token(offset: int, fingerprint: str) -> str:
    raw = json.dumps({"o": offset, "f": fingerprint}, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_page_token(token: str, fingerprint: str) -> int | None:
    """The offset a token stands for, or None when it is not one of ours for this search."""
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        data = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        return None
    if not isinstance(data, dict) or data.get("f") != fingerprint:
        return None
    offset = data.get("o")
    if not isinstance(offset, int) or isinstance(offset, bool) or offset < 0:
        return None
    return offset


def _matches_search(voice: dict[str, Json], term: str) -> bool:
    term = term.lower()
    labels = voice.get("labels") or {}
    haystack = [
        voice.get("name"),
        voice.get("description"),
        voice.get("category"),
        *labels.values(),
    ]
    return any(isinstance(h, str) and term in h.lower() for h in haystack)


def _fine_tuning_states(voice: dict[str, Json]) -> set[str]:
    state = (voice.get("fine_tuning") or {}).get("state") or {}
    return {s for s in state.values() if isinstance(s, str)}


@dataclass
class VoiceSearch:
    """One validated GET /v2/voices query: filters, order and the page it asks for."""

    fingerprint: str
    offset: int = 0
    page_size: int = 10
    search: str | None = None
    sort: str | None = None
    sort_direction: str | None = None
    voice_type: str | None = None
    category: str | None = None
    fine_tuning_state: str | None = None
    collection_id: str | None = None
    include_total_count: bool = True  # the documented default
    voice_ids: list[str] = field(default_factory=list)

    @classmethod
    def parse(cls, query: MultiDict[str]) -> tuple[VoiceSearch | None, list[dict[str, Json]]]:
        """The search, or None and FastAPI-style errors for every bad parameter."""
        errors = _unknown_query_errors(query, _V2_VOICES_PARAMS)
        for name in _V2_VOICES_PARAMS:
            if name != "voice_ids" and len(query.getall(name, [])) > 1:
                errors.append(_err(["query", name], "Expected a single value", "value_error"))
        search = cls(fingerprint=_filters_fingerprint(query))
        page_size = _parse_int(query, "page_size", errors)
        if page_size is not None and not 1 <= page_size <= 100:
            errors.append(
                _err(["query", "page_size"], "Input should be between 1 and 100", "value_error")
            )
        elif page_size is not None:
            search.page_size = page_size
        search.sort = _parse_choice(query, "sort", ("name", "created_at_unix"), errors)
        search.sort_direction = _parse_choice(query, "sort_direction", ("asc", "desc"), errors)
        search.voice_type = _parse_choice(query, "voice_type", _VOICE_TYPES, errors)
        search.category = _parse_choice(query, "category", _CATEGORIES, errors)
        search.fine_tuning_state = _parse_choice(
            query, "fine_tuning_state", _FINE_TUNING_STATES, errors
        )
        search.include_total_count = _parse_bool(query, "include_total_count", errors) is not False
        search.voice_ids = query.getall("voice_ids", [])
        if len(search.voice_ids) > 100:
            errors.append(
                _err(["query", "voice_ids"], "List should have at most 100 items", "too_long")
            )
        search.search = query.get("search") or None
        search.collection_id = query.get("collection_id")
        if "next_page_token" in query:
            offset = decode_page_token(query["next_page_token"], search.fingerprint)
            if offset is None:
                errors.append(
                    _err(["query", "next_page_token"], "Invalid page token", "value_error")
                )
            else:
                search.offset = offset
        return (None, errors) if errors else (search, [])

    def token_for(self, offset: int) -> str:
        return encode_page_token(offset, self.fingerprint)

    def select(
        self, voices: Iterable[dict[str, Json]], collections: dict[str, list[str]]
    ) -> list[dict[str, Json]]:
        """Every matching voice, in the requested order (catalogue order when unsorted)."""
        members = (
            None if self.collection_id is None else set(collections.get(self.collection_id, ()))
        )
        wanted = set(self.voice_ids)
        chosen = [
            v
            for v in voices
            if self._type_matches(v)
            and (self.category is None or v.get("category") == self.category)
            and (self.fine_tuning_state is None or self._fine_tuning_matches(v))
            and (members is None or v["voice_id"] in members)
            and (not wanted or v["voice_id"] in wanted)
            and (self.search is None or _matches_search(v, self.search))
        ]
        if self.sort == "name":
            chosen.sort(
                key=lambda v: ((v.get("name") or "").casefold(), v["voice_id"]),
                reverse=self.sort_direction == "desc",
            )
        elif self.sort == "created_at_unix":
            chosen.sort(
                key=lambda v: (v.get("created_at_unix") or 0, v["voice_id"]),
                reverse=self.sort_direction != "asc",  # newest first unless asked otherwise
            )
        return chosen

    def _type_matches(self, voice: dict[str, Json]) -> bool:
        if self.voice_type is None:
            return True
        if self.voice_type == "non-default":
            return voice_type_of(voice) != "default"
        return voice_type_of(voice) == self.voice_type

    def _fine_tuning_matches(self, voice: dict[str, Json]) -> bool:
        """Only professional clones are fine-tuned (the documentation says so)."""
        return voice.get("category") == "professional" and (
            self.fine_tuning_state in _fine_tuning_states(voice)
        )


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


_RECORD = web.RequestKey("fake_elevenlabs_record", RecordedRequest)


class FakeElevenLabs:
    """The fake service: start it, point a client at ``base_url``, inspect what it saw.

    Attributes tests may read or set while it runs: ``voices``, ``models``, ``tier``,
    ``allowed_formats``, ``concurrency_limit``, ``first_byte_delay``, ``headers_delay``,
    ``pace``, ``send_character_cost``, ``max_concurrent_requests``, ``error_shape``,
    ``character_count``, ``character_limit``; and the records ``requests``, ``tts_count``,
    ``tts_in_flight``, ``max_tts_in_flight``.
    """

    def __init__(
        self,
        *,
        api_key: str = DEFAULT_API_KEY,
        first_byte_delay: float = 0.0,
        headers_delay: float = 0.0,
        pace: float | None = None,
        chunk_size_range: tuple[int, int] = (512, 4096),
        seed: int = 0,
        voices: list[dict[str, Json]] | None = None,
        models: list[dict[str, Json]] | None = None,
        tier: str = "creator",
        character_count: int = 0,
        character_limit: int = 100_000,
        allowed_formats: Iterable[str] | None = None,
        concurrency_limit: int | None = None,
        max_concurrent_requests: int = 4,
        send_character_cost: bool = True,
        error_shape: ErrorShape = "new",
        collections: dict[str, list[str]] | None = None,
    ) -> None:
        """Knobs:

        - ``first_byte_delay``: seconds from receiving a TTS request to its first audio byte;
          headers go out before (after ``headers_delay``, default at once). Both are minimums:
          the first render of a (voice, text, format) takes ~0.1-0.2 s more (renders are
          cached; warm them with ``speech.render_speech`` to time precisely).
        - ``pace``: None streams as fast as possible; a float is a realtime factor (1.0 sends
          audio at its playback rate, 2.0 twice as fast).
        - ``chunk_size_range``: inclusive bounds of the uneven body chunk sizes, drawn from a
          RNG seeded with ``seed`` and the request's index (deterministic).
        - ``allowed_formats``: formats the "plan" allows (default: all documented ones); a
          documented format outside it is refused with 403.
        - ``concurrency_limit``: when set, a TTS request that would make more than this many
          in flight gets 429 ``too_many_concurrent_requests``.
        - ``max_concurrent_requests``: the value of the ``maximum-concurrent-requests`` header.
        - ``send_character_cost``: False omits ``character-cost`` (only ``x-character-count``).
        """
        low, high = chunk_size_range
        if not 1 <= low <= high:
            raise ValueError("chunk_size_range must be (low, high) with 1 <= low <= high")
        if tier not in TIERS:
            raise ValueError(f"tier must be one of {TIERS}")
        self.api_key = api_key
        self.first_byte_delay = first_byte_delay
        self.headers_delay = headers_delay
        self.pace = pace
        self.chunk_size_range = (low, high)
        self.seed = seed
        self.voices: list[dict[str, Json]] = voices if voices is not None else build_voices()
        self.models: list[dict[str, Json]] = models if models is not None else build_models()
        self.tier = tier
        self.character_count = character_count
        self.character_limit = character_limit
        self.allowed_formats: set[str] = (
            set(allowed_formats) if allowed_formats is not None else set(speech.OUTPUT_FORMATS)
        )
        self.concurrency_limit = concurrency_limit
        self.max_concurrent_requests = max_concurrent_requests
        self.send_character_cost = send_character_cost
        self.error_shape: ErrorShape = error_shape
        self.collections: dict[str, list[str]] = (
            collections if collections is not None else self._default_collections()
        )
        self.requests: list[RecordedRequest] = []
        self.tts_count = 0
        self.tts_in_flight = 0
        self.max_tts_in_flight = 0
        self.faults = FaultScript()
        self._runner: web.AppRunner | None = None
        self._base_url: str | None = None

    # ---- lifecycle --------------------------------------------------------------------------

    async def start(self) -> FakeElevenLabs:
        """Bind 127.0.0.1 on an ephemeral port and serve."""
        app = web.Application(middlewares=[self._middleware])
        self._add_routes(app.router)
        # handler_cancellation: a client that hangs up ends its request here too, so in-flight
        # counts drop as they would at the service. A short shutdown_timeout keeps teardown fast
        # when a test leaves a stalled stream behind.
        self._runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=0.5, access_log=None
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self._base_url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeElevenLabs:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:PORT``, without a trailing slash."""
        if self._base_url is None:
            raise RuntimeError("FakeElevenLabs is not started")
        return self._base_url

    def url(self, path: str) -> str:
        return self.base_url + path

    @property
    def auth_headers(self) -> dict[str, str]:
        """Headers a well-behaved client sends."""
        return {"xi-api-key": self.api_key}

    # ---- fault injection --------------------------------------------------------------------

    def fail_next(
        self,
        status: int = 429,
        code: str | None = None,
        *,
        message: str | None = None,
        times: int = 1,
        retry_after: float | None = None,
        shape: ErrorShape = "new",
        endpoint: str = "tts",
        loc: tuple[str | int, ...] = ("body", "text"),
    ) -> None:
        """The next ``times`` matching requests get this error instead of being served.

        ``shape``: "old" ``{"detail":{"status","message"}}``, "new"
        ``{"detail":{"type","code","status","message","request_id"}}``, or "text" (a plain
        text body, as proxies send for 5xx). 422 always uses ``{"detail":[{"loc","msg","type"}]}``.
        ``retry_after`` adds a ``Retry-After`` header (seconds, may be fractional).
        ``endpoint``: "tts" (default), "any", a route name (voices_v2, voice, voice_settings,
        default_settings, models, subscription) or a path prefix starting with "/".
        """
        code = code or _DEFAULT_CODES.get(status, "error")
        message = message or _DEFAULT_MESSAGES.get(code, f"Scripted {status} {code}")
        fault = ErrorFault(status, code, message, shape, retry_after, loc)
        self.faults.add_pre(fault, endpoint, times)

    def drop_next(self, *, times: int = 1, endpoint: str = "tts") -> None:
        """Close the connection before any response header, ``times`` times."""
        self.faults.add_pre(DropFault(), endpoint, times)

    def json_next(self, body: Json = None, *, times: int = 1, endpoint: str = "tts") -> None:
        """Answer 200 with ``application/json`` (not audio), ``times`` times."""
        if body is None:
            body = {"detail": {"status": "internal_error", "message": "Audio generation failed"}}
        self.faults.add_pre(JsonOkFault(body), endpoint, times)

    def cut_next(self, after_bytes: int, *, times: int = 1) -> None:
        """Close the next streams after ``after_bytes`` bytes of audio (0: right after headers)."""
        self.faults.add_stream(CutFault(after_bytes), times)

    def stall_next(self, after_bytes: int, seconds: float, *, times: int = 1) -> None:
        """Pause the next streams for ``seconds`` after ``after_bytes`` bytes of audio."""
        self.faults.add_stream(StallFault(after_bytes, seconds), times)

    def clear_faults(self) -> None:
        self.faults.clear()

    # ---- inspection helpers -----------------------------------------------------------------

    @property
    def tts_requests(self) -> list[RecordedRequest]:
        return [r for r in self.requests if r.route == "tts"]

    def voice(self, voice_id: str) -> dict[str, Json] | None:
        return next((v for v in self.voices if v.get("voice_id") == voice_id), None)

    def voice_available(self, voice: dict[str, Json]) -> bool:
        """Whether the fake's tier may use the voice (an empty tier list means every tier)."""
        tiers = voice.get("available_for_tiers") or []
        return not tiers or self.tier in tiers

    @property
    def available_voices(self) -> list[dict[str, Json]]:
        return [v for v in self.voices if self.voice_available(v)]

    @property
    def unavailable_voices(self) -> list[dict[str, Json]]:
        return [v for v in self.voices if not self.voice_available(v)]

    def model(self, model_id: str) -> dict[str, Json] | None:
        return next((m for m in self.models if m.get("model_id") == model_id), None)

    def character_cost(self, text: str, model_id: str = DEFAULT_MODEL_ID) -> int:
        """What a TTS request costs: len(text) × the model's multiplier, rounded up."""
        model = self.model(model_id) or {}
        multiplier = (model.get("model_rates") or {}).get("character_cost_multiplier", 1.0)
        return math.ceil(len(text) * Decimal(str(multiplier)))

    def preview_url(self, voice_id: str) -> str:
        return f"{self.base_url}/previews/{voice_id}.mp3"

    def reset_records(self) -> None:
        """Forget recorded requests and counters (not the in-flight count, which is live)."""
        self.requests.clear()
        self.tts_count = 0
        self.max_tts_in_flight = self.tts_in_flight

    # ---- plumbing ---------------------------------------------------------------------------

    def _default_collections(self) -> dict[str, list[str]]:
        ids = [v["voice_id"] for v in self.voices]
        return {"narrators": ids[1:40:4], "characters": ids[2:40:5]}

    def _add_routes(self, router: web.UrlDispatcher) -> None:
        router.add_get("/v2/voices", self._voices_v2, name="voices_v2")
        router.add_get(
            "/v1/voices/settings/default", self._default_settings, name="default_settings"
        )
        router.add_get(
            "/v1/voices/{voice_id}/settings", self._voice_settings, name="voice_settings"
        )
        router.add_get("/v1/voices/{voice_id}", self._voice, name="voice")
        router.add_get("/v1/models", self._models, name="models")
        router.add_get("/v1/user/subscription", self._subscription, name="subscription")
        router.add_post("/v1/text-to-speech/{voice_id}/stream", self._tts, name="tts")
        router.add_get("/previews/{voice_id}.mp3", self._preview, name="preview")

    def _public_voice(self, voice: dict[str, Json]) -> dict[str, Json]:
        """A copy for the wire, with preview URLs pointing at this fake."""
        out = copy.deepcopy(voice)
        if not out.get("preview_url"):
            out["preview_url"] = self.preview_url(out["voice_id"])
        for lang in out.get("verified_languages") or []:
            if isinstance(lang, dict) and "preview_url" in lang and not lang["preview_url"]:
                lang["preview_url"] = out["preview_url"]
        return out

    def _error(
        self, status: int, code: str, message: str, rec: RecordedRequest, **headers: str
    ) -> web.Response:
        body = error_body(status, code, message, shape=self.error_shape, request_id=rec.request_id)
        return _json_response(status, body, rec.request_id, headers)

    async def _record(
        self, request: web.Request, route: str, received_at: float
    ) -> RecordedRequest:
        body = await request.read()
        parsed: Json | None = None
        if body:
            try:
                parsed = json.loads(body)
            except ValueError:
                parsed = None
        key = request.headers.get("xi-api-key")
        headers = dict(request.headers)
        for name in list(headers):
            if name.lower() == "xi-api-key":
                headers[name] = "<redacted>"
        rec = RecordedRequest(
            method=request.method,
            path=request.path,
            route=route,
            query=MultiDict(request.query),
            headers=headers,
            body=body,
            json=parsed,
            received_at=received_at,
            api_key_present=key is not None,
            api_key_valid=key == self.api_key,
        )
        self.requests.append(rec)
        return rec

    @web.middleware
    async def _middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        """Record, count, apply scripted faults, check the key, then serve: for every route."""
        match = request.match_info
        if match.http_exception is not None:  # FastAPI-like bodies for unknown paths
            exc = match.http_exception
            return web.json_response({"detail": exc.reason}, status=exc.status)
        route = match.route.name or "unknown"
        received_at = time.monotonic()
        is_tts = route == "tts"
        if is_tts:  # count from arrival, before the body is read, as the service would
            self.tts_count += 1
            self.tts_in_flight += 1
            self.max_tts_in_flight = max(self.max_tts_in_flight, self.tts_in_flight)
        try:
            rec = await self._record(request, route, received_at)
            request[_RECORD] = rec
            response = await self._serve(request, handler, rec, route)
            rec.status = None if rec.fault == "DropFault" else response.status
            return response
        finally:
            if is_tts:
                self.tts_in_flight -= 1
            if (recorded := request.get(_RECORD)) is not None:
                recorded.finished_at = time.monotonic()

    async def _serve(
        self,
        request: web.Request,
        handler: Callable[[web.Request], Awaitable[web.StreamResponse]],
        rec: RecordedRequest,
        route: str,
    ) -> web.StreamResponse:
        fault = self.faults.take_pre(route, request.path)
        if fault is not None:
            rec.fault = type(fault).__name__
            log.debug("scripted %r for %s %s", fault, request.method, request.path)
            return self._apply_pre_fault(request, fault, rec)
        if route != "preview" and not rec.api_key_valid:
            body = error_body(401, "invalid_api_key", "Invalid API key", shape="old", request_id="")
            return _json_response(401, body, rec.request_id)
        return await handler(request)

    def _apply_pre_fault(
        self, request: web.Request, fault: PreFault, rec: RecordedRequest
    ) -> web.StreamResponse:
        if isinstance(fault, DropFault):
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=599)  # never reaches the client
        if isinstance(fault, JsonOkFault):
            return _json_response(200, fault.body, rec.request_id)
        headers: dict[str, str] = {"request-id": rec.request_id}
        if fault.retry_after is not None:
            ra = fault.retry_after
            headers["Retry-After"] = str(int(ra)) if float(ra).is_integer() else str(ra)
        if fault.status == 422:
            body: Json = {"detail": [_err(fault.loc, fault.message, "value_error")]}
        elif fault.shape == "text":
            return web.Response(
                status=fault.status, text=fault.message, content_type="text/plain", headers=headers
            )
        else:
            body = error_body(
                fault.status,
                fault.code,
                fault.message,
                shape=fault.shape,
                request_id=rec.request_id,
            )
        return web.json_response(body, status=fault.status, headers=headers)

    # ---- read-only endpoints ----------------------------------------------------------------

    async def _voices_v2(self, request: web.Request) -> web.Response:
        rec = request[_RECORD]
        search, errors = VoiceSearch.parse(rec.query)
        if search is None:
            return _validation_response(errors, rec.request_id)
        voices = search.select(self.voices, self.collections)
        page = voices[search.offset : search.offset + search.page_size]
        has_more = search.offset + search.page_size < len(voices)
        next_token = search.token_for(search.offset + search.page_size) if has_more else None
        result: dict[str, Json] = {
            "voices": [self._public_voice(v) for v in page],
            "has_more": has_more,
            "next_page_token": next_token,
        }
        if search.include_total_count:
            result["total_count"] = len(voices)
        return _json_response(200, result, rec.request_id)

    def _lookup_voice(
        self, request: web.Request
    ) -> tuple[dict[str, Json] | None, web.Response | None]:
        rec = request[_RECORD]
        voice_id = request.match_info["voice_id"]
        voice = self.voice(voice_id)
        if voice is None:
            message = f"A voice with voice_id {voice_id} was not found."
            return None, self._error(404, "voice_not_found", message, rec)
        return voice, None

    async def _voice(self, request: web.Request) -> web.Response:
        rec = request[_RECORD]
        errors = _unknown_query_errors(rec.query, ("with_settings",))
        _parse_bool(rec.query, "with_settings", errors)
        if errors:
            return _validation_response(errors, rec.request_id)
        voice, error = self._lookup_voice(request)
        if error is not None:
            return error
        assert voice is not None
        return _json_response(200, self._public_voice(voice), rec.request_id)

    async def _voice_settings(self, request: web.Request) -> web.Response:
        rec = request[_RECORD]
        if errors := _unknown_query_errors(rec.query, ()):
            return _validation_response(errors, rec.request_id)
        voice, error = self._lookup_voice(request)
        if error is not None:
            return error
        assert voice is not None
        settings = voice.get("settings") or self._defaults()
        return _json_response(200, copy.deepcopy(settings), rec.request_id)

    @staticmethod
    def _defaults() -> dict[str, Json]:
        return {
            "stability": 0.5,
            "similarity_boost": 0.75,
            "style": 0,
            "use_speaker_boost": True,
            "speed": 1,
        }

    async def _default_settings(self, request: web.Request) -> web.Response:
        rec = request[_RECORD]
        if errors := _unknown_query_errors(rec.query, ()):
            return _validation_response(errors, rec.request_id)
        return _json_response(200, self._defaults(), rec.request_id)

    async def _models(self, request: web.Request) -> web.Response:
        rec = request[_RECORD]
        if errors := _unknown_query_errors(rec.query, ()):
            return _validation_response(errors, rec.request_id)
        return _json_response(200, copy.deepcopy(self.models), rec.request_id)

    async def _subscription(self, request: web.Request) -> web.Response:
        rec = request[_RECORD]
        if errors := _unknown_query_errors(rec.query, ()):
            return _validation_response(errors, rec.request_id)
        body = {
            "tier": self.tier,
            "character_count": self.character_count,
            "character_limit": self.character_limit,
            "max_character_limit_extension": 0,
            "can_extend_character_limit": self.tier != "free",
            "allowed_to_extend_character_limit": self.tier != "free",
            "next_character_count_reset_unix": 1_798_761_600,
            "voice_limit": 160 if self.tier != "free" else 3,
            "max_voice_add_edits": 250,
            "voice_add_edit_counter": 7,
            "professional_voice_limit": 1,
            "can_extend_voice_limit": False,
            "can_use_instant_voice_cloning": self.tier != "free",
            "can_use_professional_voice_cloning": self.tier not in ("free", "starter"),
            "currency": "usd",
            "status": "active",
            "billing_period": "monthly_period",
            "character_refresh_period": "monthly_period",
        }
        return _json_response(200, body, rec.request_id)

    async def _preview(self, request: web.Request) -> web.StreamResponse:
        rec = request[_RECORD]
        voice = self.voice(request.match_info["voice_id"])
        if voice is None:
            return web.Response(status=404, text="Not Found", content_type="text/plain")
        text = f"Hello, I am {voice.get('name') or 'a voice'}. {voice.get('description') or ''}"
        audio = await speech.render_speech(voice["voice_id"], text.strip(), DEFAULT_OUTPUT_FORMAT)
        rec.first_byte_at = time.monotonic()
        rec.bytes_sent = len(audio.data)
        return web.Response(body=audio.data, content_type="audio/mpeg")

    # ---- text to speech ---------------------------------------------------------------------

    async def _tts(self, request: web.Request) -> web.StreamResponse:
        rec = request[_RECORD]
        if self.concurrency_limit is not None and self.tts_in_flight > self.concurrency_limit:
            return self._error(
                429,
                "too_many_concurrent_requests",
                _DEFAULT_MESSAGES["too_many_concurrent_requests"],
                rec,
            )
        checked = self._check_tts(request, rec)
        if isinstance(checked, web.Response):
            return checked
        voice_id, text, model_id, fmt = checked
        return await self._stream(request, rec, voice_id, text, model_id, fmt)

    def _check_tts(
        self, request: web.Request, rec: RecordedRequest
    ) -> web.Response | tuple[str, str, str, str]:
        """Validate in the service's order: 422 (shape), then 404/400/403/402/401 (meaning)."""
        content_type = request.headers.get("Content-Type", "")
        if errors := validate_tts_request(rec.query, content_type, rec.json):
            return _validation_response(errors, rec.request_id)
        body: dict[str, Json] = rec.json
        voice, error = self._lookup_voice(request)
        if error is not None:
            return error
        assert voice is not None
        model_id = body.get("model_id") or DEFAULT_MODEL_ID
        text: str = body["text"]
        fmt = rec.query.get("output_format", DEFAULT_OUTPUT_FORMAT)
        refusal = self._refuse_for_model(model_id, body, text, rec)
        if refusal is None:
            refusal = self._refuse_for_plan(voice, fmt, self.character_cost(text, model_id), rec)
        if refusal is not None:
            return refusal
        return voice["voice_id"], text, model_id, fmt

    def _refuse_for_plan(
        self, voice: dict[str, Json], fmt: str, cost: int, rec: RecordedRequest
    ) -> web.Response | None:
        """What the subscription forbids: the format, the voice, or more characters."""
        if fmt not in self.allowed_formats:
            message = (
                f"Your subscription does not allow the output format {fmt}. "
                "Upgrade your plan or choose another format."
            )
            return self._error(403, "output_format_not_allowed", message, rec)
        if not self.voice_available(voice):
            if self.tier == "free":
                return self._error(
                    402, "paid_plan_required", _DEFAULT_MESSAGES["paid_plan_required"], rec
                )
            message = f"The voice {voice['voice_id']} is not available on the {self.tier} tier."
            return self._error(403, "voice_not_available_for_tier", message, rec)
        if self.character_count + cost > self.character_limit:
            remaining = max(0, self.character_limit - self.character_count)
            message = (
                f"This request exceeds your quota of {self.character_limit}. You have {remaining} "
                f"credits remaining, while {cost} credits are required for this request."
            )
            return self._error(401, "quota_exceeded", message, rec)
        return None

    def _refuse_for_model(
        self, model_id: str, body: dict[str, Json], text: str, rec: RecordedRequest
    ) -> web.Response | None:
        model = self.model(model_id)
        if model is None:
            return self._error(
                400, "model_not_found", f"A model with model_id {model_id} was not found.", rec
            )
        if not model.get("can_do_text_to_speech"):
            message = f"The model {model_id} cannot be used for text to speech."
            return self._error(400, "model_can_not_do_text_to_speech", message, rec)
        limit = model["maximum_text_length_per_request"]
        if len(text) > limit:
            message = (
                f"The text is {len(text)} characters long; {model_id} accepts at most {limit} "
                "characters per request."
            )
            return self._error(400, "max_character_limit_exceeded", message, rec)
        language = body.get("language_code")
        if language is not None:
            codes = {lang["language_id"] for lang in model.get("languages") or []}
            if model_id not in _V25_MODELS:
                message = f"The model {model_id} does not support language enforcement."
                return self._error(400, "unsupported_language", message, rec)
            if language not in codes:
                message = f"The model {model_id} does not support the language {language}."
                return self._error(400, "unsupported_language", message, rec)
        if body.get("apply_text_normalization") == "on" and model_id in _V25_MODELS:
            message = f"Text normalization cannot be turned on for {model_id}."
            return self._error(400, "text_normalization_not_supported", message, rec)
        return None

    def _success_headers(
        self, rec: RecordedRequest, cost: int, content_type: str
    ) -> dict[str, str]:
        rng = random.Random(rec.request_id)
        headers = {
            "Content-Type": content_type,
            "request-id": rec.request_id,
            "x-character-count": str(cost),
            "history-item-id": "".join(rng.choice(_ALPHABET) for _ in range(20)),
            "current-concurrent-requests": str(self.tts_in_flight),
            "maximum-concurrent-requests": str(self.max_concurrent_requests),
        }
        if self.send_character_cost:
            headers["character-cost"] = str(cost)
        return headers

    async def _stream(
        self,
        request: web.Request,
        rec: RecordedRequest,
        voice_id: str,
        text: str,
        model_id: str,
        fmt: str,
    ) -> web.StreamResponse:
        """Headers first, then the audio in uneven chunks after the first-byte delay, paced."""
        rendering = asyncio.ensure_future(speech.render_speech(voice_id, text, fmt))
        try:
            cost = self.character_cost(text, model_id)
            self.character_count += cost
            await _sleep_until(rec.received_at + self.headers_delay)
            content_type = speech.OUTPUT_FORMATS[fmt].content_type
            response = web.StreamResponse(
                status=200, headers=self._success_headers(rec, cost, content_type)
            )
            response.enable_chunked_encoding()
            rec.status = 200
            await response.prepare(request)
            rec.headers_sent_at = time.monotonic()
            audio = await rendering
            fault = self.faults.take_stream()
            if fault is not None:
                rec.fault = type(fault).__name__
                log.debug("scripted %r for request %s", fault, rec.request_id)
            await _sleep_until(rec.received_at + self.first_byte_delay)
            writer = _BodyWriter(request, response, rec, self._chunk_rng(rec), self)
            await writer.send(audio, fault)
            return response
        finally:
            if not rendering.done():
                # Reap the render's espeak/ffmpeg now: the fake runs in the test's own process,
                # and tests count that process's children after cancelling a request.
                rendering.cancel()
                await asyncio.gather(rendering, return_exceptions=True)

    def _chunk_rng(self, rec: RecordedRequest) -> random.Random:
        return random.Random(f"{self.seed}:{self.tts_requests.index(rec)}")


class _BodyWriter:
    """Writes one audio body: uneven chunks, pacing, and the scripted cut or stall."""

    def __init__(
        self,
        request: web.Request,
        response: web.StreamResponse,
        rec: RecordedRequest,
        rng: random.Random,
        fake: FakeElevenLabs,
    ) -> None:
        self._request = request
        self._response = response
        self._rec = rec
        self._rng = rng
        self._fake = fake

    def _chunks(self, size: int, fault: StreamFault | None) -> list[tuple[int, int]]:
        """(start, end) pairs covering [0, size), split at the fault's byte offset."""
        low, high = self._fake.chunk_size_range
        bounds: list[tuple[int, int]] = []
        start = 0
        split_at = fault.after_bytes if fault is not None else None
        while start < size:
            end = min(size, start + self._rng.randint(low, high))
            if split_at is not None and start < split_at < end:
                end = split_at
            bounds.append((start, end))
            start = end
        return bounds

    async def send(self, audio: speech.SpeechAudio, fault: StreamFault | None) -> None:
        data, rec = audio.data, self._rec
        size = len(data)
        started = time.monotonic()
        rec.first_byte_at = started
        try:
            for start, end in self._chunks(size, fault):
                if fault is not None and start >= fault.after_bytes:
                    if isinstance(fault, CutFault):
                        self._cut()
                        return
                    await asyncio.sleep(fault.seconds)
                    started += fault.seconds  # carry on at pace, no catch-up burst
                    fault = None
                pace = self._fake.pace
                if pace:
                    await _sleep_until(started + (start / size) * audio.duration / pace)
                await self._response.write(data[start:end])
                rec.bytes_sent += end - start
                rec.chunk_sizes.append(end - start)
                if pace is None:
                    await asyncio.sleep(0)  # let other streams and the client run
            if isinstance(fault, CutFault):  # cut at or beyond the end: still never completes
                self._cut()
                return
            await self._response.write_eof()
        except ConnectionError:
            rec.client_disconnected = True

    def _cut(self) -> None:
        transport = self._request.transport
        if transport is not None:
            transport.close()  # flushes what was written, then closes: the body is incomplete


async def _sleep_until(deadline: float) -> None:
    delay = deadline - time.monotonic()
    if delay > 0:
        await asyncio.sleep(delay)


# --------------------------------------------------------------------------------------------
# pytest fixtures
# --------------------------------------------------------------------------------------------


@pytest_asyncio.fixture
async def fake_elevenlabs() -> AsyncIterator[FakeElevenLabs]:
    """A started fake with default knobs, closed after the test."""
    async with FakeElevenLabs() as fake:
        yield fake


@pytest_asyncio.fixture
async def fake_elevenlabs_factory() -> AsyncIterator[Callable[..., Awaitable[FakeElevenLabs]]]:
    """``await fake_elevenlabs_factory(pace=1.0, ...)``: started fakes with knobs, all closed."""
    started: list[FakeElevenLabs] = []

    async def make(**knobs: Any) -> FakeElevenLabs:
        fake = await FakeElevenLabs(**knobs).start()
        started.append(fake)
        return fake

    yield make
    for fake in started:
        await fake.close()
