"""Period boundaries and credit arithmetic: pure, table-driven."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta, timezone

import pytest

from bot.quota.periods import (
    Period,
    characters_to_credits,
    credits_to_characters,
    estimate_credits,
    guild_period,
    guild_period_starting,
    user_day,
)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


@pytest.mark.parametrize(
    ("instant", "reset_day", "start", "end"),
    [
        # reset on the 1st: calendar months
        (utc(2026, 1, 15, 12), 1, utc(2026, 1, 1), utc(2026, 2, 1)),
        (utc(2026, 1, 31, 23, 59, 59, 999999), 1, utc(2026, 1, 1), utc(2026, 2, 1)),
        (utc(2026, 2, 1), 1, utc(2026, 2, 1), utc(2026, 3, 1)),  # exactly at the reset
        (utc(2026, 12, 31, 23, 59, 59), 1, utc(2026, 12, 1), utc(2027, 1, 1)),  # year end
        (utc(2027, 1, 1), 1, utc(2027, 1, 1), utc(2027, 2, 1)),
        # February, common and leap years
        (utc(2026, 2, 28, 23, 59, 59), 1, utc(2026, 2, 1), utc(2026, 3, 1)),
        (utc(2028, 2, 29, 12), 1, utc(2028, 2, 1), utc(2028, 3, 1)),
        (utc(2028, 2, 29, 12), 28, utc(2028, 2, 28), utc(2028, 3, 28)),
        (utc(2026, 3, 1), 28, utc(2026, 2, 28), utc(2026, 3, 28)),
        # reset day 28
        (utc(2026, 3, 27, 23, 59, 59, 999999), 28, utc(2026, 2, 28), utc(2026, 3, 28)),
        (utc(2026, 3, 28), 28, utc(2026, 3, 28), utc(2026, 4, 28)),  # exactly at the reset
        (utc(2026, 1, 31), 28, utc(2026, 1, 28), utc(2026, 2, 28)),
        (utc(2026, 1, 5), 28, utc(2025, 12, 28), utc(2026, 1, 28)),  # across the year
        (utc(2026, 12, 28), 28, utc(2026, 12, 28), utc(2027, 1, 28)),
        # a mid-month day
        (utc(2026, 5, 14, 23, 59, 59), 15, utc(2026, 4, 15), utc(2026, 5, 15)),
        (utc(2026, 5, 15), 15, utc(2026, 5, 15), utc(2026, 6, 15)),
    ],
)
def test_guild_period(instant: datetime, reset_day: int, start: datetime, end: datetime) -> None:
    period = guild_period(instant, reset_day)
    assert period == Period(start, end)
    assert period.key == start.date()
    assert period.resets_at == end
    assert instant in period
    assert end not in period  # half-open
    assert guild_period_starting(period.key, reset_day) == period


@pytest.mark.parametrize(
    ("instant", "start"),
    [
        # instants in other zones belong to the UTC period they fall in
        (datetime(2026, 2, 1, 0, 30, tzinfo=timezone(timedelta(hours=2))), utc(2026, 1, 1)),
        (datetime(2026, 1, 31, 20, 0, tzinfo=timezone(timedelta(hours=-5))), utc(2026, 2, 1)),
    ],
)
def test_guild_period_is_utc(instant: datetime, start: datetime) -> None:
    assert guild_period(instant, 1).start == start


def test_consecutive_periods_tile_time() -> None:
    for reset_day in (1, 13, 28):
        period = guild_period(utc(2024, 1, 1), reset_day)
        for _ in range(40):
            following = guild_period(period.end, reset_day)
            assert following.start == period.end
            assert guild_period(period.end - timedelta(microseconds=1), reset_day) == period
            period = following


@pytest.mark.parametrize("reset_day", [0, 29, 31, -1])
def test_reset_day_out_of_range(reset_day: int) -> None:
    with pytest.raises(ValueError, match="between 1 and 28"):
        guild_period(utc(2026, 1, 1), reset_day)


def test_naive_instants_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        guild_period(datetime(2026, 1, 1), 1)
    with pytest.raises(ValueError, match="naive"):
        user_day(datetime(2026, 1, 1))


@pytest.mark.parametrize(
    ("instant", "day", "resets_at"),
    [
        (utc(2026, 3, 1), date(2026, 3, 1), utc(2026, 3, 2)),  # exactly midnight
        (utc(2026, 2, 28, 23, 59, 59, 999999), date(2026, 2, 28), utc(2026, 3, 1)),
        (utc(2028, 2, 28, 23, 0), date(2028, 2, 28), utc(2028, 2, 29)),
        (utc(2026, 12, 31, 12), date(2026, 12, 31), utc(2027, 1, 1)),
        (
            datetime(2026, 6, 1, 1, 0, tzinfo=timezone(timedelta(hours=3))),
            date(2026, 5, 31),
            utc(2026, 6, 1),
        ),
    ],
)
def test_user_day(instant: datetime, day: date, resets_at: datetime) -> None:
    period = user_day(instant)
    assert period.key == day
    assert period.resets_at == resets_at
    assert period.end - period.start == timedelta(days=1)
    assert instant in period


@pytest.mark.parametrize(
    ("length", "multiplier", "credits"),
    [
        (0, 1, 0),
        (1, 1, 1),
        (100, 1, 100),
        (1, 0.5, 1),  # rounded up: a reservation never undershoots the bill
        (3, 0.5, 2),
        (100, 0.5, 50),
        (101, 0.5, 51),
        (100, 1.1, 110),  # not 111: 1.1 x 100 in binary floats is 110.00000000000001
        (3, 0.1, 1),
        (1000, "0.3", 300),
        (7, 2, 14),
    ],
)
def test_estimate_credits(length: int, multiplier: float, credits: int) -> None:
    assert estimate_credits(length, multiplier) == credits
    assert characters_to_credits(length, multiplier) == credits


@pytest.mark.parametrize(
    ("credits", "multiplier", "characters"),
    [(0, 1, 0), (100, 1, 100), (100, 0.5, 200), (101, 0.5, 202), (110, 1.1, 100), (-5, 1, 0)],
)
def test_credits_to_characters(credits: int, multiplier: float, characters: int) -> None:
    assert credits_to_characters(credits, multiplier) == characters


@pytest.mark.parametrize("multiplier", [0, -1, float("nan"), float("inf")])
def test_bad_multiplier(multiplier: float) -> None:
    with pytest.raises(ValueError, match="multiplier"):
        estimate_credits(10, multiplier)


def test_negative_length() -> None:
    with pytest.raises(ValueError):
        estimate_credits(-1, 1)
