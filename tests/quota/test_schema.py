"""The 0002_quota migration builds exactly the tables declared, and none can hold text."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import String, Text, inspect, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.quota import Outcome, QuotaLedger
from bot.quota.tables import QUOTA_TABLES
from bot.storage.base import metadata
from bot.storage.migrate import downgrade, head_revision, upgrade
from tests.quota.support import GUILD, USER

QUOTA_TABLE_NAMES = {table.name for table in QUOTA_TABLES}
#: The only string columns: identifiers and enumerations, all short ("id" is a UUID, which
#: SQLite stores as CHAR(32)).
STRING_COLUMNS = {"id", "model_id", "voice_id", "request_id", "outcome", "state"}


def _table_of(diff) -> str | None:
    """The table a diff entry of `compare_metadata` is about."""
    if isinstance(diff, list):  # column modifications come as a list of tuples
        return _table_of(diff[0])
    kind, *rest = diff
    if kind in ("add_table", "remove_table"):
        return rest[0].name
    if kind in ("add_index", "remove_index", "add_constraint", "remove_constraint"):
        return rest[0].table.name
    if kind in ("add_column", "remove_column"):
        return rest[1]
    if kind.startswith("modify_"):
        return rest[1]
    return None


def _compare(connection) -> list:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "target_metadata": metadata}
    )
    return compare_metadata(context, metadata)


async def test_migration_matches_the_declared_tables(db_engine: AsyncEngine) -> None:
    async with db_engine.connect() as conn:
        diffs = await conn.run_sync(_compare)
    quota_diffs = [diff for diff in diffs if _table_of(diff) in QUOTA_TABLE_NAMES]
    assert quota_diffs == []


async def test_downgrade_and_upgrade_again(db_engine: AsyncEngine) -> None:
    def tables(connection) -> set[str]:
        return set(inspect(connection).get_table_names())

    async with db_engine.connect() as conn:
        assert await conn.run_sync(tables) >= QUOTA_TABLE_NAMES
    assert await downgrade(db_engine, "0001_initial") == "0001_initial"
    async with db_engine.connect() as conn:
        assert not QUOTA_TABLE_NAMES & await conn.run_sync(tables)
        assert "guild_settings" in await conn.run_sync(tables)
    assert await upgrade(db_engine) == head_revision()
    async with db_engine.connect() as conn:
        assert await conn.run_sync(tables) >= QUOTA_TABLE_NAMES


async def test_no_column_can_hold_message_text(db_engine: AsyncEngine) -> None:
    def columns(connection) -> dict[str, list[dict]]:
        inspector = inspect(connection)
        return {name: inspector.get_columns(name) for name in QUOTA_TABLE_NAMES}

    async with db_engine.connect() as conn:
        reflected = await conn.run_sync(columns)
    for table, cols in reflected.items():
        for column in cols:
            assert not isinstance(column["type"], Text), (table, column["name"])
            if isinstance(column["type"], String):
                assert column["name"] in STRING_COLUMNS, (table, column["name"])
                assert column["type"].length is not None, (table, column["name"])
                assert column["type"].length <= 128, (table, column["name"])


async def test_nothing_said_reaches_the_database(db_engine: AsyncEngine) -> None:
    said = "the secret phrase nobody may store"
    ledger = QuotaLedger(db_engine, default_allowance=10_000)
    for outcome in (Outcome.SUCCESS, Outcome.ERROR_STATUS):
        charge = await ledger.charge(
            GUILD,
            USER,
            len(said),
            model_id="eleven_multilingual_v2",
            voice_id="voice-1",
            characters=len(said),
        )
        if outcome is Outcome.SUCCESS:
            charge.headers_received(len(said), request_id="req-1")
        await charge.finish(outcome)
    async with db_engine.connect() as conn:
        for table in QUOTA_TABLES:
            for row in (await conn.execute(select(table))).all():
                for value in row:
                    assert "secret" not in str(value), table.name
