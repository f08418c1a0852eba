"""The values the quota ledger hands out: reservations, usage views, alerts, refusals."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import date, datetime
from enum import StrEnum

from bot.errors import BotError


class Outcome(StrEnum):
    """How a synthesis ended, as recorded in the ledger.

    Whether it was charged is not the outcome but the rule in `bot.quota.charge`: the
    same CANCELLED is charged after the response headers and released before them.
    """

    SUCCESS = "success"  # played (or prefetched) to the end
    CANCELLED = "cancelled"  # skip, stop, a dropped prefetch, shutdown
    FAILED = "failed"  # no usable response: connection error, cut mid-stream
    ERROR_STATUS = "error_status"  # ElevenLabs answered with an error status
    EXPIRED = "expired"  # never finished (a crash): released by `expire_stale`


class QuotaLimit(StrEnum):
    GUILD_PERIOD = "guild_period"  # the server's monthly allowance
    USER_DAY = "user_day"  # the member's daily cap


class QuotaExceeded(BotError):
    """A reservation was refused; nothing was reserved anywhere.

    Carries what a refusal message needs: which limit, how many credits are left under it
    (never negative), what was asked for, and when that limit resets.
    """

    def __init__(
        self,
        limit: QuotaLimit,
        *,
        remaining: int,
        requested: int,
        limit_credits: int,
        resets_at: datetime,
    ) -> None:
        self.limit = limit
        self.remaining = max(0, remaining)
        self.requested = requested
        self.limit_credits = limit_credits
        self.resets_at = resets_at
        when = resets_at.strftime("%Y-%m-%d %H:%M UTC")
        what = (
            "This server's monthly ElevenLabs allowance"
            if limit is QuotaLimit.GUILD_PERIOD
            else "Your daily allowance on this server"
        )
        super().__init__(
            f"{what} has {self.remaining} credits left, not enough for this message "
            f"({requested}); it resets on {when}."
        )


@dataclass(frozen=True, slots=True)
class Reservation:
    """Credits held for one synthesis, on the counter rows of the instant it was taken."""

    id: uuid.UUID
    guild_id: int
    user_id: int | None
    credits: int
    characters: int
    model_id: str | None
    voice_id: str | None
    period_start: date
    day: date
    created_at: datetime
    expires_at: datetime


@dataclass(frozen=True, slots=True)
class QuotaConfig:
    """A guild's quota settings as stored (None: not set, the bot's default applies)."""

    guild_id: int
    monthly_allowance: int | None = None
    user_daily_cap: int | None = None
    reset_day: int = 1
    alerts_channel_id: int | None = None


@dataclass(frozen=True, slots=True)
class GuildUsage:
    """A guild's current period: what `/quota show` and `python -m bot usage` print."""

    guild_id: int
    allowance: int  # effective: the guild's own or the bot default; 0 = unlimited
    allowance_is_default: bool
    used: int
    reserved: int
    period_start: datetime
    resets_at: datetime
    reset_day: int
    user_daily_cap: int | None
    alerts_channel_id: int | None

    @property
    def unlimited(self) -> bool:
        return self.allowance == 0

    @property
    def remaining(self) -> int | None:
        """Credits still available to new reservations; None when unlimited."""
        if self.unlimited:
            return None
        return max(0, self.allowance - self.used - self.reserved)

    @property
    def fraction_used(self) -> float | None:
        if self.unlimited:
            return None
        return self.used / self.allowance


@dataclass(frozen=True, slots=True)
class UserUsage:
    guild_id: int
    user_id: int
    used: int
    reserved: int
    cap: int | None  # None: no daily cap on this server
    day: date
    resets_at: datetime

    @property
    def remaining(self) -> int | None:
        if self.cap is None:
            return None
        return max(0, self.cap - self.used - self.reserved)


@dataclass(frozen=True, slots=True)
class UserTotal:
    user_id: int
    used: int


@dataclass(frozen=True, slots=True)
class QuotaAlert:
    """A threshold a guild just crossed; this process won the right to announce it."""

    guild_id: int
    threshold: int  # percent: 80 or 100
    used: int
    allowance: int
    channel_id: int | None
    resets_at: datetime


@dataclass(frozen=True, slots=True)
class PurgeCounts:
    ledger_rows: int
    reservations: int
    counters: int
