"""Every JSON endpoint of the client against the strict fake: what is sent, and what comes back."""

from __future__ import annotations

import math

import pytest

from bot.elevenlabs.client import ElevenLabsClient
from bot.elevenlabs.errors import UnexpectedResponseError, VoiceNotFoundError
from bot.elevenlabs.models import VoiceSettings
from tests.elevenlabs.conftest import RACHEL
from tests.fakes.elevenlabs import FakeElevenLabs


def last_query(fake: FakeElevenLabs) -> dict[str, list[str]]:
    query = fake.requests[-1].query
    return {key: query.getall(key) for key in dict.fromkeys(query.keys())}


# ---- GET /v2/voices -------------------------------------------------------------------------


async def test_search_voices_defaults_send_only_what_is_set(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    page = await client.search_voices()

    assert fake_elevenlabs.requests[-1].path == "/v2/voices"
    assert last_query(fake_elevenlabs) == {"page_size": ["10"], "include_total_count": ["true"]}
    assert [v.voice_id for v in page.voices] == [v["voice_id"] for v in fake_elevenlabs.voices[:10]]
    assert page.has_more is True
    assert page.total_count == len(fake_elevenlabs.voices)
    assert page.next_page_token


async def test_search_voices_search_term(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    page = await client.search_voices("rachel")

    assert last_query(fake_elevenlabs)["search"] == ["rachel"]
    assert [v.voice_id for v in page.voices] == [RACHEL]
    assert page.total_count == 1
    assert page.has_more is False
    assert page.next_page_token is None


async def test_search_voices_page_size_and_next_page_token(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    first = await client.search_voices(page_size=3)
    assert last_query(fake_elevenlabs)["page_size"] == ["3"]
    second = await client.search_voices(page_size=3, next_page_token=first.next_page_token)

    assert last_query(fake_elevenlabs)["next_page_token"] == [first.next_page_token]
    ids = [v["voice_id"] for v in fake_elevenlabs.voices]
    assert [v.voice_id for v in first.voices] == ids[:3]
    assert [v.voice_id for v in second.voices] == ids[3:6]


async def test_search_voices_sort_and_direction(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    page = await client.search_voices(page_size=100, sort="name", sort_direction="desc")

    query = last_query(fake_elevenlabs)
    assert query["sort"] == ["name"]
    assert query["sort_direction"] == ["desc"]
    names = [v.name.casefold() for v in page.voices]
    assert names == sorted(names, reverse=True)
    assert len(names) == len(fake_elevenlabs.voices)


async def test_search_voices_voice_type(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    page = await client.search_voices(page_size=100, voice_type="default")

    assert last_query(fake_elevenlabs)["voice_type"] == ["default"]
    assert page.voices
    assert {v.category for v in page.voices} == {"premade"}


async def test_search_voices_category(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    page = await client.search_voices(page_size=100, category="cloned")

    assert last_query(fake_elevenlabs)["category"] == ["cloned"]
    expected = [v["voice_id"] for v in fake_elevenlabs.voices if v["category"] == "cloned"]
    assert [v.voice_id for v in page.voices] == expected


async def test_search_voices_fine_tuning_state(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    page = await client.search_voices(page_size=100, fine_tuning_state="fine_tuned")

    assert last_query(fake_elevenlabs)["fine_tuning_state"] == ["fine_tuned"]
    assert page.voices
    assert {v.category for v in page.voices} == {"professional"}


async def test_search_voices_collection_id(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    page = await client.search_voices(page_size=100, collection_id="narrators")

    assert last_query(fake_elevenlabs)["collection_id"] == ["narrators"]
    assert [v.voice_id for v in page.voices] == fake_elevenlabs.collections["narrators"]


async def test_search_voices_without_total_count(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    page = await client.search_voices(include_total_count=False)

    assert last_query(fake_elevenlabs)["include_total_count"] == ["false"]
    assert page.total_count is None


async def test_search_voices_voice_ids_repeat_the_parameter(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    wanted = [fake_elevenlabs.voices[5]["voice_id"], RACHEL]

    page = await client.search_voices(voice_ids=wanted)

    assert last_query(fake_elevenlabs)["voice_ids"] == wanted
    assert {v.voice_id for v in page.voices} == set(wanted)


@pytest.mark.parametrize("page_size", [0, 101])
async def test_search_voices_page_size_out_of_range_sends_nothing(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs, page_size: int
) -> None:
    with pytest.raises(ValueError, match="page_size"):
        await client.search_voices(page_size=page_size)
    assert fake_elevenlabs.requests == []


async def test_iter_voices_walks_every_page(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    voices = [v async for v in client.iter_voices(page_size=7)]

    assert [v.voice_id for v in voices] == [v["voice_id"] for v in fake_elevenlabs.voices]
    pages = fake_elevenlabs.requests
    assert len(pages) == math.ceil(len(fake_elevenlabs.voices) / 7)
    assert all(r.status == 200 for r in pages)
    assert "next_page_token" not in pages[0].query
    assert all("next_page_token" in r.query for r in pages[1:])
    assert all(r.query["include_total_count"] == "false" for r in pages)


async def test_iter_voices_keeps_filters_on_every_page(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    voices = [v async for v in client.iter_voices(page_size=2, category="professional")]

    expected = [v["voice_id"] for v in fake_elevenlabs.voices if v["category"] == "professional"]
    assert [v.voice_id for v in voices] == expected
    assert len(fake_elevenlabs.requests) == math.ceil(len(expected) / 2)
    assert all(r.query["category"] == "professional" for r in fake_elevenlabs.requests)


async def test_iter_voices_stops_early_when_the_caller_does(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    taken = []
    async for voice in client.iter_voices(page_size=5):
        taken.append(voice)
        if len(taken) == 6:
            break
    assert len(fake_elevenlabs.requests) == 2


# ---- single voices, settings --------------------------------------------------------------


async def test_get_voice(client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs) -> None:
    voice = await client.get_voice(RACHEL)

    assert fake_elevenlabs.requests[-1].path == f"/v1/voices/{RACHEL}"
    assert voice.voice_id == RACHEL
    assert voice.name == "Rachel"
    assert voice.category == "professional"
    assert voice.label("gender") == "female"
    assert voice.label("accent") == "American"
    assert voice.preview_url == fake_elevenlabs.preview_url(RACHEL)
    assert voice.available_for_tiers == ["creator", "enterprise"]
    assert voice.settings == VoiceSettings(
        stability=1, similarity_boost=1, style=0, use_speaker_boost=True, speed=1
    )
    assert voice.usable_on("creator") and not voice.usable_on("free")


async def test_get_voice_unknown_is_voice_not_found(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    with pytest.raises(VoiceNotFoundError) as caught:
        await client.get_voice("no-such-voice")
    assert caught.value.status == 404
    assert caught.value.code == "voice_not_found"
    assert caught.value.request_id == fake_elevenlabs.requests[-1].request_id
    assert len(fake_elevenlabs.requests) == 1  # a 404 is never retried


async def test_get_voice_id_cannot_escape_its_path_segment(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    with pytest.raises(VoiceNotFoundError):
        await client.get_voice("../models")
    assert fake_elevenlabs.requests[-1].route == "voice"


async def test_default_voice_settings(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    settings = await client.default_voice_settings()

    assert fake_elevenlabs.requests[-1].path == "/v1/voices/settings/default"
    assert settings == VoiceSettings(
        stability=0.5, similarity_boost=0.75, style=0, use_speaker_boost=True, speed=1
    )


async def test_voice_settings(client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs) -> None:
    voice = fake_elevenlabs.voices[3]

    settings = await client.voice_settings(voice["voice_id"])

    assert fake_elevenlabs.requests[-1].path == f"/v1/voices/{voice['voice_id']}/settings"
    assert settings.model_dump() == voice["settings"]
    with pytest.raises(VoiceNotFoundError):
        await client.voice_settings("no-such-voice")


# ---- models, subscription -------------------------------------------------------------------


async def test_models(client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs) -> None:
    models = {m.model_id: m for m in await client.models()}

    assert set(models) == {m["model_id"] for m in fake_elevenlabs.models}
    flash = models["eleven_flash_v2_5"]
    assert flash.can_do_text_to_speech is True
    assert flash.maximum_text_length_per_request == 40_000
    assert flash.credits_per_character == 0.5
    assert "vi" in {lang.language_id for lang in flash.languages}
    assert models["eleven_english_sts_v2"].can_do_text_to_speech is False


async def test_models_credits_per_character_prefers_model_rates(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    both, factor_only, neither = (dict(m) for m in fake_elevenlabs.models[:3])
    both.update(model_rates={"character_cost_multiplier": 0.3}, token_cost_factor=1.0)
    factor_only.update(model_rates=None, token_cost_factor=2.0)
    del neither["model_rates"], neither["token_cost_factor"]
    fake_elevenlabs.models = [both, factor_only, neither]

    models = await client.models()

    assert [m.credits_per_character for m in models] == [0.3, 2.0, 1.0]


async def test_subscription(client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs) -> None:
    fake_elevenlabs.character_count = 1_234
    fake_elevenlabs.character_limit = 10_000

    sub = await client.subscription()

    assert fake_elevenlabs.requests[-1].path == "/v1/user/subscription"
    assert sub.tier == "creator"
    assert (sub.character_count, sub.character_limit) == (1_234, 10_000)
    assert sub.remaining == 8_766
    assert sub.next_character_count_reset_unix == 1_798_761_600


async def test_subscription_remaining_is_never_negative(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    fake_elevenlabs.character_count = 12_000
    fake_elevenlabs.character_limit = 10_000
    assert (await client.subscription()).remaining == 0


@pytest.mark.parametrize(
    ("call", "route", "body"),
    [
        ("search_voices", "voices_v2", {"items": []}),
        ("models", "models", {"models": []}),
        ("subscription", "subscription", {"tier": ["not", "a", "string"]}),
    ],
)
async def test_a_changed_response_shape_is_an_unexpected_response(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs, call: str, route: str, body: object
) -> None:
    fake_elevenlabs.json_next(body, endpoint=route)

    with pytest.raises(UnexpectedResponseError):
        await getattr(client, call)()
    assert len(fake_elevenlabs.requests) == 1
