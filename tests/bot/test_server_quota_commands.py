"""/server quota ...: the admins' side of the budget, refused for everyone else."""

from __future__ import annotations

import asyncio

import pytest

from bot.player import Outcome
from bot.quota import QuotaExceeded
from tests.fakes.discord import DiscordHarness

from .test_quota_command import ALLOWANCE, quota, use  # noqa: F401  (the fixture)

SUBCOMMANDS = [
    ("server quota limit", {"credits": 100}),
    ("server quota user-limit", {"credits": 10}),
    ("server quota reset-day", {"day": 5}),
    ("server quota top", {}),
    ("server quota alerts", {}),
]


@pytest.mark.parametrize(("command", "options"), SUBCOMMANDS)
async def test_every_quota_command_is_refused_without_manage_server(
    quota: DiscordHarness,  # noqa: F811
    command: str,
    options: dict,
) -> None:
    before = await quota.bot.quota.ledger.get_config(quota.guild.id)
    reply = (await quota.invoke(command, user="alice", options=options)).last
    assert reply.ephemeral and reply.pings_nobody
    assert "Manage Server" in reply.content
    assert await quota.bot.quota.ledger.get_config(quota.guild.id) == before


async def reply_of(harness: DiscordHarness, command: str, **options: object) -> str:
    reply = (await harness.invoke(command, user="owner", options=options)).last
    assert reply.ephemeral and reply.pings_nobody
    return reply.content or (reply.embeds[0]["description"] if reply.embeds else "")


async def test_limit_lowers_the_allowance_but_never_past_the_operators_default(
    quota: DiscordHarness,  # noqa: F811
) -> None:
    ledger = quota.bot.quota.ledger
    assert "1,000 credits" in await reply_of(quota, "server quota limit", credits=1000)
    assert (await ledger.get_config(quota.guild.id)).monthly_allowance == 1000
    refused = await reply_of(quota, "server quota limit", credits=ALLOWANCE + 1)
    assert "at most" in refused and "operator" in refused
    assert (await ledger.get_config(quota.guild.id)).monthly_allowance == 1000
    assert "default" in await reply_of(quota, "server quota limit")
    assert (await ledger.get_config(quota.guild.id)).monthly_allowance is None


async def test_user_limit_caps_each_member_per_day(quota: DiscordHarness) -> None:  # noqa: F811
    assert "10 credits a day" in await reply_of(quota, "server quota user-limit", credits=10)
    alice = quota.member("alice")
    with pytest.raises(QuotaExceeded, match="daily"):
        await quota.bot.speech.speak(alice, "This sentence is far longer than ten credits allow.")
    assert "no daily cap" in await reply_of(quota, "server quota user-limit", credits=0)
    queued = await quota.bot.speech.speak(alice, "Now it fits.")
    assert (await asyncio.wait_for(queued.result(), 20)).outcome is Outcome.PLAYED


async def test_reset_day_and_alerts_channel_are_stored(quota: DiscordHarness) -> None:  # noqa: F811
    ledger = quota.bot.quota.ledger
    assert "day 5" in await reply_of(quota, "server quota reset-day", day=5)
    general = quota.guild.channel("general")
    assert general.mention in await reply_of(quota, "server quota alerts", channel=general)
    config = await ledger.get_config(quota.guild.id)
    assert (config.reset_day, config.alerts_channel_id) == (5, general.id)
    assert "No more warnings" in await reply_of(quota, "server quota alerts")
    assert (await ledger.get_config(quota.guild.id)).alerts_channel_id is None


async def test_top_lists_members_by_credits_without_pinging(quota: DiscordHarness) -> None:  # noqa: F811
    assert "Nobody" in await reply_of(quota, "server quota top")
    await use(quota, "alice", 300)
    await use(quota, "bob", 120)
    text = await reply_of(quota, "server quota top")
    alice, bob = quota.guild.member_id("alice"), quota.guild.member_id("bob")
    assert text.index(f"<@{alice}>") < text.index(f"<@{bob}>")
    assert "300 credits" in text and "120 credits" in text
