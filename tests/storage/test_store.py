"""Storage opens (migrating), hands out repositories on one engine, and closes."""

from __future__ import annotations

from bot.storage.migrate import current_revision, head_revision
from bot.storage.store import Storage


async def test_open_migrates_and_close_disposes(empty_db_url: str) -> None:
    storage = await Storage.open(empty_db_url)
    try:
        assert await current_revision(storage.engine) == head_revision()
        await storage.users.update(1, voice_id="v")
        assert (await storage.users.get(1)).voice_id == "v"
        assert await storage.reader.bind_channel(2, 3)
        assert (await storage.guilds.get(2)).lock_voice is False
    finally:
        await storage.close()
