"""The error table: one scenario per row of ERROR_TABLE, each through the real machinery.

Each scenario makes the error happen the way it would in production (a fault of the fake
ElevenLabs, a refused Discord call, a DM, a check) and returns the reply the user got.
Every reply is ephemeral and pings nobody; the log level is the row's.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from typing import Any

import discord
import pytest
from discord import app_commands

from bot.elevenlabs import errors as el
from bot.errors import BotError
from bot.tree import ERROR_TABLE, describe, permission_names
from tests.fakes.discord import (
    DiscordHarness,
    FakeDiscordREST,
    InteractionLog,
    Reply,
    next_snowflake,
)
from tests.fakes.elevenlabs import FakeElevenLabs

from .conftest import BotFactory

Scenario = Callable[[BotFactory, FakeDiscordREST, FakeElevenLabs], Awaitable[Reply]]


async def speak_fails(tts: DiscordHarness, text: str = "This will not be said.") -> Reply:
    """/speak is accepted, then its item fails: the failure is the third reply."""
    log = await tts.invoke("speak", text=text)
    replies = await tts.wait_for_replies(log, 3)
    assert replies[1].content == "Speaking now."
    failure = replies[2]
    assert failure.kind == "followup"
    assert failure.content.startswith("I could not say that: ")
    return failure


def el_fault(fault: Callable[[FakeElevenLabs], None]) -> Scenario:
    async def scenario(make: BotFactory, rest: FakeDiscordREST, fake: FakeElevenLabs) -> Reply:
        tts = await make(voice={"alice": "lounge"}, elevenlabs_max_retries=0)
        fault(fake)
        return await speak_fails(tts)

    return scenario


async def with_test_command(
    make: BotFactory, decorate: Callable[[Any], Any], **invoke: Any
) -> InteractionLog:
    """Add a /probe command to the bot's tree (in the guild) and invoke it."""
    tts = await make(voice={"alice": "lounge"})

    async def probe(interaction: discord.Interaction) -> None:
        await interaction.response.send_message("ran", ephemeral=True)

    command = app_commands.Command(name="probe", description="A test command", callback=probe)
    command = decorate(command)
    tts.bot.tree.add_command(command, guild=discord.Object(tts.guild.id))
    log = await tts.invoke("probe", **invoke)
    if log.last.content == "ran":  # the first call passes (cooldown): the second is refused
        log = await tts.invoke("probe", **invoke)
    return log


async def invoke_in_dm(tts: DiscordHarness, name: str, **options: Any) -> InteractionLog:
    """Dispatch /name from a DM, as Discord sends it (no guild, a user instead of a member)."""
    payload, guild = tts._base_interaction(2, user="alice", channel=None, guild=None)
    payload["data"] = tts._command_data(tts.find_command(name), options, guild)
    payload["data"].pop("guild_id", None)
    user = payload.pop("member")["user"]
    for key in ("guild_id", "guild", "guild_locale"):
        payload.pop(key)
    dm = next_snowflake()
    payload.update(
        user=user,
        channel_id=str(dm),
        channel={"id": str(dm), "type": 1, "recipients": [user], "flags": 0},
        context=1,
        authorizing_integration_owners={"1": user["id"]},
    )
    tts.rest.register_interaction(
        int(payload["id"]), payload["token"], interaction_type=2, channel_id=dm, guild_id=None
    )
    log = InteractionLog(int(payload["id"]), payload["token"], payload, tts.rest)
    await tts.dispatch("INTERACTION_CREATE", payload)
    return log


# ---------------------------------------------------------------- one scenario per row


async def domain_error(make: BotFactory, rest: FakeDiscordREST, fake: FakeElevenLabs) -> Reply:
    tts = await make(voice={})
    log = await tts.invoke("speak", text="hello")
    assert log.last.content == "Join a voice channel first, then try again."
    return log.last


async def no_private_message(
    make: BotFactory, rest: FakeDiscordREST, fake: FakeElevenLabs
) -> Reply:
    tts = await make()
    log = await invoke_in_dm(tts, "speak", text="hello")
    assert log.last.content == "This command only works in a server."
    return log.last


async def missing_permissions(
    make: BotFactory, rest: FakeDiscordREST, fake: FakeElevenLabs
) -> Reply:
    log = await with_test_command(make, app_commands.checks.has_permissions(manage_guild=True))
    assert log.last.content == "You need the Manage Server permission to use this command."
    return log.last


async def bot_missing_permissions(
    make: BotFactory, rest: FakeDiscordREST, fake: FakeElevenLabs
) -> Reply:
    decorate = app_commands.checks.bot_has_permissions(manage_messages=True)
    log = await with_test_command(make, decorate)
    assert log.last.content == "I am missing the Manage Messages permission here."
    return log.last


async def on_cooldown(make: BotFactory, rest: FakeDiscordREST, fake: FakeElevenLabs) -> Reply:
    log = await with_test_command(make, app_commands.checks.cooldown(1, 60))
    assert re.fullmatch(r"Slow down: try again in (59|60) s\.", log.last.content)
    return log.last


async def transformer_error(make: BotFactory, rest: FakeDiscordREST, fake: FakeElevenLabs) -> Reply:
    tts = await make(voice={"alice": "lounge"})
    log = await tts.invoke("join", options={"channel": tts.guild.general})
    general = tts.guild.channel_ids["general"]
    assert log.last.content == f"<#{general}> is not a voice or stage channel."
    assert tts.guild.guild.voice_client is None
    return log.last


async def check_failure(make: BotFactory, rest: FakeDiscordREST, fake: FakeElevenLabs) -> Reply:
    log = await with_test_command(make, app_commands.check(lambda interaction: False))
    assert log.last.content == "You are not allowed to use this command here."
    return log.last


async def forbidden(make: BotFactory, rest: FakeDiscordREST, fake: FakeElevenLabs) -> Reply:
    tts = await make()
    rest.fail(
        "POST",
        r"/interactions/\d+/[^/]+/callback",
        status=403,
        code=50013,
        message="Missing Permissions",
    )
    log = await tts.invoke("privacy")
    assert log.last.content == "Discord refused me that: I am probably missing a permission here."
    return log.last


ROW_SCENARIOS: dict[type[BaseException], Scenario] = {
    el.RequestValidationError: el_fault(lambda fake: fake.fail_next(422)),
    el.AuthenticationError: el_fault(lambda fake: fake.fail_next(401)),
    el.QuotaExceededError: el_fault(lambda fake: fake.fail_next(401, "quota_exceeded")),
    el.ElevenLabsError: el_fault(lambda fake: fake.fail_next(500, times=5)),
    BotError: domain_error,
    app_commands.NoPrivateMessage: no_private_message,
    app_commands.MissingPermissions: missing_permissions,
    app_commands.BotMissingPermissions: bot_missing_permissions,
    app_commands.CommandOnCooldown: on_cooldown,
    app_commands.TransformerError: transformer_error,
    app_commands.CheckFailure: check_failure,
    discord.Forbidden: forbidden,
}


def test_every_row_has_a_scenario() -> None:
    assert [row.kind for row in ERROR_TABLE] == list(ROW_SCENARIOS)


@pytest.mark.parametrize("row", ERROR_TABLE, ids=lambda row: row.kind.__name__)
async def test_error_table_row(
    row,
    tts_factory: BotFactory,
    discord_rest: FakeDiscordREST,
    fake_elevenlabs: FakeElevenLabs,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="bot.tree")
    reply = await ROW_SCENARIOS[row.kind](tts_factory, discord_rest, fake_elevenlabs)
    assert reply.ephemeral, reply
    assert reply.pings_nobody, reply
    logged = [r for r in caplog.records if r.name == "bot.tree"]
    assert logged, "the error was not logged"
    assert logged[-1].levelno == row.level
    assert "error id" not in reply.content  # expected errors need no id


# ---------------------------------------------------------------- every ElevenLabs error


EL_FAULTS: dict[type[el.ElevenLabsError], Callable[[FakeElevenLabs], None]] = {
    el.AuthenticationError: lambda fake: fake.fail_next(401),
    el.QuotaExceededError: lambda fake: fake.fail_next(401, "quota_exceeded"),
    el.VoiceNotFoundError: lambda fake: fake.fail_next(404, "voice_not_found"),
    el.TextTooLongError: lambda fake: fake.fail_next(400, "max_character_limit_exceeded"),
    el.PaidPlanRequiredError: lambda fake: fake.fail_next(402),
    el.PlanRestrictionError: lambda fake: fake.fail_next(403),
    el.BadRequestError: lambda fake: fake.fail_next(400),
    el.RequestValidationError: lambda fake: fake.fail_next(422),
    el.RateLimitedError: lambda fake: fake.fail_next(429, retry_after=0.01),
    el.ServerError: lambda fake: fake.fail_next(503),
    el.ConnectionFailedError: lambda fake: fake.drop_next(),
    el.UnexpectedResponseError: lambda fake: fake.json_next(),
    el.StreamInterruptedError: lambda fake: fake.cut_next(48_000),
}


def test_every_elevenlabs_error_has_a_fault() -> None:
    classes = {
        cls
        for cls in vars(el).values()
        if isinstance(cls, type) and issubclass(cls, el.ElevenLabsError)
    }
    assert classes - {el.ElevenLabsError} == set(EL_FAULTS)


@pytest.mark.parametrize("kind", EL_FAULTS, ids=lambda kind: kind.__name__)
async def test_every_elevenlabs_error_reaches_the_speaker(
    kind: type[el.ElevenLabsError],
    tts_factory: BotFactory,
    fake_elevenlabs: FakeElevenLabs,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="bot.tree")
    tts = await tts_factory(voice={"alice": "lounge"}, elevenlabs_max_retries=0)
    EL_FAULTS[kind](fake_elevenlabs)
    text = "A sentence long enough to be cut off in the middle of its audio stream, surely."
    failure = await speak_fails(tts, text)
    assert failure.ephemeral and failure.pings_nobody
    assert failure.content == f"I could not say that: {kind.default_message}"
    assert any(
        type(r.exc_info and r.exc_info[1]) is kind or kind.__name__ in r.getMessage()
        for r in caplog.records
        if r.name == "bot.tree"
    )


# ---------------------------------------------------------------- the unexpected


async def test_an_unexpected_error_is_quoted_by_id_and_logged(
    tts: DiscordHarness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("internal detail that users must not see")

    monkeypatch.setattr(tts.bot.speech, "speak", broken)
    caplog.set_level(logging.ERROR, logger="bot.tree")
    log = await tts.invoke("speak", text="hello")
    reply = log.last
    assert reply.ephemeral and reply.pings_nobody
    assert "internal detail" not in reply.content
    match = re.search(r"error id `([0-9a-f]{8})`", reply.content)
    assert match, reply.content
    records = [r for r in caplog.records if match[1] in r.getMessage()]
    assert records and records[0].levelno == logging.ERROR
    assert records[0].exc_info and isinstance(records[0].exc_info[1], RuntimeError)
    assert "/speak" in records[0].getMessage()


async def test_an_unexpected_failure_of_a_queued_item_is_quoted_by_id(
    tts: DiscordHarness, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    class BrokenJob:
        def __init__(self, frames: Any) -> None:
            self.frames = frames

        async def run(self) -> None:
            try:
                raise RuntimeError("internal detail that users must not see")
            finally:
                self.frames.abort()  # as DecodeJob.run does on any failure

    def broken_job(request: Any, *, frames: Any, **kwargs: Any) -> BrokenJob:
        return BrokenJob(frames)

    monkeypatch.setattr(tts.bot.synthesizer, "job", broken_job)
    caplog.set_level(logging.ERROR, logger="bot.tree")
    failure = await speak_fails(tts)
    assert "internal detail" not in failure.content
    match = re.search(r"error id `([0-9a-f]{8})`", failure.content)
    assert match, failure.content
    assert any(match[1] in r.getMessage() for r in caplog.records)


def test_permission_names_read_like_discords_settings() -> None:
    assert permission_names(["manage_guild"]) == "Manage Server permission"
    assert permission_names(["connect", "speak"]) == "Connect and Speak permissions"
    assert (
        permission_names(["view_channel", "send_tts_messages", "move_members"])
        == "View Channel, Send TTS Messages and Move Members permissions"
    )


def test_each_unexpected_error_gets_its_own_id() -> None:
    ids = {describe(RuntimeError("x"))[2] for _ in range(50)}
    assert len(ids) == 50 and all(i and re.fullmatch(r"[0-9a-f]{8}", i) for i in ids)
