"""Statements that differ by dialect, and the erasure that follows the table conventions.

Upserts are one `INSERT .. ON CONFLICT (key) DO UPDATE SET <only the given columns>`:
two commands changing different fields of one row at the same moment both land, in one
process or several, with no read-modify-write in Python.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import Table, delete, func, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.sql.dml import Insert

from bot.storage.base import ERASE_GUILD, ERASE_USER, ERASE_USER_MODE
from bot.storage.registry import load_all_tables

UPDATED_AT = "updated_at"


def insert_for(dialect_name: str, table: Table) -> Any:
    """The dialect's own INSERT (the one with `on_conflict_do_update`)."""
    if dialect_name == "postgresql":
        return postgresql.insert(table)
    if dialect_name == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no upsert for the {dialect_name!r} dialect")


def upsert(
    dialect_name: str, table: Table, key: Mapping[str, Any], changes: Mapping[str, Any]
) -> Insert:
    """Insert the row `key` with `changes`, or set only `changes` on the existing row.

    The columns not named keep their value (or their default, on insert). With no changes
    it only makes sure the row exists.
    """
    statement = insert_for(dialect_name, table).values({**key, **changes})
    if not changes:
        return statement.on_conflict_do_nothing(index_elements=list(key))
    set_: dict[str, Any] = {name: statement.excluded[name] for name in changes}
    # ON CONFLICT DO UPDATE does not apply Column.onupdate.
    if UPDATED_AT in table.c and UPDATED_AT not in changes:
        set_[UPDATED_AT] = func.now()
    return statement.on_conflict_do_update(index_elements=list(key), set_=set_)


def user_tables() -> list[Table]:
    """Every table holding personal data, by `info[ERASE_USER]`, children first."""
    return [t for t in reversed(load_all_tables().sorted_tables) if ERASE_USER in t.info]


def guild_tables() -> list[Table]:
    """Every table holding a guild's data, by `info[ERASE_GUILD]`, children first."""
    return [t for t in reversed(load_all_tables().sorted_tables) if ERASE_GUILD in t.info]


async def erase_user(connection: AsyncConnection, user_id: int) -> int:
    """Delete (or anonymise, where the table says so) every row about `user_id`.

    Runs in the caller's transaction; returns the number of rows touched.
    """
    touched = 0
    for table in user_tables():
        column = table.c[table.info[ERASE_USER]]
        if table.info.get(ERASE_USER_MODE) == "null":
            statement = update(table).where(column == user_id).values({column.name: None})
        else:
            statement = delete(table).where(column == user_id)
        touched += (await connection.execute(statement)).rowcount
    return touched


async def erase_guilds(connection: AsyncConnection, guild_ids: Iterable[int]) -> int:
    """Delete every row of the given guilds, in the caller's transaction."""
    ids = list(guild_ids)
    if not ids:
        return 0
    touched = 0
    for table in guild_tables():
        column = table.c[table.info[ERASE_GUILD]]
        touched += (await connection.execute(delete(table).where(column.in_(ids)))).rowcount
    return touched
