"""The root of every expected failure.

Anything that derives from `BotError` is a condition a user or operator can act
on: its `str()` is a complete sentence fit to show them, never a traceback, never
a secret. The CLI prints it on one line; the command tree maps it to an
ephemeral reply.
"""

from __future__ import annotations


class BotError(Exception):
    """An expected failure with a message for people."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
