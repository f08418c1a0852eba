"""`QuotaService`: estimates, refusals, ElevenLabs' own quota, alerts, maintenance, privacy.

The ledger is real (every test runs on SQLite, and on PostgreSQL when TEST_DATABASE_URL is
set), ElevenLabs is the strict fake behind a real `ElevenLabsClient`, and time is a
settable clock: nothing here waits for the wall clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.elevenlabs.client import ElevenLabsClient, RetryPolicy
from bot.elevenlabs.errors import QuotaExceededError
from bot.elevenlabs.models import VoiceSettings
from bot.quota import Outcome, QuotaExceeded, QuotaLedger, QuotaLimit
from bot.quota.service import (
    AccountCreditsExhausted,
    AccountExhausted,
    QuotaRefused,
    QuotaService,
    QuotaSettings,
)
from bot.quota.tables import quota_ledger
from bot.storage.base import metadata
from bot.tts import ChargedJob, VoiceChoice
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.quota.support import GUILD, NOW, OTHER_USER, USER, counters, reservation_states

VOICE = "21m00Tcm4TlvDq8ikWAM"
FLASH = "eleven_flash_v2_5"
TURBO = "eleven_turbo_v2_5"
MULTILINGUAL = "eleven_multilingual_v2"
FAKE_RESET = datetime.fromtimestamp(1_798_761_600, UTC)  # the fake's subscription reset
NEXT_PERIOD = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp())  # NOW's period ends then
NEXT_DAY = int(datetime(2026, 11, 23, tzinfo=UTC).timestamp())


class Clock:
    def __init__(self, now: datetime = NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def choice(model_id: str | None = FLASH) -> VoiceChoice:
    return VoiceChoice(VOICE, model_id, VoiceSettings())


@pytest.fixture
async def client(fake_elevenlabs: FakeElevenLabs) -> AsyncIterator[ElevenLabsClient]:
    async with aiohttp.ClientSession() as session:
        yield ElevenLabsClient(
            session,
            SecretStr(fake_elevenlabs.api_key),
            base_url=fake_elevenlabs.base_url,
            retry=RetryPolicy(max_retries=1, budget=1.0, base_delay=0.001, max_delay=0.002),
        )


class Hooks:
    def __init__(self) -> None:
        self.alerts: list[Any] = []
        self.owner: list[AccountExhausted] = []

    async def alert(self, alert: Any) -> None:
        self.alerts.append(alert)

    async def exhausted(self, notice: AccountExhausted) -> None:
        self.owner.append(notice)


@pytest.fixture
def hooks() -> Hooks:
    return Hooks()


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
async def service(
    ledger: QuotaLedger, client: ElevenLabsClient, hooks: Hooks, clock: Clock
) -> AsyncIterator[QuotaService]:
    service = QuotaService(
        ledger,
        client=client,
        default_model=FLASH,
        on_alert=hooks.alert,
        on_account_exhausted=hooks.exhausted,
        clock=clock,
    )
    yield service
    await service.aclose()


def models_requests(fake: FakeElevenLabs) -> int:
    return sum(1 for r in fake.requests if r.path == "/v1/models")


def tts_requests(fake: FakeElevenLabs) -> int:
    return len(fake.tts_requests)


# ---------------------------------------------------------------- estimates


@pytest.mark.parametrize(
    ("model_id", "expected"),
    [(FLASH, 51), (TURBO, 51), (MULTILINGUAL, 101), (None, 51)],
    ids=["flash", "turbo", "multilingual", "default-model"],
)
async def test_the_estimate_is_length_times_the_model_multiplier(
    service: QuotaService,
    db_engine: AsyncEngine,
    model_id: str | None,
    expected: int,
) -> None:
    charge = await service.charge(GUILD, USER, "x" * 101, choice(model_id))

    assert charge.reservation.credits == expected  # 101 x 0.5 rounds up to 51
    assert charge.reservation.characters == 101
    assert charge.reservation.model_id == (model_id or FLASH)
    assert (await counters(db_engine))["reserved"] == expected
    await charge.finish()


async def test_the_model_list_is_fetched_once_per_ttl(
    service: QuotaService, fake_elevenlabs: FakeElevenLabs, clock: Clock
) -> None:
    for model_id in (FLASH, MULTILINGUAL, TURBO):
        await (await service.charge(GUILD, USER, "hello", choice(model_id))).finish()
    assert models_requests(fake_elevenlabs) == 1

    clock.advance(minutes=11)
    await (await service.charge(GUILD, USER, "hello", choice())).finish()
    assert models_requests(fake_elevenlabs) == 2


async def test_an_unknown_model_or_no_model_list_costs_the_fallback_rate(
    service: QuotaService, fake_elevenlabs: FakeElevenLabs
) -> None:
    charge = await service.charge(GUILD, USER, "x" * 40, choice("eleven_v9_unknown"))
    assert charge.reservation.credits == 40
    await charge.finish()

    fresh = QuotaService(service.ledger, client=service.client, default_model=FLASH)
    fake_elevenlabs.fail_next(500, endpoint="models", times=5)
    charge = await fresh.charge(GUILD, USER, "x" * 40, choice())
    assert charge.reservation.credits == 40  # 1 credit per character: never too little
    await charge.finish()


async def test_while_the_model_list_fails_estimates_do_not_wait_for_it(
    service: QuotaService, fake_elevenlabs: FakeElevenLabs, clock: Clock
) -> None:
    fake_elevenlabs.fail_next(503, endpoint="models", times=100)
    for _ in range(3):
        charge = await service.charge(GUILD, USER, "x" * 10, choice())
        assert charge.reservation.credits == 10
        await charge.finish()
    asked = models_requests(fake_elevenlabs)
    assert asked == 2  # one fetch (and the client's one retry), not one per utterance

    fake_elevenlabs.clear_faults()
    clock.advance(minutes=2)
    charge = await service.charge(GUILD, USER, "x" * 10, choice())
    assert charge.reservation.credits == 5
    await charge.finish()


# ---------------------------------------------------------------- refusals


async def test_a_refusal_says_what_is_left_in_characters_and_when_it_renews(
    service: QuotaService, ledger: QuotaLedger, db_engine: AsyncEngine
) -> None:
    await ledger.set_monthly_allowance(GUILD, 100)  # 200 characters of Flash

    with pytest.raises(QuotaExceeded) as refused:
        await service.charge(GUILD, USER, "x" * 300, choice())

    error = refused.value
    assert isinstance(error, QuotaRefused)
    assert error.limit is QuotaLimit.GUILD_PERIOD
    assert (error.remaining, error.requested, error.remaining_characters) == (100, 150, 200)
    assert str(error) == (
        "This server's monthly text-to-speech allowance has about 200 characters left, "
        "not enough for this message (300); send a shorter one, or wait: it renews "
        f"<t:{NEXT_PERIOD}:R> (<t:{NEXT_PERIOD}:D>)."
    )
    assert await counters(db_engine) == {
        "used": 0,
        "reserved": 0,
        "user_used": 0,
        "user_reserved": 0,
    }


async def test_a_used_up_daily_cap_is_refused_in_plain_words(
    service: QuotaService, ledger: QuotaLedger
) -> None:
    await ledger.set_user_daily_cap(GUILD, 10)
    async with await service.charge(GUILD, USER, "x" * 20, choice()) as charge:
        charge.headers_received(10, request_id="req-cap")

    with pytest.raises(QuotaExceeded) as refused:
        await service.charge(GUILD, USER, "hi", choice())

    assert refused.value.limit is QuotaLimit.USER_DAY
    assert str(refused.value) == (
        "Your daily text-to-speech allowance on this server is used up; it renews "
        f"<t:{NEXT_DAY}:R> (<t:{NEXT_DAY}:D>)."
    )
    # Someone else still may.
    await (await service.charge(GUILD, OTHER_USER, "hi", choice())).finish()


# ---------------------------------------------------------------- the charge in SpeechService


class HeadersJob:
    """What `ChargedJob` wraps: a job whose request calls `on_headers` (or fails)."""

    def __init__(self, on_headers: Any, *, cost: int | None, error: BaseException | None = None):
        self.frames = object()
        self.on_headers = on_headers
        self.cost = cost
        self.error = error

    async def run(self) -> None:
        if self.cost is not None:
            stream = type("Stream", (), {"character_cost": self.cost, "request_id": "req-1"})
            self.on_headers(stream)
        if self.error is not None:
            raise self.error


def speech_service_job(charge: Any, *, cost: int | None, error: BaseException | None = None):
    """`SpeechService._job_factory`'s wiring: on_headers calls `charge.headers_received`."""

    def on_headers(stream: Any) -> None:
        charge.headers_received(stream.character_cost, request_id=stream.request_id)

    return ChargedJob(HeadersJob(on_headers, cost=cost, error=error), charge)


async def test_a_charged_job_settles_at_the_header_cost(
    service: QuotaService, db_engine: AsyncEngine
) -> None:
    charge = await service.charge(GUILD, USER, "x" * 100, choice())
    await speech_service_job(charge, cost=48).run()
    assert await charge.finish() is True  # SpeechService's follow-up: the first result stands

    assert (await counters(db_engine))["used"] == 48
    async with db_engine.connect() as conn:
        row = (await conn.execute(select(quota_ledger))).one()
    assert (row.credits_reserved, row.credits_billed, row.request_id) == (50, 48, "req-1")
    assert row.outcome == Outcome.SUCCESS


async def test_finish_without_an_outcome_releases_an_item_that_never_ran(
    service: QuotaService, db_engine: AsyncEngine
) -> None:
    """`SpeechService` calls `await charge.finish()` for a dropped item or a full queue."""
    charge = await service.charge(GUILD, USER, "x" * 100, choice())

    assert await charge.finish() is True

    assert await counters(db_engine) == {
        "used": 0,
        "reserved": 0,
        "user_used": 0,
        "user_reserved": 0,
    }
    assert await reservation_states(db_engine) == ["released"]
    async with db_engine.connect() as conn:
        assert (await conn.scalar(select(quota_ledger.c.outcome))) == Outcome.CANCELLED


# ---------------------------------------------------------------- ElevenLabs' own quota


async def synthesize(service: QuotaService, client: ElevenLabsClient, text: str) -> None:
    """The player's path: a real streaming request inside the charge."""
    charge = await service.charge(GUILD, USER, text, choice())
    async with (
        charge,
        client.stream_speech(VOICE, text, model_id=FLASH, on_headers=charge.on_headers) as stream,
    ):
        async for _chunk in stream:
            pass


async def test_elevenlabs_quota_exceeded_pauses_every_charge_and_tells_the_owner_once(
    service: QuotaService,
    client: ElevenLabsClient,
    fake_elevenlabs: FakeElevenLabs,
    hooks: Hooks,
    clock: Clock,
    db_engine: AsyncEngine,
) -> None:
    fake_elevenlabs.character_count = fake_elevenlabs.character_limit  # the account is empty

    with pytest.raises(QuotaExceededError):
        await synthesize(service, client, "Hello there.")
    await service.wait_idle()

    assert service.account_exhausted
    (notice,) = hooks.owner
    assert notice.resets_at == FAKE_RESET
    assert (notice.character_count, notice.character_limit) == (100_000, 100_000)
    described = notice.describe()
    assert "credits are used up" in described and "2027-01-01 00:00 UTC" in described
    sent = tts_requests(fake_elevenlabs)

    for _ in range(3):
        with pytest.raises(AccountCreditsExhausted) as refused:
            await service.charge(GUILD, OTHER_USER, "Anyone else?", choice())
        stamp = int(FAKE_RESET.timestamp())
        assert str(refused.value) == (
            f"The bot's ElevenLabs credits are used up; they renew <t:{stamp}:R>, on <t:{stamp}:D>."
        )
    assert tts_requests(fake_elevenlabs) == sent  # refused before any request
    assert await reservation_states(db_engine) == ["released"]  # only the failed synthesis

    # A recheck finds the account still empty: still refused, the owner is not told again.
    clock.advance(minutes=6)
    with pytest.raises(AccountCreditsExhausted):
        await service.charge(GUILD, USER, "Still nothing?", choice())
    service.note_failure(QuotaExceededError(status=401, code="quota_exceeded"))
    await service.wait_idle()
    assert len(hooks.owner) == 1

    # Credits are back (an upgrade): the next recheck lets speech through.
    fake_elevenlabs.character_count = 0
    clock.advance(minutes=6)
    await synthesize(service, client, "Back again.")
    await service.wait_idle()
    assert not service.account_exhausted
    assert len(hooks.owner) == 1


async def test_a_synthesis_already_in_flight_does_not_end_the_pause(
    service: QuotaService, hooks: Hooks, clock: Clock
) -> None:
    in_flight = await service.charge(GUILD, USER, "started before", choice())
    clock.advance(seconds=1)
    service.note_failure(QuotaExceededError(status=401, code="quota_exceeded"))
    await service.wait_idle()

    async with in_flight:
        in_flight.headers_received(7, request_id="req-earlier")
    await service.wait_idle()

    assert service.account_exhausted
    with pytest.raises(AccountCreditsExhausted):
        await service.charge(GUILD, USER, "after", choice())
    service.note_failure(QuotaExceededError(status=401, code="quota_exceeded"))
    await service.wait_idle()
    assert len(hooks.owner) == 1


async def test_a_burst_of_failures_asks_the_subscription_once(
    service: QuotaService, fake_elevenlabs: FakeElevenLabs, hooks: Hooks
) -> None:
    for _ in range(5):
        service.note_failure(QuotaExceededError(status=401, code="quota_exceeded"))
    await service.wait_idle()

    assert sum(1 for r in fake_elevenlabs.requests if r.path == "/v1/user/subscription") == 1
    assert len(hooks.owner) == 1


async def test_without_a_subscription_the_refusal_still_reads_well(
    service: QuotaService, fake_elevenlabs: FakeElevenLabs, hooks: Hooks
) -> None:
    fake_elevenlabs.fail_next(500, endpoint="subscription", times=5)
    service.note_failure(QuotaExceededError(status=401, code="quota_exceeded", request_id="r9"))
    await service.wait_idle()

    with pytest.raises(AccountCreditsExhausted) as refused:
        await service.charge(GUILD, USER, "hello", choice())
    assert str(refused.value) == "The bot's ElevenLabs credits are used up; try again later."
    (notice,) = hooks.owner
    assert notice.resets_at is None and notice.request_id == "r9"
    assert "renewal date is unknown" in notice.describe()


async def test_other_failures_do_not_pause_anything(service: QuotaService, hooks: Hooks) -> None:
    charge = await service.charge(GUILD, USER, "hello", choice())
    with pytest.raises(RuntimeError):
        await speech_service_job(charge, cost=None, error=RuntimeError("boom")).run()
    await service.wait_idle()
    assert not service.account_exhausted and not hooks.owner
    await (await service.charge(GUILD, USER, "hello", choice())).finish()


# ---------------------------------------------------------------- alerts


async def settle(service: QuotaService, credits: int, user_id: int = USER) -> None:
    charge = await service.charge(GUILD, user_id, "x" * (credits * 2), choice())
    async with charge:
        charge.headers_received(credits, request_id=None)
    await service.wait_idle()


async def test_each_threshold_is_handed_to_the_hook_once_per_period(
    service: QuotaService, ledger: QuotaLedger, hooks: Hooks
) -> None:
    await ledger.set_alerts_channel(GUILD, 555)  # ALLOWANCE is 1,000 credits

    await settle(service, 700)
    assert hooks.alerts == []
    await settle(service, 150)
    (eighty,) = hooks.alerts
    assert (eighty.threshold, eighty.used, eighty.allowance, eighty.channel_id) == (
        80,
        850,
        1_000,
        555,
    )
    await settle(service, 10, OTHER_USER)
    assert len(hooks.alerts) == 1
    await settle(service, 140)
    assert [a.threshold for a in hooks.alerts] == [80, 100]

    # Another process (another service on the same database) repeats nothing.
    other = QuotaService(ledger, client=service.client, default_model=FLASH, on_alert=hooks.alert)
    assert await other.check_alerts(GUILD, NOW) == []
    assert len(hooks.alerts) == 2


async def test_crossing_both_thresholds_at_once_announces_only_the_highest(
    service: QuotaService, hooks: Hooks
) -> None:
    await settle(service, 700)
    await settle(service, 300)
    assert [a.threshold for a in hooks.alerts] == [100]
    assert await service.check_alerts(GUILD) == []  # 80 % was claimed with it


async def test_a_failing_alert_hook_does_not_break_the_synthesis(
    service: QuotaService, ledger: QuotaLedger, db_engine: AsyncEngine
) -> None:
    async def broken(alert: Any) -> None:
        raise RuntimeError("Discord is down")

    service.on_alert = broken
    await settle(service, 900)
    assert (await counters(db_engine))["used"] == 900
    assert await service.check_alerts(GUILD) == []  # claimed: not retried


# ---------------------------------------------------------------- maintenance


async def test_a_maintenance_step_expires_holds_and_purges_when_due(
    service: QuotaService, ledger: QuotaLedger, db_engine: AsyncEngine, clock: Clock
) -> None:
    old = NOW - timedelta(days=401)
    await ledger.settle(
        await ledger.reserve(
            GUILD, USER, 5, model_id=FLASH, voice_id=VOICE, characters=10, now=old
        ),
        5,
        now=old,
    )
    await ledger.reserve(
        GUILD, USER, 7, model_id=FLASH, voice_id=VOICE, characters=14, now=NOW - timedelta(hours=1)
    )

    report = await service.maintenance_step()
    assert report.expired == 1
    assert report.purged is not None and report.purged.ledger_rows == 1
    assert (await counters(db_engine))["reserved"] == 0

    clock.advance(hours=1)
    assert (await service.maintenance_step()).purged is None  # not due yet
    clock.advance(hours=6)
    assert (await service.maintenance_step()).purged is not None


async def test_start_runs_the_maintenance_until_aclose(
    ledger: QuotaLedger, client: ElevenLabsClient, db_engine: AsyncEngine
) -> None:
    await ledger.reserve(
        GUILD, USER, 7, model_id=FLASH, voice_id=VOICE, characters=14, now=NOW - timedelta(days=1)
    )
    service = QuotaService(
        ledger,
        client=client,
        default_model=FLASH,
        expire_interval=timedelta(milliseconds=10),
        clock=lambda: NOW,  # the hold is a day old whatever the date the tests run on
    )
    steps: asyncio.Queue[int] = asyncio.Queue()
    expire = ledger.expire_stale

    async def counted(now: datetime | None = None) -> int:
        expired = await expire(now)
        steps.put_nowait(expired)
        return expired

    ledger.expire_stale = counted  # type: ignore[method-assign]
    service.start()
    service.start()  # idempotent
    async with asyncio.timeout(10):
        assert await steps.get() == 1  # the abandoned hold, on the first step
        assert await steps.get() == 0  # and the loop goes on
    assert await reservation_states(db_engine) == ["expired"]
    await service.aclose()
    assert service._maintenance is None


def test_quota_settings_come_from_the_bot_settings() -> None:
    from bot.config import load_settings

    assert QuotaSettings.from_settings(load_settings(None)) == QuotaSettings()
    settings = load_settings(
        None,
        quota_default_allowance=5_000,
        quota_reservation_ttl_seconds=120,
        quota_ledger_retention_days=30,
    )
    assert QuotaSettings.from_settings(settings) == QuotaSettings(
        5_000, timedelta(seconds=120), timedelta(days=30)
    )


# ---------------------------------------------------------------- privacy


async def test_no_message_text_anywhere_in_the_database(
    service: QuotaService,
    client: ElevenLabsClient,
    ledger: QuotaLedger,
    db_engine: AsyncEngine,
) -> None:
    secret = "Zanzibar marmalade at midnight, whispered"
    await synthesize(service, client, secret)
    await (await service.charge(GUILD, OTHER_USER, secret, choice())).finish()
    await ledger.set_monthly_allowance(GUILD, 1)
    with pytest.raises(QuotaExceeded):
        await service.charge(GUILD, USER, secret, choice())
    await service.wait_idle()

    found: list[str] = []
    async with db_engine.connect() as conn:
        for table in metadata.sorted_tables:
            for row in (await conn.execute(select(table))).all():
                for value in row:
                    if isinstance(value, str) and ("Zanzibar" in value or "marmalade" in value):
                        found.append(f"{table.name}: {value}")
    assert found == []
    async with db_engine.connect() as conn:
        assert len((await conn.execute(select(quota_ledger))).all()) == 2
