"""The voice catalogue: loading across pages, refresh, lookups, filters, ranking, paging.

Voices are built from payloads shaped like the documented GET /v2/voices example
(and one test parses that example itself), through the real `Voice` model.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.elevenlabs.models import Voice, VoicesPage
from bot.errors import BotError
from bot.voices import (
    AmbiguousVoice,
    CatalogNotReady,
    Page,
    VoiceCatalog,
    VoiceNotFound,
    VoiceNotOnPlan,
    paginate,
)

API_DOCS = Path(__file__).resolve().parents[3] / "shared" / "elevenlabs-api"
SECRET = "sk_0123456789abcdef"
NOT_ON_PLAN = "(not on your plan)"
T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)
PATIENCE = 5.0
"""Seconds to wait for something that takes milliseconds: a bound, not a timing claim."""


# -- payloads and fakes -------------------------------------------------------------------


def payload(
    voice_id: str,
    name: str,
    *,
    category: str = "premade",
    accent: str | None = None,
    gender: str | None = None,
    age: str | None = None,
    use_case: str | None = None,
    trait: str | None = None,
    description: str | None = None,
    tiers: Sequence[str] = (),
) -> dict[str, Any]:
    """One voice as GET /v2/voices returns it (the fields the model ignores included)."""
    labels = {
        "accent": accent,
        "age": age,
        "description": trait,
        "gender": gender,
        "use_case": use_case,
    }
    return {
        "voice_id": voice_id,
        "name": name,
        "category": category,
        "labels": {key: value for key, value in labels.items() if value is not None},
        "available_for_tiers": list(tiers),
        "high_quality_base_model_ids": ["eleven_turbo_v2_5", "eleven_multilingual_v2"],
        "samples": None,
        "fine_tuning": {"is_allowed_to_fine_tune": False, "state": {}},
        "description": description,
        "preview_url": f"https://storage.googleapis.com/eleven-public-prod/{voice_id}/p.mp3",
        "settings": None,
        "sharing": None,
        "verified_languages": [{"language": "en", "model_id": "eleven_turbo_v2_5"}],
        "safety_control": "NONE",
        "is_owner": False,
        "is_legacy": False,
        "is_mixed": False,
        "created_at_unix": None,
    }


RACHEL = payload(
    "21m00Tcm4TlvDq8ikWAM",
    "Rachel",
    accent="American",
    gender="female",
    age="young",
    use_case="narration",
    trait="calm",
)
DOMI = payload(
    "AZnzlk1XvdvUeBnXmlld",
    "Domi",
    accent="american",
    gender="female",
    age="young",
    use_case="narration",
    trait="strong",
)
ANTONI = payload(
    "ErXwobaYiN019PkySvjV",
    "Antoni",
    accent="American",
    gender="male",
    age="young",
    use_case="narration",
    trait="well-rounded",
)
GEORGE = payload(
    "JBFqnCBsd6RMkjVDRZzb",
    "George",
    accent="British",
    gender="male",
    age="middle-aged",
    use_case="narration",
    trait="warm",
)
DANIEL = payload(
    "onwK4e9ZLuTAKqWW03F9",
    "Daniel",
    accent="british",
    gender="male",
    age="middle_aged",
    use_case="news",
    trait="deep",
)
CHARLOTTE = payload(
    "XB0fDUnXU5powFXDhCwa",
    "Charlotte",
    accent="Swedish",
    gender="female",
    age="young",
    use_case="video games",
    trait="seductive",
)
RACHEL_CLONE = payload(
    "cloneRachel000000001",
    "Rachel Clone",
    category="cloned",
    accent="american",
    gender="female",
    description="My own copy of Rachel, for the stream.",
)
BRIAN = payload(
    "nPczCjzI2devNBz1zQrb",
    "Brian - Deep Narrator",
    category="professional",
    accent="American",
    gender="male",
    age="middle aged",
    use_case="narration",
    tiers=["creator", "pro"],
)
WIZARD = payload(
    "genWizard00000000001",
    "Old Wizard",
    category="generated",
    accent="British",
    gender="male",
    age="old",
    use_case="characters",
)
DOROTHY = payload(
    "ThT5KcBeYPX3keUQqHPh",
    "Dorothy",
    category="professional",
    accent="British",
    gender="female",
    age="young",
    use_case="Social_Media",
    tiers=["creator"],
)

PAGES: list[list[dict[str, Any]]] = [
    [RACHEL, DOMI, ANTONI, GEORGE],
    [DANIEL, CHARLOTTE, RACHEL_CLONE],
    [BRIAN, WIZARD, DOROTHY],
]
ALL = [voice for page in PAGES for voice in page]


def ids(voices: Sequence[Voice]) -> list[str]:
    return [voice.voice_id for voice in voices]


def names(voices: Sequence[Voice]) -> list[str]:
    return [voice.name for voice in voices]


class FakeVoices:
    """A loader walking pages like `ElevenLabsClient.iter_voices`, and counting walks.

    `fail` makes the next walks raise after the first page (a mid-walk failure);
    `gate`, when set, holds every walk before its first page until it is opened.
    """

    def __init__(self, pages: list[list[dict[str, Any]]]) -> None:
        self.pages = pages
        self.calls = 0
        self.fail: Exception | None = None
        self.gate: asyncio.Event | None = None

    def __call__(self) -> AsyncIterator[Voice]:
        self.calls += 1
        return self._walk()

    async def _walk(self) -> AsyncIterator[Voice]:
        if self.gate is not None:
            await self.gate.wait()
        for number, page in enumerate(self.pages):
            await asyncio.sleep(0)  # one request per page
            if number == 1 and self.fail is not None:
                raise self.fail
            for voice in VoicesPage.model_validate({"voices": page, "has_more": True}).voices:
                yield voice


class FakeClock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now


class FakeTier:
    def __init__(self, tier: str | None) -> None:
        self.tier = tier
        self.fail: Exception | None = None

    async def __call__(self) -> str | None:
        if self.fail is not None:
            raise self.fail
        return self.tier


async def eventually(condition: Callable[[], bool]) -> None:
    """Wait for a condition without betting on timing: generous timeout, fine polling."""
    async with asyncio.timeout(PATIENCE):
        while not condition():  # noqa: ASYNC110 - the fakes have no event to wait on
            await asyncio.sleep(0.005)


@pytest.fixture
def loader() -> FakeVoices:
    return FakeVoices([list(page) for page in PAGES])


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def tier() -> FakeTier:
    return FakeTier("free")


@pytest.fixture
async def catalog(
    loader: FakeVoices, clock: FakeClock, tier: FakeTier
) -> AsyncIterator[VoiceCatalog]:
    catalog = VoiceCatalog(loader, tier=tier, clock=clock)
    assert await catalog.refresh()
    yield catalog
    await catalog.aclose()


def catalog_of(*payloads: dict[str, Any], tier: str | None = None) -> VoiceCatalog:
    """A catalogue over one page of `payloads`, to be refreshed by the test."""
    return VoiceCatalog(FakeVoices([list(payloads)]), tier=FakeTier(tier))


# -- the documented example -----------------------------------------------------------------


def documented_list_example() -> dict[str, Any]:
    path = API_DOCS / "voices-list-get-default-settings.txt"
    if not path.exists():
        pytest.skip(f"API documentation not found at {path}")
    text = path.read_text(encoding="utf-8")
    start = text.index("{", text.index("Retrieved"))
    example, _ = json.JSONDecoder().raw_decode(text, start)
    return example


async def test_the_documented_example_response_loads() -> None:
    page = VoicesPage.model_validate(documented_list_example())
    assert (page.has_more, page.next_page_token) == (True, "next_page_token")
    catalog = VoiceCatalog(lambda: _aiter(page.voices), tier=FakeTier("creator"))
    assert await catalog.refresh()

    rachel = catalog.resolve("rachel")
    assert rachel.voice_id == "21m00Tcm4TlvDq8ikWAM"
    assert catalog.search(accent="american", gender="FEMALE", age="middle aged") == [rachel]
    assert catalog.search(category="professional", use_case="social_media") == [rachel]
    assert catalog.autocomplete("ra") == [
        ("Rachel — professional · American female", "21m00Tcm4TlvDq8ikWAM")
    ]
    assert catalog.usable(rachel)


async def test_the_documented_voice_is_marked_on_a_tier_it_does_not_list() -> None:
    page = VoicesPage.model_validate(documented_list_example())
    catalog = VoiceCatalog(lambda: _aiter(page.voices), tier=FakeTier("free"))
    assert await catalog.refresh()

    assert not catalog.usable(page.voices[0])
    assert catalog.autocomplete("")[0][0].endswith(NOT_ON_PLAN)


async def _aiter(voices: Sequence[Voice]) -> AsyncIterator[Voice]:
    for voice in voices:
        yield voice


# -- loading and refreshing -----------------------------------------------------------------


async def test_loads_every_page(catalog: VoiceCatalog, loader: FakeVoices) -> None:
    assert loader.calls == 1
    assert catalog.loaded
    assert catalog.loaded_at == T0
    assert catalog.tier == "free"
    assert len(catalog) == len(ALL)
    assert sorted(ids(catalog.voices)) == sorted(v["voice_id"] for v in ALL)
    assert names(catalog.voices) == sorted(v["name"] for v in ALL)


async def test_a_voice_on_two_pages_is_kept_once() -> None:
    catalog = VoiceCatalog(FakeVoices([[RACHEL, DOMI], [RACHEL, GEORGE]]))
    assert await catalog.refresh()
    assert sorted(names(catalog.voices)) == ["Domi", "George", "Rachel"]


async def test_before_the_first_load_lookups_are_empty_and_resolution_refuses() -> None:
    catalog = catalog_of(RACHEL)
    assert not catalog.loaded
    assert catalog.loaded_at is None
    assert len(catalog) == 0
    assert catalog.get(RACHEL["voice_id"]) is None
    assert catalog.search() == []
    assert catalog.autocomplete("ra") == []
    assert catalog.facets().accents == ()
    with pytest.raises(CatalogNotReady) as caught:
        catalog.resolve("Rachel")
    assert isinstance(caught.value, BotError)
    assert str(caught.value).endswith(".")


async def test_refresh_replaces_the_snapshot(
    catalog: VoiceCatalog, loader: FakeVoices, clock: FakeClock
) -> None:
    loader.pages = [[RACHEL], [payload("newVoice000000000001", "Zara", accent="Irish")]]
    clock.now = T0 + timedelta(minutes=10)

    assert await catalog.refresh()

    assert names(catalog.voices) == ["Rachel", "Zara"]
    assert catalog.get(GEORGE["voice_id"]) is None
    assert catalog.resolve("zara").voice_id == "newVoice000000000001"
    assert catalog.loaded_at == T0 + timedelta(minutes=10)
    assert catalog.facets().accents == ("American", "Irish")


async def test_a_failed_refresh_keeps_the_old_snapshot_and_warns_once_without_the_key(
    catalog: VoiceCatalog,
    loader: FakeVoices,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    before = catalog.voices
    loader.fail = RuntimeError(f"GET /v2/voices failed, xi-api-key: {SECRET}")
    clock.now = T0 + timedelta(minutes=10)

    with caplog.at_level(logging.DEBUG, logger="bot.voices"):
        assert not await catalog.refresh()

    assert catalog.voices == before
    assert catalog.loaded_at == T0
    warnings = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "RuntimeError" in warnings[0].getMessage()
    assert SECRET not in caplog.text


async def test_a_failed_first_load_leaves_the_catalogue_unloaded(
    loader: FakeVoices, caplog: pytest.LogCaptureFixture
) -> None:
    loader.fail = ConnectionError("boom")
    catalog = VoiceCatalog(loader)
    with caplog.at_level(logging.WARNING, logger="bot.voices"):
        assert not await catalog.refresh()
    assert not catalog.loaded
    assert len([r for r in caplog.records if r.levelno >= logging.WARNING]) == 1


async def test_a_failed_tier_lookup_keeps_the_voices_and_the_last_tier(
    catalog: VoiceCatalog, loader: FakeVoices, tier: FakeTier
) -> None:
    tier.fail = TimeoutError()
    loader.pages = [[RACHEL, BRIAN]]

    assert await catalog.refresh()

    assert names(catalog.voices) == ["Brian - Deep Narrator", "Rachel"]
    assert catalog.tier == "free"
    assert not catalog.usable(catalog.resolve("brian"))


async def test_concurrent_refreshes_share_one_load(
    catalog: VoiceCatalog, loader: FakeVoices
) -> None:
    loader.gate = asyncio.Event()
    waiting = [asyncio.create_task(catalog.refresh()) for _ in range(5)]
    await eventually(lambda: loader.calls == 2)
    loader.gate.set()

    assert await asyncio.gather(*waiting) == [True] * 5
    assert loader.calls == 2  # the fixture's load, then one for all five

    assert await catalog.refresh()
    assert loader.calls == 3  # a later refresh loads again


async def test_a_caller_giving_up_does_not_cancel_the_shared_load(
    catalog: VoiceCatalog, loader: FakeVoices
) -> None:
    loader.gate = asyncio.Event()
    impatient = asyncio.create_task(catalog.refresh())
    patient = asyncio.create_task(catalog.refresh())
    await eventually(lambda: loader.calls == 2)
    impatient.cancel()
    loader.gate.set()

    assert await patient
    assert impatient.cancelled()
    assert loader.calls == 2


async def test_the_background_task_refreshes_until_closed(loader: FakeVoices) -> None:
    catalog = VoiceCatalog(loader, refresh_interval=0.01)
    catalog.start()
    catalog.start()  # idempotent: still one task
    await eventually(lambda: loader.calls >= 3)
    assert catalog.loaded

    await catalog.aclose()
    calls = loader.calls
    await asyncio.sleep(0.05)
    assert loader.calls == calls


async def test_starting_after_a_first_load_waits_a_full_interval(
    catalog: VoiceCatalog, loader: FakeVoices
) -> None:
    catalog.start()
    for _ in range(20):
        await asyncio.sleep(0)
    assert loader.calls == 1  # the fixture's refresh; the next is ten minutes away


async def test_the_background_task_retries_a_failed_first_load(
    loader: FakeVoices, caplog: pytest.LogCaptureFixture
) -> None:
    loader.fail = ConnectionError("down")
    catalog = VoiceCatalog(loader, refresh_interval=600, retry_interval=0.01)
    with caplog.at_level(logging.WARNING, logger="bot.voices"):
        catalog.start()
        await eventually(lambda: loader.calls >= 2)
        loader.fail = None
        await eventually(lambda: catalog.loaded)
    await catalog.aclose()
    assert len(catalog) == len(ALL)


async def test_closing_cancels_a_load_in_flight(loader: FakeVoices) -> None:
    loader.gate = asyncio.Event()  # never opened
    catalog = VoiceCatalog(loader)
    catalog.start()
    await eventually(lambda: loader.calls == 1)

    await asyncio.wait_for(catalog.aclose(), timeout=PATIENCE)

    assert not catalog.loaded
    await catalog.aclose()  # twice is harmless


def test_intervals_must_be_positive(loader: FakeVoices) -> None:
    with pytest.raises(ValueError):
        VoiceCatalog(loader, refresh_interval=0)


# -- resolution -----------------------------------------------------------------------------


async def test_get_by_id(catalog: VoiceCatalog) -> None:
    voice = catalog.get(GEORGE["voice_id"])
    assert voice is not None
    assert voice.name == "George"
    assert voice.preview_url == GEORGE["preview_url"]
    assert catalog.get("george") is None  # ids only


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        pytest.param("JBFqnCBsd6RMkjVDRZzb", "George", id="id"),
        pytest.param("  JBFqnCBsd6RMkjVDRZzb ", "George", id="id with spaces"),
        pytest.param("rachel", "Rachel", id="exact name wins over a longer prefix"),
        pytest.param("RACHEL", "Rachel", id="exact name in any case"),
        pytest.param("Rachel clone", "Rachel Clone", id="exact name of several words"),
        pytest.param("geo", "George", id="unique prefix"),
        pytest.param("Brian", "Brian - Deep Narrator", id="unique prefix, first word"),
        pytest.param("brian deep", "Brian - Deep Narrator", id="prefix ignoring punctuation"),
        pytest.param("char", "Charlotte", id="unique prefix in any case"),
    ],
)
async def test_resolve(catalog: VoiceCatalog, query: str, expected: str) -> None:
    assert catalog.resolve(query).name == expected


async def test_an_ambiguous_prefix_lists_the_candidates(catalog: VoiceCatalog) -> None:
    with pytest.raises(AmbiguousVoice) as caught:
        catalog.resolve("d")
    error = caught.value
    assert names(error.candidates) == ["Daniel", "Domi", "Dorothy"]
    assert str(error) == (
        "“d” could be 3 voices: Daniel, Domi, Dorothy. Type more of the name, or use the voice id."
    )


async def test_an_ambiguous_prefix_lists_five_and_counts_the_rest() -> None:
    catalog = catalog_of(*(payload(f"id{n}", f"Voice {n}") for n in range(8)))
    assert await catalog.refresh()
    with pytest.raises(AmbiguousVoice) as caught:
        catalog.resolve("voice")
    assert len(caught.value.candidates) == 8
    assert "Voice 0, Voice 1, Voice 2, Voice 3, Voice 4 and 3 more" in str(caught.value)


async def test_two_voices_with_one_name_are_ambiguous_and_shown_with_ids() -> None:
    twin = payload("twinRachel0000000001", "rachel", category="cloned")
    catalog = catalog_of(RACHEL, twin)
    assert await catalog.refresh()
    with pytest.raises(AmbiguousVoice) as caught:
        catalog.resolve("Rachel")
    message = str(caught.value)
    assert "21m00Tcm4TlvDq8ikWAM" in message
    assert "twinRachel0000000001" in message
    assert catalog.resolve("twinRachel0000000001").category == "cloned"


@pytest.mark.parametrize(
    ("query", "first_suggestion"),
    [
        pytest.param("Rachle", "Rachel", id="transposed letters"),
        pytest.param("Gorge", "George", id="missing letter"),
        pytest.param("wizard", "Old Wizard", id="a later word"),
        pytest.param("narrator", "Brian - Deep Narrator", id="the last word"),
    ],
)
async def test_an_unknown_name_suggests_the_nearest(
    catalog: VoiceCatalog, query: str, first_suggestion: str
) -> None:
    with pytest.raises(VoiceNotFound) as caught:
        catalog.resolve(query)
    error = caught.value
    assert error.suggestions[0].name == first_suggestion
    assert len(error.suggestions) <= 5
    assert str(error).startswith(f"No voice is called “{query}”. Did you mean {first_suggestion}")
    assert str(error).endswith("?")


async def test_an_unknown_name_with_nothing_close(catalog: VoiceCatalog) -> None:
    with pytest.raises(VoiceNotFound) as caught:
        catalog.resolve("xyzzy")
    assert caught.value.suggestions == ()
    assert str(caught.value) == "No voice is called “xyzzy”, and none has a name close to it."


async def test_suggestions_are_at_most_five() -> None:
    catalog = catalog_of(*(payload(f"id{n}", f"Sam {n}") for n in range(9)))
    assert await catalog.refresh()
    with pytest.raises(VoiceNotFound) as caught:
        catalog.resolve("samm")
    assert len(caught.value.suggestions) == 5


async def test_an_empty_query_is_refused(catalog: VoiceCatalog) -> None:
    with pytest.raises(VoiceNotFound, match=r"^Give the name or the id of a voice\.$"):
        catalog.resolve("   ")


async def test_a_long_query_is_quoted_short(catalog: VoiceCatalog) -> None:
    with pytest.raises(VoiceNotFound) as caught:
        catalog.resolve("q" * 500)
    assert len(str(caught.value)) < 120


# -- search and filters ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        pytest.param({}, sorted(v["name"] for v in ALL), id="nothing: all by name"),
        pytest.param({"category": "cloned"}, ["Rachel Clone"], id="category"),
        pytest.param(
            {"category": "PROFESSIONAL"},
            ["Brian - Deep Narrator", "Dorothy"],
            id="category in any case",
        ),
        pytest.param(
            {"gender": "female"},
            ["Charlotte", "Domi", "Dorothy", "Rachel", "Rachel Clone"],
            id="gender",
        ),
        pytest.param(
            {"gender": "MALE"},
            ["Antoni", "Brian - Deep Narrator", "Daniel", "George", "Old Wizard"],
            id="male does not match female",
        ),
        pytest.param(
            {"accent": "british"},
            ["Daniel", "Dorothy", "George", "Old Wizard"],
            id="accent matches the label in any case",
        ),
        pytest.param(
            {"accent": "American"},
            ["Antoni", "Brian - Deep Narrator", "Domi", "Rachel", "Rachel Clone"],
            id="accent written either way in the labels",
        ),
        pytest.param(
            {"age": "middle aged"},
            ["Brian - Deep Narrator", "Daniel", "George"],
            id="age with any separator",
        ),
        pytest.param({"age": "OLD"}, ["Old Wizard"], id="age in any case"),
        pytest.param({"use_case": "social media"}, ["Dorothy"], id="use case"),
        pytest.param(
            {"gender": "male", "accent": "British"},
            ["Daniel", "George", "Old Wizard"],
            id="gender and accent",
        ),
        pytest.param(
            {"category": "premade", "gender": "female", "accent": "american", "age": "young"},
            ["Domi", "Rachel"],
            id="four filters",
        ),
        pytest.param({"category": "cloned", "accent": "british"}, [], id="no voice has both"),
        pytest.param({"accent": "martian"}, [], id="an unknown value"),
        pytest.param({"accent": "  ", "gender": ""}, sorted(v["name"] for v in ALL), id="blank"),
    ],
)
async def test_filters(catalog: VoiceCatalog, filters: dict[str, str], expected: list[str]) -> None:
    assert names(catalog.search(**filters)) == expected


@pytest.mark.parametrize(
    ("query", "filters", "expected"),
    [
        pytest.param("rachel", {}, ["Rachel", "Rachel Clone"], id="name: exact, then prefix"),
        pytest.param(
            "deep",
            {},
            ["Brian - Deep Narrator", "Daniel"],
            id="a word of the name before a label",
        ),
        pytest.param("brit", {}, ["Daniel", "Dorothy", "George", "Old Wizard"], id="label word"),
        pytest.param("female brit", {}, ["Dorothy"], id="every word must be found, in any field"),
        pytest.param(
            "male",
            {"accent": "american"},
            ["Antoni", "Brian - Deep Narrator"],
            id="male does not find female",
        ),
        pytest.param("stream", {}, ["Rachel Clone"], id="description"),
        pytest.param("WARM", {"gender": "male"}, ["George"], id="query and filter"),
        pytest.param("rachle", {}, [], id="no fuzzy matches in search"),
    ],
)
async def test_search_query(
    catalog: VoiceCatalog, query: str, filters: dict[str, str], expected: list[str]
) -> None:
    assert names(catalog.search(query, **filters)) == expected


async def test_facets_list_distinct_values_once_whatever_their_case(
    catalog: VoiceCatalog,
) -> None:
    facets = catalog.facets()
    assert facets.categories == ("cloned", "generated", "premade", "professional")
    assert facets.genders == ("female", "male")
    assert facets.accents == ("American", "British", "Swedish")
    assert facets.ages == ("middle aged", "old", "young")  # three spellings; the first
    assert facets.use_cases == ("characters", "narration", "news", "Social_Media", "video games")
    assert facets.complete("accent", "BR") == ["British"]
    assert facets.complete("use_case", "media") == ["Social_Media"]
    assert facets.complete("category", "") == list(facets.categories)


# -- autocomplete ---------------------------------------------------------------------------

RANKED = [
    payload("v-sam", "Sam"),
    payload("v-samantha", "Samantha"),
    payload("v-old-sam", "Old Sam"),
    payload("v-isam", "Isam"),
    payload("v-saam", "Saam"),
    payload("v-rachel", "Rachel"),
    payload("v-zed", "Zed"),
    payload("v-anna-deep", "Anna - Deep Voice"),
    payload("v-deepa", "Deepa"),
    payload("v-jodeep", "Jodeep"),
]


@pytest.mark.parametrize(
    ("current", "expected"),
    [
        pytest.param(
            "sam",
            ["Sam", "Samantha", "Old Sam", "Isam", "Saam"],
            id="exact, prefix, word start, substring, fuzzy",
        ),
        pytest.param("SaM", ["Sam", "Samantha", "Old Sam", "Isam", "Saam"], id="any case"),
        pytest.param("deep", ["Deepa", "Anna - Deep Voice", "Jodeep"], id="prefix first"),
        pytest.param("deep v", ["Anna - Deep Voice"], id="word start over several words"),
        pytest.param("smantha", ["Samantha"], id="fuzzy: a dropped letter"),
        pytest.param("rahcel", ["Rachel"], id="fuzzy: swapped letters"),
        pytest.param("rchl", ["Rachel"], id="fuzzy: letters in order"),
        pytest.param("v-zed", ["Zed"], id="the id itself"),
        pytest.param("qqqq", [], id="nothing close"),
    ],
)
async def test_autocomplete_ranking(current: str, expected: list[str]) -> None:
    catalog = catalog_of(*RANKED)
    assert await catalog.refresh()
    shown = [name.split(" — ")[0] for name, _ in catalog.autocomplete(current)]
    assert shown[: len(expected)] == expected
    if not expected:
        assert shown == []


async def test_autocomplete_values_are_voice_ids_and_names_carry_details(
    catalog: VoiceCatalog,
) -> None:
    assert catalog.autocomplete("rach") == [
        ("Rachel — premade · American female", "21m00Tcm4TlvDq8ikWAM"),
        ("Rachel Clone — cloned · American female", "cloneRachel000000001"),
    ]
    assert catalog.autocomplete("old")[0] == (
        "Old Wizard — generated · British male",
        WIZARD["voice_id"],
    )


async def test_autocomplete_marks_voices_the_plan_cannot_use(catalog: VoiceCatalog) -> None:
    [(name, value)] = catalog.autocomplete("brian")
    assert value == BRIAN["voice_id"]
    assert name == f"Brian - Deep Narrator — professional · American male {NOT_ON_PLAN}"


async def test_within_a_tier_usable_voices_come_first() -> None:
    catalog = catalog_of(
        payload("v-1", "Dora", tiers=["pro"]),
        payload("v-2", "Dorian"),
        payload("v-3", "Doris", tiers=["free", "pro"]),
        tier="free",
    )
    assert await catalog.refresh()
    assert [value for _, value in catalog.autocomplete("dor")] == ["v-2", "v-3", "v-1"]


async def test_fuzzy_matches_stay_in_order_of_similarity_whatever_the_plan() -> None:
    catalog = catalog_of(
        payload("v-marcel", "Marcel"),
        payload("v-rachel", "Rachel", tiers=["pro"]),
        tier="free",
    )
    assert await catalog.refresh()
    assert [value for _, value in catalog.autocomplete("rahcel")] == ["v-rachel", "v-marcel"]


async def test_empty_input_lists_usable_voices_first_by_name(catalog: VoiceCatalog) -> None:
    shown = [name.split(" — ")[0] for name, _ in catalog.autocomplete("")]
    assert shown == [
        "Antoni",
        "Charlotte",
        "Daniel",
        "Domi",
        "George",
        "Old Wizard",
        "Rachel",
        "Rachel Clone",
        "Brian - Deep Narrator",
        "Dorothy",
    ]


async def test_autocomplete_gives_at_most_25_choices_within_discord_limits() -> None:
    long_name = "Sir " + "Bartholomew " * 12 + "the Narrator"
    catalog = catalog_of(
        *(
            payload(f"id{n:02}", f"Voice {n:02}", accent="British", gender="male")
            for n in range(60)
        ),
        payload("long", long_name, category="professional", tiers=["pro"]),
        tier="free",
    )
    assert await catalog.refresh()

    for current in ("", "voice", "v", "oice 1"):
        choices = catalog.autocomplete(current)
        assert len(choices) == 25
        assert all(1 <= len(name) <= 100 and 1 <= len(value) <= 100 for name, value in choices)
    assert len(catalog.autocomplete("voice", limit=5)) == 5
    assert len(catalog.autocomplete("voice", limit=50)) == 25
    assert catalog.autocomplete("voice", limit=0) == []

    [(name, value)] = catalog.autocomplete("sir")
    assert value == "long"
    assert len(name) == 100
    assert name.startswith("Sir Bartholomew")
    assert name.endswith(f"… {NOT_ON_PLAN}")  # the body is cut, never the mark


async def test_autocomplete_over_two_thousand_voices() -> None:
    """Correctness at scale; speed is measured by hand, not asserted (it would flake)."""
    many = [payload(f"id{n:04}", f"Speaker {n:04}") for n in range(2000)]
    catalog = catalog_of(*many, RACHEL)
    assert await catalog.refresh()
    assert catalog.autocomplete("rachel")[0][1] == RACHEL["voice_id"]
    choices = [value for _, value in catalog.autocomplete("speaker 19")]
    assert choices[:10] == [f"id19{n:02}" for n in range(10)]
    assert len(catalog.autocomplete("spekaer")) == 25


async def test_a_voice_without_a_name_or_labels_is_still_shown() -> None:
    catalog = catalog_of({"voice_id": "bare0000000000000001"})
    assert await catalog.refresh()
    assert catalog.autocomplete("") == [("bare0000000000000001", "bare0000000000000001")]
    assert catalog.resolve("bare0000000000000001").name == ""


# -- usability ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("plan", "usable"),
    [
        pytest.param("free", False, id="a tier the voice does not list"),
        pytest.param("creator", True, id="a listed tier"),
        pytest.param(None, True, id="tier unknown"),
    ],
)
async def test_usable(plan: str | None, usable: bool) -> None:
    catalog = catalog_of(BRIAN, RACHEL, tier=plan)
    assert await catalog.refresh()
    brian = catalog.resolve("brian")
    assert catalog.usable(brian) is usable
    assert catalog.usable(catalog.resolve("rachel"))  # lists no tiers: usable everywhere
    if usable:
        assert catalog.require_usable(brian) is brian
    else:
        with pytest.raises(VoiceNotOnPlan, match="Brian - Deep Narrator is not available"):
            catalog.require_usable(brian)


async def test_without_a_tier_source_every_voice_is_usable() -> None:
    catalog = VoiceCatalog(FakeVoices([[BRIAN]]))
    assert await catalog.refresh()
    assert catalog.tier is None
    assert NOT_ON_PLAN not in catalog.autocomplete("")[0][0]


# -- paging ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("total", "asked", "per_page", "number", "count", "items"),
    [
        pytest.param(0, 1, 10, 1, 1, [], id="no results: one empty page"),
        pytest.param(25, 1, 10, 1, 3, list(range(10)), id="first page"),
        pytest.param(25, 2, 10, 2, 3, list(range(10, 20)), id="middle page"),
        pytest.param(25, 3, 10, 3, 3, list(range(20, 25)), id="short last page"),
        pytest.param(20, 2, 10, 2, 2, list(range(10, 20)), id="full last page"),
        pytest.param(25, 0, 10, 1, 3, list(range(10)), id="zero clamps to the first"),
        pytest.param(25, -4, 10, 1, 3, list(range(10)), id="negative clamps to the first"),
        pytest.param(25, 99, 10, 3, 3, list(range(20, 25)), id="too far clamps to the last"),
        pytest.param(3, 1, 1, 1, 3, [0], id="one per page"),
        pytest.param(7, 1, 25, 1, 1, list(range(7)), id="fewer than a page"),
    ],
)
def test_paging(
    total: int, asked: int, per_page: int, number: int, count: int, items: list[int]
) -> None:
    page = paginate(list(range(total)), asked, per_page)
    assert isinstance(page, Page)
    assert (page.number, page.count, page.total, list(page.items)) == (number, count, total, items)
    assert page.has_previous is (number > 1)
    assert page.has_next is (number < count)
    assert page.first_index == (number - 1) * per_page


def test_paging_refuses_an_empty_page_size() -> None:
    with pytest.raises(ValueError):
        paginate([1, 2, 3], 1, per_page=0)


async def test_paging_search_results(catalog: VoiceCatalog) -> None:
    page = catalog.page(catalog.search(gender="male"), 2, per_page=2)
    assert names(page.items) == ["Daniel", "George"]
    assert (page.number, page.count, page.total) == (2, 3, 5)
