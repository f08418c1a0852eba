"""`QuotaLedger`: reserve, settle, release, expire, and the usage and config views.

Every decision about credits is taken by the database, in one conditional statement per
counter (``UPDATE ... SET reserved = reserved + :c WHERE used + reserved + :c <= :limit``,
then the rowcount), never by reading a number into Python and writing it back. That is what
makes it safe for many tasks in one process (SQLite: one write transaction at a time, queued
in memory by the engine, each begun IMMEDIATE) and for several processes on one PostgreSQL
(the second UPDATE of a row waits for the first and re-checks its WHERE against the
committed row). Views that only read go through `reading(engine)`: on SQLite they neither
take the write lock nor wait in the write queue.

Lock order, to keep PostgreSQL free of deadlocks: reservation row, then guild period row,
then user day row, then the ledger.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import asdict
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import delete, func, insert, select, union, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.quota import statements
from bot.quota.charge import SynthesisCharge
from bot.quota.models import (
    GuildUsage,
    Outcome,
    PurgeCounts,
    QuotaAlert,
    QuotaConfig,
    QuotaExceeded,
    QuotaLimit,
    Reservation,
    UserTotal,
    UserUsage,
)
from bot.quota.periods import as_utc, guild_period, user_day, validate_reset_day
from bot.quota.tables import (
    ReservationState,
    quota_guild_config,
    quota_guild_period,
    quota_ledger,
    quota_reservation,
    quota_user_day,
)
from bot.storage.engine import read_transaction, write_transaction

log = logging.getLogger(__name__)

#: Alert thresholds in percent of the allowance, with the flag column for each.
ALERT_THRESHOLDS: tuple[tuple[int, str], ...] = ((80, "alert_80_sent"), (100, "alert_100_sent"))

#: Finished reservations are kept this long (then `purge_ledger` deletes them): long enough
#: that a late or duplicate settle finds the row and does nothing.
FINISHED_RESERVATION_KEEP = timedelta(days=2)

_cfg = quota_guild_config
_gp = quota_guild_period
_ud = quota_user_day
_res = quota_reservation
_led = quota_ledger


class QuotaLedger:
    """Credits per guild and member, held in the database behind `engine`.

    `default_allowance` is the monthly allowance of a guild that set none (0: unlimited),
    `reservation_ttl` how long a hold may stay unfinished before `expire_stale` gives it
    back (it must exceed the longest synthesis: a reservation is settled when the stream
    ends), `retention` how long ledger rows and old counters are kept.
    """

    def __init__(
        self,
        engine: AsyncEngine,
        *,
        default_allowance: int,
        reservation_ttl: timedelta = timedelta(minutes=10),
        retention: timedelta = timedelta(days=400),
    ) -> None:
        if default_allowance < 0:
            raise ValueError("the default allowance cannot be negative (0 means unlimited)")
        if reservation_ttl <= timedelta(0) or retention <= timedelta(0):
            raise ValueError("the reservation TTL and the retention must be positive")
        self._engine = engine
        self._dialect = engine.dialect.name
        self.default_allowance = default_allowance
        self.reservation_ttl = reservation_ttl
        self.retention = retention

    # ------------------------------------------------------------------ reserve / finish

    async def reserve(
        self,
        guild_id: int,
        user_id: int,
        credits: int,
        *,
        model_id: str | None,
        voice_id: str | None,
        characters: int,
        now: datetime | None = None,
    ) -> Reservation:
        """Hold `credits` on the guild's period and the user's day, or raise `QuotaExceeded`.

        Both counters change in one transaction: if either refuses, neither changes.
        """
        if credits < 0 or characters < 0:
            raise ValueError("credits and characters cannot be negative")
        now = _instant(now)
        reservation = await write_transaction(
            self._engine,
            self._reserve,
            guild_id,
            user_id,
            credits,
            model_id,
            voice_id,
            characters,
            now,
        )
        log.debug(
            "reserved %d credits guild=%s user=%s reservation=%s",
            credits,
            guild_id,
            user_id,
            reservation.id,
        )
        return reservation

    def _reserve(
        self,
        conn: Connection,
        guild_id: int,
        user_id: int,
        credits: int,
        model_id: str | None,
        voice_id: str | None,
        characters: int,
        now: datetime,
    ) -> Reservation:
        """`reserve`'s transaction."""
        config = statements.load_config(conn, guild_id)
        period = guild_period(now, config.reset_day)
        day = user_day(now)
        allowance = self._allowance(config)
        cap = config.user_daily_cap
        reservation = Reservation(
            id=uuid.uuid4(),
            guild_id=guild_id,
            user_id=user_id,
            credits=credits,
            characters=characters,
            model_id=model_id,
            voice_id=voice_id,
            period_start=period.key,
            day=day.key,
            created_at=now,
            expires_at=now + self.reservation_ttl,
        )
        # Everything that takes no lock on a counter first, so that the counter rows are
        # locked (PostgreSQL) for as short a time as possible: from their UPDATE to the
        # commit. A refusal below rolls all of it back.
        conn.execute(insert(_res).values(**asdict(reservation), state=ReservationState.HELD.value))
        guild_key = {"guild_id": guild_id, "period_start": period.key}
        user_key = {"guild_id": guild_id, "user_id": user_id, "day": day.key}
        if not statements.hold_creating(conn, _gp, guild_key, credits, allowance or None):
            taken = statements.taken(conn, _gp, guild_key)
            raise QuotaExceeded(
                QuotaLimit.GUILD_PERIOD,
                remaining=allowance - taken,
                requested=credits,
                limit_credits=allowance,
                resets_at=period.resets_at,
            )
        if not statements.hold_creating(conn, _ud, user_key, credits, cap):
            taken = statements.taken(conn, _ud, user_key)
            # Raising inside the transaction rolls back the guild's hold taken above.
            raise QuotaExceeded(
                QuotaLimit.USER_DAY,
                remaining=(cap or 0) - taken,
                requested=credits,
                limit_credits=cap or 0,
                resets_at=day.resets_at,
            )
        return reservation

    async def charge(
        self,
        guild_id: int,
        user_id: int,
        credits: int,
        *,
        model_id: str | None,
        voice_id: str | None,
        characters: int,
        now: datetime | None = None,
    ) -> SynthesisCharge:
        """`reserve`, wrapped in the helper that applies the charging rule for the player."""
        reservation = await self.reserve(
            guild_id,
            user_id,
            credits,
            model_id=model_id,
            voice_id=voice_id,
            characters=characters,
            now=now,
        )
        return SynthesisCharge(self, reservation)

    async def settle(
        self,
        reservation: Reservation | uuid.UUID,
        billed_credits: int | None,
        *,
        request_id: str | None = None,
        outcome: Outcome = Outcome.SUCCESS,
        now: datetime | None = None,
    ) -> bool:
        """Charge the synthesis at `billed_credits` (None: the reserved estimate).

        Returns False, changing nothing, when the reservation was already settled or
        released. A reservation that expired meanwhile (the request outlived the TTL) is
        still charged: the credits were spent, even if that overshoots the allowance.
        """
        if billed_credits is not None and billed_credits < 0:
            raise ValueError("billed credits cannot be negative")
        now = _instant(now)
        rid = _reservation_id(reservation)
        return await write_transaction(
            self._engine, self._settle, rid, billed_credits, request_id, outcome, now
        )

    @staticmethod
    def _settle(
        conn: Connection,
        rid: uuid.UUID,
        billed_credits: int | None,
        request_id: str | None,
        outcome: Outcome,
        now: datetime,
    ) -> bool:
        """`settle`'s transaction."""
        row = statements.transition(conn, rid, ReservationState.SETTLED, now)
        if row is not None:
            billed = row.credits if billed_credits is None else billed_credits
            statements.move(conn, row, release=row.credits, charge=billed)
            statements.write_ledger(conn, row, billed, request_id, outcome, now)
            log.debug(
                "settled reservation=%s guild=%s request=%s billed=%d reserved=%d outcome=%s",
                rid,
                row.guild_id,
                request_id,
                billed,
                row.credits,
                outcome,
            )
            return True
        row = statements.transition(
            conn, rid, ReservationState.SETTLED, now, from_state=ReservationState.EXPIRED
        )
        if row is None:
            return False
        billed = row.credits if billed_credits is None else billed_credits
        statements.move(conn, row, release=0, charge=billed)
        conn.execute(
            update(_led)
            .where(_led.c.id == rid)
            .values(credits_billed=billed, request_id=request_id, outcome=outcome, settled_at=now)
        )
        log.warning("settled reservation %s after it had expired", rid)
        return True

    async def release(
        self,
        reservation: Reservation | uuid.UUID,
        outcome: Outcome,
        *,
        request_id: str | None = None,
        now: datetime | None = None,
    ) -> bool:
        """Give the held credits back (nothing was billed). False if already finished."""
        return await self._release(
            _reservation_id(reservation), ReservationState.RELEASED, outcome, request_id, now
        )

    async def expire_stale(self, now: datetime | None = None) -> int:
        """Release every hold older than the TTL (left by a crash); returns how many."""
        now = _instant(now)
        ids = await read_transaction(self._engine, _stale_ids, now)
        expired = 0
        for rid in ids:
            if await self._release(
                rid, ReservationState.EXPIRED, Outcome.EXPIRED, None, now, expired_by=now
            ):
                expired += 1
        if expired:
            log.info("released %d abandoned reservations", expired)
        return expired

    async def purge_ledger(self, now: datetime | None = None) -> PurgeCounts:
        """Delete ledger rows and counters older than the retention, and old finished holds."""
        now = _instant(now)
        cutoff = now - self.retention

        def purge(conn: Connection) -> PurgeCounts:
            ledger_rows = conn.execute(delete(_led).where(_led.c.created_at < cutoff)).rowcount
            reservations = conn.execute(
                delete(_res).where(
                    _res.c.state != ReservationState.HELD.value,
                    _res.c.created_at < now - FINISHED_RESERVATION_KEEP,
                )
            ).rowcount
            counters = conn.execute(delete(_ud).where(_ud.c.day < cutoff.date())).rowcount
            # A period row is old when the whole period is: it starts over a month earlier.
            counters += conn.execute(
                delete(_gp).where(_gp.c.period_start < (cutoff - timedelta(days=31)).date())
            ).rowcount
            return PurgeCounts(
                ledger_rows=ledger_rows, reservations=reservations, counters=counters
            )

        return await write_transaction(self._engine, purge)

    # ------------------------------------------------------------------ usage views

    async def guild_usage(self, guild_id: int, now: datetime | None = None) -> GuildUsage:
        return await read_transaction(self._engine, self._guild_usage, guild_id, _instant(now))

    async def user_usage_today(
        self, guild_id: int, user_id: int, now: datetime | None = None
    ) -> UserUsage:
        day = user_day(_instant(now))

        def read(conn: Connection) -> UserUsage:
            config = statements.load_config(conn, guild_id)
            row = conn.execute(
                select(_ud.c.used, _ud.c.reserved).where(
                    _ud.c.guild_id == guild_id, _ud.c.user_id == user_id, _ud.c.day == day.key
                )
            ).one_or_none()
            return UserUsage(
                guild_id=guild_id,
                user_id=user_id,
                used=row.used if row else 0,
                reserved=row.reserved if row else 0,
                cap=config.user_daily_cap,
                day=day.key,
                resets_at=day.resets_at,
            )

        return await read_transaction(self._engine, read)

    async def top_users(
        self, guild_id: int, limit: int = 10, now: datetime | None = None
    ) -> list[UserTotal]:
        """The members who used the most credits this period (settled credits)."""
        now = _instant(now)

        def read(conn: Connection) -> list[UserTotal]:
            period = guild_period(now, statements.load_config(conn, guild_id).reset_day)
            total = func.sum(_ud.c.used).label("used")
            rows = conn.execute(
                select(_ud.c.user_id, total)
                .where(
                    _ud.c.guild_id == guild_id,
                    _ud.c.day >= period.start.date(),
                    _ud.c.day < period.end.date(),
                )
                .group_by(_ud.c.user_id)
                .having(total > 0)
                .order_by(total.desc(), _ud.c.user_id)
                .limit(limit)
            )
            return [UserTotal(user_id=row.user_id, used=int(row.used)) for row in rows]

        return await read_transaction(self._engine, read)

    async def all_guilds_usage(self, now: datetime | None = None) -> list[GuildUsage]:
        """Every guild with a quota setting or a counter, by id: for `python -m bot usage`."""
        now = _instant(now)

        def read(conn: Connection) -> list[GuildUsage]:
            ids = conn.scalars(
                union(select(_cfg.c.guild_id), select(_gp.c.guild_id)).order_by("guild_id")
            ).all()
            return [self._guild_usage(conn, guild_id, now) for guild_id in ids]

        return await read_transaction(self._engine, read)

    # ------------------------------------------------------------------ configuration

    async def get_config(self, guild_id: int) -> QuotaConfig:
        return await read_transaction(self._engine, statements.load_config, guild_id)

    async def set_monthly_allowance(self, guild_id: int, credits: int | None) -> None:
        """Set the guild's allowance: None returns to the bot default, 0 is unlimited.

        Who may raise it above the bot default is the command layer's decision.
        """
        if credits is not None and credits < 0:
            raise ValueError("an allowance cannot be negative (0 means unlimited)")
        await self._set(guild_id, monthly_allowance=credits)

    async def set_user_daily_cap(self, guild_id: int, credits: int | None) -> None:
        """Cap each member's credits per UTC day; None or 0 removes the cap."""
        if credits is not None and credits < 0:
            raise ValueError("a daily cap cannot be negative (0 removes it)")
        await self._set(guild_id, user_daily_cap=credits or None)

    async def set_alerts_channel(self, guild_id: int, channel_id: int | None) -> None:
        await self._set(guild_id, alerts_channel_id=channel_id)

    async def set_reset_day(
        self, guild_id: int, reset_day: int, *, now: datetime | None = None
    ) -> None:
        """Move the monthly reset to `reset_day` (1-28), from the current period on.

        The current period then has other bounds, hence another counter row: it starts
        with the credits already used (and alert flags) of the period it replaces, so a
        change of day is not a refill. Holds in flight settle on the row they were taken on.
        """
        validate_reset_day(reset_day)
        now = _instant(now)

        def write(conn: Connection) -> None:
            old_day = statements.load_config(conn, guild_id).reset_day
            statements.save_config(conn, guild_id, reset_day=reset_day)
            old, new = guild_period(now, old_day), guild_period(now, reset_day)
            if old.key != new.key:
                statements.carry_period(conn, guild_id, old.key, new.key)

        await write_transaction(self._engine, write)

    # ------------------------------------------------------------------ alerts, privacy

    async def crossed_alerts(self, guild_id: int, now: datetime | None = None) -> list[QuotaAlert]:
        """Thresholds (80 %, 100 % of the allowance) crossed and not yet announced.

        Each is marked as announced by a conditional UPDATE in the same step: whatever the
        number of processes calling this, each threshold is returned once per period. Call
        it after settling; post the returned alerts to `channel_id` when it is set.
        """
        now = _instant(now)
        if not await read_transaction(self._engine, self._alert_due, guild_id, now):
            return []
        return await write_transaction(self._engine, self._claim_alerts, guild_id, now)

    def _claim_alerts(self, conn: Connection, guild_id: int, now: datetime) -> list[QuotaAlert]:
        alerts: list[QuotaAlert] = []
        config = statements.load_config(conn, guild_id)
        allowance = self._allowance(config)
        if not allowance:
            return alerts
        period = guild_period(now, config.reset_day)
        for threshold, flag in ALERT_THRESHOLDS:
            used = statements.claim_alert(conn, guild_id, period.key, flag, allowance, threshold)
            if used is not None:
                alerts.append(
                    QuotaAlert(
                        guild_id=guild_id,
                        threshold=threshold,
                        used=used,
                        allowance=allowance,
                        channel_id=config.alerts_channel_id,
                        resets_at=period.resets_at,
                    )
                )
        return alerts

    def _alert_due(self, conn: Connection, guild_id: int, now: datetime) -> bool:
        """Whether some threshold looks crossed and unannounced: a read, no write lock.

        Called after every settle, and nearly always False: only then is the claim's write
        transaction worth taking. A settle that crosses a threshold after this read has
        committed first and then makes its own call, which sees it.
        """
        config = statements.load_config(conn, guild_id)
        allowance = self._allowance(config)
        if not allowance:
            return False
        period = guild_period(now, config.reset_day)
        flags = [flag for _threshold, flag in ALERT_THRESHOLDS]
        row = conn.execute(
            select(_gp.c.used, *(_gp.c[flag] for flag in flags)).where(
                _gp.c.guild_id == guild_id, _gp.c.period_start == period.key
            )
        ).one_or_none()
        if row is None:
            return False
        return any(
            not row._mapping[flag] and row.used * 100 >= allowance * threshold
            for threshold, flag in ALERT_THRESHOLDS
        )

    async def forget_user(self, user_id: int) -> None:
        """Erase a member from the quota data, in every guild.

        Their day counters are deleted; ledger rows and holds keep their credits (the
        guild's totals and the operator's bill must stay right) but lose the user id.
        A consequence: a member who is forgotten starts today's cap afresh.
        """

        def write(conn: Connection) -> None:
            conn.execute(update(_res).where(_res.c.user_id == user_id).values(user_id=None))
            conn.execute(delete(_ud).where(_ud.c.user_id == user_id))
            conn.execute(update(_led).where(_led.c.user_id == user_id).values(user_id=None))

        await write_transaction(self._engine, write)

    # ------------------------------------------------------------------ internals

    def _allowance(self, config: QuotaConfig) -> int:
        if config.monthly_allowance is None:
            return self.default_allowance
        return config.monthly_allowance

    async def _set(self, guild_id: int, **values: Any) -> None:
        await write_transaction(
            self._engine, lambda conn: statements.save_config(conn, guild_id, **values)
        )

    def _guild_usage(self, conn: Connection, guild_id: int, now: datetime) -> GuildUsage:
        config = statements.load_config(conn, guild_id)
        period = guild_period(now, config.reset_day)
        row = conn.execute(
            select(_gp.c.used, _gp.c.reserved).where(
                _gp.c.guild_id == guild_id, _gp.c.period_start == period.key
            )
        ).one_or_none()
        return GuildUsage(
            guild_id=guild_id,
            allowance=self._allowance(config),
            allowance_is_default=config.monthly_allowance is None,
            used=row.used if row else 0,
            reserved=row.reserved if row else 0,
            period_start=period.start,
            resets_at=period.resets_at,
            reset_day=config.reset_day,
            user_daily_cap=config.user_daily_cap,
            alerts_channel_id=config.alerts_channel_id,
        )

    async def _release(
        self,
        rid: uuid.UUID,
        to_state: ReservationState,
        outcome: Outcome,
        request_id: str | None,
        now: datetime | None,
        *,
        expired_by: datetime | None = None,
    ) -> bool:
        now = _instant(now)

        def write(conn: Connection) -> Any:
            row = statements.transition(conn, rid, to_state, now, expired_by=expired_by)
            if row is None:
                return None
            statements.move(conn, row, release=row.credits, charge=0)
            statements.write_ledger(conn, row, 0, request_id, outcome, now)
            return row

        row = await write_transaction(self._engine, write)
        if row is None:
            return False
        log.debug(
            "released reservation=%s guild=%s request=%s credits=%d outcome=%s",
            rid,
            row.guild_id,
            request_id,
            row.credits,
            outcome,
        )
        return True


def _stale_ids(conn: Connection, now: datetime) -> list[uuid.UUID]:
    return list(
        conn.scalars(
            select(_res.c.id).where(
                _res.c.state == ReservationState.HELD.value, _res.c.expires_at <= now
            )
        )
    )


def _instant(now: datetime | None) -> datetime:
    return datetime.now(UTC) if now is None else as_utc(now)


def _reservation_id(reservation: Reservation | uuid.UUID) -> uuid.UUID:
    return reservation.id if isinstance(reservation, Reservation) else reservation


__all__ = ["ALERT_THRESHOLDS", "QuotaLedger"]
