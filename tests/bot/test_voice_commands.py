"""/voice end to end: the real bot and tree, the fake Discord, the fake ElevenLabs.

Each command is checked three ways: what it stored, what `/voice show` says, and what
the next `/speak` sends to ElevenLabs (the voice id in the URL, `voice_settings`).
"""

from __future__ import annotations

import asyncio
import sys
from typing import Any

import pytest
from sqlalchemy import select

import cogs.voice_settings as voice_cog
from bot.storage.registry import load_all_tables
from tests.fakes.discord import DiscordHarness, InteractionLog, Reply
from tests.fakes.elevenlabs import FakeElevenLabs, RecordedRequest

from .conftest import BotFactory

DEFAULT_VOICE = "21m00Tcm4TlvDq8ikWAM"
PATIENCE = 5.0  # seconds to wait for something that takes milliseconds: a bound, not a claim


# -- helpers shared with the /server and lifecycle tests ------------------------------------------


def voice_id(fake: FakeElevenLabs, name: str) -> str:
    return next(v["voice_id"] for v in fake.voices if v["name"] == name)


def answer(log: InteractionLog) -> Reply:
    """The one reply of a command: ephemeral, pinging nobody."""
    reply = log.last
    assert reply.ephemeral, reply
    assert reply.pings_nobody, reply
    return reply


def text_of(log: InteractionLog) -> str:
    return answer(log).text()


def fields(reply: Reply) -> dict[str, str]:
    """An embed's fields by name."""
    (embed,) = reply.embeds
    return {f["name"]: f["value"] for f in embed["fields"]}


async def speak(
    tts: DiscordHarness,
    fake: FakeElevenLabs,
    text: str = "Hi.",
    user: str = "alice",
    **options: Any,
) -> tuple[RecordedRequest, InteractionLog]:
    """/speak, then the TTS request it caused, as ElevenLabs received it."""
    before = len(fake.tts_requests)
    log = await tts.invoke("speak", user=user, options={"text": text, **options})
    await tts.wait_for_replies(log, 2)
    deadline = asyncio.get_running_loop().time() + PATIENCE
    while len(fake.tts_requests) <= before:
        assert asyncio.get_running_loop().time() < deadline, f"no TTS request: {log.replies}"
        await asyncio.sleep(0.01)
    return fake.tts_requests[-1], log


def spoken_voice(request: RecordedRequest) -> str:
    return request.path.split("/")[3]  # /v1/text-to-speech/{voice_id}/stream


def member_id(tts: DiscordHarness, key: str) -> int:
    return tts.guild.member_id(key)


# -- /voice set -------------------------------------------------------------------------------


async def test_voice_set_is_stored_shown_and_used(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    adam = voice_id(fake_elevenlabs, "Adam")
    log = await tts.invoke("voice set", options={"voice": adam})
    assert text_of(log) == "You now speak with **Adam** everywhere."
    stored = await tts.bot.storage.users.get(member_id(tts, "alice"))
    assert stored.voice_id == adam

    shown = answer(await tts.invoke("voice show"))
    assert fields(shown)["Voice"] == "Adam (your setting)"

    request, _ = await speak(tts, fake_elevenlabs)
    assert spoken_voice(request) == adam


async def test_voice_set_takes_a_name_as_typed(tts: DiscordHarness, fake_elevenlabs) -> None:
    log = await tts.invoke("voice set", options={"voice": "bella"})
    assert "**Bella**" in text_of(log)
    stored = await tts.bot.storage.users.get(member_id(tts, "alice"))
    assert stored.voice_id == voice_id(fake_elevenlabs, "Bella")


async def test_voice_set_here_applies_in_this_server_only(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    await tts.invoke("voice set", options={"voice": "Adam"})
    log = await tts.invoke("voice set", options={"voice": "Callum", "here": True})
    assert text_of(log) == "You now speak with **Callum** in this server."
    alice = member_id(tts, "alice")
    user, override = await tts.bot.storage.users.get_for_guild(tts.guild.id, alice)
    assert (user.voice_id, override.voice_id) == (
        voice_id(fake_elevenlabs, "Adam"),
        voice_id(fake_elevenlabs, "Callum"),
    )
    assert fields(answer(await tts.invoke("voice show")))["Voice"] == ("Callum (your setting here)")
    request, _ = await speak(tts, fake_elevenlabs)
    assert spoken_voice(request) == voice_id(fake_elevenlabs, "Callum")


async def test_voice_set_refuses_unknown_and_off_plan_voices(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    log = await tts.invoke("voice set", options={"voice": "Nobody By This Name"})
    assert "No voice is called" in text_of(log)
    off_plan = fake_elevenlabs.unavailable_voices[0]
    log = await tts.invoke("voice set", options={"voice": off_plan["voice_id"]})
    assert "not available on this account's plan" in text_of(log)
    assert (await tts.bot.storage.users.get(member_id(tts, "alice"))).voice_id is None


async def test_voice_set_autocompletes_from_the_catalogue(tts: DiscordHarness) -> None:
    log = await tts.autocomplete("voice set", "voice", "ada")
    assert log.choices is not None
    assert log.choices[0]["name"].startswith("Adam")
    assert len(log.choices) <= 25


async def test_voice_set_under_a_locked_server_voice_says_so(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    await tts.invoke("server voice", user="owner", options={"voice": "Bella"})
    await tts.invoke("server lock-voice", user="owner", options={"on": True})
    log = await tts.invoke("voice set", options={"voice": "Adam"})
    assert "one voice for everyone" in text_of(log) and "**Bella**" in text_of(log)
    request, _ = await speak(tts, fake_elevenlabs)
    assert spoken_voice(request) == voice_id(fake_elevenlabs, "Bella")


# -- /voice tune -------------------------------------------------------------------------------


async def test_voice_tune_is_stored_shown_and_used(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    log = await tts.invoke(
        "voice tune",
        options={"stability": 0.3, "similarity": 0.4, "style": 0.2, "speed": 1.1},
    )
    assert text_of(log) == (
        "Your settings everywhere are updated: stability 0.30, similarity 0.40, "
        "style 0.20, speed 1.10."
    )
    log = await tts.invoke("voice tune", options={"speaker_boost": False})
    assert "speaker boost off" in text_of(log)
    stored = await tts.bot.storage.users.get(member_id(tts, "alice"))
    assert (stored.stability, stored.similarity, stored.style, stored.speed) == (
        0.3,
        0.4,
        0.2,
        1.1,
    )
    assert stored.speaker_boost is False

    shown = fields(answer(await tts.invoke("voice show")))
    assert shown["Stability"] == "0.30 (your setting)"
    assert shown["Speaker boost"] == "off (your setting)"

    request, _ = await speak(tts, fake_elevenlabs)
    assert request.json["voice_settings"] == {
        "stability": 0.3,
        "similarity_boost": 0.4,
        "style": 0.2,
        "speed": 1.1,
        "use_speaker_boost": False,
    }


async def test_voice_tune_here_overrides_in_this_server(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    await tts.invoke("voice tune", options={"speed": 0.8, "stability": 0.9})
    log = await tts.invoke("voice tune", options={"speed": 1.2, "here": True})
    assert text_of(log) == "Your settings in this server are updated: speed 1.20."
    shown = fields(answer(await tts.invoke("voice show")))
    assert shown["Speed"] == "1.20 (your setting here)"
    assert shown["Stability"] == "0.90 (your setting)"
    request, _ = await speak(tts, fake_elevenlabs)
    assert (
        request.json["voice_settings"]["speed"],
        request.json["voice_settings"]["stability"],
    ) == (
        1.2,
        0.9,
    )


async def test_voice_tune_ranges_are_declared_on_the_options(tts: DiscordHarness) -> None:
    options = {
        o["name"]: o for o in tts.find_command("voice tune").to_dict(tts.bot.tree)["options"]
    }
    for name in ("stability", "similarity", "style"):
        assert (options[name]["min_value"], options[name]["max_value"]) == (0.0, 1.0)
    assert (options["speed"]["min_value"], options["speed"]["max_value"]) == (0.7, 1.2)
    assert options["speaker_boost"]["type"] == 5  # boolean


async def test_voice_tune_out_of_range_sent_anyway_is_refused(tts: DiscordHarness) -> None:
    """Discord enforces the ranges; a forged or stale payload still cannot store one."""
    log = await tts.invoke("voice tune", options={"speed": 3.0})
    assert "speed" in text_of(log) and "between 0.7 and 1.2" in text_of(log)
    assert (await tts.bot.storage.users.get(member_id(tts, "alice"))).speed is None


async def test_voice_tune_with_nothing_is_refused(tts: DiscordHarness) -> None:
    log = await tts.invoke("voice tune", options={"here": True})
    assert text_of(log) == "Choose at least one setting to change."


# -- /voice show -------------------------------------------------------------------------------


async def test_voice_show_names_where_each_value_comes_from(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    await tts.invoke("server voice", user="owner", options={"voice": "Bella"})
    await tts.invoke("server model", user="owner", options={"model": "eleven_turbo_v2_5"})
    await tts.invoke("server tune", user="owner", options={"style": 0.5})
    await tts.invoke("voice tune", options={"stability": 0.6})
    await tts.invoke("voice tune", options={"speed": 0.9, "here": True})
    reply = answer(await tts.invoke("voice show"))
    shown = fields(reply)
    assert shown["Voice"] == "Bella (server default)"
    assert shown["Model"] == "eleven_turbo_v2_5 (server default)"
    assert shown["Style"] == "0.50 (server default)"
    assert shown["Stability"] == "0.60 (your setting)"
    assert shown["Speed"] == "0.90 (your setting here)"
    assert shown["Similarity"].endswith("(voice default)")
    assert "your setting here › your setting › server default" in reply.embeds[0]["footer"]["text"]


async def test_voice_show_mentions_a_vanished_voice(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    adam = voice_id(fake_elevenlabs, "Adam")
    await tts.invoke("voice set", options={"voice": adam})
    fake_elevenlabs.voices[:] = [v for v in fake_elevenlabs.voices if v["voice_id"] != adam]
    assert await tts.bot.catalog.refresh()
    reply = answer(await tts.invoke("voice show"))
    assert fields(reply)["Voice"] == "Rachel (default)"
    assert "is no longer available" in reply.embeds[0]["description"]


# -- fallback told once through /speak -----------------------------------------------------------


async def test_speak_with_a_vanished_voice_falls_back_and_tells_once(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    await tts.invoke("server voice", user="owner", options={"voice": "Bella"})
    adam = voice_id(fake_elevenlabs, "Adam")
    await tts.invoke("voice set", options={"voice": adam})
    fake_elevenlabs.voices[:] = [v for v in fake_elevenlabs.voices if v["voice_id"] != adam]
    assert await tts.bot.catalog.refresh()

    request, log = await speak(tts, fake_elevenlabs, "First.")
    assert spoken_voice(request) == voice_id(fake_elevenlabs, "Bella")
    assert "no longer available" in log.followups[0].content
    request, log = await speak(tts, fake_elevenlabs, "Second.")
    assert spoken_voice(request) == voice_id(fake_elevenlabs, "Bella")
    assert "no longer available" not in log.followups[0].content


# -- /voice reset ------------------------------------------------------------------------------


async def test_voice_reset_clears_own_settings_and_mentions_the_override(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    await tts.invoke("voice set", options={"voice": "Adam"})
    await tts.invoke("voice tune", options={"speed": 0.8})
    await tts.invoke("voice tune", options={"style": 0.7, "here": True})
    log = await tts.invoke("voice reset")
    assert "back to the defaults everywhere" in text_of(log)
    assert "still apply here" in text_of(log)
    alice = member_id(tts, "alice")
    user, override = await tts.bot.storage.users.get_for_guild(tts.guild.id, alice)
    assert user.is_empty() and override.style == 0.7

    log = await tts.invoke("voice reset", options={"here": True})
    assert text_of(log).startswith("Your settings for this server are cleared")
    assert (await tts.bot.storage.users.get_override(tts.guild.id, alice)).is_empty()
    request, _ = await speak(tts, fake_elevenlabs)
    assert spoken_voice(request) == DEFAULT_VOICE


async def test_voice_reset_keeps_nickname_and_autoread(tts: DiscordHarness) -> None:
    alice = member_id(tts, "alice")
    await tts.bot.storage.users.set_nickname(alice, "Ali")
    await tts.bot.storage.users.set_autoread(alice, False)
    await tts.invoke("voice tune", options={"speed": 0.8})
    log = await tts.invoke("voice reset")
    assert text_of(log) == "Your voice and settings are back to the defaults everywhere."
    stored = await tts.bot.storage.users.get(alice)
    assert (stored.nickname, stored.autoread, stored.speed) == ("Ali", False, None)


# -- /voice forget -----------------------------------------------------------------------------


async def rows_mentioning(tts: DiscordHarness, user_id: int, *, skip: tuple[str, ...] = ()) -> list:
    """Every row, in every table, with `user_id` in any column."""
    found = []
    async with tts.bot.storage.engine.connect() as connection:
        for table in load_all_tables().sorted_tables:
            if table.name in skip:
                continue
            for row in (await connection.execute(select(table))).mappings():
                if any(value in (user_id, str(user_id)) for value in row.values()):
                    found.append((table.name, dict(row)))
    return found


async def fill_everything(tts: DiscordHarness, user: str) -> None:
    await tts.invoke("voice set", user=user, options={"voice": "Adam"})
    await tts.invoke("voice tune", user=user, options={"speed": 0.8})
    await tts.invoke("voice set", user=user, options={"voice": "Bella", "here": True})
    await tts.invoke("voice tune", user=user, options={"stability": 0.1, "here": True})
    users = tts.bot.storage.users
    await users.set_nickname(member_id(tts, user), "Nick")
    await users.set_autoread(member_id(tts, user), False)
    await users.update_override(7_000_000_000_000_000_001, member_id(tts, user), speed=1.1)


async def test_voice_forget_leaves_nothing_of_the_user(
    tts_factory: BotFactory, db_url: str
) -> None:
    """On each backend (db_url: SQLite, and PostgreSQL when TEST_DATABASE_URL is set)."""
    tts = await tts_factory(voice={"alice": "lounge"}, database_url=db_url)
    await fill_everything(tts, "alice")
    await fill_everything(tts, "bob")
    alice, bob = member_id(tts, "alice"), member_id(tts, "bob")
    # Reader blocks are the server's moderation data and stay on purpose (see forget_user).
    assert await rows_mentioning(tts, alice, skip=("reader_blocks",))

    log = await tts.invoke("voice forget")
    prompt = answer(log)
    assert "cannot be undone" in prompt.content
    assert await rows_mentioning(tts, alice), "nothing may go before the confirmation"
    done = await tts.click(log, voice_cog.FORGET_CONFIRM_ID)
    assert done.last.content == "Done: everything the bot stored about you is deleted."
    assert done.last.components == []

    assert await rows_mentioning(tts, alice, skip=("reader_blocks",)) == []
    assert await rows_mentioning(tts, bob), "only the caller is forgotten"
    shown = fields(answer(await tts.invoke("voice show")))
    assert shown["Voice"] == "Rachel (default)"


async def test_voice_forget_with_nothing_stored(tts: DiscordHarness) -> None:
    log = await tts.invoke("voice forget")
    done = await tts.click(log, voice_cog.FORGET_CONFIRM_ID)
    assert done.last.content == "Done: the bot had nothing stored about you."


async def test_voice_forget_cancelled_deletes_nothing(tts: DiscordHarness) -> None:
    await tts.invoke("voice set", options={"voice": "Adam"})
    log = await tts.invoke("voice forget")
    done = await tts.click(log, voice_cog.FORGET_CANCEL_ID)
    assert done.last.content == "Nothing was deleted."
    assert (await tts.bot.storage.users.get(member_id(tts, "alice"))).voice_id is not None


async def test_voice_forget_unanswered_deletes_nothing(
    tts: DiscordHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    # load_extension executes the cog module anew: patch the module the bot runs.
    loaded = sys.modules[type(tts.bot.get_cog("VoiceSettings")).__module__]
    monkeypatch.setattr(loaded, "FORGET_TIMEOUT", 0.01)
    await tts.invoke("voice set", options={"voice": "Adam"})
    log = await tts.invoke("voice forget")
    deadline = asyncio.get_running_loop().time() + PATIENCE
    while not any(r.kind == "edit_original" for r in log.replies):
        assert asyncio.get_running_loop().time() < deadline, log.replies
        await asyncio.sleep(0.01)
    assert log.last.content == "Nothing was deleted: no answer within a minute."
    assert log.last.components == []
    assert (await tts.bot.storage.users.get(member_id(tts, "alice"))).voice_id is not None


async def test_autoread_and_nickname_refresh_the_cached_user_settings(tts: DiscordHarness) -> None:
    """Resolution caches the user's row: the reader's own writes to it invalidate it too."""
    alice = member_id(tts, "alice")
    await tts.bot.preferences.levels(tts.guild.id, alice)  # cached now
    await tts.invoke("voice autoread", options={"enabled": False})
    await tts.invoke("voice nickname", options={"name": "Ali"})
    user, _override, _server = await tts.bot.preferences.levels(tts.guild.id, alice)
    assert (user.autoread, user.nickname) == (False, "Ali")
