"""Alembic migrations, run from code inside the running event loop.

The schema version lives in the database (Alembic's `alembic_version` table). There is no
alembic.ini: the Config is built here, with the migrations folder of this package as its
script location, so an installed bot can migrate from anywhere.

Following Alembic's asyncio cookbook ("programmatic API use (connection sharing)"), the
async engine lends one connection to Alembic through `AsyncConnection.run_sync`, so
migrating at start-up from `setup_hook` needs no `asyncio.run`. On PostgreSQL a session
advisory lock on a fixed key is held on that connection for the whole upgrade; on SQLite
the upgrade's one BEGIN IMMEDIATE transaction does the same. Two processes starting
together queue, and the second finds the schema already at head.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from bot.storage.engine import create_engine

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: pg_advisory_lock key for migrations: any fixed 64-bit number, the same in every process
#: ("elevenTT" in ASCII).
MIGRATION_LOCK_KEY = 0x656C6576656E5454


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic Config built in code; `connection` is lent to env.py when given."""
    config = Config()
    # "%" would start a ConfigParser interpolation.
    config.set_main_option("script_location", str(MIGRATIONS_DIR).replace("%", "%%"))
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The newest revision in the migrations folder (one head is expected)."""
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the folder always has 0001
        raise RuntimeError("no migrations found")
    return head


def _current_revision(connection: Connection) -> str | None:
    return MigrationContext.configure(connection).get_current_revision()


def _upgrade(connection: Connection, revision: str) -> str | None:
    command.upgrade(alembic_config(connection), revision)
    return _current_revision(connection)


def _downgrade(connection: Connection, revision: str) -> str | None:
    command.downgrade(alembic_config(connection), revision)
    return _current_revision(connection)


async def _run_locked(engine: AsyncEngine, fn, revision: str) -> str | None:
    """Run `fn(sync_connection, revision)` on one connection, under the migration lock."""
    async with engine.connect() as connection:
        locked = engine.dialect.name == "postgresql"
        if locked:
            await _advisory_lock(connection)
        try:
            # One transaction around every step, begun here so that Alembic runs inside
            # it: the DDL is transactional on both backends (a failed upgrade leaves no
            # trace), and on SQLite its BEGIN IMMEDIATE is the lock that keeps a second
            # process from reading the version before the first has finished (Alembic
            # would otherwise commit SQLite migrations one by one).
            async with connection.begin():
                return await connection.run_sync(fn, revision)
        finally:
            if locked:
                await connection.rollback()
                await connection.execute(
                    text("SELECT pg_advisory_unlock(:key)"), {"key": MIGRATION_LOCK_KEY}
                )
                await connection.commit()


async def _advisory_lock(connection: AsyncConnection) -> None:
    await connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
    # Session-level lock: it outlives this transaction, which is ended so that Alembic
    # starts its own.
    await connection.commit()


async def upgrade(engine: AsyncEngine, revision: str = "head") -> str | None:
    """Upgrade the database behind `engine` to `revision`; returns the revision reached.

    Safe to call on every start: at head, it does nothing.
    """
    reached = await _run_locked(engine, _upgrade, revision)
    log.info("database schema at revision %s", reached)
    return reached


async def downgrade(engine: AsyncEngine, revision: str) -> str | None:
    """Downgrade to `revision` ("base" for an empty schema); for tests and by hand."""
    return await _run_locked(engine, _downgrade, revision)


def upgrade_sql(url: str, revision: str = "head") -> str:
    """The SQL an upgrade from an empty database would run ("offline mode"), for `url`'s
    dialect. For a DBA who applies migrations by hand, and for the test fixtures, which
    replay it into a fresh PostgreSQL schema faster than running the migrations.
    """
    buffer = io.StringIO()
    config = alembic_config()
    config.output_buffer = buffer
    # Only the dialect matters offline (and a full URL could hold "%", which the config
    # would try to interpolate).
    config.set_main_option("sqlalchemy.url", f"{make_url(url).drivername}://")
    command.upgrade(config, revision, sql=True)
    return buffer.getvalue()


async def current_revision(engine: AsyncEngine) -> str | None:
    """The revision recorded in the database, None when it was never migrated."""
    async with engine.connect() as connection:
        return await connection.run_sync(_current_revision)


async def upgrade_database(url: str) -> str:
    """`python -m bot db upgrade`: migrate the database at `url` to head."""
    engine = create_engine(url)
    try:
        reached = await upgrade(engine)
    finally:
        await engine.dispose()
    if reached is None:  # pragma: no cover - head always has a revision
        raise RuntimeError("migration ended without a revision")
    return reached


def _revision(connection: Connection, message: str) -> None:
    command.revision(alembic_config(connection), message=message, autogenerate=True)


async def make_revision(url: str, message: str) -> None:
    """Write a new autogenerated migration, comparing a database at head with the tables.

    For developers (`python -m bot.storage.migrate revision "message" [url]`); review the
    file it writes (autogenerate misses renames and server-side details) and rename it to
    the NNNN_name.py pattern with a matching `revision` id.
    """
    engine = create_engine(url)
    try:
        await upgrade(engine)
        async with engine.connect() as connection:
            await connection.run_sync(_revision, message)
    finally:
        await engine.dispose()


if __name__ == "__main__":  # pragma: no cover - developer tool
    import asyncio
    import sys
    import tempfile

    if len(sys.argv) not in (3, 4) or sys.argv[1] != "revision":
        sys.exit("usage: python -m bot.storage.migrate revision MESSAGE [DATABASE_URL]")
    # By default a throwaway SQLite file, so the bot's own database is never touched.
    scratch = f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/revision.sqlite3"
    asyncio.run(make_revision(sys.argv[3] if len(sys.argv) == 4 else scratch, sys.argv[2]))
