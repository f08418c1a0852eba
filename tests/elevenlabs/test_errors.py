"""Every error the service answers with becomes the right typed exception, retried or not.

Retries are only allowed before the first audio byte: afterwards they would repeat audio and
billing. The fake counts the requests it saw, which is what these tests check.
"""

from __future__ import annotations

from typing import Any

import pytest

from bot.elevenlabs.client import ElevenLabsClient, RetryPolicy
from bot.elevenlabs.errors import (
    AuthenticationError,
    BadRequestError,
    ConnectionFailedError,
    ElevenLabsError,
    PaidPlanRequiredError,
    PlanRestrictionError,
    QuotaExceededError,
    RateLimitedError,
    RequestValidationError,
    ServerError,
    StreamInterruptedError,
    TextTooLongError,
    UnexpectedResponseError,
    VoiceNotFoundError,
    error_from_response,
    parse_retry_after,
)
from tests.elevenlabs.conftest import RACHEL, TEXT, MakeClient, no_jitter, read_all
from tests.fakes import speech
from tests.fakes.elevenlabs import DEFAULT_API_KEY, FakeElevenLabs

# (status, code, the exception it must become); none of these may be retried.
FINAL_ERRORS: list[tuple[int, str, type[ElevenLabsError]]] = [
    (401, "invalid_api_key", AuthenticationError),
    (401, "needs_authorization", AuthenticationError),
    (401, "quota_exceeded", QuotaExceededError),
    (400, "voice_not_found", VoiceNotFoundError),
    (404, "voice_not_found", VoiceNotFoundError),
    (400, "voice_does_not_exist", VoiceNotFoundError),
    (404, "voice_does_not_exist", VoiceNotFoundError),
    (400, "max_character_limit_exceeded", TextTooLongError),
    (402, "paid_plan_required", PaidPlanRequiredError),
    (403, "output_format_not_allowed", PlanRestrictionError),
    (403, "voice_not_available_for_tier", PlanRestrictionError),
    (403, "forbidden", PlanRestrictionError),
    (400, "unsupported_language", BadRequestError),
]
RATE_LIMIT_CODES = [
    "too_many_concurrent_requests",
    "concurrent_limit_exceeded",
    "system_busy",
    "rate_limit_exceeded",
]
SHAPES = ["new", "old"]


def assert_user_facing(error: BaseException) -> None:
    """A sentence for people: capitalised, ends with a full stop, one line, no secret."""
    message = str(error)
    assert message[:1].isupper(), message
    assert message.endswith("."), message
    assert "\n" not in message
    for text in (message, repr(error), str(getattr(error, "detail", ""))):
        assert DEFAULT_API_KEY not in text


# ---- errors that are final --------------------------------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("status", "code", "expected"), FINAL_ERRORS)
async def test_final_errors_on_speech_are_typed_and_never_retried(
    client: ElevenLabsClient,
    fake_elevenlabs: FakeElevenLabs,
    status: int,
    code: str,
    expected: type[ElevenLabsError],
    shape: str,
) -> None:
    fake_elevenlabs.fail_next(status, code, shape=shape, times=5)

    with pytest.raises(expected) as caught:
        await read_all(client)

    error = caught.value
    assert type(error) is expected
    assert (error.status, error.code) == (status, code)
    assert not error.retryable
    assert error.detail  # the service's own words, kept for the logs
    if shape == "new":
        assert error.request_id == fake_elevenlabs.tts_requests[0].request_id
    assert fake_elevenlabs.tts_count == 1
    assert client.in_flight == 0
    assert_user_facing(error)


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("status", "code", "expected"), FINAL_ERRORS)
async def test_final_errors_on_json_endpoints(
    client: ElevenLabsClient,
    fake_elevenlabs: FakeElevenLabs,
    status: int,
    code: str,
    expected: type[ElevenLabsError],
    shape: str,
) -> None:
    fake_elevenlabs.fail_next(status, code, shape=shape, endpoint="any", times=5)

    with pytest.raises(expected):
        await client.get_voice(RACHEL)
    assert len(fake_elevenlabs.requests) == 1


async def test_validation_error_lists_the_locations(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs, caplog: pytest.LogCaptureFixture
) -> None:
    fake_elevenlabs.fail_next(422, loc=("body", "voice_settings", "speed"), times=5)

    with pytest.raises(RequestValidationError) as caught:
        await read_all(client)

    assert caught.value.locations == ["body.voice_settings.speed"]
    assert caught.value.status == 422
    assert fake_elevenlabs.tts_count == 1
    assert_user_facing(caught.value)
    assert "body.voice_settings.speed" in caplog.text  # our bug: the log says where


async def test_a_genuinely_invalid_request_is_refused_by_the_fake_with_422(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    with pytest.raises(RequestValidationError) as caught:
        await read_all(client, seed=-1)
    assert caught.value.locations == ["body.seed"]

    with pytest.raises(RequestValidationError) as caught:
        await read_all(client, output_format="mp3_1_2")
    assert caught.value.locations == ["query.output_format"]
    assert fake_elevenlabs.tts_count == 2


async def test_real_refusals_from_the_fake(
    fake_elevenlabs_factory: Any, make_client: MakeClient
) -> None:
    fake = await fake_elevenlabs_factory(
        tier="free", allowed_formats=["mp3_44100_128"], character_limit=100
    )
    client = make_client(fake)
    usable = fake.available_voices[0]["voice_id"]

    with pytest.raises(VoiceNotFoundError):
        await read_all(client, "no-such-voice")
    with pytest.raises(PaidPlanRequiredError):
        await read_all(client, RACHEL)  # only for creator and enterprise
    with pytest.raises(PlanRestrictionError):
        await read_all(client, usable, output_format="pcm_16000")
    with pytest.raises(TextTooLongError):
        await read_all(client, usable, text="x" * 10_001)
    with pytest.raises(QuotaExceededError):
        await read_all(client, usable, text="y" * 101)
    assert fake.tts_count == 5
    assert client.in_flight == 0


async def test_a_wrong_key_is_an_authentication_error(
    fake_elevenlabs: FakeElevenLabs, make_client: MakeClient
) -> None:
    wrong = "wrong-key-abcdefghijklmnop"
    client = make_client(fake_elevenlabs, api_key=wrong)

    with pytest.raises(AuthenticationError) as on_speech:
        await read_all(client)
    with pytest.raises(AuthenticationError) as on_json:
        await client.subscription()

    assert len(fake_elevenlabs.requests) == 2
    for caught in (on_speech, on_json):
        assert_user_facing(caught.value)
        assert wrong not in str(caught.value) and wrong not in repr(caught.value)


async def test_json_on_a_200_is_not_audio_and_not_retried(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    fake_elevenlabs.json_next(times=5)

    with pytest.raises(UnexpectedResponseError) as caught:
        await read_all(client)

    assert caught.value.status == 200
    assert fake_elevenlabs.tts_count == 1
    assert client.in_flight == 0
    assert_user_facing(caught.value)


# ---- errors that are retried before the first byte -------------------------------------------


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("code", RATE_LIMIT_CODES)
async def test_429_then_success_is_one_stream(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs, code: str, shape: str
) -> None:
    fake_elevenlabs.fail_next(429, code, shape=shape)

    stream, audio = await read_all(client)

    assert audio == (await speech.render_speech(RACHEL, TEXT, "mp3_44100_128")).data
    assert [r.status for r in fake_elevenlabs.tts_requests] == [429, 200]
    assert stream.attempts == 2
    assert stream.request_id == fake_elevenlabs.tts_requests[1].request_id


@pytest.mark.parametrize("code", RATE_LIMIT_CODES)
async def test_429_exhausted_is_rate_limited(
    fake_elevenlabs: FakeElevenLabs, make_client: MakeClient, code: str
) -> None:
    policy = RetryPolicy(max_retries=2, budget=5.0, base_delay=0.001, max_delay=0.002)
    client = make_client(fake_elevenlabs, retry=policy)
    fake_elevenlabs.fail_next(429, code, times=10, retry_after=0.01)

    with pytest.raises(RateLimitedError) as caught:
        await read_all(client)

    assert caught.value.code == code
    assert caught.value.retry_after == 0.01
    assert fake_elevenlabs.tts_count == 3  # the first try and max_retries more
    assert client.in_flight == 0
    assert_user_facing(caught.value)


async def test_retry_after_is_honoured(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    fake_elevenlabs.fail_next(429, retry_after=0.2)

    await read_all(client)

    first, second = fake_elevenlabs.tts_requests
    # A lower bound only: the client may wait longer, never less than the server asked.
    assert second.received_at - first.received_at >= 0.19


async def test_retry_after_beyond_the_budget_gives_up_at_once(
    fake_elevenlabs: FakeElevenLabs, make_client: MakeClient
) -> None:
    client = make_client(fake_elevenlabs, retry=RetryPolicy(max_retries=5, budget=1.0))
    fake_elevenlabs.fail_next(429, retry_after=30)

    with pytest.raises(RateLimitedError) as caught:
        await read_all(client)

    assert caught.value.retry_after == 30
    assert fake_elevenlabs.tts_count == 1


async def test_the_time_budget_bounds_retries(
    fake_elevenlabs: FakeElevenLabs, make_client: MakeClient
) -> None:
    policy = RetryPolicy(max_retries=10, budget=0.05, base_delay=0.03, max_delay=0.03)
    client = make_client(fake_elevenlabs, retry=policy, rng=lambda: 1.0)  # full 0.03 s waits
    fake_elevenlabs.fail_next(503, times=20)

    with pytest.raises(ServerError):
        await read_all(client)

    # Each wait is at least 0.03 s, so a second retry would overrun the 0.05 s budget.
    assert 1 <= fake_elevenlabs.tts_count <= 2


async def test_no_retries_when_max_retries_is_zero(
    fake_elevenlabs: FakeElevenLabs, make_client: MakeClient
) -> None:
    client = make_client(fake_elevenlabs, retry=RetryPolicy(max_retries=0))
    fake_elevenlabs.fail_next(503)

    with pytest.raises(ServerError):
        await read_all(client)
    assert fake_elevenlabs.tts_count == 1


@pytest.mark.parametrize("shape", ["new", "old", "text"])
@pytest.mark.parametrize("status", [500, 502, 503, 504])
async def test_5xx_is_retried(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs, status: int, shape: str
) -> None:
    fake_elevenlabs.fail_next(status, shape=shape, times=2)

    _, audio = await read_all(client)

    assert audio
    assert [r.status for r in fake_elevenlabs.tts_requests] == [status, status, 200]


async def test_5xx_exhausted_is_a_server_error(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    fake_elevenlabs.fail_next(500, shape="text", times=10)

    with pytest.raises(ServerError) as caught:
        await read_all(client)

    assert caught.value.retryable
    assert fake_elevenlabs.tts_count == client.retry.max_retries + 1
    assert_user_facing(caught.value)


async def test_a_dropped_connection_is_retried(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    fake_elevenlabs.drop_next()

    _, audio = await read_all(client)

    assert audio
    assert fake_elevenlabs.tts_count == 2


async def test_dropped_connections_exhausted(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    fake_elevenlabs.drop_next(times=10)

    with pytest.raises(ConnectionFailedError) as caught:
        await read_all(client)

    assert fake_elevenlabs.tts_count == client.retry.max_retries + 1
    assert client.in_flight == 0
    assert_user_facing(caught.value)


async def test_an_unreachable_service_is_a_connection_failure(
    unused_tcp_port: int, make_client: MakeClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    client = make_client(fake_elevenlabs)
    client.base_url = f"http://127.0.0.1:{unused_tcp_port}"

    with pytest.raises(ConnectionFailedError) as on_speech:
        await read_all(client)
    with pytest.raises(ConnectionFailedError):
        await client.subscription()
    assert client.in_flight == 0
    assert_user_facing(on_speech.value)


async def test_json_endpoints_retry_too(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    fake_elevenlabs.fail_next(429, "system_busy", shape="old", endpoint="subscription")
    fake_elevenlabs.fail_next(502, shape="text", endpoint="subscription")
    fake_elevenlabs.drop_next(endpoint="subscription")

    sub = await client.subscription()

    assert sub.tier == "creator"
    assert [r.status for r in fake_elevenlabs.requests] == [429, 502, None, 200]


async def test_a_stream_ending_before_any_audio_is_retried(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    fake_elevenlabs.cut_next(0)  # headers said 200, then the connection closed: no audio yet

    stream, audio = await read_all(client)

    assert audio == (await speech.render_speech(RACHEL, TEXT, "mp3_44100_128")).data
    assert fake_elevenlabs.tts_count == 2
    assert stream.attempts == 2


async def test_a_stall_before_the_first_byte_is_retried(
    fake_elevenlabs: FakeElevenLabs, make_client: MakeClient
) -> None:
    client = make_client(fake_elevenlabs, read_timeout=0.3)
    fake_elevenlabs.stall_next(0, 30)

    _, audio = await read_all(client)

    assert audio
    assert fake_elevenlabs.tts_count == 2


# ---- never after the first byte ----------------------------------------------------------------


async def test_a_cut_after_audio_started_is_never_retried(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    expected = (await speech.render_speech(RACHEL, TEXT, "mp3_44100_128")).data
    fake_elevenlabs.cut_next(3000)
    received = bytearray()

    async with client.stream_speech(RACHEL, TEXT) as stream:
        with pytest.raises(StreamInterruptedError) as caught:
            async for chunk in stream:
                received += chunk
        assert client.in_flight == 0  # released at the break, not at the end of the block

    assert 0 < len(received) <= 3000
    assert expected.startswith(bytes(received))
    assert not stream.complete
    assert fake_elevenlabs.tts_count == 1
    assert caught.value.request_id == fake_elevenlabs.tts_requests[0].request_id
    assert_user_facing(caught.value)


async def test_a_stall_after_audio_started_times_out_and_is_never_retried(
    fake_elevenlabs: FakeElevenLabs, make_client: MakeClient
) -> None:
    client = make_client(fake_elevenlabs, read_timeout=0.3)
    fake_elevenlabs.stall_next(2000, 30)

    with pytest.raises(StreamInterruptedError):
        await read_all(client)

    assert fake_elevenlabs.tts_count == 1
    assert client.in_flight == 0


# ---- the pieces ------------------------------------------------------------------------------


def test_backoff_grows_is_capped_and_never_undercuts_retry_after() -> None:
    policy = RetryPolicy(base_delay=0.25, max_delay=4.0)

    assert [policy.delay(n, None, no_jitter) for n in range(6)] == [
        0.125,
        0.25,
        0.5,
        1.0,
        2.0,
        2.0,
    ]
    assert policy.delay(3, None, lambda: 1.0) == 2.0
    assert policy.delay(10, None, lambda: 1.0) == 4.0
    assert policy.delay(0, 3.0, no_jitter) == 3.0


@pytest.mark.parametrize(
    ("body", "status", "expected", "code"),
    [
        (b'{"detail":{"status":"quota_exceeded","message":"m"}}', 401, QuotaExceededError, None),
        (b'{"detail":{"code":"invalid_api_key","status":"x"}}', 401, AuthenticationError, None),
        (b'{"detail":"Not Found"}', 404, VoiceNotFoundError, None),
        (b"<html>bad gateway</html>", 502, ServerError, None),
        (b"", 503, ServerError, None),
        (b"[1, 2]", 429, RateLimitedError, None),
        (b'{"detail":{"status":"voice_not_found"}}', 500, ServerError, "voice_not_found"),
    ],
)
def test_error_from_unusual_bodies(
    body: bytes, status: int, expected: type[ElevenLabsError], code: str | None
) -> None:
    error = error_from_response(status, body)
    assert type(error) is expected
    if code:
        assert error.code == code
    assert_user_facing(error)


async def test_retry_after_on_a_503_is_honoured_too(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    fake_elevenlabs.fail_next(503, retry_after=0.2, shape="text")

    await read_all(client)

    first, second = fake_elevenlabs.tts_requests
    assert second.received_at - first.received_at >= 0.19


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ("", None),
        ("3", 3.0),
        ("0.5", 0.5),
        ("-1", None),
        ("soon", None),
        ("Thu, 01 Jan 2026 00:00:10 GMT", 10.0),  # an HTTP date, 10 s after `now`
        ("Wed, 31 Dec 2025 23:59:00 GMT", 0.0),  # already past: no wait
    ],
)
def test_parse_retry_after(value: str | None, expected: float | None) -> None:
    now = 1_767_225_600.0  # 2026-01-01T00:00:00Z
    assert parse_retry_after(value, now=now) == expected
