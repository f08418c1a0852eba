"""Turning Discord message content into text fit to be spoken (pure functions)."""

from bot.text.attachments import Attachment, describe_attachments
from bot.text.cleaning import (
    DEFAULT_OPTIONS,
    MORE,
    NO_NAMES,
    CleanOptions,
    MentionNames,
    clean_message,
    clean_name,
    clean_text,
    truncate_speech,
)

__all__ = [
    "DEFAULT_OPTIONS",
    "MORE",
    "NO_NAMES",
    "Attachment",
    "CleanOptions",
    "MentionNames",
    "clean_message",
    "clean_name",
    "clean_text",
    "describe_attachments",
    "truncate_speech",
]
