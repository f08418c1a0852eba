"""Engine factory: the SQLite and PostgreSQL specifics live here and nowhere else.

SQLite allows one writer at a time. Left to SQLite, concurrent writers of one process wait in
its busy handler, which polls with sleeps of up to 100 ms: under a burst (many guilds
speaking at once) that turned sub-millisecond statements into seconds of waiting. So this
process queues its own writes in memory instead: the engine's pool holds a single
connection, handed to the waiting tasks in the order they asked (`FairQueuePool`), and
reads (`reading`) go through a second, small pool of their own, in WAL mode never blocked
by the writer. The busy timeout stays for other processes (`python -m bot usage`, say).

The one rule this brings: never open a write transaction (`engine.begin()` /
`engine.connect()`, `write_transaction`) while holding another on the same engine; that
would wait for itself. Reads may be opened at any time. PostgreSQL keeps an ordinary pool:
several shard processes share it, and its row locks do the queueing.

Each statement through the async driver is a round trip between the event loop and the
driver's thread, and a busy loop makes each one slow: a write transaction of ten statements
held the write slot for tens of milliseconds. The hot write paths (the quota ledger) are
therefore plain functions of a synchronous connection, run whole by `write_transaction`: on
SQLite in a writer thread while this process' write slot is held, the transactions queued
meanwhile back to back, so one hand-over per batch; elsewhere through
`AsyncConnection.run_sync`. `read_transaction` runs such functions in reader threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import weakref
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, TypeVar

from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine, make_url
from sqlalchemy.engine.base import OptionEngine
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import AsyncAdaptedQueuePool
from sqlalchemy.util import await_
from sqlalchemy.util.queue import Empty, Full, QueueCommon

DEFAULT_SQLITE_URL = "sqlite+aiosqlite:///data/bot.sqlite3"
SQLITE_BUSY_TIMEOUT_MS = 30_000
SQLITE_BEGIN_OPTION = "sqlite_begin"
SQLITE_READ_CONNECTIONS = 4
"""Connections of the read pool: WAL readers run side by side (each has its own thread)."""
SQLITE_WRITE_BATCH = 32
"""Write transactions run back to back per hand-over to the writer thread (`_SQLiteWriter`)."""
SQLITE_WRITE_TURN = 0.05
"""Seconds the writer thread keeps the write slot while transactions keep coming."""
SQLITE_POOL_TIMEOUT = 300.0
"""Seconds a task waits for the SQLite connection before `sqlalchemy.exc.TimeoutError`.

The queue is first come, first served and a transaction takes milliseconds, so a wait this
long means a stuck transaction (or one task opening a second write transaction inside its
first): an error then says so, where waiting for ever would hang silently.
"""


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str = DEFAULT_SQLITE_URL, *, echo: bool = False) -> AsyncEngine:
    """Build the async engine for `url`.

    SQLite: WAL (readers never block the writer), a busy timeout, foreign keys on,
    and every transaction begun with BEGIN IMMEDIATE so that two concurrent writers
    queue on the lock instead of one failing with "database is locked" when it
    upgrades a read lock. For a file, the engine's pool is this process' one write
    connection, served first come first served; `reading`, `read_transaction` and
    `write_transaction` find the readers and the writer thread made alongside it (see
    the module docstring); all are closed by the engine's `dispose`.

    PostgreSQL: a pool with pre-ping, for several processes; a `?search_path=schema` query
    parameter selects a schema (used by the test fixtures to give each test its own schema
    in one database).
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database or ""
        if database and database != ":memory:" and not database.startswith("file:"):
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        if not database or database == ":memory:":
            # Each connection would be another empty database: one shared connection, as
            # SQLAlchemy does by default for memory databases, and no separate readers.
            engine = create_async_engine(url, echo=echo)
            _configure_sqlite(engine)
            return engine
        engine = _sqlite_engine(url, echo=echo, connections=1)
        readers = _sqlite_engine(url, echo=echo, connections=SQLITE_READ_CONNECTIONS)
        _READERS[engine.sync_engine] = readers.execution_options(
            **{SQLITE_BEGIN_OPTION: "DEFERRED"}
        )
        writer = _SQLiteWriter(url)
        _WRITERS[engine.sync_engine] = writer
        sync_readers = _SyncSQLite(
            url, threads=SQLITE_READ_CONNECTIONS, begin="DEFERRED", name="sqlite-reader"
        )
        _SYNC_READERS[engine.sync_engine] = sync_readers

        @event.listens_for(engine.sync_engine, "engine_disposed")
        def _dispose_others(_engine: Engine) -> None:  # pragma: no cover - via tests
            # Runs inside AsyncEngine.dispose's greenlet: the async driver can close here.
            readers.sync_engine.dispose()
            writer.dispose()
            sync_readers.dispose()

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


class FairQueue(QueueCommon[Any]):
    """The pool's queue of idle connections, first come, first served.

    SQLAlchemy's asyncio queue lets a task that just arrived take a connection that was
    being handed to one already waiting (which then queues again at the back): under load
    some tasks wait without bound and the pool times out. Here a returned connection goes
    straight to the oldest waiter, and nobody overtakes a queue.
    """

    def __init__(self, maxsize: int = 0, use_lifo: bool = False) -> None:
        self.maxsize = maxsize
        self.use_lifo = use_lifo  # ignored: always FIFO
        self._items: deque[Any] = deque()
        self._waiters: deque[asyncio.Future[Any]] = deque()

    def empty(self) -> bool:
        return not self._items

    def full(self) -> bool:
        return 0 < self.maxsize <= len(self._items)

    def qsize(self) -> int:
        return len(self._items)

    def put_nowait(self, item: Any) -> None:
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(item)
                return
        if self.full():
            raise Full()
        self._items.append(item)

    def put(self, item: Any, block: bool = True, timeout: float | None = None) -> None:
        self.put_nowait(item)  # the pool never holds more connections than it made

    def get_nowait(self) -> Any:
        if not self._items:
            raise Empty()
        return self._items.popleft()

    def get(self, block: bool = True, timeout: float | None = None) -> Any:
        if self._items or not block:
            return self.get_nowait()
        return await_(self._wait(timeout))

    async def _wait(self, limit: float | None) -> Any:
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            async with asyncio.timeout(limit):
                return await waiter
        except BaseException as error:
            if waiter.done() and not waiter.cancelled():
                # Handed over just as we gave up: pass it on, it must not be lost.
                self.put_nowait(waiter.result())
            else:
                waiter.cancel()
                with contextlib.suppress(ValueError):
                    self._waiters.remove(waiter)
            if isinstance(error, TimeoutError):
                raise Empty() from error
            raise


class FairQueuePool(AsyncAdaptedQueuePool):
    """`AsyncAdaptedQueuePool` whose waiters are served in arrival order (`FairQueue`)."""

    _queue_class = FairQueue  # type: ignore[assignment]


_READERS: weakref.WeakKeyDictionary[Engine, AsyncEngine] = weakref.WeakKeyDictionary()
_WRITERS: weakref.WeakKeyDictionary[Engine, _SQLiteWriter] = weakref.WeakKeyDictionary()
_SYNC_READERS: weakref.WeakKeyDictionary[Engine, _SyncSQLite] = weakref.WeakKeyDictionary()

T = TypeVar("T")


@dataclass(eq=False, slots=True)
class _Job:
    body: Callable[..., Any]
    args: tuple[Any, ...]
    future: asyncio.Future[Any]


class _SyncSQLite:
    """Synchronous connections to the same file, each used by one thread at a time.

    Made on first use, closed when the async engine is disposed (made again if it is used
    after that).
    """

    def __init__(self, url: str, *, threads: int, begin: str, name: str) -> None:
        self._url = make_url(url).set(drivername="sqlite+pysqlite")
        self._threads = threads
        self._begin = begin
        self._name = name
        self._lock = threading.Lock()
        self._engine: Engine | None = None
        self._pool: ThreadPoolExecutor | None = None

    def executor(self) -> tuple[ThreadPoolExecutor, Engine]:
        with self._lock:
            if self._engine is None or self._pool is None:
                engine = create_sync_engine(
                    self._url,
                    pool_size=self._threads,
                    max_overflow=0,
                    # A connection moves between the pool's threads, one at a time.
                    connect_args={"check_same_thread": False},
                )
                _configure_sqlite_events(engine)
                self._engine = engine.execution_options(**{SQLITE_BEGIN_OPTION: self._begin})
                self._pool = ThreadPoolExecutor(self._threads, thread_name_prefix=self._name)
            return self._pool, self._engine

    async def read(self, body: Callable[..., T], *args: Any) -> T:
        pool, engine = self.executor()
        loop = asyncio.get_running_loop()
        outcome = await loop.run_in_executor(pool, _run_batch, engine, [(body, args)])
        ok, value = outcome[0]
        if not ok:
            raise value
        return value  # type: ignore[no-any-return]

    def dispose(self) -> None:
        with self._lock:
            engine, pool = self._engine, self._pool
            self._engine = self._pool = None
        if engine is not None and pool is not None:
            pool.shutdown(wait=True)  # let the work in progress end first
            engine.dispose()


class _SQLiteWriter:
    """A synchronous connection to the same file, used by one thread of its own.

    Write transactions queue here in arrival order. One task drains the queue: it takes
    this process' write slot (the async engine's single connection, so the two never
    compete for SQLite's lock), runs up to `SQLITE_WRITE_BATCH` queued transactions back to
    back in the writer thread (each its own transaction, committed or rolled back on its
    own) and hands the results back; again while work keeps coming, for up to
    `SQLITE_WRITE_TURN` seconds, then it releases the slot (to the async engine's own
    writers, if any wait) and takes it again. A busy event loop then costs one hand-over
    per batch rather than one per statement.

    Made on first use, closed when the async engine is disposed (made again if it is used
    after that).
    """

    def __init__(self, url: str) -> None:
        self._sync = _SyncSQLite(url, threads=1, begin="IMMEDIATE", name="sqlite-writer")
        self._queue: deque[_Job] = deque()
        self._drainer: asyncio.Task[None] | None = None

    async def run(self, slot: AsyncEngine, body: Callable[..., T], *args: Any) -> T:
        loop = asyncio.get_running_loop()
        job = _Job(body, args, loop.create_future())
        self._queue.append(job)
        if self._drainer is None or self._drainer.done():
            self._drainer = loop.create_task(self._drain(slot), name="sqlite writer")
        # Cancelled while queued, the job is skipped; while running, it still completes.
        return await job.future  # type: ignore[no-any-return]

    async def _drain(self, slot: AsyncEngine) -> None:
        loop = asyncio.get_running_loop()
        batch: list[_Job] = []
        try:
            while self._queue:
                async with slot.connect():  # the write slot, first come first served
                    # Keep it while work keeps coming, for one turn: then the other writers
                    # queued for the slot (the async driver's) get theirs.
                    turn_ends = loop.time() + SQLITE_WRITE_TURN
                    while self._queue and loop.time() < turn_ends:
                        batch = []
                        while self._queue and len(batch) < SQLITE_WRITE_BATCH:
                            job = self._queue.popleft()
                            if not job.future.done():
                                batch.append(job)
                        if batch:
                            await self._run(loop, batch)
                        batch = []
        except BaseException as error:
            for job in [*batch, *self._queue]:
                if not job.future.done():
                    if isinstance(error, asyncio.CancelledError):
                        job.future.cancel()
                    else:
                        job.future.set_exception(error)
            self._queue.clear()
            raise

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[_Job]) -> None:
        thread, engine = self._sync.executor()
        work = [(job.body, job.args) for job in batch]
        running = loop.run_in_executor(thread, _run_batch, engine, work)
        try:
            outcomes = await asyncio.shield(running)
        except asyncio.CancelledError:
            # The batch runs on: keep the write slot until it has ended.
            await asyncio.wait([running])
            raise
        for job, (ok, value) in zip(batch, outcomes, strict=True):
            if job.future.done():
                continue
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)

    def dispose(self) -> None:
        self._sync.dispose()


def _run_batch(
    engine: Engine, work: list[tuple[Callable[..., Any], tuple[Any, ...]]]
) -> list[tuple[bool, Any]]:
    """In the writer thread: each body in its own transaction; (True, result) or
    (False, the exception that rolled it back)."""
    outcomes: list[tuple[bool, Any]] = []
    for body, args in work:
        try:
            with engine.begin() as connection:
                outcomes.append((True, body(connection, *args)))
        except Exception as error:
            outcomes.append((False, error))
    return outcomes


async def write_transaction(
    engine: AsyncEngine, body: Callable[Concatenate[Connection, ...], T], *args: Any
) -> T:
    """Run `body(connection, *args)` in one write transaction; its result, or its exception
    (which rolls the transaction back).

    `body` is a plain function of a synchronous connection (no awaiting, no other
    transaction inside). On a SQLite file it runs in the writer thread while this process'
    write slot is held, queued with the others in arrival order (`_SQLiteWriter`): no
    hand-over between threads per statement. Elsewhere it runs through
    `AsyncConnection.run_sync` inside `engine.begin()`.
    """
    writer = _WRITERS.get(_base_engine(engine.sync_engine))
    if writer is None:
        async with engine.begin() as connection:
            return await connection.run_sync(body, *args)
    return await writer.run(engine, body, *args)


async def read_transaction(
    engine: AsyncEngine, body: Callable[Concatenate[Connection, ...], T], *args: Any
) -> T:
    """Run `body(connection, *args)` in a read-only transaction; its result.

    On a SQLite file in one of the reader threads (a deferred transaction: WAL reads wait
    for nobody), else through `run_sync` on `reading(engine)`.
    """
    readers = _SYNC_READERS.get(_base_engine(engine.sync_engine))
    if readers is not None:
        return await readers.read(body, *args)
    async with reading(engine).connect() as connection:
        return await connection.run_sync(body, *args)


def _sqlite_engine(url: str, *, echo: bool, connections: int) -> AsyncEngine:
    engine = create_async_engine(
        url,
        echo=echo,
        poolclass=FairQueuePool,
        pool_size=connections,
        max_overflow=0,
        pool_timeout=SQLITE_POOL_TIMEOUT,
    )
    _configure_sqlite(engine)
    return engine


def _base_engine(engine: Engine) -> Engine:
    while isinstance(engine, OptionEngine):
        engine = engine._proxied
    return engine


def _configure_sqlite(engine: AsyncEngine) -> None:
    _configure_sqlite_events(engine.sync_engine)


def _configure_sqlite_events(sync_engine: Engine) -> None:

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
    """The engine for transactions that only read.

    On a SQLite file made by `create_engine`, the separate read pool: its transactions begin
    DEFERRED, see the last committed state (WAL) and wait neither for the writer nor in the
    write queue. Elsewhere the same engine (same pool; on SQLite begun DEFERRED). Writing
    through it on SQLite may fail with "database is locked": only read.
    """
    readers = _READERS.get(_base_engine(engine.sync_engine))
    if readers is not None:
        return readers
    return engine.execution_options(**{SQLITE_BEGIN_OPTION: "DEFERRED"})
