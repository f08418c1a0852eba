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

import discord
from discord import app_commands

from bot.elevenlabs import errors as el
from bot.errors import BotError

log = logging.getLogger(__name__)

NO_MENTIONS = discord.AllowedMentions.none()


@dataclass(frozen=True)
class ErrorRow:
    kind: type[BaseException]
    message: Callable[[BaseException], str]
    level: int = logging.INFO


def _own(error: BaseException) -> str:
    return str(error)


def _missing_permissions(error: BaseException) -> str:
    assert isinstance(error, app_commands.MissingPermissions)
    names = ", ".join(
        p.replace("_", " ").replace("guild", "server") for p in error.missing_permissions
    )
    return f"You need the {names} permission to use this command."


def _bot_missing_permissions(error: BaseException) -> str:
    assert isinstance(error, app_commands.BotMissingPermissions)
    names = ", ".join(p.replace("_", " ") for p in error.missing_permissions)
    return f"I am missing the {names} permission here."


def _transform(error: BaseException) -> str:
    assert isinstance(error, app_commands.TransformerError)
    return f"{str(error.value)[:100]!r} is not a valid {error.type.name.lower()} here."


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
        message, level, error_id = describe(original)
        command = interaction.command.qualified_name if interaction.command else "?"
        context = (
            f"/{command} guild={interaction.guild_id} user={interaction.user.id} "
            f"interaction={interaction.id}"
        )
        if error_id is not None:
            log.error("error %s in %s", error_id, context, exc_info=original)
        else:
            log.log(level, "%s: %s: %s", context, type(original).__name__, original)
        await reply_ephemeral(interaction, message)
