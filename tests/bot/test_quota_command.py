"""/quota show, the alerts channel, and /speak charged through `QuotaService`, in the real bot.

Until `setup_hook` builds the service, the `quota` fixture builds it the way the lead will
(`QuotaService(ledger, client=bot.elevenlabs, default_model=...)`), sets it as `bot.quota`
and as the speech service's charge factory, and reloads the cog so that it hooks the alerts
as it will when the service exists before the cogs load.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest

from bot.quota import QuotaLedger
from bot.quota.service import QuotaService, QuotaSettings
from bot.testing.loopback import LoopbackVoiceClient
from cogs.quota import usage_bar
from tests.fakes.discord import DiscordHarness
from tests.fakes.elevenlabs import FakeElevenLabs

from .conftest import BotFactory

NOW = datetime(2026, 11, 22, 12, 0, tzinfo=UTC)
NEXT_PERIOD = int(datetime(2026, 12, 1, tzinfo=UTC).timestamp())
ALLOWANCE = 10_000
FLASH = "eleven_flash_v2_5"
VOICE = "21m00Tcm4TlvDq8ikWAM"


@pytest.fixture
async def quota(tts_factory: BotFactory) -> AsyncIterator[DiscordHarness]:
    harness = await tts_factory(voice={"alice": "lounge"})
    bot = harness.bot
    previous = getattr(bot, "quota", None)
    if previous is not None:  # once setup_hook builds one: replace it by one with a fixed clock
        await previous.aclose()
    ledger = QuotaSettings(default_allowance=ALLOWANCE).ledger(bot.storage.engine)
    service = QuotaService(
        ledger,
        client=bot.elevenlabs,
        default_model=bot.settings.elevenlabs_model,
        clock=lambda: NOW,
    )
    bot.quota = service
    bot.speech.charge = service.charge
    await bot.reload_extension("cogs.quota")
    yield harness
    await service.aclose()


def ledger_of(harness: DiscordHarness) -> QuotaLedger:
    return harness.bot.quota.ledger


async def use(harness: DiscordHarness, user: str, credits: int, *, settle: bool = True) -> None:
    ledger = ledger_of(harness)
    user_id = harness.guild.member_id(user)
    reservation = await ledger.reserve(
        harness.guild.id,
        user_id,
        credits,
        model_id=FLASH,
        voice_id=VOICE,
        characters=2 * credits,
        now=NOW,
    )
    if settle:
        await ledger.settle(reservation, credits, now=NOW)


async def show(harness: DiscordHarness, user: str = "alice") -> str:
    log = await harness.invoke("quota show", user=user)
    assert log.callback is not None and log.callback.deferred and log.callback.ephemeral
    reply = log.last
    assert reply.kind == "followup" and reply.ephemeral and reply.pings_nobody
    return reply.content or ""


async def test_quota_show_draws_the_period_and_the_callers_day(quota: DiscordHarness) -> None:
    await use(quota, "alice", 3_000)
    await use(quota, "bob", 1_000)
    await use(quota, "bob", 200, settle=False)  # in flight

    text = await show(quota)

    lines = text.splitlines()
    assert lines[0] == "**This server this period**"
    assert lines[1] == f"`{usage_bar(4_000, ALLOWANCE)}` 40%"
    assert lines[1].count("█") == 8 and lines[1].count("░") == 12
    assert lines[2] == "4,000 of 10,000 credits used; 5,800 credits (about 11,600 characters) left."
    assert lines[3] == "200 more held for speech in progress."
    assert lines[4] == f"Renews <t:{NEXT_PERIOD}:D> (<t:{NEXT_PERIOD}:R>)."
    assert lines[6] == "**You today**"
    assert lines[7] == (
        "3,000 credits (about 6,000 characters) used; no daily limit on this server."
    )
    assert lines[-1] == (
        "-# Characters at the rate of Eleven Flash v2.5, the server's model: "
        "0.5 credit per character."
    )


async def test_quota_show_uses_the_server_model_and_the_daily_cap(quota: DiscordHarness) -> None:
    bot = quota.bot
    await bot.preferences.set_server_model(quota.guild.id, "eleven_multilingual_v2")
    await ledger_of(quota).set_user_daily_cap(quota.guild.id, 500)
    await use(quota, "bob", 120)

    text = await show(quota, "bob")

    next_day = int(datetime(2026, 11, 23, tzinfo=UTC).timestamp())
    assert (
        f"120 of 500 credits used; 380 credits (about 380 characters) left; "
        f"renews <t:{next_day}:R>." in text
    )
    assert "Eleven Multilingual v2, the server's model: 1 credit per character." in text


async def test_quota_show_on_an_unlimited_server(quota: DiscordHarness) -> None:
    await ledger_of(quota).set_monthly_allowance(quota.guild.id, 0)
    await use(quota, "alice", 50)

    text = await show(quota)

    assert "No monthly limit; 50 credits (about 100 characters) used." in text
    assert "█" not in text and "░" not in text


async def test_an_alert_is_posted_once_in_the_alerts_channel(quota: DiscordHarness) -> None:
    general = quota.guild.channel_ids["general"]
    service: QuotaService = quota.bot.quota
    await ledger_of(quota).set_alerts_channel(quota.guild.id, general)
    await use(quota, "alice", 8_500)

    await service.check_alerts(quota.guild.id)
    await service.check_alerts(quota.guild.id)

    (posted,) = quota.rest.channel_messages(general)
    assert posted["content"] == (
        "This server has used 80% of its monthly text-to-speech allowance "
        f"(8,500 of 10,000 credits). It renews on <t:{NEXT_PERIOD}:D>."
    )
    (call,) = quota.rest.calls_to("POST", rf"/channels/{general}/messages")
    assert call.json["allowed_mentions"] == {"parse": []}


async def test_speak_is_charged_and_settled_at_the_billed_cost(
    quota: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    text = "Charged through the quota service, settled at the character cost."
    log = await quota.invoke("speak", text=text)
    await quota.wait_for_replies(log, 2)
    assert log.replies[1].content == "Speaking now."
    player = quota.bot.voices.players[quota.guild.id]
    item = player.current or player.pending()[0]
    await item.wait()
    await quota.bot.quota.wait_idle()

    usage = await ledger_of(quota).guild_usage(quota.guild.id, NOW)
    assert (usage.used, usage.reserved) == (fake_elevenlabs.character_cost(text, FLASH), 0)
    assert isinstance(quota.guild.guild.voice_client, LoopbackVoiceClient)


async def test_speak_is_refused_in_characters_when_the_allowance_is_used_up(
    quota: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    await ledger_of(quota).set_monthly_allowance(quota.guild.id, 10)

    text = "A sentence of exactly sixty characters, spoken by the bot..."
    assert len(text) == 60
    log = await quota.invoke("speak", text=text)

    reply = log.last
    assert reply.ephemeral and reply.pings_nobody
    assert reply.content.startswith(
        "This server's monthly text-to-speech allowance has about 20 characters left, "
        "not enough for this message (60)"
    )
    assert re.search(rf"<t:{NEXT_PERIOD}:D>", reply.content)
    assert not fake_elevenlabs.tts_requests


async def test_speak_after_elevenlabs_ran_out_is_refused_for_everyone(
    quota: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    told: list[str] = []

    async def tell_owner(notice) -> None:
        told.append(notice.describe())

    quota.bot.quota.on_account_exhausted = tell_owner
    fake_elevenlabs.character_count = fake_elevenlabs.character_limit
    log = await quota.invoke("speak", text="This one fails at ElevenLabs.")
    replies = await quota.wait_for_replies(log, 3)
    assert "credits are used up" in replies[2].content
    await quota.bot.quota.wait_idle()

    again = (await quota.invoke("speak", text="And this one is refused here.")).last
    assert again.content == (
        "The bot's ElevenLabs credits are used up; they renew <t:1798761600:R>, "
        "on <t:1798761600:D>."
    )
    assert len(fake_elevenlabs.tts_requests) == 1
    assert len(told) == 1


async def test_without_the_service_the_command_says_so(tts: DiscordHarness) -> None:
    service, tts.bot.quota = tts.bot.quota, None  # e.g. a bot built with no database
    try:
        reply = (await tts.invoke("quota show")).last
    finally:
        tts.bot.quota = service
    assert reply.ephemeral and reply.pings_nobody
    assert reply.content == "Usage limits are not available on this bot right now."


def test_the_bar_shows_any_use_and_fills_only_when_used_up() -> None:
    assert usage_bar(0, 100) == "░" * 20
    assert usage_bar(1, 1_000).count("█") == 1
    assert usage_bar(999, 1_000).count("█") == 19
    assert usage_bar(1_000, 1_000) == "█" * 20
    assert usage_bar(1_200, 1_000) == "█" * 20
