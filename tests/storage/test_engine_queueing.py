"""How one process shares SQLite: one write slot served in arrival order, reads beside it,
whole write transactions in the writer thread; and the same calls on PostgreSQL."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.quota import QuotaExceeded, QuotaLedger
from bot.storage.engine import create_engine, read_transaction, reading, write_transaction
from bot.storage.tables import user_settings
from bot.storage.users import UserSettingsRepository
from tests.quota.support import counters

GUILD = 900_000_000_000_000_002
USERS = 25


def _nickname(connection: Connection, user_id: int) -> str | None:
    return connection.scalar(
        select(user_settings.c.nickname).where(user_settings.c.user_id == user_id)
    )


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
async def test_the_write_slot_is_served_first_come_first_served(db_engine: AsyncEngine) -> None:
    order: list[int] = []

    async def writer(index: int) -> None:
        async with db_engine.begin() as connection:
            await connection.execute(text("SELECT 1"))
            order.append(index)

    async with db_engine.connect():  # hold the slot while the others queue
        tasks = []
        for index in range(20):
            tasks.append(asyncio.create_task(writer(index)))
            await asyncio.sleep(0)  # each one queued before the next
    await asyncio.gather(*tasks)
    assert order == list(range(20))


async def test_concurrent_writers_of_both_kinds_all_land(
    db_engine: AsyncEngine, db_backend: str
) -> None:
    """Quota reservations (whole transactions in the writer thread on SQLite) and settings
    writes (the async driver) at once: every one succeeds, totals are exact, no
    "database is locked"."""
    ledger = QuotaLedger(db_engine, default_allowance=0)
    users = UserSettingsRepository(db_engine)

    async def reserve_and_settle(user_id: int) -> None:
        reservation = await ledger.reserve(
            GUILD, user_id, 3, model_id=None, voice_id=None, characters=3
        )
        await ledger.settle(reservation, 2)

    jobs = []
    for index in range(USERS):
        jobs += [reserve_and_settle(1000 + index) for _ in range(8)]
        jobs += [
            users.set_nickname(1000 + index, f"n{index}"),
            users.update(1000 + index, speed=1.1),
        ]
    await asyncio.gather(*jobs)

    totals = await counters(db_engine, GUILD)
    assert totals == {
        "used": USERS * 8 * 2,
        "reserved": 0,
        "user_used": 16 * USERS,
        "user_reserved": 0,
    }
    for index in range(USERS):
        assert await read_transaction(db_engine, _nickname, 1000 + index) == f"n{index}"
        assert (await users.get(1000 + index)).speed == 1.1


async def test_a_failed_write_transaction_leaves_nothing(db_engine: AsyncEngine) -> None:
    def write_then_fail(connection: Connection) -> None:
        connection.execute(user_settings.insert().values(user_id=7, nickname="half"))
        raise RuntimeError("refused")

    with pytest.raises(RuntimeError, match="refused"):
        await write_transaction(db_engine, write_then_fail)
    assert await read_transaction(db_engine, _nickname, 7) is None


async def test_a_refusal_rolls_back_and_the_next_reservation_proceeds(
    db_engine: AsyncEngine,
) -> None:
    ledger = QuotaLedger(db_engine, default_allowance=10)
    results = await asyncio.gather(
        *(
            ledger.reserve(GUILD, 1, 4, model_id=None, voice_id=None, characters=4)
            for _ in range(5)
        ),
        return_exceptions=True,
    )
    assert sum(isinstance(result, QuotaExceeded) for result in results) == 3
    assert (await counters(db_engine, GUILD))["reserved"] == 8


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
async def test_a_write_cancelled_while_queued_never_runs(db_engine: AsyncEngine) -> None:
    def write(connection: Connection) -> None:
        connection.execute(user_settings.insert().values(user_id=8, nickname="late"))

    async with db_engine.connect():  # the slot is taken: the write waits in the queue
        queued = asyncio.create_task(write_transaction(db_engine, write))
        await asyncio.sleep(0.05)
        queued.cancel()
        with pytest.raises(asyncio.CancelledError):
            await queued
    await write_transaction(db_engine, lambda connection: None)  # the queue moves on
    assert await read_transaction(db_engine, _nickname, 8) is None


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
async def test_reads_have_their_own_connections(db_engine: AsyncEngine) -> None:
    assert reading(db_engine) is not db_engine
    async with db_engine.connect():  # the write slot is held: reads still go through
        assert await asyncio.wait_for(read_transaction(db_engine, _nickname, 9), 10) is None
        async with reading(db_engine).connect() as connection:
            await asyncio.wait_for(connection.execute(text("SELECT 1")), 10)


@pytest.mark.parametrize("db_backend", ["sqlite"], indirect=True)
async def test_the_engine_works_again_after_dispose(db_url: str) -> None:
    engine = create_engine(db_url)
    try:
        users = UserSettingsRepository(engine)
        await users.set_nickname(10, "before")
        await engine.dispose()
        await users.set_nickname(11, "after")
        await write_transaction(
            engine, lambda c: c.execute(user_settings.insert().values(user_id=12))
        )
        assert await read_transaction(engine, _nickname, 10) == "before"
        assert (await users.get(11)).nickname == "after"
    finally:
        await engine.dispose()
