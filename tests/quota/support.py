"""Constants and database peeks shared by the quota tests."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.quota.tables import quota_guild_period, quota_reservation, quota_user_day

GUILD = 111_111_111_111_111_111
OTHER_GUILD = 222_222_222_222_222_222
USER = 333_333_333_333_333_333
OTHER_USER = 444_444_444_444_444_444
ALLOWANCE = 1_000
TTL = timedelta(minutes=10)
RETENTION = timedelta(days=400)
#: A fixed instant in the middle of a period and a day, so tests never straddle a reset.
NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)


async def counters(engine: AsyncEngine, guild_id: int = GUILD) -> dict[str, int]:
    """Sum of every counter row of a guild: (guild used, reserved, users used, reserved)."""
    async with engine.connect() as conn:
        guild = (
            await conn.execute(
                select(quota_guild_period.c.used, quota_guild_period.c.reserved).where(
                    quota_guild_period.c.guild_id == guild_id
                )
            )
        ).all()
        users = (
            await conn.execute(
                select(quota_user_day.c.used, quota_user_day.c.reserved).where(
                    quota_user_day.c.guild_id == guild_id
                )
            )
        ).all()
    return {
        "used": sum(row.used for row in guild),
        "reserved": sum(row.reserved for row in guild),
        "user_used": sum(row.used for row in users),
        "user_reserved": sum(row.reserved for row in users),
    }


async def reservation_states(engine: AsyncEngine) -> list[str]:
    async with engine.connect() as conn:
        return sorted((await conn.scalars(select(quota_reservation.c.state))).all())
