"""The API key travels in the xi-api-key header and nowhere else."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from bot.elevenlabs.client import ElevenLabsClient
from bot.elevenlabs.errors import ElevenLabsError
from bot.logging_setup import RedactSecrets, configure_logging
from tests.elevenlabs.conftest import RACHEL, TEXT, MakeClient, read_all
from tests.fakes.elevenlabs import DEFAULT_API_KEY, FakeElevenLabs

WRONG_KEY = "sk_wrong_0123456789abcdefXYZ"


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    caplog.set_level(logging.DEBUG)  # the root logger: aiohttp's and asyncio's records too
    yield caplog


def leaked(text: str) -> bool:
    return DEFAULT_API_KEY in text or WRONG_KEY in text


async def test_the_key_never_shows_in_logs_errors_or_reprs(
    fake_elevenlabs: FakeElevenLabs,
    make_client: MakeClient,
    debug_logs: pytest.LogCaptureFixture,
) -> None:
    client = make_client(fake_elevenlabs)
    errors: list[BaseException] = []
    texts: list[str] = [repr(client), str(client)]

    async def attempt(coro) -> None:  # type: ignore[no-untyped-def]
        try:
            stream, _ = await coro
            texts.append(repr(stream))
        except ElevenLabsError as exc:
            errors.append(exc)

    await attempt(read_all(client))  # success
    for status, code in [
        (401, "invalid_api_key"),
        (401, "needs_authorization"),
        (401, "quota_exceeded"),
        (400, "voice_not_found"),
        (400, "max_character_limit_exceeded"),
        (402, None),
        (403, None),
        (422, None),
    ]:
        fake_elevenlabs.fail_next(status, code, shape="old")
        await attempt(read_all(client))
    fake_elevenlabs.fail_next(429, retry_after=0.001, times=10)  # retries, then exhausted
    await attempt(read_all(client))
    fake_elevenlabs.clear_faults()
    fake_elevenlabs.fail_next(503, shape="text")  # retried, then fine
    await attempt(read_all(client))
    fake_elevenlabs.drop_next(times=10)
    await attempt(read_all(client))
    fake_elevenlabs.clear_faults()
    fake_elevenlabs.json_next()
    await attempt(read_all(client))
    fake_elevenlabs.cut_next(2000)
    await attempt(read_all(client))
    fake_elevenlabs.fail_next(429, endpoint="any", shape="old")
    try:
        await client.subscription()
        await client.get_voice("no-such-voice")
    except ElevenLabsError as exc:
        errors.append(exc)
    wrong = make_client(fake_elevenlabs, api_key=WRONG_KEY)
    texts.append(repr(wrong))
    await attempt(read_all(wrong))

    assert len(errors) >= 13
    for error in errors:
        texts += [str(error), repr(error), str(error.detail), str(error.args)]
    for record in debug_logs.records:
        texts += [record.getMessage(), repr(record.args), record.exc_text or ""]
    assert debug_logs.records  # the retries were logged
    assert not [text for text in texts if leaked(text)]

    # On the wire, only the header carries it: not the path, query or body.
    for rec in fake_elevenlabs.requests:
        assert not leaked(rec.path + str(dict(rec.query)) + rec.body.decode())
    assert all(r.api_key_present for r in fake_elevenlabs.requests)


def test_secretstr_keeps_the_key_out_of_reprs() -> None:
    key = SecretStr(DEFAULT_API_KEY)
    assert not leaked(repr(key) + str(key))


def make_logger(secret: str) -> tuple[logging.Logger, io.StringIO]:
    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    handler.addFilter(RedactSecrets([secret, "", "short"]))
    logger = logging.getLogger(f"tests.redact.{id(out)}")
    logger.propagate = False
    logger.handlers[:] = [handler]
    logger.setLevel(logging.DEBUG)
    return logger, out


def test_redact_secrets_in_a_message_and_its_arguments() -> None:
    logger, out = make_logger(DEFAULT_API_KEY)

    logger.info("header xi-api-key: %s", DEFAULT_API_KEY)
    logger.warning(f"plain {DEFAULT_API_KEY} and again {DEFAULT_API_KEY}")
    logger.info("nothing secret here: %d", 42)

    lines = out.getvalue().splitlines()
    assert lines == [
        "INFO header xi-api-key: [redacted]",
        "WARNING plain [redacted] and again [redacted]",
        "INFO nothing secret here: 42",
    ]


def test_redact_secrets_in_exception_text() -> None:
    logger, out = make_logger(DEFAULT_API_KEY)

    try:
        raise RuntimeError(f"a library echoed {DEFAULT_API_KEY}")
    except RuntimeError:
        logger.exception("request failed")

    text = out.getvalue()
    assert "request failed" in text
    assert "RuntimeError: a library echoed [redacted]" in text
    assert DEFAULT_API_KEY not in text


def test_configure_logging_installs_the_filter() -> None:
    root = logging.getLogger()
    saved_handlers, saved_level = root.handlers[:], root.level
    try:
        configure_logging("DEBUG", secrets=[SecretStr(DEFAULT_API_KEY), None])
        (handler,) = root.handlers
        out = io.StringIO()
        handler.setStream(out)  # type: ignore[attr-defined]
        logging.getLogger("tests.configure").debug("key=%s", DEFAULT_API_KEY)
        assert "key=[redacted]" in out.getvalue()
        assert DEFAULT_API_KEY not in out.getvalue()
        assert root.level == logging.DEBUG
    finally:
        root.handlers[:] = saved_handlers
        root.setLevel(saved_level)


async def test_client_and_stream_reprs(client: ElevenLabsClient) -> None:
    stream = client.stream_speech(RACHEL, TEXT)
    assert not leaked(repr(client) + repr(stream) + repr(vars(stream)))
