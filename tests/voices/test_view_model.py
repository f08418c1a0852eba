"""Laying out a page of search results within Discord's limits, and the shared filters."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.elevenlabs.models import Voice
from bot.voices import VoiceCatalog, paginate
from bot.voices.filters import SearchFilters
from bot.voices.view_model import (
    DESCRIPTION_CUT,
    DESCRIPTION_LIMIT,
    EMBED_TOTAL_LIMIT,
    FIELD_COUNT_LIMIT,
    FIELD_NAME_LIMIT,
    FIELD_VALUE_LIMIT,
    FOOTER_LIMIT,
    OPTION_LIMIT,
    OPTION_TEXT_LIMIT,
    PER_PAGE,
    TITLE_LIMIT,
    ResultsPage,
    fit,
    label_text,
    render_page,
)
from tests.fakes.elevenlabs import build_voices

NOT_ON_PLAN = "(not on your plan)"


def voice(voice_id: str, name: str, **fields: Any) -> Voice:
    return Voice.model_validate({"voice_id": voice_id, "name": name, **fields})


def doubling(text: str) -> str:
    """The worst escape: every character becomes two (Discord's doubles `*`, `_`, …)."""
    return "".join("\\" + ch for ch in text)


def everyone(_: Voice) -> bool:
    return True


def assert_within_discord_limits(page: ResultsPage) -> None:
    assert len(page.title) <= TITLE_LIMIT
    assert len(page.description) <= DESCRIPTION_LIMIT
    assert len(page.footer) <= FOOTER_LIMIT
    assert len(page.fields) <= FIELD_COUNT_LIMIT
    for field in page.fields:
        assert 0 < len(field.name) <= FIELD_NAME_LIMIT, field
        assert 0 < len(field.value) <= FIELD_VALUE_LIMIT, field
    assert page.embed_length() <= EMBED_TOTAL_LIMIT
    for options in (page.choices, page.previews):
        assert len(options) <= OPTION_LIMIT
        for option in options:
            assert 0 < len(option.label) <= OPTION_TEXT_LIMIT
            assert 0 < len(option.value) <= OPTION_TEXT_LIMIT
            assert len(option.description) <= OPTION_TEXT_LIMIT


def huge_voices(count: int) -> list[Voice]:
    """Everything a voice's creator controls, far past every limit, and full of markdown."""
    return [
        voice(
            f"id{i:018d}",
            f"**{i}** " + "_Name_ " * 80,
            category="cloned " * 20,
            description="*Very* long ~~description~~ " * 400,
            labels={f"label{j}": "`tick` " * 30 for j in range(40)},
            preview_url=f"https://example.invalid/{i}.mp3",
        )
        for i in range(count)
    ]


# -- limits ----------------------------------------------------------------------------------


@pytest.mark.parametrize("escape", [None, doubling], ids=["plain", "doubling-escape"])
def test_a_page_of_huge_voices_fits_discord(escape: Any) -> None:
    results = huge_voices(25)
    filters = SearchFilters(query="q" * 500, category="c" * 500, gender="g" * 500, accent="a" * 500)
    kwargs = {"escape": escape} if escape else {}

    page = render_page(paginate(results, 2, PER_PAGE), filters, usable=lambda v: False, **kwargs)

    assert_within_discord_limits(page)
    assert len(page.fields) == len(page.choices) == len(page.previews) == PER_PAGE
    assert page.fields[0].name.startswith("11. ")
    assert all(f.name.endswith(NOT_ON_PLAN) for f in page.fields)  # the mark survives the cut
    assert all(o.description.endswith(NOT_ON_PLAN) for o in page.choices)


def test_more_voices_than_discord_allows_on_one_page_are_capped() -> None:
    page = render_page(paginate(huge_voices(40), 1, 40), SearchFilters(), usable=everyone)

    assert_within_discord_limits(page)
    assert len(page.fields) == FIELD_COUNT_LIMIT


@pytest.mark.parametrize("limit", [1, 5, 100, 256])
def test_fit_never_splits_an_escape_nor_overshoots(limit: int) -> None:
    for text in ("plain text " * 40, "*_`~|>" * 100, "ab"):
        result = fit(text, limit, doubling)
        assert len(result) <= limit
        assert not result.endswith("\\") or result.endswith("\\\\")


def test_description_is_cut_to_about_a_hundred_characters() -> None:
    long = voice("a" * 20, "Long", description="word " * 200, category="premade")
    short = voice("b" * 20, "Short", description="A calm voice.", category="premade")

    page = render_page(paginate([long, short], 1), SearchFilters(), usable=everyone)

    long_lines = page.fields[0].value.splitlines()
    assert len(long_lines[1]) <= DESCRIPTION_CUT and long_lines[1].endswith("…")
    assert page.fields[1].value.splitlines()[1] == "A calm voice."


def test_newlines_in_names_and_descriptions_do_not_break_the_layout() -> None:
    v = voice("c" * 20, "Two\nlines", description="one\n\ntwo", labels={"accent": "a\nb"})

    page = render_page(paginate([v], 1), SearchFilters(), usable=everyone)

    assert page.fields[0].name == "1. Two lines"
    assert page.fields[0].value.splitlines() == ["a b", "one two", f"`{'c' * 20}`"]
    assert page.choices[0].label == "Two lines"


# -- content ---------------------------------------------------------------------------------


def test_labels_category_first_then_known_labels_then_the_rest() -> None:
    v = voice(
        "d" * 20,
        "Dee",
        category="premade",
        labels={"zeta": "z", "use_case": "news", "gender": "female", "accent": "Irish", "x": ""},
    )
    assert label_text(v) == "premade · Irish · female · news · z"


def test_paging_state_and_previews_only_for_voices_that_have_one() -> None:
    voices = [
        voice(f"{i:020d}", f"V{i:02d}", preview_url=None if i % 2 else f"https://p/{i}.mp3")
        for i in range(23)
    ]

    first = render_page(paginate(voices, 1), SearchFilters(), usable=everyone)
    middle = render_page(paginate(voices, 2), SearchFilters(), usable=everyone)
    last = render_page(paginate(voices, 3), SearchFilters(), usable=everyone)

    assert (first.has_previous, first.has_next) == (False, True)
    assert (middle.has_previous, middle.has_next) == (True, True)
    assert (last.has_previous, last.has_next) == (True, False)
    assert [f.name for f in last.fields] == ["21. V20", "22. V21", "23. V22"]
    assert "Voices 21–23 of 23." in last.description
    assert last.footer.startswith("Page 3 of 3")
    assert [o.value for o in middle.previews] == [f"{i:020d}" for i in range(10, 20, 2)]
    assert [o.value for o in middle.choices] == [f"{i:020d}" for i in range(10, 20)]


def test_unusable_voices_are_marked_and_explained_only_when_present() -> None:
    ok, locked = voice("o" * 20, "Open"), voice("l" * 20, "Locked")

    mixed = render_page(paginate([ok, locked], 1), SearchFilters(), usable=lambda v: v is ok)
    clean = render_page(paginate([ok], 1), SearchFilters(), usable=everyone)

    assert [f.name for f in mixed.fields] == ["1. Open", f"2. Locked {NOT_ON_PLAN}"]
    assert NOT_ON_PLAN in mixed.description
    assert NOT_ON_PLAN not in clean.description
    assert [o.description for o in mixed.choices] == ["", NOT_ON_PLAN]


def test_the_title_says_what_was_asked() -> None:
    filters = SearchFilters(query="  calm   voice ", category="premade", gender=" ", accent="Irish")
    page = render_page(paginate([voice("e" * 20, "E")], 1), filters, usable=everyone)
    assert page.title == "Voices matching “calm voice” · category premade · accent Irish"
    untitled = render_page(paginate([voice("e" * 20, "E")], 1), SearchFilters(), usable=everyone)
    assert untitled.title == "Voices"


# -- the filters the CLI shares with the catalogue --------------------------------------------


FILTER_CASES = [
    SearchFilters(),
    SearchFilters(gender="female"),
    SearchFilters(gender="FEMALE", accent="british"),
    SearchFilters(accent="Irish", category="premade"),
    SearchFilters(category="professional", gender="neutral"),
    SearchFilters(accent="middle earth"),
    SearchFilters(accent="South African"),
    SearchFilters(accent="south_african", gender="male"),
]


@pytest.fixture
async def catalog() -> AsyncIterator[VoiceCatalog]:
    voices = [Voice.model_validate(v) for v in build_voices()]
    voices.append(voice("s" * 20, "Sipho", labels={"accent": "South-African", "gender": "male"}))
    voices.append(voice("t" * 20, "Thandi", labels={"accent": "south african", "gender": "female"}))

    async def load() -> AsyncIterator[Voice]:
        for v in voices:
            yield v

    catalog = VoiceCatalog(load)
    assert await catalog.refresh()
    yield catalog
    await catalog.aclose()


@pytest.mark.parametrize("filters", FILTER_CASES, ids=repr)
async def test_matches_agrees_with_the_catalogue_search(
    catalog: VoiceCatalog, filters: SearchFilters
) -> None:
    by_catalog = {v.voice_id for v in catalog.search(**filters.traits())}
    by_filters = {v.voice_id for v in catalog.voices if filters.matches(v)}
    assert by_filters == by_catalog


def test_south_african_is_one_accent_however_it_is_spelled(catalog: VoiceCatalog) -> None:
    names = [v.name for v in catalog.voices if SearchFilters(accent="SOUTH african").matches(v)]
    assert names == ["Sipho", "Thandi"]
