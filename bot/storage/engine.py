"""Engine factory: the SQLite and PostgreSQL specifics live here and nowhere else."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///data/bot.sqlite3"
SQLITE_BUSY_TIMEOUT_MS = 30_000


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str = DEFAULT_SQLITE_URL, *, echo: bool = False) -> AsyncEngine:
    """Build the async engine for `url`.

    SQLite: WAL (readers never block the writer), a busy timeout, foreign keys on,
    and every transaction begun with BEGIN IMMEDIATE so that two concurrent writers
    queue on the lock instead of one failing with "database is locked" when it
    upgrades a read lock. PostgreSQL: a pool with pre-ping, for several processes.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo)
        _configure_sqlite(engine)
        return engine
    return create_async_engine(url, echo=echo, pool_pre_ping=True, pool_size=5, max_overflow=10)


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # pragma: no cover - exercised via tests
        # Take transaction control away from the sqlite3 module so "begin" below owns it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection) -> None:  # pragma: no cover - exercised via tests
        connection.exec_driver_sql("BEGIN IMMEDIATE")
