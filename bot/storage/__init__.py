"""Persistence: one async SQLAlchemy code path for SQLite (default) and PostgreSQL.

- `engine`: `create_engine(url)`, the backend specifics; `reading(engine)` for reads.
- `migrate`: Alembic from code (`upgrade`, `upgrade_database`, `downgrade`, `upgrade_sql`).
- `tables` (Core tables), `models` (records, validation), `types` (`UTCDateTime`).
- `users`, `guilds`, `reader`: the repositories; `store.Storage` bundles them.
- `sql`: dialect upserts, and erasure by the `ERASE_USER` / `ERASE_GUILD` table tags of
  `base`, which `registry` makes sure every table module has registered.

Resolution of the voice and its settings is `bot.voice_settings`.
"""
