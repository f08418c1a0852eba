"""An immutable, pre-indexed copy of every voice, swapped whole on refresh.

Autocomplete must answer in well under Discord's 3 s from memory, for accounts
with thousands of voices. Everything a lookup needs (the name index, filter
values, search text, the display string) is computed once here, at refresh time,
so a keystroke only compares strings. Being immutable, a snapshot can be
replaced by a single assignment while readers keep using the old one.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import MappingProxyType
from typing import Literal, get_args

from bot.elevenlabs.models import Voice
from bot.voices.matching import NameIndex
from bot.voices.text import fold, norm, truncate, words

FacetKind = Literal["category", "gender", "accent", "age", "use_case"]
FACET_KINDS: tuple[FacetKind, ...] = get_args(FacetKind)

CHOICE_NAME_LIMIT = 100
"""Discord rejects an autocomplete choice whose name is longer than this."""

NOT_ON_PLAN = " (not on your plan)"


@dataclass(frozen=True, slots=True)
class VoiceEntry:
    """One voice with what filtering and display need, computed once per refresh."""

    voice: Voice
    name_key: str
    """Folded name: the sort order of the snapshot."""
    haystack: str
    """Words of name, category, description and labels, each after a space, so that
    `" " + word in haystack` is a word-start test: free-text search."""
    traits: Mapping[str, str]
    """Normalised filter values by facet kind."""
    usable: bool
    display: str
    """Autocomplete choice name, already within Discord's limit."""


@dataclass(frozen=True, slots=True)
class Facets:
    """The distinct filter values present, for autocomplete of the filter options."""

    categories: tuple[str, ...] = ()
    genders: tuple[str, ...] = ()
    accents: tuple[str, ...] = ()
    ages: tuple[str, ...] = ()
    use_cases: tuple[str, ...] = ()

    def values(self, kind: FacetKind) -> tuple[str, ...]:
        """Values of one facet kind, by the name the search filters use."""
        return {
            "category": self.categories,
            "gender": self.genders,
            "accent": self.accents,
            "age": self.ages,
            "use_case": self.use_cases,
        }[kind]

    def complete(self, kind: FacetKind, current: str, limit: int = 25) -> list[str]:
        """Values starting with what was typed, then values containing it."""
        typed = norm(current)
        values = self.values(kind)
        starts = [v for v in values if norm(v).startswith(typed)]
        contains = [v for v in values if typed in norm(v) and v not in starts]
        return (starts + contains)[:limit]


@dataclass(frozen=True, slots=True)
class CatalogSnapshot:
    """Every voice at one moment, sorted by name, with the tier it was judged against."""

    entries: tuple[VoiceEntry, ...]
    """Sorted by folded name, then id; `index` refers to entries by position."""
    index: NameIndex
    tier: str | None
    loaded_at: datetime
    facets: Facets
    default_order: tuple[VoiceEntry, ...]
    """Usable voices first, then by name: what an empty autocomplete shows."""
    by_trait: Mapping[str, Mapping[str, frozenset[int]]]

    def get(self, voice_id: str) -> VoiceEntry | None:
        position = self.index.by_id.get(voice_id)
        return None if position is None else self.entries[position]


def build_snapshot(
    voices: Iterable[Voice], *, tier: str | None, loaded_at: datetime
) -> CatalogSnapshot:
    """Index `voices`; the first of several with one id wins (pages may overlap)."""
    unique: dict[str, Voice] = {}
    for voice in voices:
        unique.setdefault(voice.voice_id, voice)
    entries = sorted(
        (make_entry(v, tier) for v in unique.values()),
        key=lambda e: (e.name_key, e.voice.voice_id),
    )
    return CatalogSnapshot(
        entries=tuple(entries),
        index=NameIndex.build([e.voice.name for e in entries], [e.voice.voice_id for e in entries]),
        tier=tier,
        loaded_at=loaded_at,
        facets=_facets(entries),
        default_order=tuple(sorted(entries, key=lambda e: not e.usable)),
        by_trait=_by_trait(entries),
    )


def make_entry(voice: Voice, tier: str | None) -> VoiceEntry:
    """Precompute every key one voice is matched and shown by."""
    usable = voice.usable_on(tier)
    return VoiceEntry(
        voice=voice,
        name_key=fold(voice.name),
        haystack=" " + " ".join(words(" ".join(_searchable(voice)))),
        traits=MappingProxyType(
            {kind: norm(raw) for kind in FACET_KINDS if (raw := trait(voice, kind))}
        ),
        usable=usable,
        display=display_name(voice, usable=usable),
    )


def trait(voice: Voice, kind: FacetKind) -> str | None:
    """The raw value of a filterable property: the category, or a label."""
    raw = voice.category if kind == "category" else voice.label(kind)
    if raw is None or not norm(raw):
        return None
    return raw.strip()


def display_name(voice: Voice, *, usable: bool) -> str:
    """Shown as "Rachel — premade · American female", marked if the plan cannot use it.

    Category and accent/gender tell apart voices that share a first name. The
    mark is kept and the body cut instead, so the warning survives long names.
    """
    accent = voice.label("accent")
    accent = accent and accent[0].upper() + accent[1:]
    traits = " ".join(x for x in (accent, voice.label("gender")) if x)
    details = " · ".join(x for x in (voice.category, traits) if x)
    name = voice.name or voice.voice_id
    body = " ".join(f"{name} — {details}".split() if details else name.split())
    suffix = "" if usable else NOT_ON_PLAN
    return truncate(body, CHOICE_NAME_LIMIT - len(suffix)) + suffix


def _searchable(voice: Voice) -> list[str]:
    return [voice.name, voice.category or "", voice.description or "", *voice.labels.values()]


def _facets(entries: Iterable[VoiceEntry]) -> Facets:
    """Distinct values per kind; spellings that normalise alike ("british", "British")
    count once, shown in their most common spelling (the first, on a tie)."""
    spellings: dict[str, dict[str, Counter[str]]] = {kind: {} for kind in FACET_KINDS}
    for entry in entries:
        for kind, value in entry.traits.items():
            raw = trait(entry.voice, kind) or value
            spellings[kind].setdefault(value, Counter())[raw] += 1
    ordered = {
        kind: tuple(spellings[kind][value].most_common(1)[0][0] for value in sorted(values))
        for kind, values in spellings.items()
    }
    return Facets(
        categories=ordered["category"],
        genders=ordered["gender"],
        accents=ordered["accent"],
        ages=ordered["age"],
        use_cases=ordered["use_case"],
    )


def _by_trait(entries: Sequence[VoiceEntry]) -> Mapping[str, Mapping[str, frozenset[int]]]:
    """Kind -> normalised value -> entry positions: filters become set intersections."""
    groups: dict[str, defaultdict[str, set[int]]] = {kind: defaultdict(set) for kind in FACET_KINDS}
    for i, entry in enumerate(entries):
        for kind, value in entry.traits.items():
            groups[kind][value].add(i)
    return MappingProxyType(
        {
            kind: MappingProxyType({value: frozenset(ids) for value, ids in values.items()})
            for kind, values in groups.items()
        }
    )
