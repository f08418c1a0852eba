"""The account's voices, held in memory and kept fresh.

GET /v2/voices cannot filter by gender or accent, and filtering its pages on our
side breaks its page tokens. So the bot loads every voice once, refreshes in the
background, and answers every lookup (resolution, search, autocomplete) from an
immutable snapshot in memory, with no I/O on the interaction's clock.

Wiring, in the bot's `setup_hook` (lifecycle in one place)::

    catalog = VoiceCatalog(
        lambda: client.iter_voices(page_size=100, include_total_count=False),
        tier=lambda: fetch_tier(client),  # async: (await client.subscription()).tier
        refresh_interval=settings.voice_refresh_seconds,
    )
    await catalog.refresh()  # first load; False if it failed (the task retries)
    catalog.start()
    ...
    await catalog.aclose()  # in close()
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from datetime import UTC, datetime

from bot.elevenlabs.models import Voice
from bot.errors import BotError
from bot.voices.errors import (
    MAX_LISTED,
    AmbiguousVoice,
    CatalogNotReady,
    VoiceNotFound,
    VoiceNotOnPlan,
)
from bot.voices.paging import Page, T, paginate
from bot.voices.ranking import name_candidates, rank_names, search
from bot.voices.snapshot import FACET_KINDS, CatalogSnapshot, Facets, build_snapshot
from bot.voices.text import norm

log = logging.getLogger(__name__)

Loader = Callable[[], AsyncIterator[Voice]]
"""Starts a walk over every voice of the account (all pages)."""
TierSource = Callable[[], Awaitable[str | None]]
"""Fetches the subscription tier the key's plan is on."""
Clock = Callable[[], datetime]

MAX_CHOICES = 25
"""Discord accepts at most this many autocomplete choices."""

DEFAULT_REFRESH_INTERVAL = 600.0
DEFAULT_RETRY_INTERVAL = 60.0


def _utc_now() -> datetime:
    return datetime.now(UTC)


class VoiceCatalog:
    """Every voice of the account, searchable from memory; refreshed in the background."""

    def __init__(
        self,
        load: Loader,
        *,
        tier: TierSource | None = None,
        refresh_interval: float = DEFAULT_REFRESH_INTERVAL,
        retry_interval: float = DEFAULT_RETRY_INTERVAL,
        clock: Clock = _utc_now,
    ) -> None:
        """`retry_interval` is the wait after a failed refresh: without it, a failed
        start-up load would leave the bot voiceless for a whole `refresh_interval`."""
        if refresh_interval <= 0 or retry_interval <= 0:
            raise ValueError("refresh and retry intervals must be positive")
        self._load = load
        self._tier = tier
        self._refresh_interval = refresh_interval
        self._retry_interval = min(retry_interval, refresh_interval)
        self._clock = clock
        self._snapshot: CatalogSnapshot | None = None
        self._refreshing: asyncio.Task[bool] | None = None
        self._runner: asyncio.Task[None] | None = None

    # -- state ---------------------------------------------------------------------

    @property
    def loaded(self) -> bool:
        """True once a refresh has succeeded; lookups before that see no voices."""
        return self._snapshot is not None

    @property
    def loaded_at(self) -> datetime | None:
        """When the snapshot in use was loaded (by the clock given), for "as of" notes."""
        return self._snapshot.loaded_at if self._snapshot else None

    @property
    def tier(self) -> str | None:
        """The subscription tier the snapshot was judged against; None if unknown."""
        return self._snapshot.tier if self._snapshot else None

    @property
    def voices(self) -> tuple[Voice, ...]:
        """Every voice, by name."""
        return tuple(e.voice for e in self._current().entries)

    def __len__(self) -> int:
        return len(self._current().entries)

    # -- loading -------------------------------------------------------------------

    async def refresh(self) -> bool:
        """Load every voice and swap the snapshot; False (old snapshot kept) on failure.

        Concurrent callers share one load rather than each walking every page. The
        shared load is shielded: one caller giving up does not cancel it for the others.
        """
        if self._refreshing is None:
            self._refreshing = asyncio.create_task(
                self._refresh_once(), name="voice-catalog-refresh"
            )
        return await asyncio.shield(self._refreshing)

    async def _refresh_once(self) -> bool:
        try:
            voices = [voice async for voice in self._load()]
            tier = await self._fetch_tier()
            # Indexing thousands of voices takes a noticeable fraction of a second:
            # off the event loop, so heartbeats and playback do not stall.
            snapshot = await asyncio.to_thread(
                build_snapshot, voices, tier=tier, loaded_at=self._clock()
            )
        except Exception as exc:
            kept = "the previous list" if self.loaded else "no voices"
            log.warning("Voice catalogue refresh failed (%s); keeping %s", _describe(exc), kept)
            return False
        finally:
            self._refreshing = None
        self._snapshot = snapshot
        log.info("Voice catalogue loaded: %d voices, tier %s", len(snapshot.entries), tier)
        return True

    async def _fetch_tier(self) -> str | None:
        """The plan's tier; on failure the last known one, since it rarely changes and
        a subscription hiccup should not throw away a good voice list."""
        if self._tier is None:
            return None
        try:
            return await self._tier()
        except Exception as exc:
            kept = self.tier
            log.warning("Subscription tier lookup failed (%s); keeping %s", _describe(exc), kept)
            return kept

    def start(self) -> None:
        """Start the background refresh (loading at once if nothing is loaded yet)."""
        if self._runner is None or self._runner.done():
            self._runner = asyncio.create_task(self._run(), name="voice-catalog-refresher")

    async def aclose(self) -> None:
        """Stop the background refresh and any load in flight; the snapshot stays usable."""
        tasks = [t for t in (self._runner, self._refreshing) if t is not None]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self._runner = None

    async def _run(self) -> None:
        delay = self._refresh_interval if self.loaded else 0.0
        while True:
            await asyncio.sleep(delay)
            ok = await self.refresh()
            delay = self._refresh_interval if ok else self._retry_interval

    # -- lookups (memory only) ----------------------------------------------------------

    def _current(self) -> CatalogSnapshot:
        return self._snapshot or _EMPTY

    def _require_loaded(self) -> CatalogSnapshot:
        if self._snapshot is None:
            raise CatalogNotReady()
        return self._snapshot

    def get(self, voice_id: str) -> Voice | None:
        """The voice with this exact id, if the account has it."""
        entry = self._current().get(voice_id)
        return entry.voice if entry else None

    def resolve(self, query: str) -> Voice:
        """The one voice meant by an id, a whole name (any case) or a unique name prefix.

        Raises `VoiceNotFound` (with suggestions), `AmbiguousVoice` or `CatalogNotReady`.
        """
        snapshot = self._require_loaded()
        if not query.strip():
            raise VoiceNotFound(query)
        if (entry := snapshot.get(query.strip())) is not None:
            return entry.voice
        found = name_candidates(snapshot, query)
        if len(found) == 1:
            return found[0].voice
        if found:
            raise AmbiguousVoice(query.strip(), [e.voice for e in found])
        nearest = rank_names(snapshot, query, MAX_LISTED)
        raise VoiceNotFound(query.strip(), [e.voice for e in nearest])

    def usable(self, voice: Voice) -> bool:
        """False when the plan's tier is known and the voice is not offered on it."""
        return voice.usable_on(self.tier)

    def require_usable(self, voice: Voice) -> Voice:
        """`voice` itself, or `VoiceNotOnPlan`: for commands that are about to speak."""
        if not self.usable(voice):
            raise VoiceNotOnPlan(voice)
        return voice

    def search(
        self,
        query: str | None = None,
        *,
        category: str | None = None,
        gender: str | None = None,
        accent: str | None = None,
        age: str | None = None,
        use_case: str | None = None,
    ) -> list[Voice]:
        """Voices matching every filter given (case and separators ignored), best first.

        The query matches the name (ranked as in autocomplete, without fuzzy) or, less
        relevant, when each of its words starts a word of the description or labels.
        """
        wanted = {
            kind: norm(value)
            for kind, value in zip(
                FACET_KINDS, (category, gender, accent, age, use_case), strict=True
            )
            if value and norm(value)
        }
        return [entry.voice for entry in search(self._current(), query or "", wanted)]

    @staticmethod
    def page(results: Sequence[T], page: int, per_page: int = 10) -> Page[T]:
        """One page of `results`, the page number clamped; see `paginate`."""
        return paginate(results, page, per_page)

    def facets(self) -> Facets:
        """The distinct categories, genders, accents, ages and use cases present."""
        return self._current().facets

    def autocomplete(self, current: str, limit: int = MAX_CHOICES) -> list[tuple[str, str]]:
        """(display name, voice id) choices ranked by name match, at most 25.

        Empty input lists usable voices first, by name. Unusable voices are marked in
        the display name rather than hidden: seeing them explains why they fail.
        """
        snapshot = self._current()
        limit = min(limit, MAX_CHOICES)
        ranked = rank_names(snapshot, current, limit)
        return [(e.display, e.voice.voice_id) for e in ranked]


_EMPTY = build_snapshot((), tier=None, loaded_at=datetime.min.replace(tzinfo=UTC))


def _describe(exc: BaseException) -> str:
    """Enough to diagnose without echoing anything that might carry the API key.

    Our own errors promise a safe message; for others only the type and an HTTP
    status, since library messages can quote requests.
    """
    if isinstance(exc, BotError):
        return f"{type(exc).__name__}: {exc}"
    status = getattr(exc, "status", None)
    return f"{type(exc).__name__}, HTTP {status}" if isinstance(status, int) else type(exc).__name__
