"""Discord timestamp markup (`<t:1700000000:R>`) as English words.

Discord shows timestamps in each reader's own time zone; a voice channel has many listeners,
so the bot speaks absolute times in UTC and says so. Relative times ("in 3 hours") are
computed against a `now` the caller passes in, which keeps the functions pure and testable.
"""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["describe_timestamp", "relative_phrase"]

_FALLBACK = "a date"
# Seconds per unit, largest first; months and years are calendar-free approximations,
# as in Discord's own relative display.
_UNITS = (
    (365 * 86400, "year", "a year"),
    (30 * 86400, "month", "a month"),
    (86400, "day", "a day"),
    (3600, "hour", "an hour"),
    (60, "minute", "a minute"),
)


def _clock(moment: datetime, *, seconds: bool = False) -> str:
    hour = moment.hour % 12 or 12
    suffix = "AM" if moment.hour < 12 else "PM"
    if seconds:
        return f"{hour}:{moment.minute:02d}:{moment.second:02d} {suffix} UTC"
    return f"{hour}:{moment.minute:02d} {suffix} UTC"


def _date(moment: datetime, *, weekday: bool = False) -> str:
    text = f"{moment:%B} {moment.day}, {moment.year}"
    return f"{moment:%A}, {text}" if weekday else text


def relative_phrase(seconds: float) -> str:
    """ "in 3 hours" / "3 hours ago" for a signed offset from now (positive: future)."""
    amount = abs(seconds)
    phrase = "a few seconds"
    for size, unit, single in _UNITS:
        if amount >= size:
            count = int(amount // size)
            phrase = single if count == 1 else f"{count} {unit}s"
            break
    return f"in {phrase}" if seconds > 0 else f"{phrase} ago"


def describe_timestamp(epoch: int, style: str | None, now: datetime) -> str:
    """Words for `<t:epoch:style>`; unknown styles read like the default (`f`)."""
    try:
        moment = datetime.fromtimestamp(epoch, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return _FALLBACK
    if style == "R":
        return relative_phrase(epoch - now.timestamp())
    if style == "t":
        return _clock(moment)
    if style == "T":
        return _clock(moment, seconds=True)
    if style in ("d", "D"):
        return _date(moment)
    if style == "F":
        return f"{_date(moment, weekday=True)} at {_clock(moment)}"
    return f"{_date(moment)} at {_clock(moment)}"
