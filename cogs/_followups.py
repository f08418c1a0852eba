"""Telling the caller, after the fact, what became of what they queued.

`/speak` and the voice previews answer at once with the queue position; when the item
later fails (or spoke in a fallback voice), this sends an ephemeral follow-up, as long
as the interaction token (15 minutes) is still valid.
"""

from __future__ import annotations

import asyncio
import logging

import discord

from bot.player import Outcome
from bot.tree import NO_MENTIONS, explain
from bot.tts import Queued

log = logging.getLogger(__name__)


def follow_up_on_result(
    interaction: discord.Interaction,
    queued: Queued,
    *,
    failure_prefix: str,
    context: str,
    tasks: set[asyncio.Task[None]],
) -> None:
    """Watch `queued` in the background; report a failure or a notice, ephemerally."""

    async def watch() -> None:
        result = await queued.result()
        if result.outcome is Outcome.FAILED and result.error is not None:
            # The same table as the tree's errors: a known failure in words, anything else
            # logged with an id the reply quotes (never the exception's own text).
            content = f"{failure_prefix}: {explain(result.error, context)}"
        elif result.outcome is Outcome.PLAYED and result.notice:
            content = result.notice  # e.g. the voice was refused and another one spoke
        else:
            return
        try:
            await interaction.followup.send(content, ephemeral=True, allowed_mentions=NO_MENTIONS)
        except discord.HTTPException as exc:  # the token expired (15 minutes)
            log.debug("follow-up not sent (%s): %s", context, exc)

    task = asyncio.get_running_loop().create_task(watch())
    tasks.add(task)
    task.add_done_callback(tasks.discard)
