"""Matching typed text to voice names, in tiers people can predict.

The tiers: the id or the whole name, then names that start with the text, then
names with a later word that starts with it, then names that merely contain it,
and last fuzzy matches (typos, skipped letters). Autocomplete runs on every
keystroke against thousands of voices, so `NameIndex` answers the first tiers by
binary search over sorted keys, the substring tier with one C-level scan over all
names, and the fuzzy tier from a bigram inverted index (difflib would cost tens
of microseconds a name); callers stop as soon as the earlier tiers have filled
the result.
"""

from __future__ import annotations

import heapq
import re
from bisect import bisect_left, bisect_right
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType

from bot.voices.text import fold, words

FUZZY_MIN_SIMILARITY = 0.4
"""Bigram similarity (Dice) under which a name that is not a subsequence is noise."""

SUBSEQUENCE_BONUS = 0.1
"""All typed letters appear in order ("rchl" in "Rachel"): likely an abbreviation,
kept whatever its similarity, and nudged up (a tie-breaker, not a trump)."""

MIN_SHARED_BIGRAMS = 2
MIN_SHARED_RATIO = 0.25
"""Names sharing fewer of the query's letter pairs than this are not worth scoring."""

SHORTLIST_MIN = 10
"""At least this many names get the in-order test, however few are wanted."""

_AFTER_ALL = "\U0010ffff"


class Match(IntEnum):
    """How a voice matched; lower is better."""

    EXACT = 0
    PREFIX = 1
    WORD_START = 2
    SUBSTRING = 3
    FUZZY = 4
    FIELDS = 5
    """Search only: every typed word starts a word of the description or labels."""


@dataclass(frozen=True, slots=True)
class Query:
    """What was typed, folded once into every form the matchers compare."""

    raw: str
    key: str
    norm: str
    tokens: tuple[str, ...]
    bigrams: frozenset[str]
    subsequence: re.Pattern[str] | None

    @classmethod
    def parse(cls, text: str) -> Query:
        raw = text.strip()
        key = fold(raw)
        tokens = words(raw)
        return cls(
            raw=raw,
            key=key,
            norm=" ".join(tokens),
            tokens=tokens,
            bigrams=bigrams(tokens),
            subsequence=_subsequence_pattern(key),
        )


def bigrams(name_words: Iterable[str]) -> frozenset[str]:
    """Adjacent letter pairs of each word padded with spaces, as pg_trgm pads: the
    padding counts first and last letters, which typos rarely touch."""
    pairs: set[str] = set()
    for word in name_words:
        padded = f" {word} "
        pairs.update(padded[i : i + 2] for i in range(len(padded) - 1))
    return frozenset(pairs)


def _subsequence_pattern(key: str) -> re.Pattern[str] | None:
    """`a[^b]*b[^c]*c`: "letters in order" in linear time per start (the lazy
    `a.*?b.*?c` backtracks catastrophically on long near-misses)."""
    letters = key.replace(" ", "")
    if len(letters) < 2:
        return None
    parts = [re.escape(letters[0])]
    parts += [f"[^{re.escape(ch)}]*{re.escape(ch)}" for ch in letters[1:]]
    return re.compile("".join(parts))


def _prefixed(keys: Sequence[str], prefix: str) -> range:
    """Positions in sorted `keys` of those starting with `prefix`."""
    return range(bisect_left(keys, prefix), bisect_left(keys, prefix + _AFTER_ALL))


@dataclass(frozen=True, slots=True)
class NameIndex:
    """Sorted and inverted views of the names of a snapshot's entries (by position)."""

    keys: tuple[str, ...]
    """Folded names in entry order, which is sorted: prefix search by bisection."""
    by_id: Mapping[str, int]
    by_key: Mapping[str, tuple[int, ...]]
    by_norm: Mapping[str, tuple[int, ...]]
    norms: tuple[str, ...]
    """Names as words, sorted; `norm_owner` gives each one's entry."""
    norm_owner: tuple[int, ...]
    suffixes: tuple[str, ...]
    """Every tail of a name from its second word on, sorted: word-start search."""
    suffix_owner: tuple[int, ...]
    postings: Mapping[str, tuple[int, ...]]
    """Bigram -> entries whose name has it."""
    bigram_counts: tuple[int, ...]
    blob: str
    """All keys joined by newlines: one C-level scan finds every substring match."""
    line_starts: tuple[int, ...]

    @classmethod
    def build(cls, names: Sequence[str], ids: Sequence[str]) -> NameIndex:
        """`names` must already be sorted by their folded form."""
        keys = tuple(fold(name) for name in names)
        by_key: defaultdict[str, list[int]] = defaultdict(list)
        by_norm: defaultdict[str, list[int]] = defaultdict(list)
        postings: defaultdict[str, list[int]] = defaultdict(list)
        norms: list[tuple[str, int]] = []
        suffixes: list[tuple[str, int]] = []
        counts: list[int] = []
        for i, (key, name) in enumerate(zip(keys, names, strict=True)):
            name_words = words(name)
            by_key[key].append(i)
            by_norm[" ".join(name_words)].append(i)
            norms.append((" ".join(name_words), i))
            suffixes += [(" ".join(name_words[j:]), i) for j in range(1, len(name_words))]
            grams = bigrams(name_words)
            counts.append(len(grams))
            for gram in grams:
                postings[gram].append(i)
        norms.sort()
        suffixes.sort()
        starts, offset = [], 0
        for key in keys:
            starts.append(offset)
            offset += len(key) + 1
        return cls(
            keys=keys,
            by_id=MappingProxyType({voice_id: i for i, voice_id in enumerate(ids)}),
            by_key=_frozen(by_key),
            by_norm=_frozen(by_norm),
            norms=tuple(n for n, _ in norms),
            norm_owner=tuple(i for _, i in norms),
            suffixes=tuple(s for s, _ in suffixes),
            suffix_owner=tuple(i for _, i in suffixes),
            postings=_frozen(postings),
            bigram_counts=tuple(counts),
            blob="\n".join(keys),
            line_starts=tuple(starts),
        )

    def tiers(
        self, query: Query, *, fuzzy: bool = True, wanted: int = 25
    ) -> Iterator[tuple[Match, list[int]]]:
        """Entry positions per tier, best tier first, each position in one tier only.

        Lazy, so a caller that has enough stops before the costly tiers run. Within
        a tier positions are in name order, except fuzzy: most similar first, only as
        many as the earlier tiers left short of `wanted`.
        """
        if not query.key:
            return
        taken: set[int] = set()
        for kind, found in self._strict(query):
            fresh = sorted(set(found) - taken)
            taken.update(fresh)
            yield kind, fresh
        if fuzzy:
            yield Match.FUZZY, self._fuzzy(query, taken, max(1, wanted - len(taken)))

    def _strict(self, query: Query) -> Iterator[tuple[Match, Iterable[int]]]:
        exact = list(self.by_key.get(query.key, ()))
        if query.raw in self.by_id:
            exact.append(self.by_id[query.raw])
        if query.norm:
            exact += self.by_norm.get(query.norm, ())
        yield Match.EXACT, exact
        prefix = list(_prefixed(self.keys, query.key))
        if query.norm:
            prefix += (self.norm_owner[j] for j in _prefixed(self.norms, query.norm))
        yield Match.PREFIX, prefix
        if query.norm:
            found = _prefixed(self.suffixes, query.norm)
            yield Match.WORD_START, (self.suffix_owner[j] for j in found)
        yield Match.SUBSTRING, self._lines_matching(re.compile(re.escape(query.key)))

    def _fuzzy(self, query: Query, taken: set[int], wanted: int) -> list[int]:
        """Typo-tolerant tail: bigram similarity, nudged up when the letters are in order.

        Only names sharing a few padded bigrams with the query are considered (a typo
        keeps most letter pairs, an abbreviation its first letter's and usually its
        last's); the inverted index finds them in C, and only a shortlist of the
        most similar gets the per-name regex test.
        """
        shortlist = self._shortlist(query, taken, max(SHORTLIST_MIN, 2 * wanted))
        scored: list[tuple[float, int]] = []
        for dice, i in shortlist:
            bonus = self._in_order_bonus(query, i)
            if bonus or dice >= FUZZY_MIN_SIMILARITY:
                scored.append((-(dice + bonus), i))
        scored.sort()
        return [i for _, i in scored[:wanted]]

    def _shortlist(self, query: Query, taken: set[int], size: int) -> list[tuple[float, int]]:
        """The `size` names most similar by Dice over padded bigrams, with that score."""
        shared: Counter[int] = Counter()
        for gram in query.bigrams:
            shared.update(self.postings.get(gram, ()))
        least = max(MIN_SHARED_BIGRAMS, MIN_SHARED_RATIO * len(query.bigrams))
        total = len(query.bigrams)
        counts = self.bigram_counts
        dice = [
            (-2 * count / (total + counts[i]), i)
            for i, count in shared.items()
            if count >= least and i not in taken
        ]
        return [(-score, i) for score, i in heapq.nsmallest(size, dice)]

    def _in_order_bonus(self, query: Query, position: int) -> float:
        """The bonus scaled by how tight the letters sit: "rchl" in "Rachel" gets most of
        it, "rachle" spread over "Rachel Clone" little (so "Rachel" still wins)."""
        if query.subsequence is None:
            return 0.0
        found = query.subsequence.search(self.keys[position])
        if found is None:
            return 0.0
        letters = len(query.key.replace(" ", ""))
        return SUBSEQUENCE_BONUS * letters / (found.end() - found.start())

    def _lines_matching(self, pattern: re.Pattern[str]) -> list[int]:
        """Entries whose key `pattern` matches (it must not match a newline), in order:
        one scan in C over all names, then Python work only per match."""
        starts = self.line_starts
        lines = [bisect_right(starts, m.start()) - 1 for m in pattern.finditer(self.blob)]
        return list(dict.fromkeys(lines))


def _frozen(groups: Mapping[str, list[int]]) -> Mapping[str, tuple[int, ...]]:
    return MappingProxyType({key: tuple(values) for key, values in groups.items()})
