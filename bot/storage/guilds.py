"""Per-guild voice defaults, `lock_voice`, and the grace period after the bot leaves."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, union, update
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.base import ERASE_GUILD
from bot.storage.engine import read_transaction, reading
from bot.storage.models import (
    UNSET,
    GuildSettings,
    Unset,
    validate_identifier,
    validate_voice_fields,
)
from bot.storage.sql import erase_guilds, guild_tables, insert_for, upsert
from bot.storage.tables import MODEL_ID_LENGTH, TUNING_FIELDS, guild_settings
from bot.storage.types import utcnow

log = logging.getLogger(__name__)

#: How long a guild's data outlives the bot's departure, unless configured otherwise.
DEFAULT_GRACE_PERIOD = timedelta(days=30)


class GuildSettingsRepository:
    """What a guild's admins chose for everyone (`/server ...`), and its departure date."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reader = reading(engine)
        self._dialect = engine.dialect.name

    async def get(self, guild_id: int) -> GuildSettings:
        """The guild's settings; all unset and unlocked when nothing was chosen."""
        return await read_transaction(self._engine, self._get, guild_id)

    @staticmethod
    def _get(connection: Connection, guild_id: int) -> GuildSettings:
        row = (
            connection.execute(select(guild_settings).where(guild_settings.c.guild_id == guild_id))
            .mappings()
            .first()
        )
        if row is None:
            return GuildSettings(guild_id=guild_id)
        return GuildSettings(
            guild_id=guild_id,
            model_id=row["model_id"],
            lock_voice=row["lock_voice"],
            left_at=row["left_at"],
            **{name: row[name] for name in TUNING_FIELDS},
        )

    async def update(
        self,
        guild_id: int,
        *,
        voice_id: str | Unset | None = UNSET,
        model_id: str | Unset | None = UNSET,
        stability: float | Unset | None = UNSET,
        similarity: float | Unset | None = UNSET,
        style: float | Unset | None = UNSET,
        speed: float | Unset | None = UNSET,
        speaker_boost: bool | Unset | None = UNSET,
        lock_voice: bool | Unset = UNSET,
    ) -> None:
        """Set the given fields in one atomic upsert (None clears a default).

        Whether a voice or model exists is the caller's check (it has the API client);
        this only checks shapes and ranges (`InvalidSetting`).
        """
        changes: dict[str, Any] = validate_voice_fields(
            {
                k: v
                for k, v in {
                    "voice_id": voice_id,
                    "stability": stability,
                    "similarity": similarity,
                    "style": style,
                    "speed": speed,
                    "speaker_boost": speaker_boost,
                }.items()
                if v is not UNSET
            }
        )
        if model_id is not UNSET:
            changes["model_id"] = (
                None
                if model_id is None
                else validate_identifier("model_id", model_id, MODEL_ID_LENGTH)
            )
        if lock_voice is not UNSET:
            changes["lock_voice"] = bool(lock_voice)
        await self._upsert(guild_id, changes)

    async def set_lock_voice(self, guild_id: int, locked: bool) -> None:
        """`/server lock-voice on|off`: everyone speaks with the server voice."""
        await self._upsert(guild_id, {"lock_voice": bool(locked)})

    async def reset(self, guild_id: int) -> None:
        """Clear the guild's voice, model and tuning defaults and unlock the voice."""
        async with self._engine.begin() as connection:
            await connection.execute(
                update(guild_settings)
                .where(guild_settings.c.guild_id == guild_id)
                .values({**dict.fromkeys(TUNING_FIELDS), "model_id": None, "lock_voice": False})
            )

    # -- leaving and coming back ----------------------------------------------------------

    async def mark_guild_left(self, guild_id: int, *, now: datetime | None = None) -> None:
        """The bot left (or was removed from) the guild: start the grace period.

        A second call keeps the first date, so the period is never extended by repeats.
        """
        statement = insert_for(self._dialect, guild_settings).values(
            guild_id=guild_id, left_at=now or utcnow()
        )
        statement = statement.on_conflict_do_update(
            index_elements=["guild_id"],
            set_={"left_at": func.coalesce(guild_settings.c.left_at, statement.excluded.left_at)},
        )
        async with self._engine.begin() as connection:
            await connection.execute(statement)

    async def mark_guild_returned(self, guild_id: int) -> bool:
        """The bot is in the guild (again): cancel a pending purge. True if one was pending."""
        async with self._engine.begin() as connection:
            result = await connection.execute(
                update(guild_settings)
                .where(guild_settings.c.guild_id == guild_id, guild_settings.c.left_at.is_not(None))
                .values(left_at=None)
            )
        return result.rowcount > 0

    async def purge_departed_guilds(
        self, older_than: timedelta = DEFAULT_GRACE_PERIOD, *, now: datetime | None = None
    ) -> list[int]:
        """Delete every row of each guild the bot left more than `older_than` ago.

        All tables tagged `ERASE_GUILD` (settings, overrides, reader config, quota), in one
        transaction per call. Returns the purged guild ids.
        """
        cutoff = (now or utcnow()) - older_than
        departed = select(guild_settings.c.guild_id).where(
            guild_settings.c.left_at.is_not(None), guild_settings.c.left_at <= cutoff
        )
        if self._dialect == "postgresql":
            # A concurrent mark_guild_returned waits for us rather than being lost mid-purge.
            departed = departed.with_for_update()
        async with self._engine.begin() as connection:
            guild_ids = list((await connection.execute(departed)).scalars())
            await erase_guilds(connection, guild_ids)
        if guild_ids:
            log.info("purged %d departed guilds: %s", len(guild_ids), guild_ids)
        return guild_ids

    async def sync_presence(
        self, present_guild_ids: Iterable[int], *, now: datetime | None = None
    ) -> None:
        """At start-up: guilds left while the bot was offline start their grace period,
        and guilds it is in again are no longer pending a purge.
        """
        present = set(present_guild_ids)
        known = union(*(select(t.c[t.info[ERASE_GUILD]].label("guild_id")) for t in guild_tables()))
        async with self._reader.connect() as connection:
            known_ids = set((await connection.execute(known)).scalars())
            pending = set(
                (
                    await connection.execute(
                        select(guild_settings.c.guild_id).where(
                            guild_settings.c.left_at.is_not(None)
                        )
                    )
                ).scalars()
            )
        for guild_id in sorted(known_ids - present):
            await self.mark_guild_left(guild_id, now=now)
        for guild_id in sorted(pending & present):
            await self.mark_guild_returned(guild_id)

    async def _upsert(self, guild_id: int, changes: dict[str, Any]) -> None:
        statement = upsert(self._dialect, guild_settings, {"guild_id": guild_id}, changes)
        async with self._engine.begin() as connection:
            await connection.execute(statement)
