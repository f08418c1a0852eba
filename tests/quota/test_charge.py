"""The charging rule, end to end: a real streaming request to a loopback server.

`synthesize` below is the wiring shown in `bot.quota.charge`'s docstring; the server plays
each outcome ElevenLabs can produce, and the database must show the rule applied.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from sqlalchemy import select

from bot.quota import (
    ChargePolicy,
    Decision,
    Outcome,
    QuotaLedger,
    SynthesisCharge,
    parse_character_cost,
)
from bot.quota.tables import quota_ledger
from tests.quota.support import GUILD, USER, counters, reservation_states

ESTIMATE = 50
RETRYABLE = {429, 500, 502, 503}


class TTSError(Exception):
    pass


class Sink(list[bytes]):
    """Where the audio goes; `first` is set when the first chunk arrived."""

    def __init__(self) -> None:
        super().__init__()
        self.first = asyncio.Event()

    def append(self, chunk: bytes) -> None:
        super().append(chunk)
        self.first.set()


@dataclass(frozen=True)
class Step:
    """What the fake answers to one request."""

    status: int = 200
    cost: int | None = None
    chunks: int = 3
    then: str = "end"  # "end", "cut" (connection dropped mid-body), "hang" (body never ends)
    hang_before_headers: bool = False


class ScriptedTTS:
    """A loopback stand-in for the streaming endpoint: request n gets steps[n]."""

    def __init__(self, steps: list[Step]) -> None:
        self.steps = list(steps)
        self.requests = 0
        self.received = asyncio.Event()

    async def handle(self, request: web.Request) -> web.StreamResponse:
        step = self.steps[self.requests]
        self.requests += 1
        self.received.set()
        if step.hang_before_headers:
            await asyncio.sleep(3600)
        if step.status >= 400:
            return web.json_response({"detail": {"status": "error"}}, status=step.status)
        headers = {"request-id": f"req-{self.requests}"}
        if step.cost is not None:
            headers["character-cost"] = str(step.cost)
        response = web.StreamResponse(headers=headers)
        response.content_type = "audio/mpeg"
        await response.prepare(request)
        for _ in range(step.chunks):
            await response.write(b"\xff" * 512)
            await asyncio.sleep(0.01)
        if step.then == "cut":
            assert request.transport is not None
            request.transport.close()
            return response
        if step.then == "hang":
            await asyncio.sleep(3600)
        await response.write_eof()
        return response


async def synthesize(
    session: aiohttp.ClientSession, url: str, charge: SynthesisCharge, sink: list[bytes]
) -> None:
    """The player's side: the retry loop and streaming, with the charge wrapped around."""
    async with charge:
        for attempt in range(3):
            async with session.post(url, json={"text": "..."}) as response:
                if response.status >= 400:
                    charge.error_status(response.status)
                    if response.status in RETRYABLE and attempt < 2:
                        continue  # before the first byte: the same reservation
                    raise TTSError(response.status)
                charge.headers_received(
                    parse_character_cost(response.headers.get("character-cost")),
                    request_id=response.headers.get("request-id"),
                )
                async for chunk in response.content.iter_any():
                    sink.append(chunk)
                return
        raise TTSError("retries exhausted")


@pytest.fixture
async def tts() -> AsyncIterator[tuple[ScriptedTTS, TestServer]]:
    fake = ScriptedTTS([])
    app = web.Application()
    app.router.add_post("/v1/text-to-speech/{voice}/stream", fake.handle)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield fake, server
    finally:
        await server.close()


@dataclass(frozen=True)
class Case:
    steps: list[Step]
    billed: int  # credits charged in the end
    outcome: Outcome
    raises: type[BaseException] | None = None
    cancel: str | None = None  # "after_first_chunk" or "when_received"


CASES = {
    "success": Case([Step(cost=37)], 37, Outcome.SUCCESS),
    "success_without_header": Case([Step()], ESTIMATE, Outcome.SUCCESS),
    "429_then_success": Case([Step(status=429), Step(cost=40)], 40, Outcome.SUCCESS),
    "401": Case([Step(status=401)], 0, Outcome.ERROR_STATUS, TTSError),
    "5xx_storm": Case([Step(status=503)] * 3, 0, Outcome.ERROR_STATUS, TTSError),
    "cut_mid_stream": Case(
        [Step(cost=37, then="cut")], 37, Outcome.FAILED, aiohttp.ClientPayloadError
    ),
    "skip_after_headers": Case(
        [Step(cost=37, then="hang")],
        37,
        Outcome.CANCELLED,
        asyncio.CancelledError,
        "after_first_chunk",
    ),
    "cancel_before_headers": Case(
        [Step(hang_before_headers=True)],
        0,
        Outcome.CANCELLED,
        asyncio.CancelledError,
        "when_received",
    ),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_every_outcome_is_charged_by_the_rule(
    name: str, ledger: QuotaLedger, db_engine, tts
) -> None:
    case = CASES[name]
    fake, server = tts
    fake.steps = case.steps
    url = str(server.make_url("/v1/text-to-speech/voice-1/stream"))
    charge = await ledger.charge(
        GUILD, USER, ESTIMATE, model_id="eleven_flash_v2_5", voice_id="voice-1", characters=100
    )
    sink = Sink()
    async with aiohttp.ClientSession() as session:
        task = asyncio.create_task(synthesize(session, url, charge, sink))
        if case.cancel == "after_first_chunk":
            await sink.first.wait()
            task.cancel()
        elif case.cancel == "when_received":
            await fake.received.wait()
            task.cancel()
        if case.raises is None:
            await task
        else:
            with pytest.raises(case.raises):
                await task

    assert fake.requests == len(case.steps)
    totals = await counters(db_engine)
    assert totals == {
        "used": case.billed,
        "reserved": 0,
        "user_used": case.billed,
        "user_reserved": 0,
    }
    # One synthesis, one reservation, one ledger row, however many attempts it took.
    assert len(await reservation_states(db_engine)) == 1
    async with db_engine.connect() as conn:
        [row] = (await conn.execute(select(quota_ledger))).all()
    assert row.id == charge.reservation.id
    assert (row.credits_reserved, row.credits_billed, row.outcome) == (
        ESTIMATE,
        case.billed,
        case.outcome.value,
    )
    if case.billed:
        assert row.request_id == f"req-{fake.requests}"


async def test_explicit_finish_wins_and_is_idempotent(ledger: QuotaLedger, db_engine) -> None:
    charge = await ledger.charge(GUILD, USER, ESTIMATE, model_id=None, voice_id=None, characters=1)
    async with charge:
        charge.headers_received(12, request_id="r")
        assert charge.decision is Decision.SETTLE
        assert await charge.finish(Outcome.CANCELLED)
        assert await charge.finish(Outcome.SUCCESS)  # the first call's result
    assert charge.finished
    assert (await counters(db_engine))["used"] == 12
    async with db_engine.connect() as conn:
        assert (await conn.scalar(select(quota_ledger.c.outcome))) == "cancelled"


async def test_two_billed_responses_are_both_charged(ledger: QuotaLedger, db_engine) -> None:
    charge = await ledger.charge(GUILD, USER, ESTIMATE, model_id=None, voice_id=None, characters=1)
    async with charge:
        charge.headers_received(10)
        charge.headers_received(None)  # a second billed response, no header: the estimate
    assert (await counters(db_engine))["used"] == 10 + ESTIMATE


async def test_a_failed_finish_never_masks_the_request_error(
    ledger: QuotaLedger, db_engine, monkeypatch
) -> None:
    charge = await ledger.charge(GUILD, USER, ESTIMATE, model_id=None, voice_id=None, characters=1)

    async def broken(*args, **kwargs):
        raise RuntimeError("database down")

    monkeypatch.setattr(ledger, "release", broken)
    with pytest.raises(TTSError):
        async with charge:
            raise TTSError("connection refused")
    # The hold is left for `expire_stale`.
    assert (await counters(db_engine))["reserved"] == ESTIMATE


@pytest.mark.parametrize(
    ("headers", "decision"), [(False, Decision.RELEASE), (True, Decision.SETTLE)]
)
def test_policy(headers: bool, decision: Decision) -> None:
    assert ChargePolicy.decide(headers_received=headers) is decision


@pytest.mark.parametrize(
    ("value", "credits"),
    [(None, None), ("37", 37), (" 12 ", 12), ("0", 0), ("-3", None), ("abc", None), ("", None)],
)
def test_parse_character_cost(value: str | None, credits: int | None) -> None:
    assert parse_character_cost(value) == credits


async def test_cancelled_again_while_finishing_still_settles(
    ledger: QuotaLedger, db_engine, monkeypatch
) -> None:
    real_settle = ledger.settle
    settling = asyncio.Event()

    async def slow_settle(*args, **kwargs):
        settling.set()
        await asyncio.sleep(0.1)
        return await real_settle(*args, **kwargs)

    monkeypatch.setattr(ledger, "settle", slow_settle)
    charge = await ledger.charge(GUILD, USER, ESTIMATE, model_id=None, voice_id=None, characters=1)
    streaming = asyncio.Event()

    async def play() -> None:
        async with charge:
            charge.headers_received(10)
            streaming.set()
            await asyncio.sleep(3600)

    task = asyncio.create_task(play())
    await streaming.wait()
    task.cancel()  # skip
    await settling.wait()
    task.cancel()  # and again, while the settle is being written
    with pytest.raises(asyncio.CancelledError):
        await task
    assert await charge.finish(Outcome.CANCELLED)  # the shielded settle completes
    assert (await counters(db_engine))["used"] == 10
