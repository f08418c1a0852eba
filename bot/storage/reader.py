"""Reader configuration (issue 8): bound channels, blocked users, and reader options.

`ReaderOptions` is the one place the defaults are written down. The database stores only
what a guild changed (a NULL column is "the default"), so a default can change without a
migration and `/setup show` can tell a chosen value from a default one.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.storage.engine import reading
from bot.storage.models import InvalidSetting
from bot.storage.sql import insert_for, upsert
from bot.storage.tables import reader_blocks, reader_channels, reader_options

EMOJI_MODES: Final = ("name", "drop")
SPOILER_MODES: Final = ("skip", "read")


@dataclass(frozen=True, slots=True, kw_only=True)
class ReaderOptions:
    """Every reader option with its default (what a guild gets until an admin changes it)."""

    #: Read a message only when its author is in the bot's voice channel.
    require_voice: bool = True
    #: Read the text chat of the voice channel the bot is in.
    read_voice_chat: bool = True
    #: Read threads of bound channels.
    read_threads: bool = True
    #: Read messages of bots and webhooks.
    read_bots: bool = False
    #: Only members with this role are read (None: everyone).
    required_role_id: int | None = None
    #: Messages starting with this are not read ("" : none are skipped).
    skip_prefix: str = "!"
    #: Prefix "<name> said" when the speaker changes (or after 60 s).
    say_name: bool = True
    #: Characters read at most after cleaning; longer text is cut and ends "and more".
    max_length: int = 300
    #: Custom emoji: "name" reads their name, "drop" leaves them out.
    emoji_mode: str = "name"
    #: Spoilers: "skip" leaves them out, "read" reads them.
    spoilers_mode: str = "skip"
    #: Join the author's voice channel when the bot is not connected in the guild.
    autojoin: bool = True
    #: Messages read per user per minute at most (0: no limit).
    user_rate_limit: int = 6
    #: Messages that waited longer than this are dropped rather than read late.
    max_wait_seconds: int = 60


DEFAULT_READER_OPTIONS: Final = ReaderOptions()


@dataclass(frozen=True, slots=True)
class OptionSpec:
    """How `/setup option` shows, autocompletes and validates one option."""

    name: str
    kind: type
    description: str
    choices: tuple[str, ...] = ()
    minimum: int | None = None
    maximum: int | None = None
    nullable: bool = False
    max_length: int | None = None

    @property
    def default(self) -> Any:
        return getattr(DEFAULT_READER_OPTIONS, self.name)


OPTION_SPECS: Final[dict[str, OptionSpec]] = {
    spec.name: spec
    for spec in (
        OptionSpec("require_voice", bool, "Only read people who are in the bot's voice channel"),
        OptionSpec("read_voice_chat", bool, "Read the text chat of the bot's voice channel"),
        OptionSpec("read_threads", bool, "Read threads of bound channels"),
        OptionSpec("read_bots", bool, "Read messages from bots and webhooks"),
        OptionSpec("required_role_id", int, "Only read members with this role", nullable=True),
        OptionSpec("skip_prefix", str, "Messages starting with this are not read", max_length=16),
        OptionSpec("say_name", bool, 'Say "<name> said" before a new speaker'),
        OptionSpec("max_length", int, "Longest text read, in characters", minimum=20, maximum=2000),
        OptionSpec("emoji_mode", str, "Custom emoji: read the name or drop", choices=EMOJI_MODES),
        OptionSpec("spoilers_mode", str, "Spoilers: skip or read", choices=SPOILER_MODES),
        OptionSpec("autojoin", bool, "Join the author's voice channel when not connected"),
        OptionSpec(
            "user_rate_limit",
            int,
            "Messages read per user per minute (0: no limit)",
            minimum=0,
            maximum=120,
        ),
        OptionSpec(
            "max_wait_seconds", int, "Drop messages older than this", minimum=5, maximum=600
        ),
    )
}


def validate_option(name: str, value: object) -> Any:
    """Check a typed value for option `name`; returns it normalised or raises InvalidSetting."""
    spec = OPTION_SPECS.get(name)
    if spec is None:
        raise InvalidSetting(name, f"unknown option; known: {', '.join(OPTION_SPECS)}")
    if value is None:
        if spec.nullable:
            return None
        raise InvalidSetting(name, "needs a value")
    if spec.kind is bool:
        if not isinstance(value, bool):
            raise InvalidSetting(name, "must be on or off")
        return value
    if spec.kind is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise InvalidSetting(name, "must be a whole number")
        if spec.name.endswith("_id") and value <= 0:
            raise InvalidSetting(name, "must be an id")
        if spec.minimum is not None and value < spec.minimum:
            raise InvalidSetting(name, f"must be at least {spec.minimum}")
        if spec.maximum is not None and value > spec.maximum:
            raise InvalidSetting(name, f"must be at most {spec.maximum}")
        return value
    if not isinstance(value, str):
        raise InvalidSetting(name, "must be text")
    if spec.choices:
        value = value.strip().lower()
        if value not in spec.choices:
            raise InvalidSetting(name, f"must be one of {', '.join(spec.choices)}")
        return value
    if spec.max_length is not None and len(value) > spec.max_length:
        raise InvalidSetting(name, f"must be at most {spec.max_length} characters")
    if value != value.strip() or not value.isprintable():
        raise InvalidSetting(name, "must not have spaces around it or control characters")
    return value


_TRUE = frozenset({"on", "true", "yes", "1", "enable", "enabled"})
_FALSE = frozenset({"off", "false", "no", "0", "disable", "disabled"})
_NONE = frozenset({"none", "off", "no", "-", ""})
_ROLE = re.compile(r"^(?:<@&)?(\d{1,20})>?$")


def parse_option_value(name: str, raw: str) -> Any:
    """Turn the text an admin typed in `/setup option name value` into a checked value."""
    spec = OPTION_SPECS.get(name)
    if spec is None:
        return validate_option(name, raw)
    text = raw.strip()
    parsers: dict[type, Callable[[str], Any]] = {
        bool: _parse_bool,
        int: _parse_role if spec.nullable else _parse_int,
        str: lambda t: t,
    }
    try:
        value = parsers[spec.kind](text if spec.kind is not str else raw)
    except ValueError as error:
        raise InvalidSetting(name, str(error)) from None
    return validate_option(name, value)


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError("must be on or off")


def _parse_int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise ValueError("must be a whole number") from None


def _parse_role(text: str) -> int | None:
    if text.lower() in _NONE:
        return None
    match = _ROLE.match(text)
    if match is None:
        raise ValueError("must be a role, a role id, or none")
    return int(match.group(1))


class ReaderConfigRepository:
    """Which channels a guild reads aloud, whom it does not read, and how it reads."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine
        self._reader = reading(engine)
        self._dialect = engine.dialect.name

    # -- channels -------------------------------------------------------------------------

    async def bind_channel(self, guild_id: int, channel_id: int) -> bool:
        """`/setup channel`; True if the channel was not bound already."""
        statement = (
            insert_for(self._dialect, reader_channels)
            .values(guild_id=guild_id, channel_id=channel_id)
            .on_conflict_do_nothing(index_elements=["guild_id", "channel_id"])
        )
        async with self._engine.begin() as connection:
            return (await connection.execute(statement)).rowcount > 0

    async def unbind_channel(self, guild_id: int, channel_id: int) -> bool:
        """`/setup remove channel`; True if it was bound."""
        table = reader_channels
        async with self._engine.begin() as connection:
            result = await connection.execute(
                delete(table).where(table.c.guild_id == guild_id, table.c.channel_id == channel_id)
            )
        return result.rowcount > 0

    async def bound_channels(self, guild_id: int) -> list[int]:
        table = reader_channels
        async with self._reader.connect() as connection:
            result = await connection.execute(
                select(table.c.channel_id)
                .where(table.c.guild_id == guild_id)
                .order_by(table.c.channel_id)
            )
            return list(result.scalars())

    async def all_bound_channels(self) -> dict[int, set[int]]:
        """Every guild's bound channels, to fill the reader's cache at start-up."""
        bound: dict[int, set[int]] = {}
        async with self._reader.connect() as connection:
            result = await connection.execute(select(reader_channels))
            for guild_id, channel_id in result:
                bound.setdefault(guild_id, set()).add(channel_id)
        return bound

    # -- blocks ---------------------------------------------------------------------------

    async def block_user(self, guild_id: int, user_id: int) -> bool:
        """`/setup block user`; True if the user was not blocked already."""
        statement = (
            insert_for(self._dialect, reader_blocks)
            .values(guild_id=guild_id, user_id=user_id)
            .on_conflict_do_nothing(index_elements=["guild_id", "user_id"])
        )
        async with self._engine.begin() as connection:
            return (await connection.execute(statement)).rowcount > 0

    async def unblock_user(self, guild_id: int, user_id: int) -> bool:
        table = reader_blocks
        async with self._engine.begin() as connection:
            result = await connection.execute(
                delete(table).where(table.c.guild_id == guild_id, table.c.user_id == user_id)
            )
        return result.rowcount > 0

    async def blocked_users(self, guild_id: int) -> list[int]:
        table = reader_blocks
        async with self._reader.connect() as connection:
            result = await connection.execute(
                select(table.c.user_id)
                .where(table.c.guild_id == guild_id)
                .order_by(table.c.user_id)
            )
            return list(result.scalars())

    async def is_blocked(self, guild_id: int, user_id: int) -> bool:
        table = reader_blocks
        async with self._reader.connect() as connection:
            found = await connection.scalar(
                select(table.c.user_id).where(
                    table.c.guild_id == guild_id, table.c.user_id == user_id
                )
            )
        return found is not None

    # -- options --------------------------------------------------------------------------

    async def get_options(self, guild_id: int) -> ReaderOptions:
        """The guild's options, defaults filled in."""
        return _merge(await self.get_changed_options(guild_id))

    async def get_changed_options(self, guild_id: int) -> dict[str, Any]:
        """Only the options this guild changed (for `/setup show` to mark them)."""
        async with self._reader.connect() as connection:
            row = (
                (
                    await connection.execute(
                        select(reader_options).where(reader_options.c.guild_id == guild_id)
                    )
                )
                .mappings()
                .first()
            )
        if row is None:
            return {}
        return {name: row[name] for name in OPTION_SPECS if row[name] is not None}

    async def set_option(self, guild_id: int, name: str, value: object) -> ReaderOptions:
        """Set one option (validated: `InvalidSetting`); returns the options now in force.

        A nullable option (the required role) set to None means "none", which is also its
        default. Use `reset_option` to go back to the default of any option.
        """
        checked = validate_option(name, value)
        await self._write(guild_id, {name: checked})
        return await self.get_options(guild_id)

    async def reset_option(self, guild_id: int, name: str) -> ReaderOptions:
        if name not in OPTION_SPECS:
            raise InvalidSetting(name, "unknown option")
        await self._write(guild_id, {name: None})
        return await self.get_options(guild_id)

    async def _write(self, guild_id: int, changes: dict[str, Any]) -> None:
        statement = upsert(self._dialect, reader_options, {"guild_id": guild_id}, changes)
        async with self._engine.begin() as connection:
            await connection.execute(statement)


def _merge(changed: dict[str, Any]) -> ReaderOptions:
    return dataclasses.replace(DEFAULT_READER_OPTIONS, **changed)
