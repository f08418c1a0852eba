"""The charging rule with the real `ElevenLabsClient` against the strict ElevenLabs fake.

This is the wiring the player uses (`bot.quota.charge` docstring): `stream_speech` with
`on_headers=charge.on_headers` inside `async with charge`. Every outcome the fake can
produce must leave the counters and the ledger as the rule says.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass

import aiohttp
import pytest
from pydantic import SecretStr
from sqlalchemy import select

from bot.elevenlabs.client import ElevenLabsClient, RetryPolicy
from bot.elevenlabs.errors import (
    AuthenticationError,
    ConnectionFailedError,
    ElevenLabsError,
    ServerError,
    StreamInterruptedError,
    UnexpectedResponseError,
)
from bot.quota import Outcome, QuotaLedger, SynthesisCharge, estimate_credits
from bot.quota.tables import quota_ledger
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.quota.support import GUILD, USER, counters, reservation_states

VOICE = "21m00Tcm4TlvDq8ikWAM"
MODEL = "eleven_flash_v2_5"  # 0.5 credit per character
TEXT = "Hello there, this is a test, read aloud by the quota ledger tests."
FAST_RETRY = RetryPolicy(max_retries=3, budget=5.0, base_delay=0.001, max_delay=0.004)


class Sink(list[bytes]):
    def __init__(self) -> None:
        super().__init__()
        self.first = asyncio.Event()

    def append(self, chunk: bytes) -> None:
        super().append(chunk)
        self.first.set()


async def speak(
    ledger: QuotaLedger, client: ElevenLabsClient, sink: Sink, charge_box: list[SynthesisCharge]
) -> None:
    """The player's side, as documented in `bot.quota.charge`."""
    charge = await ledger.charge(
        GUILD,
        USER,
        estimate_credits(len(TEXT), 0.5),
        model_id=MODEL,
        voice_id=VOICE,
        characters=len(TEXT),
    )
    charge_box.append(charge)
    async with (
        charge,
        client.stream_speech(VOICE, TEXT, model_id=MODEL, on_headers=charge.on_headers) as stream,
    ):
        async for chunk in stream:
            sink.append(chunk)


@dataclass(frozen=True)
class Case:
    script: Callable[[FakeElevenLabs], None]
    charged: bool
    outcome: Outcome
    requests: int
    raises: type[BaseException] | None = None
    cancel: str | None = None  # "after_first_chunk" or "when_sent"
    knobs: tuple[tuple[str, object], ...] = ()


def _nothing(fake: FakeElevenLabs) -> None:
    pass


CASES = {
    "success": Case(_nothing, True, Outcome.SUCCESS, 1),
    "success_without_character_cost": Case(
        _nothing, True, Outcome.SUCCESS, 1, knobs=(("send_character_cost", False),)
    ),
    "429_then_success": Case(lambda f: f.fail_next(429), True, Outcome.SUCCESS, 2),
    "dropped_then_success": Case(lambda f: f.drop_next(), True, Outcome.SUCCESS, 2),
    "401": Case(lambda f: f.fail_next(401), False, Outcome.ERROR_STATUS, 1, AuthenticationError),
    "5xx_storm": Case(
        lambda f: f.fail_next(503, times=10), False, Outcome.ERROR_STATUS, 4, ServerError
    ),
    "dropped_every_time": Case(
        lambda f: f.drop_next(times=10), False, Outcome.FAILED, 4, ConnectionFailedError
    ),
    "json_instead_of_audio": Case(
        lambda f: f.json_next(), False, Outcome.FAILED, 1, UnexpectedResponseError
    ),
    "cut_mid_stream": Case(
        lambda f: f.cut_next(after_bytes=2000), True, Outcome.FAILED, 1, StreamInterruptedError
    ),
    "skip_after_headers": Case(
        lambda f: f.stall_next(after_bytes=1, seconds=30),
        True,
        Outcome.CANCELLED,
        1,
        asyncio.CancelledError,
        "after_first_chunk",
    ),
    "cancel_before_headers": Case(
        _nothing,
        False,
        Outcome.CANCELLED,
        1,
        asyncio.CancelledError,
        "when_sent",
        knobs=(("headers_delay", 30.0),),
    ),
}


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.mark.parametrize("name", list(CASES))
async def test_every_outcome_of_the_fake(
    name: str,
    ledger: QuotaLedger,
    db_engine,
    http: aiohttp.ClientSession,
    fake_elevenlabs_factory: Callable[..., Awaitable[FakeElevenLabs]],
) -> None:
    case = CASES[name]
    fake = await fake_elevenlabs_factory(**dict(case.knobs))
    case.script(fake)
    client = ElevenLabsClient(
        http, SecretStr(fake.api_key), base_url=fake.base_url, retry=FAST_RETRY, rng=lambda: 0.0
    )
    sink = Sink()
    box: list[SynthesisCharge] = []
    task = asyncio.create_task(speak(ledger, client, sink, box))
    if case.cancel == "after_first_chunk":
        await asyncio.wait_for(sink.first.wait(), timeout=10)
        task.cancel()
    elif case.cancel == "when_sent":
        for _ in range(1000):
            if fake.tts_requests:
                break
            await asyncio.sleep(0.01)
        task.cancel()
    if case.raises is None:
        await task
    else:
        with pytest.raises(case.raises):
            await task

    [charge] = box
    cost = fake.character_cost(TEXT, MODEL)
    assert cost == len(TEXT) // 2 + len(TEXT) % 2
    billed = cost if case.charged else 0
    assert len(fake.tts_requests) == case.requests
    assert await counters(db_engine) == {
        "used": billed,
        "reserved": 0,
        "user_used": billed,
        "user_reserved": 0,
    }
    assert len(await reservation_states(db_engine)) == 1  # retries share the reservation
    async with db_engine.connect() as conn:
        [row] = (await conn.execute(select(quota_ledger))).all()
    assert row.id == charge.reservation.id
    assert (row.credits_billed, row.outcome) == (billed, case.outcome.value)
    if case.charged:
        assert row.request_id == fake.tts_requests[-1].request_id


async def test_error_status_outcome_comes_from_the_exception(
    ledger: QuotaLedger, db_engine
) -> None:
    charge = await ledger.charge(GUILD, USER, 10, model_id=None, voice_id=None, characters=20)
    with pytest.raises(ElevenLabsError):
        async with charge:
            raise ServerError(status=502)
    async with db_engine.connect() as conn:
        [row] = (await conn.execute(select(quota_ledger))).all()
    assert (row.credits_billed, row.outcome) == (0, "error_status")
