"""Per-user voice settings, their per-guild overrides, and `/voice forget`."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import RowMapping, delete, select, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.engine import read_transaction
from bot.storage.models import (
    UNSET,
    Unset,
    UserGuildOverride,
    UserSettings,
    validate_nickname,
    validate_voice_fields,
)
from bot.storage.sql import erase_user, upsert
from bot.storage.tables import TUNING_FIELDS, user_guild_overrides, user_settings

log = logging.getLogger(__name__)


def _tuning_changes(**fields: Any) -> dict[str, Any]:
    return validate_voice_fields({k: v for k, v in fields.items() if v is not UNSET})


class UserSettingsRepository:
    """A user's own settings (everywhere) and their overrides for one guild (`here`).

    Updates are partial: only the fields passed are written, in one atomic upsert, so two
    commands changing different fields at once both take effect.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._dialect = engine.dialect.name

    # -- reading ---------------------------------------------------------------------

    # Reads are plain functions of a connection run by `read_transaction`: on SQLite in a
    # reader thread, so that a busy event loop does not make each statement slow.

    async def get(self, user_id: int) -> UserSettings:
        """The user's settings; all unset (autoread on) when they never set anything."""
        return await read_transaction(self._engine, self._get, user_id)

    async def get_override(self, guild_id: int, user_id: int) -> UserGuildOverride:
        return await read_transaction(self._engine, self._get_override, guild_id, user_id)

    async def get_for_guild(
        self, guild_id: int, user_id: int
    ) -> tuple[UserSettings, UserGuildOverride]:
        """Both levels in one read, as resolution needs them for each utterance."""

        def both(connection: Connection) -> tuple[UserSettings, UserGuildOverride]:
            return (
                self._get(connection, user_id),
                self._get_override(connection, guild_id, user_id),
            )

        return await read_transaction(self._engine, both)

    @staticmethod
    def _get(connection: Connection, user_id: int) -> UserSettings:
        row = (
            connection.execute(select(user_settings).where(user_settings.c.user_id == user_id))
            .mappings()
            .first()
        )
        if row is None:
            return UserSettings(user_id=user_id)
        return UserSettings(
            user_id=user_id, autoread=row["autoread"], nickname=row["nickname"], **_tuning(row)
        )

    @staticmethod
    def _get_override(connection: Connection, guild_id: int, user_id: int) -> UserGuildOverride:
        table = user_guild_overrides
        row = (
            connection.execute(
                select(table).where(table.c.guild_id == guild_id, table.c.user_id == user_id)
            )
            .mappings()
            .first()
        )
        return UserGuildOverride(
            guild_id=guild_id, user_id=user_id, **(_tuning(row) if row is not None else {})
        )

    # -- writing ---------------------------------------------------------------------

    async def update(
        self,
        user_id: int,
        *,
        voice_id: str | Unset | None = UNSET,
        stability: float | Unset | None = UNSET,
        similarity: float | Unset | None = UNSET,
        style: float | Unset | None = UNSET,
        speed: float | Unset | None = UNSET,
        speaker_boost: bool | Unset | None = UNSET,
    ) -> None:
        """Set the given fields of the user's own settings (None clears one).

        Raises `InvalidSetting` for a value out of range, before touching the database.
        """
        changes = _tuning_changes(
            voice_id=voice_id,
            stability=stability,
            similarity=similarity,
            style=style,
            speed=speed,
            speaker_boost=speaker_boost,
        )
        await self._upsert_user(user_id, changes)

    async def update_override(
        self,
        guild_id: int,
        user_id: int,
        *,
        voice_id: str | Unset | None = UNSET,
        stability: float | Unset | None = UNSET,
        similarity: float | Unset | None = UNSET,
        style: float | Unset | None = UNSET,
        speed: float | Unset | None = UNSET,
        speaker_boost: bool | Unset | None = UNSET,
    ) -> None:
        """Set the given fields of the user's override for one guild (`here: true`)."""
        changes = _tuning_changes(
            voice_id=voice_id,
            stability=stability,
            similarity=similarity,
            style=style,
            speed=speed,
            speaker_boost=speaker_boost,
        )
        statement = upsert(
            self._dialect,
            user_guild_overrides,
            {"guild_id": guild_id, "user_id": user_id},
            changes,
        )
        async with self._engine.begin() as connection:
            await connection.execute(statement)

    async def set_autoread(self, user_id: int, enabled: bool) -> None:
        """`/voice autoread on|off`: whether the reader reads this user's messages."""
        await self._upsert_user(user_id, {"autoread": bool(enabled)})

    async def set_nickname(self, user_id: int, nickname: str | None) -> None:
        """The name said in "X said" (None or blank: the display name again)."""
        await self._upsert_user(user_id, {"nickname": validate_nickname(nickname)})

    async def reset(self, user_id: int, *, guild_id: int | None = None) -> None:
        """`/voice reset`: clear the voice and tuning; with `guild_id` (`here`), only the
        override for that guild. Autoread and the nickname are not voice settings and stay.
        """
        async with self._engine.begin() as connection:
            if guild_id is not None:
                table = user_guild_overrides
                await connection.execute(
                    delete(table).where(table.c.guild_id == guild_id, table.c.user_id == user_id)
                )
            else:
                await connection.execute(
                    update(user_settings)
                    .where(user_settings.c.user_id == user_id)
                    .values(dict.fromkeys(TUNING_FIELDS))
                )

    async def forget_user(self, user_id: int) -> int:
        """`/voice forget`: delete everything stored about the user, everywhere, at once.

        Covers every table tagged with `ERASE_USER` (settings, overrides, nickname, quota
        counters; the quota ledger keeps its rows without the user id). Not covered, on
        purpose: reader blocks (`/setup block user`) are the guild admins' moderation
        data, which the blocked person must not be able to erase; they go with the guild.
        Returns the number of rows deleted or anonymised.
        """
        async with self._engine.begin() as connection:
            touched = await erase_user(connection, user_id)
        log.info("forgot user %s (%d rows)", user_id, touched)
        return touched

    async def _upsert_user(self, user_id: int, changes: dict[str, Any]) -> None:
        statement = upsert(self._dialect, user_settings, {"user_id": user_id}, changes)
        async with self._engine.begin() as connection:
            await connection.execute(statement)


def _tuning(row: RowMapping) -> dict[str, Any]:
    return {name: row[name] for name in TUNING_FIELDS}
