"""/server end to end: stored, shown, used by the next /speak; and only for Manage Server."""

from __future__ import annotations

from typing import Any

import discord
import pytest

from tests.fakes.discord import DiscordHarness
from tests.fakes.elevenlabs import FakeElevenLabs

from .test_voice_commands import (
    DEFAULT_VOICE,
    answer,
    fields,
    member_id,
    speak,
    spoken_voice,
    text_of,
    voice_id,
)

REFUSED = "you need the manage server permission"  # compared in lower case

# Every /server subcommand with valid options: each must refuse a member without the right.
SERVER_COMMANDS: dict[str, dict[str, Any]] = {
    "server voice": {"voice": "Adam"},
    "server model": {"model": "eleven_turbo_v2_5"},
    "server tune": {"stability": 0.2},
    "server lock-voice": {"on": True},
    "server show": {},
    "server reset": {},
}


async def stored(tts: DiscordHarness):
    return await tts.bot.storage.guilds.get(tts.guild.id)


# -- who may use /server -----------------------------------------------------------------------


def test_every_server_subcommand_is_listed_here(tts: DiscordHarness) -> None:
    group = tts.bot.tree.get_command("server")
    assert isinstance(group, discord.app_commands.Group)
    from .test_server_quota_commands import SUBCOMMANDS as QUOTA_COMMANDS

    leaves = {
        c.qualified_name
        for c in group.walk_commands()
        if not isinstance(c, discord.app_commands.Group)
    }
    # The /server quota ones are checked in test_server_quota_commands.
    assert leaves == set(SERVER_COMMANDS) | {name for name, _ in QUOTA_COMMANDS}


async def test_the_group_is_hidden_from_members_without_manage_server(tts: DiscordHarness) -> None:
    group = tts.bot.tree.get_command("server")
    payload = group.to_dict(tts.bot.tree)
    assert (
        int(payload["default_member_permissions"]) == discord.Permissions(manage_guild=True).value
    )
    assert payload["contexts"] == [0]  # servers only


@pytest.mark.parametrize("command", sorted(SERVER_COMMANDS))
async def test_every_server_command_is_refused_without_manage_server(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs, command: str
) -> None:
    """alice has no Manage Server; a server's admins may still have made /server visible
    to her (Integrations settings), so the interaction arrives: the bot must refuse it."""
    assert not tts.guild.alice.guild_permissions.manage_guild
    log = await tts.invoke(command, user="alice", options=SERVER_COMMANDS[command])
    reply = answer(log)
    assert REFUSED in (reply.content or "").lower() and not reply.embeds
    settings = await stored(tts)
    assert (settings.voice_id, settings.model_id, settings.stability) == (None, None, None)
    assert settings.lock_voice is False
    assert not any(r.route == "models" for r in fake_elevenlabs.requests)


@pytest.mark.parametrize("command", sorted(SERVER_COMMANDS))
async def test_every_server_command_works_with_manage_server_from_a_role(
    tts: DiscordHarness, command: str
) -> None:
    """Not the owner (who has every permission): a member whose role grants Manage Server."""
    await tts.add_member("moderator", roles=[tts.guild.role("admin")])
    log = await tts.invoke(command, user="moderator", options=SERVER_COMMANDS[command])
    assert answer(log).text() and REFUSED not in answer(log).text().lower()


# -- /server voice -----------------------------------------------------------------------------


async def test_server_voice_is_stored_shown_and_used(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    log = await tts.invoke("server voice", user="owner", options={"voice": "Bella"})
    assert text_of(log).startswith("The server's voice is now **Bella**.")
    bella = voice_id(fake_elevenlabs, "Bella")
    assert (await stored(tts)).voice_id == bella
    assert fields(answer(await tts.invoke("server show", user="owner")))["Voice"] == "Bella"
    assert fields(answer(await tts.invoke("voice show")))["Voice"] == "Bella (server default)"
    request, _ = await speak(tts, fake_elevenlabs)
    assert spoken_voice(request) == bella


async def test_server_voice_refuses_unknown_voices(tts: DiscordHarness) -> None:
    log = await tts.invoke("server voice", user="owner", options={"voice": "Nobody Here"})
    assert "No voice is called" in text_of(log)
    assert (await stored(tts)).voice_id is None


async def test_server_voice_autocompletes(tts: DiscordHarness) -> None:
    log = await tts.autocomplete("server voice", "voice", "bel", user="owner")
    assert log.choices and log.choices[0]["name"].startswith("Bella")


async def test_a_members_own_voice_still_wins_over_the_server_voice(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    await tts.invoke("server voice", user="owner", options={"voice": "Bella"})
    await tts.invoke("voice set", options={"voice": "Adam"})
    request, _ = await speak(tts, fake_elevenlabs)
    assert spoken_voice(request) == voice_id(fake_elevenlabs, "Adam")


# -- /server model -----------------------------------------------------------------------------


async def test_server_model_autocompletes_text_to_speech_models_only(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    log = await tts.autocomplete("server model", "model", "", user="owner")
    values = [c["value"] for c in log.choices or []]
    assert sorted(values) == ["eleven_flash_v2_5", "eleven_multilingual_v2", "eleven_turbo_v2_5"]
    log = await tts.autocomplete("server model", "model", "turbo", user="owner")
    assert log.choices == [
        {"name": "Eleven Turbo v2.5 (eleven_turbo_v2_5)", "value": "eleven_turbo_v2_5"}
    ]
    assert sum(r.route == "models" for r in fake_elevenlabs.requests) == 1  # cached


async def test_server_model_has_no_static_choices(tts: DiscordHarness) -> None:
    (option,) = tts.find_command("server model").to_dict(tts.bot.tree)["options"]
    assert option["autocomplete"] is True and "choices" not in option


async def test_server_model_is_stored_shown_and_used(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    log = await tts.invoke("server model", user="owner", options={"model": "eleven_turbo_v2_5"})
    assert log.callback.deferred
    assert text_of(log) == (
        "This server now speaks with the model **Eleven Turbo v2.5 (eleven\\_turbo\\_v2\\_5)**."
    )
    assert (await stored(tts)).model_id == "eleven_turbo_v2_5"
    shown = fields(answer(await tts.invoke("server show", user="owner")))
    assert shown["Model"] == "eleven_turbo_v2_5"
    request, _ = await speak(tts, fake_elevenlabs)
    assert request.json["model_id"] == "eleven_turbo_v2_5"


async def test_server_model_accepts_a_typed_name(tts: DiscordHarness) -> None:
    await tts.invoke("server model", user="owner", options={"model": "eleven multilingual v2"})
    assert (await stored(tts)).model_id == "eleven_multilingual_v2"


@pytest.mark.parametrize(
    ("typed", "said"),
    [
        ("eleven_english_sts_v2", "cannot turn text into speech"),
        ("made_up_model", "No text-to-speech model is called"),
    ],
)
async def test_server_model_is_validated_on_submit(
    tts: DiscordHarness, typed: str, said: str
) -> None:
    """Autocomplete only suggests; whatever is submitted is checked against the live list."""
    log = await tts.invoke("server model", user="owner", options={"model": typed})
    assert said in text_of(log)
    assert (await stored(tts)).model_id is None


# -- /server tune ------------------------------------------------------------------------------


async def test_server_tune_is_stored_shown_and_used_under_members_own(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    log = await tts.invoke(
        "server tune",
        user="owner",
        options={"stability": 0.2, "speed": 0.9, "speaker_boost": False},
    )
    assert "stability 0.20, speed 0.90, speaker boost off" in text_of(log)
    settings = await stored(tts)
    assert (settings.stability, settings.speed, settings.speaker_boost) == (0.2, 0.9, False)
    shown = fields(answer(await tts.invoke("server show", user="owner")))
    assert (shown["Stability"], shown["Speed"], shown["Style"]) == (
        "0.20",
        "0.90",
        "not set (the voice's)",
    )

    await tts.invoke("voice tune", options={"speed": 1.1})
    request, _ = await speak(tts, fake_elevenlabs)
    sent = request.json["voice_settings"]
    assert (sent["stability"], sent["speed"], sent["use_speaker_boost"]) == (0.2, 1.1, False)


async def test_server_tune_with_nothing_is_refused(tts: DiscordHarness) -> None:
    log = await tts.invoke("server tune", user="owner")
    assert text_of(log) == "Choose at least one setting to change."


# -- /server lock-voice ------------------------------------------------------------------------


async def test_lock_voice_makes_everyone_speak_with_the_server_voice(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    await tts.invoke("server voice", user="owner", options={"voice": "Bella"})
    await tts.invoke("voice set", options={"voice": "Adam"})
    await tts.invoke("voice set", options={"voice": "Callum", "here": True})
    log = await tts.invoke("server lock-voice", user="owner", options={"on": True})
    assert text_of(log) == "Everyone here now speaks with **Bella**, whatever voice they chose."
    assert (await stored(tts)).lock_voice is True
    assert fields(answer(await tts.invoke("server show", user="owner")))["Voice lock"].startswith(
        "on"
    )
    assert fields(answer(await tts.invoke("voice show")))["Voice"] == "Bella (server default)"

    request, _ = await speak(tts, fake_elevenlabs, "Locked.")
    assert spoken_voice(request) == voice_id(fake_elevenlabs, "Bella")
    request, log = await speak(tts, fake_elevenlabs, "Asked.", voice="Adam")
    assert spoken_voice(request) == voice_id(fake_elevenlabs, "Bella")
    assert "one voice for everyone" in log.followups[0].content

    log = await tts.invoke("server lock-voice", user="owner", options={"on": False})
    assert text_of(log) == "Members can speak with their own voices here again."
    request, _ = await speak(tts, fake_elevenlabs, "Unlocked.")
    assert spoken_voice(request) == voice_id(fake_elevenlabs, "Callum")


async def test_lock_voice_without_a_server_voice_suggests_one(tts: DiscordHarness) -> None:
    log = await tts.invoke("server lock-voice", user="owner", options={"on": True})
    assert "**Rachel**" in text_of(log) and "/server voice" in text_of(log)


# -- /server show and reset --------------------------------------------------------------------


async def test_server_show_with_nothing_set(tts: DiscordHarness) -> None:
    shown = fields(answer(await tts.invoke("server show", user="owner")))
    assert shown["Voice"] == "not set (the bot's default, Rachel)"
    assert shown["Model"].startswith("not set (the bot's default, ")
    assert shown["Voice lock"] == "off"


async def test_server_reset_clears_everything(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    await tts.invoke("server voice", user="owner", options={"voice": "Bella"})
    await tts.invoke("server tune", user="owner", options={"speed": 0.8})
    await tts.invoke("server lock-voice", user="owner", options={"on": True})
    log = await tts.invoke("server reset", user="owner")
    assert "the bot's defaults apply here again" in text_of(log)
    settings = await stored(tts)
    assert (settings.voice_id, settings.speed, settings.lock_voice) == (None, None, False)
    request, _ = await speak(tts, fake_elevenlabs)
    assert spoken_voice(request) == DEFAULT_VOICE


async def test_server_settings_belong_to_their_server(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    await tts.invoke("server voice", user="owner", options={"voice": "Bella"})
    elsewhere = await tts.bot.preferences.resolved(
        7_000_000_000_000_000_001, member_id(tts, "alice")
    )
    assert elsewhere.voice_id == DEFAULT_VOICE
