"""Engine factory: the SQLite and PostgreSQL specifics live here and nowhere else."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///data/bot.sqlite3"
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_BEGIN_OPTION = "sqlite_begin"


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str = DEFAULT_SQLITE_URL, *, echo: bool = False) -> AsyncEngine:
    """Build the async engine for `url`.

    SQLite: WAL (readers never block the writer), a busy timeout, foreign keys on,
    and every transaction begun with BEGIN IMMEDIATE so that two concurrent writers
    queue on the lock instead of one failing with "database is locked" when it
    upgrades a read lock. PostgreSQL: a pool with pre-ping, for several processes; a
    `?search_path=schema` query parameter selects a schema (used by the test fixtures to
    give each test its own schema in one database).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(url, echo=echo)
        _configure_sqlite(engine)
        return engine
    connect_args: dict[str, object] = {}
    search_path = parsed.query.get("search_path")
    if search_path is not None:
        # asyncpg has no such keyword: it becomes a session setting, so that one URL (passed
        # to another process, say) names a schema as well as a database.
        if not isinstance(search_path, str):
            raise ValueError("search_path must be given once in the database URL")
        parsed = parsed.difference_update_query(["search_path"])
        connect_args["server_settings"] = {"search_path": search_path}
    return create_async_engine(
        parsed,
        echo=echo,
        pool_pre_ping=True,
        pool_size=5,
        max_overflow=10,
        connect_args=connect_args,
    )


def _configure_sqlite(engine: AsyncEngine) -> None:
    sync_engine = engine.sync_engine

    @event.listens_for(sync_engine, "connect")
    def _on_connect(dbapi_connection, _record) -> None:  # pragma: no cover - exercised via tests
        # Take transaction control away from the sqlite3 module so "begin" below owns it.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        # The busy timeout first: switching to WAL takes a lock that another process
        # opening the same new file may hold.
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(sync_engine, "begin")
    def _on_begin(connection) -> None:  # pragma: no cover - exercised via tests
        # Read-only work may opt out (see `reading`): a deferred transaction in WAL mode
        # reads a snapshot without queueing behind writers, and never upgrades to a write.
        mode = connection.get_execution_options().get(SQLITE_BEGIN_OPTION, "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {'DEFERRED' if mode == 'DEFERRED' else 'IMMEDIATE'}")


def reading(engine: AsyncEngine) -> AsyncEngine:
    """The same engine (same pool) for transactions that only read.

    On SQLite they begin DEFERRED instead of IMMEDIATE, so reads do not wait for the
    write lock; elsewhere this changes nothing. Writing through it on SQLite may fail with
    "database is locked": only read.
    """
    return engine.execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})
