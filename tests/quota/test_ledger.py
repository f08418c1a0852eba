"""QuotaLedger against each real backend: reserve, settle, release, expiry, views, alerts."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.quota import Outcome, QuotaExceeded, QuotaLedger, QuotaLimit
from bot.quota.tables import quota_ledger, quota_reservation, quota_user_day
from tests.quota.support import (
    ALLOWANCE,
    GUILD,
    NOW,
    OTHER_GUILD,
    OTHER_USER,
    TTL,
    USER,
    counters,
    reservation_states,
)


async def reserve(
    ledger: QuotaLedger, credits: int, *, user: int = USER, guild: int = GUILD, now: datetime = NOW
):
    return await ledger.reserve(
        guild,
        user,
        credits,
        model_id="eleven_flash_v2_5",
        voice_id="voice-1",
        characters=credits * 2,
        now=now,
    )


async def ledger_rows(engine: AsyncEngine) -> list:
    async with engine.connect() as conn:
        return (await conn.execute(select(quota_ledger))).all()


async def test_reserve_then_settle_at_the_billed_cost(ledger, db_engine) -> None:
    reservation = await reserve(ledger, 50)
    assert await counters(db_engine) == {
        "used": 0,
        "reserved": 50,
        "user_used": 0,
        "user_reserved": 50,
    }
    assert await ledger.settle(reservation, 37, request_id="req-1", outcome=Outcome.SUCCESS)
    assert await counters(db_engine) == {
        "used": 37,
        "reserved": 0,
        "user_used": 37,
        "user_reserved": 0,
    }
    [row] = await ledger_rows(db_engine)
    assert row.id == reservation.id
    assert (row.guild_id, row.user_id) == (GUILD, USER)
    assert (row.credits_reserved, row.credits_billed, row.characters) == (50, 37, 100)
    assert (row.model_id, row.voice_id, row.request_id) == ("eleven_flash_v2_5", "voice-1", "req-1")
    assert row.outcome == "success"
    assert row.created_at == NOW
    assert row.settled_at.tzinfo is not None
    assert await reservation_states(db_engine) == ["settled"]


async def test_settle_without_a_header_charges_the_estimate(ledger, db_engine) -> None:
    reservation = await reserve(ledger, 50)
    assert await ledger.settle(reservation, None, request_id=None, outcome=Outcome.CANCELLED)
    assert (await counters(db_engine))["used"] == 50
    [row] = await ledger_rows(db_engine)
    assert (row.credits_billed, row.outcome) == (50, "cancelled")


async def test_release_gives_everything_back(ledger, db_engine) -> None:
    reservation = await reserve(ledger, 50)
    assert await ledger.release(reservation, Outcome.ERROR_STATUS)
    assert await counters(db_engine) == {
        "used": 0,
        "reserved": 0,
        "user_used": 0,
        "user_reserved": 0,
    }
    [row] = await ledger_rows(db_engine)
    assert (row.credits_reserved, row.credits_billed, row.outcome) == (50, 0, "error_status")
    assert await reservation_states(db_engine) == ["released"]


@pytest.mark.parametrize(
    "second",
    ["settle", "release"],
)
@pytest.mark.parametrize("first", ["settle", "release"])
async def test_finishing_twice_never_charges_twice(ledger, db_engine, first, second) -> None:
    reservation = await reserve(ledger, 50)

    async def finish(how: str) -> bool:
        if how == "settle":
            return await ledger.settle(reservation, 40, request_id="r", outcome=Outcome.SUCCESS)
        return await ledger.release(reservation, Outcome.FAILED)

    assert await finish(first)
    before = await counters(db_engine)
    assert not await finish(second)
    assert await counters(db_engine) == before
    assert before["reserved"] == 0
    assert before["used"] == (40 if first == "settle" else 0)
    assert len(await ledger_rows(db_engine)) == 1


async def test_concurrent_settles_of_one_reservation_apply_once(ledger, db_engine) -> None:
    reservation = await reserve(ledger, 50)
    results = await asyncio.gather(
        *(ledger.settle(reservation, 45, request_id="r") for _ in range(10)),
        *(ledger.release(reservation, Outcome.FAILED) for _ in range(10)),
    )
    assert sum(results) == 1
    totals = await counters(db_engine)
    assert totals["reserved"] == 0
    assert totals["used"] in (0, 45)
    assert len(await ledger_rows(db_engine)) == 1


async def test_guild_allowance_refusal_changes_nothing(ledger, db_engine) -> None:
    held = await reserve(ledger, 700)
    await ledger.settle(held, 600, request_id="r")
    await reserve(ledger, 300, user=OTHER_USER)  # 600 used + 300 held: 100 left
    before = await counters(db_engine)
    with pytest.raises(QuotaExceeded) as refused:
        await reserve(ledger, 101)
    error = refused.value
    assert error.limit is QuotaLimit.GUILD_PERIOD
    assert (error.remaining, error.requested, error.limit_credits) == (100, 101, ALLOWANCE)
    assert error.resets_at == datetime(2026, 12, 1, tzinfo=UTC)
    assert "100 credits left" in str(error) and "2026-12-01" in str(error)
    assert await counters(db_engine) == before
    await reserve(ledger, 100)  # exactly the rest still fits


async def test_user_cap_refusal_rolls_back_the_guild_hold(ledger, db_engine) -> None:
    await ledger.set_user_daily_cap(GUILD, 100)
    await reserve(ledger, 80)
    before = await counters(db_engine)
    with pytest.raises(QuotaExceeded) as refused:
        await reserve(ledger, 21)
    assert refused.value.limit is QuotaLimit.USER_DAY
    assert refused.value.remaining == 20
    assert refused.value.resets_at == datetime(2026, 11, 23, tzinfo=UTC)
    # The guild's counter was raised first in the same transaction: it must be back.
    assert await counters(db_engine) == before
    await reserve(ledger, 21, user=OTHER_USER)  # the cap is per member
    await reserve(ledger, 20)
    # The next UTC day is a fresh cap.
    await reserve(ledger, 100, now=datetime(2026, 11, 23, tzinfo=UTC))


async def test_allowance_settings(ledger, db_engine) -> None:
    await ledger.set_monthly_allowance(GUILD, 0)  # unlimited
    await reserve(ledger, 50_000)
    usage = await ledger.guild_usage(GUILD, now=NOW)
    assert usage.unlimited and usage.remaining is None and not usage.allowance_is_default
    await ledger.set_monthly_allowance(GUILD, 60_000)
    with pytest.raises(QuotaExceeded):
        await reserve(ledger, 10_001)
    await ledger.set_monthly_allowance(GUILD, None)  # back to the bot's default
    usage = await ledger.guild_usage(GUILD, now=NOW)
    assert (usage.allowance, usage.allowance_is_default, usage.remaining) == (ALLOWANCE, True, 0)
    with pytest.raises(ValueError):
        await ledger.set_monthly_allowance(GUILD, -1)
    # Each guild has its own counter.
    await reserve(ledger, ALLOWANCE, guild=OTHER_GUILD)


async def test_unlimited_default(db_engine) -> None:
    ledger = QuotaLedger(db_engine, default_allowance=0)
    await reserve(ledger, 10**9)
    assert await ledger.crossed_alerts(GUILD, now=NOW) == []


async def test_a_hold_settles_on_the_period_and_day_it_was_taken_on(ledger, db_engine) -> None:
    await ledger.set_user_daily_cap(GUILD, 500)
    last_instant = datetime(2026, 11, 30, 23, 59, 59, tzinfo=UTC)
    reservation = await reserve(ledger, 400, now=last_instant)
    assert reservation.period_start == date(2026, 11, 1)
    assert reservation.day == date(2026, 11, 30)
    next_period = datetime(2026, 12, 1, 0, 0, 1, tzinfo=UTC)
    # The new period and day start empty even while the old hold is in flight.
    await reserve(ledger, 500, now=next_period)
    assert await ledger.settle(reservation, 450, request_id="r", now=next_period)
    november = await ledger.guild_usage(GUILD, now=last_instant)
    december = await ledger.guild_usage(GUILD, now=next_period)
    assert (november.used, november.reserved) == (450, 0)
    assert (december.used, december.reserved) == (0, 500)
    today = await ledger.user_usage_today(GUILD, USER, now=next_period)
    assert (today.used, today.reserved, today.remaining) == (0, 500, 0)


async def test_expire_stale_releases_abandoned_holds(ledger, db_engine) -> None:
    abandoned = await reserve(ledger, 300)
    fresh = await reserve(ledger, 200, now=NOW + TTL - timedelta(minutes=1))
    assert await ledger.expire_stale(now=NOW + TTL - timedelta(seconds=1)) == 0
    assert await ledger.expire_stale(now=NOW + TTL) == 1
    assert await ledger.expire_stale(now=NOW + TTL) == 0
    totals = await counters(db_engine)
    assert (totals["reserved"], totals["user_reserved"], totals["used"]) == (200, 200, 0)
    [row] = await ledger_rows(db_engine)
    assert (row.id, row.outcome, row.credits_billed) == (abandoned.id, "expired", 0)
    # A late release is a no-op; a late settle charges what was really billed.
    assert not await ledger.release(abandoned, Outcome.CANCELLED)
    assert await ledger.settle(abandoned, 250, request_id="late", outcome=Outcome.SUCCESS)
    assert not await ledger.settle(abandoned, 250, request_id="late")
    totals = await counters(db_engine)
    assert (totals["used"], totals["reserved"]) == (250, 200)
    [row] = await ledger_rows(db_engine)
    assert (row.credits_billed, row.outcome, row.request_id) == (250, "success", "late")
    assert await ledger.release(fresh, Outcome.FAILED)
    assert await reservation_states(db_engine) == ["released", "settled"]


async def test_alerts_are_announced_once_per_threshold_and_period(ledger, db_engine) -> None:
    await ledger.set_monthly_allowance(GUILD, 100)
    await ledger.set_alerts_channel(GUILD, 999)
    await ledger.settle(await reserve(ledger, 79), None)
    assert await ledger.crossed_alerts(GUILD, now=NOW) == []
    await ledger.settle(await reserve(ledger, 1), None)
    # Held credits do not count: only what was billed.
    await reserve(ledger, 20)
    results = await asyncio.gather(*(ledger.crossed_alerts(GUILD, now=NOW) for _ in range(20)))
    announced = [alert for alerts in results for alert in alerts]
    assert [(a.threshold, a.used, a.allowance, a.channel_id) for a in announced] == [
        (80, 80, 100, 999)
    ]
    assert announced[0].resets_at == datetime(2026, 12, 1, tzinfo=UTC)
    await ledger.settle(await reserve(ledger, 0), 25)  # billed above the estimate
    assert [a.threshold for a in await ledger.crossed_alerts(GUILD, now=NOW)] == [100]
    assert await ledger.crossed_alerts(GUILD, now=NOW) == []
    # The next period starts with its own flags.
    december = datetime(2026, 12, 2, tzinfo=UTC)
    await ledger.settle(await reserve(ledger, 100, now=december), None, now=december)
    assert [a.threshold for a in await ledger.crossed_alerts(GUILD, now=december)] == [80, 100]


async def test_usage_views(ledger, db_engine) -> None:
    await ledger.settle(await reserve(ledger, 100), 90)
    await ledger.settle(await reserve(ledger, 300, user=OTHER_USER), 300)
    await reserve(ledger, 50)
    yesterday = NOW - timedelta(days=1)
    await ledger.settle(await reserve(ledger, 20, now=yesterday), 20, now=yesterday)
    last_period = datetime(2026, 10, 20, tzinfo=UTC)
    await ledger.settle(await reserve(ledger, 500, now=last_period), 500, now=last_period)
    await reserve(ledger, 5, guild=OTHER_GUILD)
    await ledger.set_user_daily_cap(GUILD, 400)

    usage = await ledger.guild_usage(GUILD, now=NOW)
    assert (usage.allowance, usage.used, usage.reserved, usage.remaining) == (1000, 410, 50, 540)
    assert usage.period_start == datetime(2026, 11, 1, tzinfo=UTC)
    assert usage.resets_at == datetime(2026, 12, 1, tzinfo=UTC)
    assert usage.fraction_used == pytest.approx(0.41)
    assert (usage.reset_day, usage.user_daily_cap) == (1, 400)

    mine = await ledger.user_usage_today(GUILD, USER, now=NOW)
    assert (mine.used, mine.reserved, mine.cap, mine.remaining) == (90, 50, 400, 260)
    assert mine.resets_at == datetime(2026, 11, 23, tzinfo=UTC)
    nobody = await ledger.user_usage_today(GUILD, 5, now=NOW)
    assert (nobody.used, nobody.reserved) == (0, 0)

    top = await ledger.top_users(GUILD, limit=10, now=NOW)
    assert [(t.user_id, t.used) for t in top] == [(OTHER_USER, 300), (USER, 110)]
    assert [t.user_id for t in await ledger.top_users(GUILD, limit=1, now=NOW)] == [OTHER_USER]

    await ledger.set_alerts_channel(777, 1)  # a guild with settings but no use yet
    every = await ledger.all_guilds_usage(now=NOW)
    assert [(g.guild_id, g.used, g.reserved) for g in every] == [
        (777, 0, 0),
        (GUILD, 410, 50),
        (OTHER_GUILD, 0, 5),
    ]


async def test_reset_day(ledger, db_engine) -> None:
    for bad in (0, 29):
        with pytest.raises(ValueError, match="between 1 and 28"):
            await ledger.set_reset_day(GUILD, bad, now=NOW)
    await ledger.settle(await reserve(ledger, 300), 300)
    await ledger.set_monthly_allowance(GUILD, 1000)
    # 22 November: with a reset on the 15th the period is 15 Nov - 15 Dec. The credits used
    # in the period it replaces come along: changing the day is not a refill.
    await ledger.set_reset_day(GUILD, 15, now=NOW)
    usage = await ledger.guild_usage(GUILD, now=NOW)
    assert usage.period_start == datetime(2026, 11, 15, tzinfo=UTC)
    assert usage.resets_at == datetime(2026, 12, 15, tzinfo=UTC)
    assert usage.used == 300
    await ledger.settle(await reserve(ledger, 100), 100)
    # And back: the larger count wins, nothing is lost.
    await ledger.set_reset_day(GUILD, 1, now=NOW)
    assert (await ledger.guild_usage(GUILD, now=NOW)).used == 400
    await ledger.set_reset_day(GUILD, 1, now=NOW)  # same day: no change
    assert (await ledger.get_config(GUILD)).reset_day == 1
    with pytest.raises(QuotaExceeded) as refused:
        await reserve(ledger, 601)
    assert refused.value.remaining == 600


async def test_forget_user(ledger, db_engine) -> None:
    await ledger.settle(await reserve(ledger, 100), 100)
    in_flight = await reserve(ledger, 50)
    await ledger.settle(await reserve(ledger, 70, user=OTHER_USER), 70)
    await ledger.forget_user(USER)
    async with db_engine.connect() as conn:
        for table in (quota_user_day, quota_ledger, quota_reservation):
            mine = await conn.scalar(
                select(func.count()).select_from(table).where(table.c.user_id == USER)
            )
            assert mine == 0, table.name
    # The guild's totals are intact, and the hold in flight still finishes.
    assert await ledger.settle(in_flight, 50)
    usage = await ledger.guild_usage(GUILD, now=NOW)
    assert (usage.used, usage.reserved) == (220, 0)
    rows = await ledger_rows(db_engine)
    assert sorted((r.user_id or 0, r.credits_billed) for r in rows) == [
        (0, 50),
        (0, 100),
        (OTHER_USER, 70),
    ]
    assert [t.user_id for t in await ledger.top_users(GUILD, now=NOW)] == [OTHER_USER]


async def test_purge_ledger(ledger, db_engine) -> None:
    old = NOW - timedelta(days=500)
    await ledger.settle(await reserve(ledger, 10, now=old), 10, now=old)
    await ledger.settle(await reserve(ledger, 20), 20)
    await reserve(ledger, 5)  # held: never purged
    purged = await ledger.purge_ledger(now=NOW)
    assert purged.ledger_rows == 1
    assert purged.reservations == 1
    assert purged.counters == 2  # the old day and the old period
    [row] = await ledger_rows(db_engine)
    assert row.credits_billed == 20
    assert await reservation_states(db_engine) == ["held", "settled"]
    assert (await ledger.purge_ledger(now=NOW)).ledger_rows == 0


async def test_bad_arguments(ledger) -> None:
    with pytest.raises(ValueError):
        await reserve(ledger, -1)
    reservation = await reserve(ledger, 1)
    with pytest.raises(ValueError):
        await ledger.settle(reservation, -1)
    with pytest.raises(ValueError, match="naive"):
        await ledger.reserve(
            GUILD, USER, 1, model_id=None, voice_id=None, characters=1, now=datetime(2026, 1, 1)
        )
    with pytest.raises(ValueError):
        QuotaLedger(ledger._engine, default_allowance=-1)
