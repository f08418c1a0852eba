"""Finding voices: the in-memory catalogue, name resolution, search and autocomplete.

Discord-free on purpose: the `/voices` cog, the `voice` autocomplete of every
command and the `python -m bot voices` CLI all call into this package.
"""

from bot.voices.catalog import MAX_CHOICES, Loader, TierSource, VoiceCatalog
from bot.voices.errors import (
    AmbiguousVoice,
    CatalogNotReady,
    VoiceError,
    VoiceNotFound,
    VoiceNotOnPlan,
)
from bot.voices.paging import Page, paginate
from bot.voices.snapshot import FacetKind, Facets

__all__ = [
    "MAX_CHOICES",
    "AmbiguousVoice",
    "CatalogNotReady",
    "FacetKind",
    "Facets",
    "Loader",
    "Page",
    "TierSource",
    "VoiceCatalog",
    "VoiceError",
    "VoiceNotFound",
    "VoiceNotOnPlan",
    "paginate",
]
