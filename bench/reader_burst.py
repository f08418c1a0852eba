"""5b. Event-loop lag while the message reader takes a burst: 1,000 messages across 50 guilds.

The real `TTSBot` (reader cog, `MessageReader`, `SpeechService`, players) logged in against the
fake Discord REST, with the fake ElevenLabs in its own process. Each guild binds #general
with `/setup channel` and lifts the per-user rate limit with `/setup option`; alice sits in
the lounge voice channel. Then every MESSAGE_CREATE is fed to discord.py's gateway parser, one
per loop iteration as a gateway connection delivers them, and the loop lag is sampled from the
first message until `settle` seconds after the last was handled (or the `budget` ran out:
what was not handled by then is counted), while the guilds join voice, synthesise and start
speaking.

A message is handled when the reader cog's `on_message` has returned: the whole bot path from
MESSAGE_CREATE (discord.py's parser, the listener, `MessageReader`, the voice and quota
reservation) to the item on the guild's player. They are counted by wrapping the reader's
`handle_message`, not by the harness' `message_create`, whose `asyncio.all_tasks()` per
message would load the very loop being measured.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from typing import Any

from bench.bot_harness import tts_bot
from bench.common import LoopLag, TimingVoiceClient, percentile, r1


def burst_text(n: int) -> str:
    return f"Message number {n} of the burst."


def warm_texts(messages: int, guilds: int) -> list[str]:
    """What the fake will be asked to say (renders are cached: warm them before timing)."""
    texts = [burst_text(n) for n in range(messages // guilds + 1)]
    return [*texts, f"Alice said, {texts[0]}"]


class HandledCount:
    """Counts the messages `MessageReader.handle_message` finished (wrapped on the instance)."""

    def __init__(self, reader: Any, expected: int) -> None:
        self.reader = reader
        self.expected = expected
        self.handled = 0
        self.failed = 0
        self.all_done = asyncio.Event()
        original = reader.handle_message

        async def counted(message: Any) -> Any:
            try:
                return await original(message)
            except BaseException:
                self.failed += 1
                raise
            finally:
                self.handled += 1
                if self.handled >= self.expected:
                    self.all_done.set()

        reader.handle_message = counted

    def restore(self) -> None:
        del self.reader.handle_message  # the class' method again


class ErrorCount(logging.Handler):
    """Counts the errors the bot logs during the burst, by exception type."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.kinds: Counter[str] = Counter()

    def emit(self, record: logging.LogRecord) -> None:
        kind = record.exc_info[0].__name__ if record.exc_info and record.exc_info[0] else "error"
        self.kinds[kind] += 1


async def run(
    base_url: str,
    api_key: str,
    *,
    messages: int,
    guilds: int,
    settle: float = 5.0,
    budget: float = 60.0,
) -> dict[str, Any]:
    async with tts_bot(
        base_url,
        api_key,
        voice_client_cls=TimingVoiceClient,  # a stamp per packet, no object kept
        seed=False,
        elevenlabs_max_concurrency=64,
        queue_limit=max(20, messages // guilds + 1),
    ) as harness:
        harness.timeout = 600.0  # a burst is handled long after the usual test limit
        bot = harness.bot
        reader = bot.get_cog("Reader").reader
        reader.wall_clock = lambda: 0.0  # the fake's snowflakes carry its import time
        seeded = []
        for n in range(guilds):
            guild = await harness.seed_guild(name=f"bench {n}", voice={"alice": "lounge"})
            await harness.invoke("setup channel", user="owner", options={"channel": guild.general})
            await harness.invoke(
                "setup option", user="owner", options={"name": "user_rate_limit", "value": "0"}
            )
            seeded.append(guild)
        targets = [
            (seeded[i % guilds].general, seeded[i % guilds].member_id("alice"))
            for i in range(messages)
        ]
        counter = HandledCount(reader, messages)
        errors = ErrorCount()
        logging.getLogger().addHandler(errors)
        lag = LoopLag()
        lag.start()
        started = time.perf_counter()
        for i, (channel, author) in enumerate(targets):
            harness.feed_message_create(burst_text(i // guilds), author=author, channel=channel)
            await asyncio.sleep(0)  # one event per loop iteration, as from the gateway
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(counter.all_done.wait(), budget)
        handled = time.perf_counter() - started
        within, failed = counter.handled, counter.failed
        counter.restore()
        await asyncio.sleep(settle)
        lags = await lag.stop()
        logging.getLogger().removeHandler(errors)
        tracked = len(reader.tracked)
        speaking = sum(
            1
            for g in seeded
            if g.guild.voice_client is not None and g.guild.voice_client.packet_count
        )
        for player in list(bot.voices.players.values()):
            player.stop()
    return {
        "messages": messages,
        "guilds": guilds,
        "handled_in_s": round(handled, 2),
        "handled": within,
        "not_handled_within_budget": messages - within,
        "handler_failures": failed,
        "budget_s": budget,
        "messages_tracked": tracked,
        "guilds_speaking": speaking,
        "loop_lag_p50_ms": r1(percentile(lags, 50)),
        "loop_lag_p99_ms": r1(percentile(lags, 99)),
        "loop_lag_max_ms": r1(max(lags, default=0.0)),
        "settle_s": settle,
        "errors_logged": dict(errors.kinds),
    }
