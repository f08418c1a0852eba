"""Reading channels aloud (issue 8).

- `rules`: which messages are read (`decide`, pure), the rate limit and "X said" spacing;
- `cache`: the configuration in memory, so that `on_message` reads no database per message;
- `flow`: `MessageReader`, from a gateway message to the player, then edits, deletions,
  max wait and refusal reactions.

The cog (`cogs.reader`) only forwards gateway events and `/setup` commands. `/voice autoread`,
`/voice nickname` and `/voice forget` must go through `MessageReader.set_autoread` /
`set_nickname` / `forget_user` for the change to apply before the cache's time-to-live ends
(and, since they write the user's settings row, `PreferenceService.invalidate_user`, whose
own cache holds that row too).
"""

from bot.reader.cache import CACHE_TTL, GuildConfig, ReaderConfig, UserCache
from bot.reader.flow import Handled, MessageReader, Tracked, add_reaction, message_facts
from bot.reader.rules import (
    RATE_WINDOW,
    REACT_FAILED,
    REACT_LATE,
    REACT_VOICE,
    SAY_NAME_GAP,
    GuildView,
    LastSpeakers,
    MessageFacts,
    RateLimiter,
    Skip,
    Source,
    Verdict,
    decide,
    read_source,
    said,
)

__all__ = [
    "CACHE_TTL",
    "RATE_WINDOW",
    "REACT_FAILED",
    "REACT_LATE",
    "REACT_VOICE",
    "SAY_NAME_GAP",
    "GuildConfig",
    "GuildView",
    "Handled",
    "LastSpeakers",
    "MessageFacts",
    "MessageReader",
    "RateLimiter",
    "ReaderConfig",
    "Skip",
    "Source",
    "Tracked",
    "UserCache",
    "Verdict",
    "add_reaction",
    "decide",
    "message_facts",
    "read_source",
    "said",
]
