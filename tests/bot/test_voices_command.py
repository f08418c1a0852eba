"""/voices search through the real tree and real component interactions.

The bot talks to the fake Discord REST and the fake ElevenLabs (40 voices, every
other professional one not on the account's plan); previews play through the
loopback voice client. Component state is read from the message as the fake
Discord stored it, so edits made by the bot are what is checked.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import discord
import pytest

from bot.elevenlabs.models import Voice
from bot.testing.loopback import LoopbackVoiceClient
from bot.testing.pcm import align
from bot.voices import VoiceCatalog
from bot.voices.view_model import (
    DESCRIPTION_CUT,
    EMBED_TOTAL_LIMIT,
    FIELD_NAME_LIMIT,
    FIELD_VALUE_LIMIT,
    OPTION_TEXT_LIMIT,
    TITLE_LIMIT,
)
from cogs.voices import NEXT_ID, NOT_YOURS, PAGE_ID, PREVIEW_ID, PREVIOUS_ID, USE_ID
from tests.fakes.discord import DiscordHarness, InteractionLog, Reply
from tests.fakes.elevenlabs import FakeElevenLabs
from tests.fakes.speech import reference_pcm

from .conftest import BotFactory

NOT_ON_PLAN = "(not on your plan)"
HEARD_PACKETS = 50  # one second of 20 ms frames
MAX_DELAY_BYTES = 4096 * 4  # align()'s largest lag, in 48 kHz stereo s16 frames


# -- helpers ---------------------------------------------------------------------------------------


async def search(tts: DiscordHarness, **options: Any) -> tuple[InteractionLog, Reply]:
    """/voices search and its answer, which must be ephemeral and ping nobody."""
    log = await tts.invoke("voices search", options=options)
    reply = log.last
    assert reply.kind == "callback" and reply.ephemeral and reply.pings_nobody, reply
    return log, reply


def stored(tts: DiscordHarness, reply: Reply) -> dict[str, Any]:
    """The message as Discord holds it now, after every edit the bot made."""
    assert reply.message_id is not None
    return tts.rest.messages[reply.message_id]


def components(message: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for row in message.get("components") or []:
        yield from row["components"]


def component(message: dict[str, Any], custom_id: str) -> dict[str, Any]:
    return next(c for c in components(message) if c.get("custom_id") == custom_id)


def option_values(message: dict[str, Any], custom_id: str) -> list[str]:
    return [o["value"] for o in component(message, custom_id)["options"]]


def embed(message: dict[str, Any]) -> dict[str, Any]:
    (only,) = message["embeds"]
    return only


def expected_ids(tts: DiscordHarness, page: int, **filters: Any) -> list[str]:
    results = tts.bot.catalog.search(**filters)
    return [v.voice_id for v in results[(page - 1) * 10 : page * 10]]


def cog_module(tts: DiscordHarness) -> ModuleType:
    """`cogs.voices` as the bot loaded it: `load_extension` imports a module of its own."""
    cog = tts.bot.get_cog("Voices")
    assert cog is not None
    return sys.modules[type(cog).__module__]


def view_of(tts: DiscordHarness, reply: Reply) -> Any:
    """The live view behind a reply (for the timeout, which no interaction can trigger)."""
    store = tts.bot._connection._view_store
    view = store._synced_message_views.get(reply.message_id)
    assert isinstance(view, cog_module(tts).SearchView)
    return view


def catalog_voice(tts: DiscordHarness, name: str) -> Voice:
    return tts.bot.catalog.resolve(name)


def unusable(tts: DiscordHarness) -> Voice:
    catalog = tts.bot.catalog
    return next(v for v in catalog.voices if not catalog.usable(v))


def voice_client(tts: DiscordHarness) -> LoopbackVoiceClient:
    voice = tts.guild.guild.voice_client
    assert isinstance(voice, LoopbackVoiceClient)
    return voice


# -- the first page --------------------------------------------------------------------------------


async def test_the_first_page_lists_ten_voices_with_menus_and_buttons(tts: DiscordHarness) -> None:
    _, reply = await search(tts)
    message = stored(tts, reply)
    page = embed(message)

    ids = expected_ids(tts, 1)
    assert len(page["fields"]) == 10
    assert option_values(message, USE_ID) == ids
    assert option_values(message, PREVIEW_ID) == ids  # every fake voice has a preview
    assert page["footer"]["text"].startswith("Page 1 of 4")
    for field, voice_id in zip(page["fields"], ids, strict=True):
        voice = tts.bot.catalog.get(voice_id)
        assert voice is not None
        assert voice.name in field["name"]
        assert voice.category in field["value"] and voice_id in field["value"]
        assert (NOT_ON_PLAN in field["name"]) is (not tts.bot.catalog.usable(voice))
    assert component(message, PREVIOUS_ID)["disabled"] is True
    assert component(message, NEXT_ID)["disabled"] is False
    indicator = component(message, PAGE_ID)
    assert indicator["label"] == "Page 1/4" and indicator["disabled"] is True


async def test_voices_the_plan_cannot_use_are_marked(tts: DiscordHarness) -> None:
    locked = unusable(tts)
    _, reply = await search(tts, query=locked.name)
    message = stored(tts, reply)

    field = embed(message)["fields"][0]
    assert field["name"] == f"1. {locked.name} {NOT_ON_PLAN}"
    assert NOT_ON_PLAN in embed(message)["description"]
    (option,) = [o for o in component(message, USE_ID)["options"] if o["value"] == locked.voice_id]
    assert option["description"].endswith(NOT_ON_PLAN)


async def test_descriptions_are_cut_short(tts: DiscordHarness) -> None:
    _, reply = await search(tts)
    for field in embed(stored(tts, reply))["fields"]:
        lines = field["value"].splitlines()
        assert all(len(line) <= 200 for line in lines)
        assert len(lines[1]) <= DESCRIPTION_CUT


# -- paging ----------------------------------------------------------------------------------------


async def test_next_and_previous_turn_pages_and_disable_at_the_ends(tts: DiscordHarness) -> None:
    _, reply = await search(tts)

    for page in (2, 3, 4):
        turned = await tts.click(reply, NEXT_ID)
        assert turned.last.kind == "callback" and turned.last.type == 7  # the message is updated
        message = stored(tts, reply)
        assert option_values(message, USE_ID) == expected_ids(tts, page)
        assert embed(message)["fields"][0]["name"].startswith(f"{(page - 1) * 10 + 1}. ")
        assert component(message, PAGE_ID)["label"] == f"Page {page}/4"
        assert component(message, PREVIOUS_ID)["disabled"] is False
    assert component(stored(tts, reply), NEXT_ID)["disabled"] is True

    await tts.click(reply, PREVIOUS_ID)
    message = stored(tts, reply)
    assert option_values(message, USE_ID) == expected_ids(tts, 3)
    assert component(message, NEXT_ID)["disabled"] is False

    for _ in range(2):
        await tts.click(reply, PREVIOUS_ID)
    message = stored(tts, reply)
    assert option_values(message, USE_ID) == expected_ids(tts, 1)
    assert component(message, PREVIOUS_ID)["disabled"] is True


async def test_one_page_of_results_has_both_buttons_disabled(tts: DiscordHarness) -> None:
    _, reply = await search(tts, category="cloned")
    message = stored(tts, reply)
    assert component(message, PREVIOUS_ID)["disabled"] is True
    assert component(message, NEXT_ID)["disabled"] is True
    assert component(message, PAGE_ID)["label"] == "Page 1/1"


# -- choosing a voice ------------------------------------------------------------------------------


async def test_choosing_a_voice_makes_it_the_callers_and_speak_uses_it(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    _, reply = await search(tts)
    await tts.click(reply, NEXT_ID)
    chosen = catalog_voice(tts, "Ethan")
    assert chosen.voice_id in option_values(stored(tts, reply), USE_ID)
    assert tts.bot.catalog.usable(chosen)

    picked = await tts.select(reply, USE_ID, [chosen.voice_id])

    answer = picked.last
    assert answer.ephemeral and answer.pings_nobody
    assert answer.content == "You now speak with **Ethan** everywhere."
    alice = tts.guild.member_id("alice")
    assert (await tts.bot.storage.users.get(alice)).voice_id == chosen.voice_id

    log = await tts.invoke("speak", text="Which voice is this?")
    await tts.wait_for_replies(log, 2)
    await voice_client(tts).wait_until(lambda: bool(fake_elevenlabs.tts_requests))
    assert chosen.voice_id in fake_elevenlabs.tts_requests[-1].path
    tts.bot.voices.players[tts.guild.id].stop()
    await voice_client(tts).wait_until_done()


async def test_a_voice_the_plan_cannot_use_is_refused_in_words(tts: DiscordHarness) -> None:
    locked = unusable(tts)
    _, reply = await search(tts, query=locked.name)

    picked = await tts.select(reply, USE_ID, [locked.voice_id])

    assert picked.last.ephemeral and picked.last.pings_nobody
    refusal = f"The voice {locked.name} is not available on this account's plan."
    assert picked.last.content == refusal
    alice = tts.guild.member_id("alice")
    assert (await tts.bot.storage.users.get(alice)).voice_id is None


async def test_a_locked_server_voice_is_mentioned(tts: DiscordHarness) -> None:
    await tts.bot.preferences.set_server_voice(tts.guild.id, "Rachel")
    await tts.bot.preferences.lock_server_voice(tts.guild.id, True)
    _, reply = await search(tts, query="Adam")

    picked = await tts.select(reply, USE_ID, [catalog_voice(tts, "Adam").voice_id])

    assert picked.last.content == (
        "You now speak with **Adam** everywhere. This server uses one voice for everyone, "
        "so here you still speak with **Rachel**."
    )


async def test_an_unexpected_failure_gets_an_error_id(
    tts: DiscordHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> Voice:
        raise RuntimeError("secret internals")

    monkeypatch.setattr(tts.bot.preferences, "set_user_voice", broken)
    _, reply = await search(tts)

    picked = await tts.select(reply, USE_ID, [expected_ids(tts, 1)[0]])

    assert picked.last.ephemeral and picked.last.pings_nobody
    assert "error id `" in picked.last.content and "secret" not in picked.last.content


# -- previews --------------------------------------------------------------------------------------


async def test_a_preview_plays_in_the_callers_channel_and_costs_nothing(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    voice = catalog_voice(tts, "Bella")
    _, reply = await search(tts, query="Bella")
    fake_elevenlabs.reset_records()

    played = await tts.select(reply, PREVIEW_ID, [voice.voice_id])

    assert played.callback is not None and played.callback.deferred
    assert played.callback.ephemeral
    answer = played.last
    assert answer.kind == "followup" and answer.ephemeral and answer.pings_nobody
    assert answer.content == "Playing the preview of **Bella**."
    client = voice_client(tts)
    assert client.channel.id == tts.guild.channel_ids["lounge"]
    # The first second is enough to know it is the preview; the rest is skipped.
    await client.wait_until(lambda: len(client.audio_packets()) >= HEARD_PACKETS)
    player = tts.bot.voices.players[tts.guild.id]
    assert player.current is not None and player.current.origin == "preview"
    heard = client.decode_pcm()
    player.stop()
    await client.wait_until_done()
    description = fake_elevenlabs.voice(voice.voice_id)["description"]
    reference = await reference_pcm(voice.voice_id, f"Hello, I am Bella. {description}", channels=2)
    # Compared over what was heard, less the most the mp3 and the decoder may delay it.
    assert align(reference[: len(heard) - MAX_DELAY_BYTES], heard).correlation > 0.9
    # Fetched from the preview URL, with no key and no speech request: nothing is charged.
    routes = [r.route for r in fake_elevenlabs.requests]
    assert routes == ["preview"]
    assert fake_elevenlabs.tts_requests == []
    assert not fake_elevenlabs.requests[0].api_key_present


async def test_a_preview_while_not_in_voice_posts_the_link(
    tts_factory: BotFactory, fake_elevenlabs: FakeElevenLabs
) -> None:
    tts = await tts_factory(voice={})
    voice = catalog_voice(tts, "Bella")
    _, reply = await search(tts, query="Bella")
    fake_elevenlabs.reset_records()

    answered = await tts.select(reply, PREVIEW_ID, [voice.voice_id])

    answer = answered.last
    assert answer.ephemeral and answer.pings_nobody
    assert voice.preview_url and voice.preview_url in (answer.content or "")
    assert answer.content.startswith("You are not in a voice channel")
    assert tts.guild.guild.voice_client is None
    assert fake_elevenlabs.requests == []


async def test_a_preview_that_fails_to_download_is_reported(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    fake_elevenlabs.fail_next(404, endpoint="preview")
    _, reply = await search(tts, query="Bella")

    played = await tts.select(reply, PREVIEW_ID, [catalog_voice(tts, "Bella").voice_id])

    failure = (await tts.wait_for_replies(played, 3))[-1]
    assert failure.kind == "followup" and failure.ephemeral and failure.pings_nobody
    assert failure.content == (
        "I could not play the preview of **Bella**: "
        "The audio file could not be downloaded (HTTP 404)."
    )
    assert fake_elevenlabs.tts_requests == []


async def test_a_preview_queues_behind_speech(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    log = await tts.invoke("speak", text="A message long enough to still be playing afterwards.")
    await tts.wait_for_replies(log, 2)
    speaking = tts.bot.voices.players[tts.guild.id]
    await voice_client(tts).wait_until(lambda: speaking.current is not None, what="speaking")
    _, reply = await search(tts, query="Bella")

    played = await tts.select(reply, PREVIEW_ID, [catalog_voice(tts, "Bella").voice_id])

    assert played.last.content == "The preview of **Bella** plays after 1 queued message."
    player = tts.bot.voices.players[tts.guild.id]
    (waiting,) = player.pending()
    assert waiting.origin == "preview" and waiting.requester_id == tts.guild.member_id("alice")
    player.stop()
    await voice_client(tts).wait_until_done()
    assert len(fake_elevenlabs.tts_requests) == 1  # the /speak only


async def test_a_preview_elsewhere_is_refused_through_the_error_table(
    tts_factory: BotFactory, fake_elevenlabs: FakeElevenLabs
) -> None:
    tts = await tts_factory(voice={"alice": "quiet", "bob": "lounge"})
    log = await tts.invoke("speak", text="Bob speaks in the lounge.", user="bob")
    await tts.wait_for_replies(log, 2)
    _, reply = await search(tts, query="Bella")

    refused = await tts.select(reply, PREVIEW_ID, [catalog_voice(tts, "Bella").voice_id])

    answer = refused.last
    assert refused.callback is not None and refused.callback.deferred
    assert answer.kind == "followup" and answer.ephemeral and answer.pings_nobody
    lounge = tts.guild.channel_ids["lounge"]
    assert answer.content == (
        f"I am already speaking in <#{lounge}>: join that channel to queue messages."
    )
    assert not any(r.route == "preview" for r in fake_elevenlabs.requests)
    tts.bot.voices.players[tts.guild.id].stop()
    await voice_client(tts).wait_until_done()


# -- only the caller -------------------------------------------------------------------------------


async def test_someone_else_is_refused_and_changes_nothing(
    tts_factory: BotFactory, fake_elevenlabs: FakeElevenLabs
) -> None:
    tts = await tts_factory(voice={"alice": "lounge", "bob": "lounge"})
    _, reply = await search(tts)
    before = stored(tts, reply)["components"]
    fake_elevenlabs.reset_records()
    first = expected_ids(tts, 1)[0]

    attempts = [
        await tts.click(reply, NEXT_ID, user="bob"),
        await tts.select(reply, USE_ID, [first], user="bob"),
        await tts.select(reply, PREVIEW_ID, [first], user="bob"),
    ]

    for attempt in attempts:
        (refusal,) = attempt.replies
        assert refusal.kind == "callback" and refusal.type == 4
        assert refusal.ephemeral and refusal.pings_nobody and refusal.content == NOT_YOURS
    assert stored(tts, reply)["components"] == before
    bob = tts.guild.member_id("bob")
    assert (await tts.bot.storage.users.get(bob)).voice_id is None
    assert tts.guild.guild.voice_client is None and fake_elevenlabs.requests == []

    # The caller still can.
    await tts.click(reply, NEXT_ID)
    assert component(stored(tts, reply), PAGE_ID)["label"] == "Page 2/4"


# -- the timeout -----------------------------------------------------------------------------------


async def test_the_view_disables_everything_when_it_times_out(
    tts: DiscordHarness, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cog_module(tts), "VIEW_TIMEOUT", 0.05)
    log, reply = await search(tts)

    await tts.wait_for_replies(log, 2)

    edit = log.last
    assert edit.kind == "edit_original" and edit.pings_nobody
    message = stored(tts, reply)
    assert {c["custom_id"] for c in components(message)} == {
        USE_ID,
        PREVIEW_ID,
        PREVIOUS_ID,
        PAGE_ID,
        NEXT_ID,
    }
    assert all(c["disabled"] for c in components(message))
    assert embed(message)["fields"]  # the results stay readable

    late = await tts.click(reply, NEXT_ID)  # a stale client: the view no longer listens
    assert all(r.kind != "callback" or r.type != 7 for r in late.replies)


async def test_the_timeout_counts_from_the_command_not_the_last_click(
    tts: DiscordHarness,
) -> None:
    timeout = cog_module(tts).VIEW_TIMEOUT
    assert timeout < 15 * 60  # the token that edits the message lives 15 minutes
    _, reply = await search(tts)
    view = view_of(tts, reply)
    deadline = view.deadline

    await tts.click(reply, NEXT_ID)
    await tts.select(reply, USE_ID, [expected_ids(tts, 2)[0]])

    assert view.deadline == deadline
    assert view.timeout is not None and view.timeout <= timeout
    view.stop()


async def test_on_timeout_survives_a_dismissed_message(tts: DiscordHarness) -> None:
    _, reply = await search(tts)
    view = view_of(tts, reply)
    tts.rest.messages.pop(reply.message_id)  # dismissed by the user

    await view.on_timeout()  # logs and returns

    assert all(item.disabled for item in view.children if isinstance(item, discord.ui.Button))


# -- filters and their autocomplete ----------------------------------------------------------------


FILTERS = [
    {"gender": "female"},
    {"accent": "british"},
    {"gender": "FEMALE", "accent": "irish"},
    {"category": "premade", "gender": "female"},
    {"query": "calm"},
    {"query": "old", "category": "generated"},
]


def filter_id(options: dict[str, str]) -> str:
    return ",".join(f"{kind}={value}" for kind, value in options.items())


@pytest.mark.parametrize("options", FILTERS, ids=filter_id)
async def test_filters_narrow_the_results(tts: DiscordHarness, options: dict[str, str]) -> None:
    _, reply = await search(tts, **options)
    message = stored(tts, reply)

    wanted = tts.bot.catalog.search(**options)
    assert wanted, options
    assert option_values(message, USE_ID) == [v.voice_id for v in wanted[:10]]
    assert f"of {len(wanted)}." in embed(message)["description"]
    title = embed(message)["title"]
    for value in options.values():
        assert value in title
    for voice in wanted:
        for kind in ("gender", "accent"):
            if kind in options:
                assert (voice.label(kind) or "").casefold() == options[kind].casefold()


async def test_no_match_is_a_sentence_without_components(tts: DiscordHarness) -> None:
    _, reply = await search(tts, query="zzzz", accent="Martian")
    assert reply.content == "No voices match “zzzz” · accent Martian."
    assert reply.components == [] and reply.embeds == []


async def test_a_catalogue_not_loaded_yet_is_explained(tts: DiscordHarness) -> None:
    async def nothing_yet() -> Any:
        return
        yield

    tts.bot.catalog = VoiceCatalog(nothing_yet)
    _, reply = await search(tts)
    assert reply.content == "The voice list has not loaded yet; try again in a minute."


AUTOCOMPLETE = [
    ("category", "", ["cloned", "generated", "premade", "professional"]),
    ("category", "pro", ["professional"]),
    ("gender", "fe", ["female"]),
    ("gender", "", ["female", "male", "neutral"]),
    ("accent", "br", ["British"]),
    ("accent", "IR", ["Irish"]),
    ("accent", "ish", ["British", "Irish", "Scottish", "Swedish"]),
    ("accent", "klingon", []),
]


@pytest.mark.parametrize(("option", "typed", "expected"), AUTOCOMPLETE)
async def test_filter_options_autocomplete_from_the_catalogue(
    tts: DiscordHarness, option: str, typed: str, expected: list[str]
) -> None:
    log = await tts.autocomplete("voices search", option, typed)
    assert log.choices == [{"name": v, "value": v} for v in expected]


async def test_autocomplete_leaves_out_values_discord_would_reject(
    tts_factory: BotFactory, fake_elevenlabs: FakeElevenLabs
) -> None:
    fake_elevenlabs.voices[0]["labels"]["accent"] = "Long " * 30
    tts = await tts_factory()
    log = await tts.autocomplete("voices search", "accent", "")
    choices = log.choices or []
    assert choices and all(len(c["name"]) <= 100 for c in choices)


# -- Discord's limits with the longest names and descriptions --------------------------------------


async def test_huge_voices_still_fit_discord(
    tts_factory: BotFactory, fake_elevenlabs: FakeElevenLabs
) -> None:
    for i, voice in enumerate(fake_elevenlabs.voices):
        voice["name"] = f"**Huge** _{i}_ " + "Name " * 100
        voice["description"] = "A *very* ~~long~~ description. " * 300
        voice["labels"] = {f"label{j}": "`value` " * 40 for j in range(30)}
    tts = await tts_factory()

    _, reply = await search(tts)
    await tts.click(reply, NEXT_ID)

    message = stored(tts, reply)
    page = embed(message)
    assert len(page["fields"]) == 10
    assert len(page["title"]) <= TITLE_LIMIT
    total = len(page["title"]) + len(page["description"]) + len(page["footer"]["text"])
    for field in page["fields"]:
        assert len(field["name"]) <= FIELD_NAME_LIMIT and len(field["value"]) <= FIELD_VALUE_LIMIT
        total += len(field["name"]) + len(field["value"])
    assert total <= EMBED_TOTAL_LIMIT
    for select in (USE_ID, PREVIEW_ID):
        for option in component(message, select)["options"]:
            assert len(option["label"]) <= OPTION_TEXT_LIMIT
            assert len(option.get("description") or "") <= OPTION_TEXT_LIMIT
    assert "\\*\\*Huge\\*\\*" in page["fields"][0]["name"]  # markdown shown, not applied
