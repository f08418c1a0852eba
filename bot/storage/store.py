"""The database and its repositories as one object, opened and closed in one place.

The bot builds it in `setup_hook` (`await Storage.open(settings.database_url)`, which
migrates first) and closes it in `close()`; cogs receive the repositories they need.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.engine import DEFAULT_SQLITE_URL, create_engine
from bot.storage.guilds import GuildSettingsRepository
from bot.storage.migrate import upgrade
from bot.storage.reader import ReaderConfigRepository
from bot.storage.users import UserSettingsRepository


class Storage:
    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self.users = UserSettingsRepository(engine)
        self.guilds = GuildSettingsRepository(engine)
        self.reader = ReaderConfigRepository(engine)

    @classmethod
    async def open(cls, url: str = DEFAULT_SQLITE_URL, *, migrate: bool = True) -> Storage:
        """Create the engine and (by default) bring the schema to head before use."""
        engine = create_engine(url)
        try:
            if migrate:
                await upgrade(engine)
        except BaseException:
            await engine.dispose()
            raise
        return cls(engine)

    async def close(self) -> None:
        await self.engine.dispose()
