"""Check decorators shared by the cogs (this module is not a cog: `_` modules are skipped).

Admin commands need two things, because each covers a hole in the other:

* `@app_commands.default_permissions(manage_guild=True)` on the **group** (or on a
  top-level command). Discord uses it to decide who *sees* the command. It is only read
  from top-level commands and groups: put on a subcommand it does nothing at all. And a
  server's admins can override it in Server Settings > Integrations, so it is a default,
  not a guarantee.
* `@manage_guild()` on **every** subcommand: the server-side check below. It runs on
  each invocation, whatever the client showed, and refuses with
  `app_commands.MissingPermissions(["manage_guild"])`, which the tree's error table
  (`bot.tree`) turns into "You need the Manage Server permission to use this command."

Usage::

    @app_commands.default_permissions(manage_guild=True)
    class Server(commands.GroupCog, group_name="server", group_description="..."):
        @app_commands.command(name="voice")
        @manage_guild()
        async def voice(self, interaction, voice: str) -> None: ...
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import discord
from discord import app_commands

T = TypeVar("T")


def require_guild(interaction: discord.Interaction) -> None:
    """Refuse outside a server (a stale command list or a user install can still send one)."""
    if interaction.guild_id is None or not isinstance(interaction.user, discord.Member):
        raise app_commands.NoPrivateMessage()


def has_manage_guild(interaction: discord.Interaction) -> bool:
    """Whether the caller has Manage Server here, as Discord computed it for this interaction.

    `interaction.permissions` is the member's permissions in the channel, resolved by
    Discord from roles and overwrites (administrators have every permission).
    """
    return interaction.permissions.manage_guild


def manage_guild() -> Callable[[T], T]:
    """guild_only plus a server-side Manage Server check; see the module docstring.

    Remember `default_permissions(manage_guild=True)` on the group as well: this check
    keeps the command safe, the default keeps it out of sight of the members it refuses.
    """

    def predicate(interaction: discord.Interaction) -> bool:
        require_guild(interaction)
        if not has_manage_guild(interaction):
            raise app_commands.MissingPermissions(["manage_guild"])
        return True

    def decorate(command: T) -> T:
        return app_commands.guild_only()(app_commands.check(predicate)(command))

    return decorate


def guild_only() -> Callable[[T], T]:
    """`app_commands.guild_only()` plus the same rule checked on our side."""

    def predicate(interaction: discord.Interaction) -> bool:
        require_guild(interaction)
        return True

    def decorate(command: T) -> T:
        return app_commands.guild_only()(app_commands.check(predicate)(command))

    return decorate
