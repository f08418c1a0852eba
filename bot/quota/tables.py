"""The quota tables, on the shared `metadata`. Changing one means a migration (0002_quota).

No table has a column for message text: a synthesis is recorded by its size (characters,
credits) and its ids, never by what was said.

- `quota_guild_config`: what the admins chose. Kept here rather than in `guild_settings`
  so the quota feature owns its schema and migration; NULL allowance means "the bot's
  default", 0 means unlimited; NULL daily cap means no cap.
- `quota_guild_period`: one counter row per (guild, period), where period_start is the
  period's first UTC day. `used` is billed credits, `reserved` is held for requests in
  flight; every change is a conditional UPDATE in the database.
- `quota_user_day`: one counter row per (guild, user, UTC day).
- `quota_reservation`: a hold taken before a request; its `state` moves exactly once from
  "held" (the guard that makes settle and release idempotent). It records which counter
  rows it was taken on, so a request that straddles midnight or a reset settles on them.
- `quota_ledger`: one row per synthesis, written when its reservation is finished.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    Index,
    Integer,
    PrimaryKeyConstraint,
    SmallInteger,
    String,
    Table,
    Uuid,
    false,
    text,
)

from bot.storage.base import ERASE_GUILD, ERASE_USER, ERASE_USER_MODE, metadata
from bot.storage.types import UTCDateTime

MODEL_ID_LENGTH = 64
VOICE_ID_LENGTH = 64
REQUEST_ID_LENGTH = 128
OUTCOME_LENGTH = 32
STATE_LENGTH = 16


class ReservationState(StrEnum):
    HELD = "held"
    SETTLED = "settled"
    RELEASED = "released"
    EXPIRED = "expired"


def _snowflake(name: str, **kwargs) -> Column:
    return Column(name, BigInteger, autoincrement=False, **kwargs)


def _credits(name: str) -> Column:
    return Column(name, BigInteger, nullable=False, server_default=text("0"))


quota_guild_config = Table(
    "quota_guild_config",
    metadata,
    _snowflake("guild_id", primary_key=True),
    Column("monthly_allowance", BigInteger, nullable=True),
    Column("user_daily_cap", BigInteger, nullable=True),
    Column("reset_day", SmallInteger, nullable=False, server_default=text("1")),
    _snowflake("alerts_channel_id", nullable=True),
    CheckConstraint("reset_day BETWEEN 1 AND 28", name="reset_day_range"),
    CheckConstraint("monthly_allowance IS NULL OR monthly_allowance >= 0", name="allowance_sign"),
    CheckConstraint("user_daily_cap IS NULL OR user_daily_cap > 0", name="cap_sign"),
    info={ERASE_GUILD: "guild_id"},
)

quota_guild_period = Table(
    "quota_guild_period",
    metadata,
    _snowflake("guild_id", nullable=False),
    Column("period_start", Date, nullable=False),
    _credits("used"),
    _credits("reserved"),
    Column("alert_80_sent", Boolean, nullable=False, server_default=false()),
    Column("alert_100_sent", Boolean, nullable=False, server_default=false()),
    PrimaryKeyConstraint("guild_id", "period_start"),
    CheckConstraint("used >= 0", name="used_sign"),
    CheckConstraint("reserved >= 0", name="reserved_sign"),
    info={ERASE_GUILD: "guild_id"},
)

quota_user_day = Table(
    "quota_user_day",
    metadata,
    _snowflake("guild_id", nullable=False),
    _snowflake("user_id", nullable=False),
    Column("day", Date, nullable=False),
    _credits("used"),
    _credits("reserved"),
    PrimaryKeyConstraint("guild_id", "user_id", "day"),
    CheckConstraint("used >= 0", name="used_sign"),
    CheckConstraint("reserved >= 0", name="reserved_sign"),
    Index("ix_quota_user_day_guild_id_day", "guild_id", "day"),
    Index("ix_quota_user_day_user_id", "user_id"),
    info={ERASE_USER: "user_id", ERASE_GUILD: "guild_id"},
)

quota_reservation = Table(
    "quota_reservation",
    metadata,
    Column("id", Uuid, primary_key=True),
    _snowflake("guild_id", nullable=False),
    # NULL once the user asked to be forgotten while the request was in flight.
    _snowflake("user_id", nullable=True),
    Column("credits", BigInteger, nullable=False),
    Column("characters", Integer, nullable=False),
    Column("model_id", String(MODEL_ID_LENGTH), nullable=True),
    Column("voice_id", String(VOICE_ID_LENGTH), nullable=True),
    Column("period_start", Date, nullable=False),
    Column("day", Date, nullable=False),
    Column("state", String(STATE_LENGTH), nullable=False, server_default=text("'held'")),
    Column("created_at", UTCDateTime, nullable=False),
    Column("expires_at", UTCDateTime, nullable=False),
    Column("finished_at", UTCDateTime, nullable=True),
    CheckConstraint("credits >= 0", name="credits_sign"),
    CheckConstraint("state IN ('held', 'settled', 'released', 'expired')", name="state_known"),
    Index("ix_quota_reservation_state_expires_at", "state", "expires_at"),
    Index("ix_quota_reservation_user_id", "user_id"),
    info={ERASE_USER: "user_id", ERASE_USER_MODE: "null", ERASE_GUILD: "guild_id"},
)

quota_ledger = Table(
    "quota_ledger",
    metadata,
    # The reservation's id: one ledger row per synthesis, written once.
    Column("id", Uuid, primary_key=True),
    _snowflake("guild_id", nullable=False),
    # NULL after `/voice forget`: the guild's totals stay right, the person is gone.
    _snowflake("user_id", nullable=True),
    Column("credits_reserved", BigInteger, nullable=False),
    Column("credits_billed", BigInteger, nullable=False),
    Column("characters", Integer, nullable=False),
    Column("model_id", String(MODEL_ID_LENGTH), nullable=True),
    Column("voice_id", String(VOICE_ID_LENGTH), nullable=True),
    Column("request_id", String(REQUEST_ID_LENGTH), nullable=True),
    Column("created_at", UTCDateTime, nullable=False),
    Column("settled_at", UTCDateTime, nullable=False),
    Column("outcome", String(OUTCOME_LENGTH), nullable=False),
    Index("ix_quota_ledger_created_at", "created_at"),
    Index("ix_quota_ledger_guild_id_created_at", "guild_id", "created_at"),
    Index("ix_quota_ledger_user_id", "user_id"),
    info={ERASE_USER: "user_id", ERASE_USER_MODE: "null", ERASE_GUILD: "guild_id"},
)

QUOTA_TABLES = (
    quota_guild_config,
    quota_guild_period,
    quota_user_day,
    quota_reservation,
    quota_ledger,
)
