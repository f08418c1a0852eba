"""One error handler for every slash command, driven by a table.

Each row maps an error type to the reply the caller sees and the level it is
logged at. Domain errors (`BotError`) carry their own sentence; discord.py's own
check failures get one here. Anything else is a bug: it is logged with a short
id that the reply quotes, so a user can report it and the operator can find it.
"""

from __future__ import annotations

import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import discord
from discord import app_commands

from bot.elevenlabs import errors as el
from bot.errors import BotError

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()

T = TypeVar("T")


@dataclass(frozen=True)
class ErrorRow:
    kind: type[BaseException]
    message: Callable[[BaseException], str]
    level: int = logging.INFO


def _own(error: BaseException) -> str:
    return str(error)


def permission_names(permissions: list[str]) -> str:
    """["manage_guild", "connect"] -> "Manage Server and Connect permissions"."""
    names = [
        p.replace("_", " ").replace("guild", "server").title().replace("Tts", "TTS")
        for p in permissions
    ]
    joined = names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]
    return f"{joined} permission{'s' if len(names) > 1 else ''}"


def _missing_permissions(error: BaseException) -> str:
    assert isinstance(error, app_commands.MissingPermissions)
    return f"You need the {permission_names(error.missing_permissions)} to use this command."


def _bot_missing_permissions(error: BaseException) -> str:
    assert isinstance(error, app_commands.BotMissingPermissions)
    return f"I am missing the {permission_names(error.missing_permissions)} here."


def _transform(error: BaseException) -> str:
    assert isinstance(error, app_commands.TransformerError)
    if error.type is discord.AppCommandOptionType.channel:
        kinds = getattr(error.transformer, "channel_types", None) or []
        wanted = " or ".join(dict.fromkeys(_channel_kind(kind) for kind in kinds)) or "suitable"
        mention = getattr(error.value, "mention", "That channel")
        return f"{mention} is not a {wanted} channel."
    value = discord.utils.escape_markdown(str(error.value)[:100])
    return f"“{value}” is not a valid {error.type.name.replace('_', ' ')} here."


def _channel_kind(kind: discord.ChannelType) -> str:
    return {
        discord.ChannelType.voice: "voice",
        discord.ChannelType.stage_voice: "stage",
        discord.ChannelType.text: "text",
        discord.ChannelType.news: "announcement",
        discord.ChannelType.forum: "forum",
        discord.ChannelType.category: "category",
    }.get(kind, "thread" if "thread" in kind.name else kind.name)


def _cooldown(error: BaseException) -> str:
    assert isinstance(error, app_commands.CommandOnCooldown)
    return f"Slow down: try again in {error.retry_after:.0f} s."


# The first row whose type matches wins: specific rows before general ones.
ERROR_TABLE: tuple[ErrorRow, ...] = (
    ErrorRow(el.RequestValidationError, _own, logging.ERROR),  # our bug: log loud
    ErrorRow(el.AuthenticationError, _own, logging.ERROR),  # the operator must act
    ErrorRow(el.QuotaExceededError, _own, logging.WARNING),
    ErrorRow(el.ElevenLabsError, _own, logging.INFO),
    ErrorRow(BotError, _own, logging.INFO),
    ErrorRow(app_commands.NoPrivateMessage, lambda e: "This command only works in a server."),
    ErrorRow(app_commands.MissingPermissions, _missing_permissions),
    ErrorRow(app_commands.BotMissingPermissions, _bot_missing_permissions),
    ErrorRow(app_commands.CommandOnCooldown, _cooldown),
    ErrorRow(app_commands.TransformerError, _transform),
    ErrorRow(app_commands.CheckFailure, lambda e: "You are not allowed to use this command here."),
    ErrorRow(
        discord.Forbidden,
        lambda e: "Discord refused me that: I am probably missing a permission here.",
        logging.WARNING,
    ),
)


def guild_only() -> Callable[[T], T]:
    """`app_commands.guild_only()` plus the same rule checked here.

    Discord hides such a command in DMs, but a stale command list or a user install can
    still deliver one: the check turns that into `NoPrivateMessage`, not a crash.
    """

    def predicate(interaction: discord.Interaction) -> bool:
        if interaction.guild is None or not isinstance(interaction.user, discord.Member):
            raise app_commands.NoPrivateMessage()
        return True

    def decorate(command: T) -> T:
        return app_commands.guild_only()(app_commands.check(predicate)(command))

    return decorate


def describe(error: BaseException) -> tuple[str, int, str | None]:
    """The reply, the log level, and an error id when the error is unexpected."""
    for row in ERROR_TABLE:
        if isinstance(error, row.kind):
            return row.message(error), row.level, None
    error_id = secrets.token_hex(4)
    return (
        f"Something went wrong on my side. If it keeps happening, tell the bot's operator "
        f"the error id `{error_id}`.",
        logging.ERROR,
        error_id,
    )


def explain(error: BaseException, context: str) -> str:
    """Log `error` as its table row says and return the sentence for the person who asked."""
    message, level, error_id = describe(error)
    if error_id is not None:
        log.error("error %s in %s", error_id, context, exc_info=error)
    else:
        log.log(level, "%s: %s: %s", context, type(error).__name__, error)
    return message


async def reply_ephemeral(interaction: discord.Interaction, content: str) -> None:
    """Answer whether or not the interaction was already answered; never ping anyone."""
    try:
        if interaction.response.is_done():
            await interaction.followup.send(content, ephemeral=True, allowed_mentions=NO_MENTIONS)
        else:
            await interaction.response.send_message(
                content, ephemeral=True, allowed_mentions=NO_MENTIONS
            )
    except discord.HTTPException as exc:  # the token expired, or Discord is down
        log.debug("could not send the error reply: %s", exc)


class BotTree(app_commands.CommandTree):
    """The command tree with the table-driven error handler."""

    async def on_error(
        self, interaction: discord.Interaction, error: app_commands.AppCommandError
    ) -> None:
        original: BaseException = error
        if isinstance(error, app_commands.CommandInvokeError):
            original = error.original
        await reply_ephemeral(interaction, explain(original, interaction_context(interaction)))


def interaction_context(interaction: discord.Interaction) -> str:
    """Who asked for what, where: enough to find the interaction in the logs."""
    command = interaction.command.qualified_name if interaction.command else "?"
    return (
        f"/{command} guild={interaction.guild_id} user={interaction.user.id} "
        f"interaction={interaction.id}"
    )
