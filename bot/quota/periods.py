"""Quota periods and credit arithmetic: pure functions of UTC instants, no I/O.

Every period is half-open, ``[start, end)``: an instant exactly at a reset belongs to the
new period. A guild's month starts at 00:00 UTC on its reset day; the reset day is capped at
28 so that every month has it (no "the 31st of February" rule to explain to admins). A
user's day is the UTC calendar day, the same for every member whatever their time zone, so
that one number in the database is the cap for everyone.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

MIN_RESET_DAY = 1
MAX_RESET_DAY = 28


@dataclass(frozen=True, slots=True)
class Period:
    """A half-open UTC interval ``[start, end)``; ``key`` is the date it starts on."""

    start: datetime
    end: datetime

    @property
    def key(self) -> date:
        """The date stored in the counter rows: the period's first UTC day."""
        return self.start.date()

    @property
    def resets_at(self) -> datetime:
        """When the next period begins: the instant to show in a refusal."""
        return self.end

    def __contains__(self, instant: datetime) -> bool:
        return self.start <= as_utc(instant) < self.end


def as_utc(instant: datetime) -> datetime:
    """`instant` in UTC; naive datetimes are refused rather than guessed at."""
    if instant.tzinfo is None:
        raise ValueError("naive datetime: pass an aware one, e.g. datetime.now(UTC)")
    return instant.astimezone(UTC)


def validate_reset_day(day: int) -> int:
    if isinstance(day, bool) or not isinstance(day, int):
        raise TypeError("the reset day is an integer")
    if not MIN_RESET_DAY <= day <= MAX_RESET_DAY:
        raise ValueError(f"the reset day must be between {MIN_RESET_DAY} and {MAX_RESET_DAY}")
    return day


def _shift_month(year: int, month: int, by: int) -> tuple[int, int]:
    index = year * 12 + (month - 1) + by
    return index // 12, index % 12 + 1


def _midnight(year: int, month: int, day: int) -> datetime:
    return datetime(year, month, day, tzinfo=UTC)


def guild_period(instant: datetime, reset_day: int = 1) -> Period:
    """The guild's monthly period containing `instant`, resetting at 00:00 UTC on `reset_day`."""
    validate_reset_day(reset_day)
    instant = as_utc(instant)
    year, month = instant.year, instant.month
    if instant.day < reset_day:
        year, month = _shift_month(year, month, -1)
    next_year, next_month = _shift_month(year, month, 1)
    return Period(_midnight(year, month, reset_day), _midnight(next_year, next_month, reset_day))


def guild_period_starting(start: date, reset_day: int) -> Period:
    """The period whose key is `start` (a counter row's ``period_start``)."""
    return guild_period(datetime.combine(start, time(), tzinfo=UTC), reset_day)


def user_day(instant: datetime) -> Period:
    """The UTC calendar day containing `instant`: the span of a user's daily cap."""
    start = datetime.combine(as_utc(instant).date(), time(), tzinfo=UTC)
    return Period(start, start + timedelta(days=1))


def _exact(multiplier: float | int | Decimal | str) -> Decimal:
    # Through str(): 1.1 is the decimal 1.1 the API sent, not 1.100000000000000088...
    value = Decimal(str(multiplier))
    if not value.is_finite() or value <= 0:
        raise ValueError("the credit multiplier must be a positive number")
    return value


def estimate_credits(text_length: int, multiplier: float | int | Decimal | str) -> int:
    """Credits a synthesis of `text_length` characters will cost: length x multiplier, rounded up.

    Rounding up means a reservation is never smaller than the bill for the same text.
    """
    if text_length < 0:
        raise ValueError("a text length cannot be negative")
    return math.ceil(text_length * _exact(multiplier))


def credits_to_characters(credits: int, multiplier: float | int | Decimal | str) -> int:
    """How many characters `credits` buy at `multiplier` (rounded down), for display."""
    if credits <= 0:
        return 0
    return math.floor(credits / _exact(multiplier))


def characters_to_credits(characters: int, multiplier: float | int | Decimal | str) -> int:
    """The credits `characters` cost at `multiplier`; the same rule as the estimate."""
    return estimate_credits(characters, multiplier)
