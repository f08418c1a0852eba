"""Migrations: from an empty database, idempotent, reversible, and safe to run twice at once."""

from __future__ import annotations

import asyncio
import sys

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.engine import create_engine
from bot.storage.migrate import (
    current_revision,
    downgrade,
    head_revision,
    upgrade,
    upgrade_database,
    upgrade_sql,
)
from bot.storage.registry import load_all_tables
from bot.storage.tables import (
    guild_settings,
    reader_blocks,
    reader_channels,
    reader_options,
    user_guild_overrides,
    user_settings,
)

OUR_TABLES = {
    t.name
    for t in (
        user_settings,
        user_guild_overrides,
        guild_settings,
        reader_channels,
        reader_blocks,
        reader_options,
    )
}


async def _table_names(engine: AsyncEngine) -> set[str]:
    async with engine.connect() as connection:
        return set(await connection.run_sync(lambda c: inspect(c).get_table_names()))


async def test_upgrade_from_empty_then_again_is_a_no_op(empty_db_url: str) -> None:
    engine = create_engine(empty_db_url)
    try:
        assert await current_revision(engine) is None
        assert await upgrade(engine) == head_revision()
        tables = await _table_names(engine)
        assert OUR_TABLES | {"alembic_version"} <= tables
        assert await upgrade(engine) == head_revision()
        async with engine.connect() as connection:
            versions = await connection.execute(text("SELECT version_num FROM alembic_version"))
            assert versions.scalars().all() == [head_revision()]
    finally:
        await engine.dispose()


async def test_downgrade_to_base_then_upgrade(db_engine: AsyncEngine) -> None:
    assert await downgrade(db_engine, "base") is None
    assert not (await _table_names(db_engine)) & OUR_TABLES
    assert await upgrade(db_engine) == head_revision()
    assert await _table_names(db_engine) >= OUR_TABLES


async def test_upgrade_database_returns_the_revision(empty_db_url: str) -> None:
    assert await upgrade_database(empty_db_url) == head_revision()


_CHILD = """
import asyncio, sys
from bot.storage.migrate import upgrade_database
print(asyncio.run(upgrade_database(sys.argv[1])))
"""


async def test_two_processes_migrate_at_once(empty_db_url: str) -> None:
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            _CHILD,
            empty_db_url,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    results = await asyncio.gather(*(p.communicate() for p in processes))
    for process, (out, err) in zip(processes, results, strict=True):
        assert process.returncode == 0, err.decode()
        assert out.decode().strip() == head_revision()
    engine = create_engine(empty_db_url)
    try:
        assert await current_revision(engine) == head_revision()
        async with engine.connect() as connection:
            count = await connection.scalar(text("SELECT count(*) FROM alembic_version"))
        assert count == 1
    finally:
        await engine.dispose()


async def test_upgrade_step_by_step(empty_db_url: str) -> None:
    engine = create_engine(empty_db_url)
    try:
        assert await upgrade(engine, "0001_initial") == "0001_initial"
        assert await _table_names(engine) >= OUR_TABLES
        assert await upgrade(engine) == head_revision()
    finally:
        await engine.dispose()


async def test_migrations_match_the_tables(db_engine: AsyncEngine) -> None:
    """Autogenerate finds nothing to do: the migrations build exactly what tables.py says
    (the quota tables included, when that package is present)."""

    def diff(connection) -> list:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "compare_server_default": False}
        )
        return compare_metadata(context, load_all_tables())

    async with db_engine.connect() as connection:
        assert await connection.run_sync(diff) == []


def test_upgrade_sql_renders_every_table() -> None:
    script = upgrade_sql("postgresql+asyncpg://user@host/db")
    for name in OUR_TABLES:
        assert f"CREATE TABLE {name} " in script


def test_no_table_has_a_column_for_message_text() -> None:
    suspicious = {"text", "content", "message", "message_text", "body", "utterance"}
    for table in load_all_tables().sorted_tables:
        assert not suspicious & set(table.c.keys()), table.name
