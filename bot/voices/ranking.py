"""Ordering a snapshot's voices for autocomplete, search and "did you mean".

Within a strict match tier (see `matching.Match`), autocomplete puts the voices
the plan can use first: an unusable voice is still listed, marked, so people see
why it fails, but it should not push a working one off a 25-choice list. Fuzzy
matches stay in order of similarity: there the likely meaning matters most.
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.voices.matching import Match, Query
from bot.voices.snapshot import CatalogSnapshot, VoiceEntry


def rank_names(snapshot: CatalogSnapshot, text: str, limit: int) -> list[VoiceEntry]:
    """Up to `limit` entries whose name fits `text`, best first; empty text: the defaults."""
    if limit <= 0:
        return []
    query = Query.parse(text)
    if not query.key:
        return list(snapshot.default_order[:limit])
    entries = snapshot.entries
    ranked: list[VoiceEntry] = []
    for kind, positions in snapshot.index.tiers(query, wanted=limit):
        tier = [entries[i] for i in positions]
        if kind != Match.FUZZY:  # fuzzy matches stay in order of similarity
            tier = [e for e in tier if e.usable] + [e for e in tier if not e.usable]
        ranked += tier
        if len(ranked) >= limit:
            break
    return ranked[:limit]


def name_candidates(snapshot: CatalogSnapshot, text: str) -> list[VoiceEntry]:
    """The entries of the best tier reached among exact and prefix (for resolution)."""
    query = Query.parse(text)
    for kind, positions in snapshot.index.tiers(query, fuzzy=False):
        if kind > Match.PREFIX:
            break
        if positions:
            return [snapshot.entries[i] for i in positions]
    return []


def search(snapshot: CatalogSnapshot, text: str, wanted: Mapping[str, str]) -> list[VoiceEntry]:
    """Entries with every wanted trait whose name or other fields fit `text`, best first.

    No fuzzy tier here: a search filters, and a list padded with near-misses
    would hide that nothing really matched.
    """
    allowed = [(i, snapshot.entries[i]) for i in _with_traits(snapshot, wanted)]
    query = Query.parse(text)
    if not query.key:
        return [e for _, e in allowed]
    tier_of = {
        i: kind for kind, positions in snapshot.index.tiers(query, fuzzy=False) for i in positions
    }
    hits: list[tuple[Match, int, VoiceEntry]] = []
    for i, entry in allowed:
        kind = tier_of.get(i)
        if kind is None and _in_fields(entry, query):
            kind = Match.FIELDS
        if kind is not None:
            hits.append((kind, i, entry))
    hits.sort(key=lambda hit: hit[:2])
    return [entry for _, _, entry in hits]


def _with_traits(snapshot: CatalogSnapshot, wanted: Mapping[str, str]) -> list[int]:
    """Positions, in name order, of the entries that have every wanted trait value."""
    if not wanted:
        return list(range(len(snapshot.entries)))
    groups = [snapshot.by_trait[kind].get(value, frozenset()) for kind, value in wanted.items()]
    return sorted(frozenset.intersection(*groups))


def _in_fields(entry: VoiceEntry, query: Query) -> bool:
    """Every typed word starts some word of the voice's text ("brit" fits "British";
    "male" does not fit "female")."""
    return bool(query.tokens) and all(" " + token in entry.haystack for token in query.tokens)
