"""The bot's settings tables (SQLAlchemy Core), all on the one `metadata`.

Discord ids are snowflakes: BigInteger, never autoincrement. A NULL setting means "not set
here" so that resolution can fall through to the next level (see `bot.voice_settings`).
No table has a column for message text: the bot never stores what people say.

Changing a table here means writing a migration in `migrations/versions/`.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Float,
    Integer,
    PrimaryKeyConstraint,
    String,
    Table,
    false,
    func,
    true,
)

from bot.storage.base import ERASE_GUILD, ERASE_USER, metadata
from bot.storage.types import UTCDateTime

VOICE_ID_LENGTH = 64
MODEL_ID_LENGTH = 64
NICKNAME_LENGTH = 32


def _snowflake(name: str, **kwargs) -> Column:
    return Column(name, BigInteger, autoincrement=False, **kwargs)


def _tuning_columns() -> list[Column]:
    """The voice fields shared by users, per-guild overrides and guild defaults."""
    return [
        Column("voice_id", String(VOICE_ID_LENGTH), nullable=True),
        Column("stability", Float, nullable=True),
        Column("similarity", Float, nullable=True),
        Column("style", Float, nullable=True),
        Column("speed", Float, nullable=True),
        Column("speaker_boost", Boolean, nullable=True),
    ]


def _updated_at() -> Column:
    return Column(
        "updated_at", UTCDateTime, nullable=False, server_default=func.now(), onupdate=func.now()
    )


#: The fields a user (or a server) may set for a voice; one name per column.
TUNING_FIELDS: tuple[str, ...] = (
    "voice_id",
    "stability",
    "similarity",
    "style",
    "speed",
    "speaker_boost",
)

user_settings = Table(
    "user_settings",
    metadata,
    _snowflake("user_id", primary_key=True),
    *_tuning_columns(),
    Column("autoread", Boolean, nullable=False, server_default=true()),
    Column("nickname", String(NICKNAME_LENGTH), nullable=True),
    _updated_at(),
    info={ERASE_USER: "user_id"},
)

user_guild_overrides = Table(
    "user_guild_overrides",
    metadata,
    _snowflake("guild_id", nullable=False),
    _snowflake("user_id", nullable=False),
    *_tuning_columns(),
    _updated_at(),
    PrimaryKeyConstraint("guild_id", "user_id"),
    info={ERASE_USER: "user_id", ERASE_GUILD: "guild_id"},
)

guild_settings = Table(
    "guild_settings",
    metadata,
    _snowflake("guild_id", primary_key=True),
    *_tuning_columns(),
    Column("model_id", String(MODEL_ID_LENGTH), nullable=True),
    Column("lock_voice", Boolean, nullable=False, server_default=false()),
    # Set when the bot leaves the guild; the guild's rows are purged after a grace period
    # unless the bot comes back (then it is cleared).
    Column("left_at", UTCDateTime, nullable=True),
    _updated_at(),
    info={ERASE_GUILD: "guild_id"},
)

reader_channels = Table(
    "reader_channels",
    metadata,
    _snowflake("guild_id", nullable=False),
    _snowflake("channel_id", nullable=False),
    PrimaryKeyConstraint("guild_id", "channel_id"),
    info={ERASE_GUILD: "guild_id"},
)

# Admin moderation data: deliberately not erased by `/voice forget` (a blocked user could
# otherwise lift their own block). Deleted with the guild.
reader_blocks = Table(
    "reader_blocks",
    metadata,
    _snowflake("guild_id", nullable=False),
    _snowflake("user_id", nullable=False),
    PrimaryKeyConstraint("guild_id", "user_id"),
    info={ERASE_GUILD: "guild_id"},
)

# One typed column per reader option; NULL means "the default" from
# `bot.storage.reader.ReaderOptions`, so defaults live in one place and can change
# without a migration.
reader_options = Table(
    "reader_options",
    metadata,
    _snowflake("guild_id", primary_key=True),
    Column("require_voice", Boolean, nullable=True),
    Column("read_voice_chat", Boolean, nullable=True),
    Column("read_threads", Boolean, nullable=True),
    Column("read_bots", Boolean, nullable=True),
    _snowflake("required_role_id", nullable=True),
    Column("skip_prefix", String(16), nullable=True),
    Column("say_name", Boolean, nullable=True),
    Column("max_length", Integer, nullable=True),
    Column("emoji_mode", String(16), nullable=True),
    Column("spoilers_mode", String(16), nullable=True),
    Column("autojoin", Boolean, nullable=True),
    Column("user_rate_limit", Integer, nullable=True),
    Column("max_wait_seconds", Integer, nullable=True),
    _updated_at(),
    info={ERASE_GUILD: "guild_id"},
)
