"""PreferenceService: the resolution table, fallbacks, changes and the model list.

Real storage (SQLite, and PostgreSQL when TEST_DATABASE_URL is set), the real client
and catalogue against the fake ElevenLabs; only the clock is ours, so cache lifetimes
are tested without waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.elevenlabs import errors as el
from bot.elevenlabs.client import ElevenLabsClient
from bot.preferences import (
    SERVER_VOICE_GONE,
    SETTINGS_CACHE_TTL,
    USER_VOICE_GONE,
    VOICE_LOCKED,
    ModelCannotSpeak,
    ModelNotFound,
    NothingToChange,
    PreferenceService,
    SettingRejected,
    Tuning,
    is_voice_refusal,
)
from bot.storage.engine import create_engine
from bot.storage.store import Storage
from bot.voice_settings import DOCUMENTED_DEFAULTS, Source
from bot.voices import VoiceNotFound, VoiceNotOnPlan
from bot.voices.catalog import VoiceCatalog
from tests.fakes.elevenlabs import FakeElevenLabs

GUILD = 1_000_000_000_000_000_001
OTHER_GUILD = 1_000_000_000_000_000_002
USER = 2_000_000_000_000_000_001
DEFAULT_VOICE = "21m00Tcm4TlvDq8ikWAM"  # Rachel, the fake's documented example
DEFAULT_MODEL = "eleven_flash_v2_5"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class World:
    prefs: PreferenceService
    storage: Storage
    catalog: VoiceCatalog
    fake: FakeElevenLabs
    clock: Clock

    def voice_id(self, name: str) -> str:
        return next(v["voice_id"] for v in self.fake.voices if v["name"] == name)

    def requests(self, route: str) -> int:
        return sum(1 for r in self.fake.requests if r.route == route)

    async def remove_voice(self, voice_id: str) -> None:
        """The voice is deleted from the account and the catalogue notices."""
        self.fake.voices[:] = [v for v in self.fake.voices if v["voice_id"] != voice_id]
        assert await self.catalog.refresh()


@pytest.fixture
async def world(db_url: str, fake_elevenlabs: FakeElevenLabs) -> AsyncIterator[World]:
    storage = Storage(create_engine(db_url))
    async with aiohttp.ClientSession() as session:
        client = ElevenLabsClient(
            session, SecretStr(fake_elevenlabs.api_key), base_url=fake_elevenlabs.base_url
        )

        async def tier() -> str | None:
            return (await client.subscription()).tier

        catalog = VoiceCatalog(lambda: client.iter_voices(), tier=tier)
        assert await catalog.refresh()
        clock = Clock()
        prefs = PreferenceService(
            storage,
            catalog,
            client,
            default_voice_id=DEFAULT_VOICE,
            default_model_id=DEFAULT_MODEL,
            clock=clock,
        )
        try:
            yield World(prefs, storage, catalog, fake_elevenlabs, clock)
        finally:
            await catalog.aclose()
            await storage.close()


def own_settings(fake: FakeElevenLabs, voice_id: str) -> dict[str, Any]:
    voice = fake.voice(voice_id)
    assert voice is not None
    return voice.get("settings") or {}


# -- the resolution table, one rule per test -------------------------------------------------


async def test_nothing_stored_gives_the_default_voice_with_its_own_settings(world: World) -> None:
    resolved = await world.prefs.resolved(GUILD, USER)
    own = own_settings(world.fake, DEFAULT_VOICE)
    assert (resolved.voice_id, resolved.model_id) == (DEFAULT_VOICE, DEFAULT_MODEL)
    assert resolved.sources["voice_id"] is Source.DEFAULT
    assert resolved.sources["model_id"] is Source.DEFAULT
    assert resolved.voice_settings() == {k: own[k] for k in resolved.voice_settings()}
    assert {resolved.sources[f] for f in ("stability", "similarity", "speed")} == {Source.VOICE}


async def test_documented_defaults_when_the_voice_has_no_settings(world: World) -> None:
    world.fake.fail_next(400, "invalid_request", endpoint="voice_settings")
    resolved = await world.prefs.resolved(GUILD, USER)
    assert all(resolved.sources[name] is Source.DEFAULT for name in ("stability", "speed"))
    assert resolved.voice_settings() == {
        "stability": DOCUMENTED_DEFAULTS.stability,
        "similarity_boost": DOCUMENTED_DEFAULTS.similarity,
        "style": DOCUMENTED_DEFAULTS.style,
        "speed": DOCUMENTED_DEFAULTS.speed,
        "use_speaker_boost": DOCUMENTED_DEFAULTS.speaker_boost,
    }


async def test_the_voices_own_settings_come_from_the_api_and_are_cached(world: World) -> None:
    adam = world.voice_id("Adam")
    await world.prefs.set_user_voice(GUILD, USER, "Adam")
    first = await world.prefs.resolved(GUILD, USER)
    await world.prefs.resolved(GUILD, USER)
    assert world.requests("voice_settings") == 1
    assert first.stability == own_settings(world.fake, adam)["stability"]
    world.clock.now += world.prefs.settings_ttl + 1
    await world.prefs.resolved(GUILD, USER)
    assert world.requests("voice_settings") == 2


async def test_server_defaults_win_over_the_voice_and_the_bot(world: World) -> None:
    await world.prefs.set_server_voice(GUILD, "Bella")
    await world.prefs.tune_server(GUILD, Tuning(stability=0.2, speaker_boost=False))
    await world.storage.guilds.update(GUILD, model_id="eleven_turbo_v2_5")
    resolved = await world.prefs.resolved(GUILD, USER)
    assert resolved.voice_id == world.voice_id("Bella")
    assert (resolved.model_id, resolved.stability, resolved.speaker_boost) == (
        "eleven_turbo_v2_5",
        0.2,
        False,
    )
    assert {resolved.sources[f] for f in ("voice_id", "model_id", "stability")} == {Source.SERVER}
    assert resolved.sources["similarity"] is Source.VOICE


async def test_the_users_own_choice_wins_over_the_server(world: World) -> None:
    await world.prefs.set_server_voice(GUILD, "Bella")
    await world.prefs.tune_server(GUILD, Tuning(stability=0.2, speed=0.9))
    await world.prefs.set_user_voice(GUILD, USER, "Adam")
    await world.prefs.tune_user(GUILD, USER, Tuning(stability=0.8))
    resolved = await world.prefs.resolved(GUILD, USER)
    assert (resolved.voice_id, resolved.stability, resolved.speed) == (
        world.voice_id("Adam"),
        0.8,
        0.9,
    )
    assert resolved.sources["voice_id"] is Source.USER
    assert resolved.sources["stability"] is Source.USER
    assert resolved.sources["speed"] is Source.SERVER


async def test_the_override_here_wins_over_the_users_own_choice(world: World) -> None:
    await world.prefs.set_user_voice(GUILD, USER, "Adam")
    await world.prefs.tune_user(GUILD, USER, Tuning(style=0.1, speed=1.1))
    await world.prefs.set_user_voice(GUILD, USER, "Callum", here=True)
    await world.prefs.tune_user(GUILD, USER, Tuning(style=0.6), here=True)
    here = await world.prefs.resolved(GUILD, USER)
    assert (here.voice_id, here.style, here.speed) == (world.voice_id("Callum"), 0.6, 1.1)
    assert here.sources["voice_id"] is Source.OVERRIDE
    assert here.sources["style"] is Source.OVERRIDE
    assert here.sources["speed"] is Source.USER
    elsewhere = await world.prefs.resolved(OTHER_GUILD, USER)
    assert (elsewhere.voice_id, elsewhere.style) == (world.voice_id("Adam"), 0.1)


async def test_a_locked_server_voice_beats_the_users_voices_but_not_their_tuning(
    world: World,
) -> None:
    await world.prefs.set_server_voice(GUILD, "Bella")
    await world.prefs.lock_server_voice(GUILD, True)
    await world.prefs.set_user_voice(GUILD, USER, "Adam")
    await world.prefs.set_user_voice(GUILD, USER, "Callum", here=True)
    await world.prefs.tune_user(GUILD, USER, Tuning(speed=1.15), here=True)
    resolved = await world.prefs.resolved(GUILD, USER)
    assert resolved.voice_id == world.voice_id("Bella")
    assert resolved.sources["voice_id"] is Source.SERVER
    assert (resolved.speed, resolved.sources["speed"]) == (1.15, Source.OVERRIDE)
    assert resolved.replaced_voice_id is None


async def test_a_locked_server_without_a_voice_speaks_with_the_bot_default(world: World) -> None:
    await world.prefs.lock_server_voice(GUILD, True)
    await world.prefs.set_user_voice(GUILD, USER, "Adam")
    assert (await world.prefs.resolved(GUILD, USER)).voice_id == DEFAULT_VOICE


async def test_a_requested_voice_wins_unless_the_voice_is_locked(world: World) -> None:
    await world.prefs.set_user_voice(GUILD, USER, "Adam")
    choice = await world.prefs.resolve(GUILD, USER, "Bella")
    assert (choice.voice_id, choice.voice_name, choice.notice) == (
        world.voice_id("Bella"),
        "Bella",
        None,
    )
    await world.prefs.set_server_voice(GUILD, "Callum")
    await world.prefs.lock_server_voice(GUILD, True)
    locked = await world.prefs.resolve(GUILD, USER, "Bella")
    assert (locked.voice_id, locked.notice) == (world.voice_id("Callum"), VOICE_LOCKED)
    same = await world.prefs.resolve(GUILD, USER, "Callum")
    assert same.notice is None


async def test_a_requested_voice_must_exist_and_be_on_the_plan(world: World) -> None:
    with pytest.raises(VoiceNotFound):
        await world.prefs.resolve(GUILD, USER, "No Such Voice At All")
    off_plan = world.fake.unavailable_voices[0]["voice_id"]
    with pytest.raises(VoiceNotOnPlan):
        await world.prefs.resolve(GUILD, USER, off_plan)


async def test_the_choice_carries_the_resolved_settings(world: World) -> None:
    await world.prefs.set_user_voice(GUILD, USER, "Adam")
    await world.prefs.tune_user(
        GUILD, USER, Tuning(stability=0.1, similarity=0.2, style=0.3, speed=0.8)
    )
    choice = await world.prefs.resolve(GUILD, USER, None)
    assert choice.voice_id == world.voice_id("Adam") and choice.model_id == DEFAULT_MODEL
    request = choice.settings.to_request()
    assert {k: request[k] for k in ("stability", "similarity_boost", "style", "speed")} == {
        "stability": 0.1,
        "similarity_boost": 0.2,
        "style": 0.3,
        "speed": 0.8,
    }
    assert choice.notice is None


# -- voices that vanish or that the plan cannot use ---------------------------------------------


async def test_a_vanished_voice_falls_back_to_the_server_voice_and_tells_once(
    world: World,
) -> None:
    await world.prefs.set_server_voice(GUILD, "Bella")
    chosen = await world.prefs.set_user_voice(GUILD, USER, "Adam")
    await world.remove_voice(chosen.voice_id)

    first = await world.prefs.resolve(GUILD, USER, None)
    assert (first.voice_id, first.notice) == (world.voice_id("Bella"), USER_VOICE_GONE)
    second = await world.prefs.resolve(GUILD, USER, None)
    assert (second.voice_id, second.notice) == (world.voice_id("Bella"), None)
    shown = await world.prefs.resolved(GUILD, USER)
    assert shown.replaced_voice_id == chosen.voice_id


async def test_a_voice_the_plan_cannot_use_falls_back_too(world: World) -> None:
    off_plan = world.fake.unavailable_voices[0]["voice_id"]
    await world.storage.users.update(USER, voice_id=off_plan)  # chosen before a downgrade
    choice = await world.prefs.resolve(GUILD, USER, None)
    assert (choice.voice_id, choice.notice) == (DEFAULT_VOICE, USER_VOICE_GONE)


async def test_a_vanished_server_voice_falls_back_to_the_bot_default(world: World) -> None:
    server_voice = await world.prefs.set_server_voice(GUILD, "Bella")
    await world.remove_voice(server_voice.voice_id)
    choice = await world.prefs.resolve(GUILD, USER, None)
    assert (choice.voice_id, choice.notice) == (DEFAULT_VOICE, SERVER_VOICE_GONE)
    assert (await world.prefs.resolve(GUILD, USER, None)).notice is None


async def test_choosing_a_voice_again_re_arms_the_notice(world: World) -> None:
    chosen = await world.prefs.set_user_voice(GUILD, USER, "Adam")
    await world.remove_voice(chosen.voice_id)
    assert (await world.prefs.resolve(GUILD, USER, None)).notice == USER_VOICE_GONE
    again = await world.prefs.set_user_voice(GUILD, USER, "Bella")
    await world.remove_voice(again.voice_id)
    assert (await world.prefs.resolve(GUILD, USER, None)).notice == USER_VOICE_GONE


async def test_a_voice_gone_before_the_catalogue_noticed_falls_back_at_once(
    world: World,
) -> None:
    """The settings request answers 404: the same resolution skips the voice."""
    await world.prefs.set_server_voice(GUILD, "Bella")
    chosen = await world.prefs.set_user_voice(GUILD, USER, "Adam")
    world.fake.voices[:] = [v for v in world.fake.voices if v["voice_id"] != chosen.voice_id]
    choice = await world.prefs.resolve(GUILD, USER, None)
    assert (choice.voice_id, choice.notice) == (world.voice_id("Bella"), USER_VOICE_GONE)


async def test_fallback_after_a_refusal_at_synthesis(world: World) -> None:
    """What SpeechService should call when TTS answers 404/402/403 for the voice."""
    await world.prefs.set_server_voice(GUILD, "Bella")
    chosen = await world.prefs.set_user_voice(GUILD, USER, "Adam")
    assert (await world.prefs.resolve(GUILD, USER, None)).voice_id == chosen.voice_id

    retry = await world.prefs.fallback(GUILD, USER, chosen.voice_id)
    assert (retry.voice_id, retry.notice) == (world.voice_id("Bella"), USER_VOICE_GONE)
    later = await world.prefs.resolve(GUILD, USER, None)
    assert (later.voice_id, later.notice) == (world.voice_id("Bella"), None)

    world.clock.now += world.prefs.failure_ttl + 1  # maybe it was a hiccup: try it again
    assert (await world.prefs.resolve(GUILD, USER, None)).voice_id == chosen.voice_id


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (el.VoiceNotFoundError(status=404, code="voice_not_found"), True),
        (el.PaidPlanRequiredError(status=402, code="paid_plan_required"), True),
        (el.PlanRestrictionError(status=403, code="voice_not_available_for_tier"), True),
        (el.PlanRestrictionError(status=403, code="output_format_not_allowed"), False),
        (el.QuotaExceededError(status=401, code="quota_exceeded"), False),
        (el.ServerError(status=500), False),
    ],
)
def test_which_synthesis_errors_call_for_a_fallback(error: Exception, expected: bool) -> None:
    assert is_voice_refusal(error) is expected


# -- changing settings ---------------------------------------------------------------------------


async def test_two_concurrent_tunes_of_one_user_keep_both_fields(world: World) -> None:
    for here in (False, True):
        await asyncio.gather(
            world.prefs.tune_user(GUILD, USER, Tuning(stability=0.25), here=here),
            world.prefs.tune_user(GUILD, USER, Tuning(speed=1.05), here=here),
            world.prefs.set_user_voice(GUILD, USER, "Adam", here=here),
        )
    user, override = await world.storage.users.get_for_guild(GUILD, USER)
    for level in (user, override):
        assert (level.stability, level.speed, level.voice_id) == (
            0.25,
            1.05,
            world.voice_id("Adam"),
        )


async def test_tuning_nothing_is_refused(world: World) -> None:
    with pytest.raises(NothingToChange):
        await world.prefs.tune_user(GUILD, USER, Tuning())
    with pytest.raises(NothingToChange):
        await world.prefs.tune_server(GUILD, Tuning())


async def test_out_of_range_values_become_a_sentence(world: World) -> None:
    with pytest.raises(SettingRejected, match="speed"):
        await world.prefs.tune_user(GUILD, USER, Tuning(speed=1.5))
    assert (await world.storage.users.get(USER)).speed is None


async def test_unknown_or_off_plan_voices_are_not_stored(world: World) -> None:
    with pytest.raises(VoiceNotFound):
        await world.prefs.set_user_voice(GUILD, USER, "No Such Voice At All")
    with pytest.raises(VoiceNotOnPlan):
        await world.prefs.set_server_voice(GUILD, world.fake.unavailable_voices[0]["voice_id"])
    assert (await world.storage.users.get(USER)).voice_id is None
    assert (await world.storage.guilds.get(GUILD)).voice_id is None


async def test_reset_keeps_the_override_and_says_so(world: World) -> None:
    await world.prefs.set_user_voice(GUILD, USER, "Adam")
    await world.prefs.tune_user(GUILD, USER, Tuning(speed=0.9), here=True)
    assert await world.prefs.reset_user(GUILD, USER) is True
    assert (await world.storage.users.get(USER)).is_empty()
    assert await world.prefs.reset_user(GUILD, USER, here=True) is False
    assert (await world.storage.users.get_override(GUILD, USER)).is_empty()
    assert await world.prefs.reset_user(GUILD, USER) is False


# -- models ---------------------------------------------------------------------------------


async def test_only_text_to_speech_models_are_offered_and_the_list_is_cached(
    world: World,
) -> None:
    models = await world.prefs.tts_models()
    assert {m.model_id for m in models} == {
        "eleven_multilingual_v2",
        "eleven_flash_v2_5",
        "eleven_turbo_v2_5",
    }
    await world.prefs.model_choices("")
    await world.prefs.model_choices("turbo")
    assert world.requests("models") == 1
    world.clock.now += world.prefs.models_ttl + 1
    await world.prefs.model_choices("")
    assert world.requests("models") == 2


async def test_a_failed_model_refresh_keeps_the_previous_list(world: World) -> None:
    await world.prefs.tts_models()
    world.clock.now += world.prefs.models_ttl + 1
    world.fake.fail_next(400, "invalid_request", endpoint="models")
    assert len(await world.prefs.tts_models()) == 3


async def test_model_choices_rank_matches_first(world: World) -> None:
    choices = await world.prefs.model_choices("flash")
    assert choices == [("Eleven Flash v2.5 (eleven_flash_v2_5)", "eleven_flash_v2_5")]
    everything = await world.prefs.model_choices("")
    assert len(everything) == 3
    exact = await world.prefs.model_choices("eleven_turbo_v2_5")
    assert exact[0][1] == "eleven_turbo_v2_5"


async def test_model_choices_are_empty_when_the_list_cannot_be_had(world: World) -> None:
    world.fake.fail_next(400, "invalid_request", endpoint="models")
    assert await world.prefs.model_choices("") == []


async def test_models_are_found_by_id_name_or_unique_prefix(world: World) -> None:
    assert (await world.prefs.find_model("eleven_turbo_v2_5")).model_id == "eleven_turbo_v2_5"
    assert (await world.prefs.find_model("eleven multilingual V2")).model_id == (
        "eleven_multilingual_v2"
    )
    assert (await world.prefs.find_model("Eleven Fl")).model_id == "eleven_flash_v2_5"
    with pytest.raises(ModelCannotSpeak):
        await world.prefs.find_model("eleven_english_sts_v2")
    with pytest.raises(ModelNotFound, match="eleven_"):
        await world.prefs.find_model("eleven")  # ambiguous prefix: not a choice
    with pytest.raises(ModelNotFound):
        await world.prefs.find_model("gpt-voice")


async def test_a_model_added_since_the_cache_is_found_on_submit(world: World) -> None:
    await world.prefs.tts_models()
    new = dict(world.fake.models[0], model_id="eleven_v3", name="Eleven v3")
    world.fake.models.append(new)
    assert (await world.prefs.set_server_model(GUILD, "eleven_v3")).model_id == "eleven_v3"
    assert (await world.storage.guilds.get(GUILD)).model_id == "eleven_v3"
    resolved = await world.prefs.resolved(GUILD, USER)
    assert (resolved.model_id, resolved.sources["model_id"]) == ("eleven_v3", Source.SERVER)


async def test_a_slow_model_list_does_not_hold_up_autocomplete(world: World) -> None:
    """Past the budget autocomplete answers nothing; the fetch goes on and fills the cache."""
    gate = asyncio.Event()
    real = world.prefs.client

    class SlowClient:
        async def models(self) -> list[Any]:
            await gate.wait()
            return await real.models()

    world.prefs.client = SlowClient()  # type: ignore[assignment]
    assert await world.prefs.model_choices("", budget=0.01) == []
    gate.set()
    world.prefs.client = real
    models = await world.prefs.tts_models()  # waits for the fetch in flight, no new request
    assert len(models) == 3 and world.requests("models") == 1
    assert len(await world.prefs.model_choices("")) == 3


# -- the stored levels are cached (issue 8: many busy guilds at once) --------------------------


class ReadCounter:
    """Counts the repository reads resolution makes (wrapping the real methods)."""

    def __init__(self, storage: Storage) -> None:
        self.reads: dict[str, int] = {}
        for repository, name in (
            (storage.users, "get"),
            (storage.users, "get_override"),
            (storage.users, "get_for_guild"),
            (storage.guilds, "get"),
        ):
            self._wrap(repository, name)

    def _wrap(self, repository: Any, name: str) -> None:
        original = getattr(repository, name)
        label = f"{type(repository).__name__}.{name}"

        async def counted(*args: Any, **kwargs: Any) -> Any:
            self.reads[label] = self.reads.get(label, 0) + 1
            return await original(*args, **kwargs)

        setattr(repository, name, counted)

    @property
    def total(self) -> int:
        return sum(self.reads.values())


async def test_resolution_reads_each_level_once_then_from_memory(world: World) -> None:
    await world.prefs.set_user_voice(GUILD, USER, "Adam")
    await world.prefs.tune_server(GUILD, Tuning(stability=0.3))
    counter = ReadCounter(world.storage)
    for _ in range(5):
        choice = await world.prefs.resolve(GUILD, USER, None)
        assert (choice.voice_id, choice.settings.stability) == (world.voice_id("Adam"), 0.3)
    assert counter.total == 3  # the user, their override here, the guild: once each
    await world.prefs.resolve(OTHER_GUILD, USER, None)
    # The user's own settings are the same everywhere: only the new guild's levels are read.
    assert counter.total == 5


async def test_concurrent_resolutions_share_one_read(world: World) -> None:
    counter = ReadCounter(world.storage)
    await asyncio.gather(*(world.prefs.resolve(GUILD, USER, None) for _ in range(20)))
    assert counter.total == 3


CHANGES = {
    "set voice": lambda p: p.set_user_voice(GUILD, USER, "Callum"),
    "set voice here": lambda p: p.set_user_voice(GUILD, USER, "Callum", here=True),
    "tune": lambda p: p.tune_user(GUILD, USER, Tuning(stability=0.9)),
    "tune here": lambda p: p.tune_user(GUILD, USER, Tuning(stability=0.9), here=True),
    "reset": lambda p: p.reset_user(GUILD, USER),
    "reset here": lambda p: p.reset_user(GUILD, USER, here=True),
    "forget": lambda p: p.forget_user(USER),
    "server voice": lambda p: p.set_server_voice(GUILD, "Callum"),
    "server model": lambda p: p.set_server_model(GUILD, "eleven_turbo_v2_5"),
    "server tune": lambda p: p.tune_server(GUILD, Tuning(stability=0.9)),
    "server lock": lambda p: p.lock_server_voice(GUILD, True),
    "server reset": lambda p: p.reset_server(GUILD),
}


@pytest.mark.parametrize("change", list(CHANGES))
async def test_every_change_through_the_service_applies_at_once(world: World, change: str) -> None:
    await world.prefs.set_server_voice(GUILD, "Bella")
    await world.prefs.tune_server(GUILD, Tuning(stability=0.2))
    await world.prefs.set_user_voice(GUILD, USER, "Adam")
    await world.prefs.tune_user(GUILD, USER, Tuning(stability=0.5), here=True)
    await world.prefs.set_user_voice(GUILD, USER, "Antoni", here=True)
    before = await world.prefs.levels(GUILD, USER)  # cached from here on
    await CHANGES[change](world.prefs)
    # No time passes: only the invalidation can make the change visible.
    after = await world.prefs.levels(GUILD, USER)
    users, guilds = world.storage.users, world.storage.guilds
    stored = (await users.get(USER), await users.get_override(GUILD, USER), await guilds.get(GUILD))
    assert after == stored
    assert after != before


async def test_a_change_made_elsewhere_shows_within_the_ttl(world: World) -> None:
    """Another shard process writes the database directly: the cache serves the old value
    until its time-to-live is over, then the new one."""
    await world.prefs.set_user_voice(GUILD, USER, "Adam")
    assert (await world.prefs.resolved(GUILD, USER)).voice_id == world.voice_id("Adam")
    await world.storage.users.update(USER, voice_id=world.voice_id("Callum"))
    await world.storage.guilds.update(GUILD, stability=0.1)
    world.clock.now += SETTINGS_CACHE_TTL - 1
    stale = await world.prefs.resolved(GUILD, USER)
    assert (stale.voice_id, stale.sources["stability"]) == (world.voice_id("Adam"), Source.VOICE)
    world.clock.now += 1
    fresh = await world.prefs.resolved(GUILD, USER)
    assert (fresh.voice_id, fresh.stability) == (world.voice_id("Callum"), 0.1)


async def test_invalidate_user_and_guild_for_writers_outside_the_service(world: World) -> None:
    await world.prefs.resolved(GUILD, USER)
    await world.storage.users.update(USER, voice_id=world.voice_id("Callum"))
    world.prefs.invalidate_user(USER)
    assert (await world.prefs.resolved(GUILD, USER)).voice_id == world.voice_id("Callum")
    await world.storage.guilds.update(GUILD, lock_voice=True, voice_id=world.voice_id("Bella"))
    world.prefs.invalidate_guild(GUILD)
    assert (await world.prefs.resolved(GUILD, USER)).voice_id == world.voice_id("Bella")


async def test_voice_show_and_server_show_read_what_is_stored(world: World) -> None:
    await world.prefs.resolved(GUILD, USER)
    await world.storage.users.update(USER, voice_id=world.voice_id("Callum"))
    await world.storage.guilds.update(GUILD, stability=0.4)
    assert (await world.prefs.user_view(GUILD, USER)).user.voice_id == world.voice_id("Callum")
    assert (await world.prefs.server_settings(GUILD)).stability == 0.4
    # ... and what they read is what resolution uses from then on.
    assert (await world.prefs.resolved(GUILD, USER)).stability == 0.4
