"""Alembic environment for the bot's one `metadata`.

Normally run by `bot.storage.migrate`, which lends a connection through
`config.attributes["connection"]` from inside the running event loop. Run by the
`alembic` command (e.g. `alembic -x url=sqlite+aiosqlite:///data/dev.sqlite3 revision
--autogenerate -m ...` with a throwaway alembic.ini pointing script_location here), it
builds its own engine from `-x url=`, `sqlalchemy.url` or DATABASE_URL.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy import Connection
from sqlalchemy.engine import make_url

from bot.storage.engine import DEFAULT_SQLITE_URL, create_engine
from bot.storage.registry import load_all_tables
from bot.storage.types import UTCDateTime

# Every table module (bot.storage.tables, bot.quota.tables when present), so that
# autogenerate compares against all of them.
metadata = load_all_tables()

config = context.config


def _render_item(type_: str, obj: object, autogen_context) -> str | bool:
    # Migrations spell plain SQLAlchemy types, so they never import bot code that may change.
    if type_ == "type" and isinstance(obj, UTCDateTime):
        return "sa.DateTime(timezone=True)"
    return False


def _configure(dialect_name: str, **kwargs) -> None:
    context.configure(
        target_metadata=metadata,
        # SQLite cannot ALTER most things: batch mode copies the table instead.
        render_as_batch=dialect_name == "sqlite",
        compare_type=True,
        render_item=_render_item,
        **kwargs,
    )


def _url() -> str:
    return (
        context.get_x_argument(as_dictionary=True).get("url")
        or config.get_main_option("sqlalchemy.url")
        or os.environ.get("DATABASE_URL")
        or DEFAULT_SQLITE_URL
    )


def _run_on(connection: Connection) -> None:
    _configure(connection.dialect.name, connection=connection)
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine() -> None:
    engine = create_engine(_url())
    try:
        async with engine.begin() as connection:
            await connection.run_sync(_run_on)
    finally:
        await engine.dispose()


def run() -> None:
    if context.is_offline_mode():
        url = make_url(_url())
        _configure(url.get_backend_name(), url=url, literal_binds=True)
        with context.begin_transaction():
            context.run_migrations()
        return
    connection = config.attributes.get("connection")
    if connection is not None:
        _run_on(connection)
    else:
        asyncio.run(_run_with_own_engine())


run()
