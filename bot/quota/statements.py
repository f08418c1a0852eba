"""The SQL of the quota ledger: each function is one statement (or two) on a connection.

Kept apart from `QuotaLedger` so that the statements that decide about credits can be read
together. Every one of them decides in the database: a conditional UPDATE and its rowcount
(or RETURNING), never a value read into Python and written back.

They take a synchronous `Connection`: the ledger runs each write transaction as one plain
function (`bot.storage.engine.write_transaction`: on SQLite in the writer thread, elsewhere
through `AsyncConnection.run_sync`), and reads call them with `run_sync` too.
"""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Date,
    Row,
    Table,
    case,
    false,
    insert,
    literal,
    or_,
    select,
    true,
    update,
)
from sqlalchemy.engine import Connection

from bot.quota.models import Outcome, QuotaConfig
from bot.quota.tables import (
    ReservationState,
    quota_guild_config,
    quota_guild_period,
    quota_ledger,
    quota_reservation,
    quota_user_day,
)
from bot.storage.sql import insert_for

_cfg = quota_guild_config
_gp = quota_guild_period
_ud = quota_user_day
_res = quota_reservation
_led = quota_ledger


def upsert(conn: Connection, table: Table) -> Any:
    """The dialect's INSERT, the one with ON CONFLICT (the same API on both)."""
    return insert_for(conn.dialect.name, table)


def load_config(conn: Connection, guild_id: int) -> QuotaConfig:
    row = (conn.execute(select(_cfg).where(_cfg.c.guild_id == guild_id))).one_or_none()
    if row is None:
        return QuotaConfig(guild_id=guild_id)
    return QuotaConfig(
        guild_id=guild_id,
        monthly_allowance=row.monthly_allowance,
        user_daily_cap=row.user_daily_cap,
        reset_day=row.reset_day,
        alerts_channel_id=row.alerts_channel_id,
    )


def save_config(conn: Connection, guild_id: int, **values: Any) -> None:
    conn.execute(
        upsert(conn, _cfg)
        .values(guild_id=guild_id, **values)
        .on_conflict_do_update(index_elements=[_cfg.c.guild_id], set_=values)
    )


def ensure_row(conn: Connection, table: Table, key: dict[str, Any]) -> None:
    """Create the counter row at zero if it is missing (a no-op when it exists)."""
    conn.execute(
        upsert(conn, table)
        .values(**key)
        .on_conflict_do_nothing(index_elements=[table.c[name] for name in key])
    )


def hold(
    conn: Connection, table: Table, key: dict[str, Any], credits: int, limit: int | None
) -> bool:
    """The one conditional statement per counter: add `credits` to `reserved` if they fit.

    `limit` None means no limit. The database evaluates the WHERE against the row it locks
    (PostgreSQL re-checks it after waiting for a concurrent writer), so two holds can never
    both fit into the same last credits.
    """
    stmt = (
        update(table)
        .where(*(table.c[name] == value for name, value in key.items()))
        .values(reserved=table.c.reserved + credits)
    )
    if limit is not None:
        stmt = stmt.where(table.c.used + table.c.reserved + credits <= limit)
    return (conn.execute(stmt)).rowcount == 1


def hold_creating(
    conn: Connection, table: Table, key: dict[str, Any], credits: int, limit: int | None
) -> bool:
    """`hold`, creating the counter row at zero first when it is missing.

    The row exists for all but the first hold of a period (or day): try the hold alone,
    and only when it refuses make sure the row exists and try again (a refusal over the
    limit then costs two statements more, a reservation one less).
    """
    if hold(conn, table, key, credits, limit):
        return True
    ensure_row(conn, table, key)
    return hold(conn, table, key, credits, limit)


def taken(conn: Connection, table: Table, key: dict[str, Any]) -> int:
    """used + reserved of a counter row: only to word a refusal, never to decide one."""
    where = [table.c[name] == value for name, value in key.items()]
    value = conn.scalar(select(table.c.used + table.c.reserved).where(*where))
    return int(value or 0)


def transition(
    conn: Connection,
    reservation_id: uuid.UUID,
    to_state: ReservationState,
    now: datetime,
    *,
    from_state: ReservationState = ReservationState.HELD,
    expired_by: datetime | None = None,
) -> Row | None:
    """Move one reservation between states; its row if this call did it, else None.

    The conditional UPDATE is the idempotence guard: of two settles (or a settle and a
    release, or two processes), exactly one sees its row come back.
    """
    stmt = update(_res).where(_res.c.id == reservation_id, _res.c.state == from_state.value)
    if expired_by is not None:
        stmt = stmt.where(_res.c.expires_at <= expired_by)
    stmt = stmt.values(state=to_state.value, finished_at=now).returning(*_res.c)
    return (conn.execute(stmt)).one_or_none()


def move(conn: Connection, reservation: Row, *, release: int, charge: int) -> None:
    """Take `release` off the held credits and add `charge` to the used ones.

    On the counter rows the reservation was taken on (its period and day), not today's.
    """
    conn.execute(
        update(_gp)
        .where(
            _gp.c.guild_id == reservation.guild_id,
            _gp.c.period_start == reservation.period_start,
        )
        .values(reserved=_gp.c.reserved - release, used=_gp.c.used + charge)
    )
    if reservation.user_id is not None:
        conn.execute(
            update(_ud)
            .where(
                _ud.c.guild_id == reservation.guild_id,
                _ud.c.user_id == reservation.user_id,
                _ud.c.day == reservation.day,
            )
            .values(reserved=_ud.c.reserved - release, used=_ud.c.used + charge)
        )


def write_ledger(
    conn: Connection,
    reservation: Row,
    billed: int,
    request_id: str | None,
    outcome: Outcome,
    now: datetime,
) -> None:
    """The synthesis' one ledger row, keyed by the reservation's id."""
    conn.execute(
        insert(_led).values(
            id=reservation.id,
            guild_id=reservation.guild_id,
            user_id=reservation.user_id,
            credits_reserved=reservation.credits,
            credits_billed=billed,
            characters=reservation.characters,
            model_id=reservation.model_id,
            voice_id=reservation.voice_id,
            request_id=request_id,
            created_at=reservation.created_at,
            settled_at=now,
            outcome=outcome.value,
        )
    )


def carry_period(conn: Connection, guild_id: int, old: date, new: date) -> None:
    """Start period `new` with the used credits and alert flags of period `old`.

    When the row for `new` exists already (the reset day went back and forth), the larger
    count and either flag win: nothing is forgotten.
    """
    carried = select(
        literal(guild_id, BigInteger),
        literal(new, Date),
        _gp.c.used,
        _gp.c.alert_80_sent,
        _gp.c.alert_100_sent,
    ).where(_gp.c.guild_id == guild_id, _gp.c.period_start == old)
    stmt = upsert(conn, _gp).from_select(
        ["guild_id", "period_start", "used", "alert_80_sent", "alert_100_sent"], carried
    )
    stmt = stmt.on_conflict_do_update(
        index_elements=[_gp.c.guild_id, _gp.c.period_start],
        set_={
            "used": case((stmt.excluded.used > _gp.c.used, stmt.excluded.used), else_=_gp.c.used),
            "alert_80_sent": or_(_gp.c.alert_80_sent, stmt.excluded.alert_80_sent),
            "alert_100_sent": or_(_gp.c.alert_100_sent, stmt.excluded.alert_100_sent),
        },
    )
    conn.execute(stmt)


def claim_alert(
    conn: Connection,
    guild_id: int,
    period_start: date,
    flag: str,
    allowance: int,
    threshold: int,
) -> int | None:
    """Set alert `flag` if `threshold` % of `allowance` is used and it was not set yet.

    Returns the used credits when this call set it (this caller announces), else None.
    """
    row = (
        conn.execute(
            update(_gp)
            .where(
                _gp.c.guild_id == guild_id,
                _gp.c.period_start == period_start,
                _gp.c[flag] == false(),
                _gp.c.used * 100 >= allowance * threshold,
            )
            .values({flag: true()})
            .returning(_gp.c.used)
        )
    ).one_or_none()
    return None if row is None else row.used
