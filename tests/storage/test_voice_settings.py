"""The resolution table: one test per precedence rule, the locked voice, an unusable voice."""

from __future__ import annotations

import pytest

from bot.storage.models import GuildSettings, UserGuildOverride, UserSettings
from bot.voice_settings import (
    DOCUMENTED_DEFAULTS,
    ResolvedVoice,
    Source,
    resolve_voice,
    resolve_voice_id,
)

GUILD, USER = 1, 2
BOT_VOICE, BOT_MODEL = "bot-voice", "eleven_flash_v2_5"
VOICE_OWN = {
    "stability": 0.31,
    "similarity_boost": 0.62,
    "style": 0.13,
    "use_speaker_boost": False,
    "speed": 0.95,
}


def resolve(
    override: UserGuildOverride | None = None,
    user: UserSettings | None = None,
    server: GuildSettings | None = None,
    voice_settings: object = None,
    **kwargs,
) -> ResolvedVoice:
    return resolve_voice(
        override=override or UserGuildOverride(guild_id=GUILD, user_id=USER),
        user=user or UserSettings(user_id=USER),
        server=server or GuildSettings(guild_id=GUILD),
        voice_settings=voice_settings,
        default_voice_id=BOT_VOICE,
        default_model_id=BOT_MODEL,
        **kwargs,
    )


def test_nothing_set_gives_documented_defaults() -> None:
    resolved = resolve()
    assert resolved == ResolvedVoice(
        voice_id=BOT_VOICE,
        model_id=BOT_MODEL,
        stability=0.5,
        similarity=0.75,
        style=0.0,
        speed=1.0,
        speaker_boost=True,
        sources=dict.fromkeys(
            ("voice_id", "model_id", "stability", "similarity", "style", "speed", "speaker_boost"),
            Source.DEFAULT,
        ),
    )
    assert resolved.voice_settings() == {
        "stability": 0.5,
        "similarity_boost": 0.75,
        "style": 0.0,
        "speed": 1.0,
        "use_speaker_boost": True,
    }


def test_voice_own_settings_beat_documented_defaults() -> None:
    resolved = resolve(voice_settings=VOICE_OWN)
    assert (resolved.stability, resolved.similarity, resolved.style) == (0.31, 0.62, 0.13)
    assert (resolved.speed, resolved.speaker_boost) == (0.95, False)
    assert {resolved.sources[f] for f in ("stability", "similarity", "speaker_boost")} == {
        Source.VOICE
    }
    assert resolved.sources["voice_id"] == Source.DEFAULT


def test_voice_own_settings_as_an_object_with_gaps() -> None:
    class ApiSettings:  # like the client's VoiceSettings: API names, some None
        stability = 0.2
        similarity_boost = None
        style = None
        use_speaker_boost = None
        speed = None

    resolved = resolve(voice_settings=ApiSettings())
    assert (resolved.stability, resolved.sources["stability"]) == (0.2, Source.VOICE)
    assert (resolved.similarity, resolved.sources["similarity"]) == (0.75, Source.DEFAULT)


def test_server_default_beats_voice_settings() -> None:
    server = GuildSettings(guild_id=GUILD, voice_id="server-voice", stability=0.9, model_id="m2")
    resolved = resolve(server=server, voice_settings=VOICE_OWN)
    assert (resolved.voice_id, resolved.sources["voice_id"]) == ("server-voice", Source.SERVER)
    assert (resolved.model_id, resolved.sources["model_id"]) == ("m2", Source.SERVER)
    assert (resolved.stability, resolved.sources["stability"]) == (0.9, Source.SERVER)
    assert (resolved.similarity, resolved.sources["similarity"]) == (0.62, Source.VOICE)


def test_user_choice_beats_server_default() -> None:
    server = GuildSettings(guild_id=GUILD, voice_id="server-voice", speed=0.8)
    user = UserSettings(user_id=USER, voice_id="my-voice", speed=1.1)
    resolved = resolve(user=user, server=server)
    assert (resolved.voice_id, resolved.sources["voice_id"]) == ("my-voice", Source.USER)
    assert (resolved.speed, resolved.sources["speed"]) == (1.1, Source.USER)


def test_server_override_beats_user_choice() -> None:
    user = UserSettings(user_id=USER, voice_id="my-voice", style=0.1, speaker_boost=True)
    override = UserGuildOverride(guild_id=GUILD, user_id=USER, voice_id="here", style=0.7)
    resolved = resolve(override=override, user=user)
    assert (resolved.voice_id, resolved.sources["voice_id"]) == ("here", Source.OVERRIDE)
    assert (resolved.style, resolved.sources["style"]) == (0.7, Source.OVERRIDE)
    # Fields the override leaves unset still come from the user's own settings.
    assert (resolved.speaker_boost, resolved.sources["speaker_boost"]) == (True, Source.USER)


def test_false_and_zero_are_values_not_gaps() -> None:
    user = UserSettings(user_id=USER, speaker_boost=False, style=0.0, stability=0.0)
    resolved = resolve(user=user, voice_settings=VOICE_OWN)
    assert (resolved.speaker_boost, resolved.style, resolved.stability) == (False, 0.0, 0.0)
    assert resolved.sources["style"] == Source.USER


def test_locked_server_voice_beats_user_and_override_voice_only() -> None:
    server = GuildSettings(guild_id=GUILD, voice_id="server-voice", lock_voice=True, speed=0.9)
    user = UserSettings(user_id=USER, voice_id="my-voice", speed=1.1)
    override = UserGuildOverride(guild_id=GUILD, user_id=USER, voice_id="here", stability=0.2)
    resolved = resolve(override=override, user=user, server=server)
    assert (resolved.voice_id, resolved.sources["voice_id"]) == ("server-voice", Source.SERVER)
    # The lock is about the voice: the user's tuning still applies.
    assert (resolved.speed, resolved.sources["speed"]) == (1.1, Source.USER)
    assert (resolved.stability, resolved.sources["stability"]) == (0.2, Source.OVERRIDE)


def test_locked_without_a_server_voice_uses_the_bot_default() -> None:
    server = GuildSettings(guild_id=GUILD, lock_voice=True)
    user = UserSettings(user_id=USER, voice_id="my-voice")
    assert resolve(user=user, server=server).voice_id == BOT_VOICE


def test_unusable_voice_falls_back_to_the_server_default() -> None:
    server = GuildSettings(guild_id=GUILD, voice_id="server-voice")
    user = UserSettings(user_id=USER, voice_id="gone")
    resolved = resolve(user=user, server=server, unusable_voices={"gone"})
    assert (resolved.voice_id, resolved.sources["voice_id"]) == ("server-voice", Source.SERVER)
    assert resolved.replaced_voice_id == "gone"


def test_unusable_server_voice_falls_back_to_the_bot_default() -> None:
    server = GuildSettings(guild_id=GUILD, voice_id="gone")
    resolved = resolve(server=server, unusable_voices={"gone"})
    assert (resolved.voice_id, resolved.replaced_voice_id) == (BOT_VOICE, "gone")


def test_usable_voice_reports_no_replacement() -> None:
    user = UserSettings(user_id=USER, voice_id="fine")
    resolved = resolve(user=user, unusable_voices={"other"})
    assert (resolved.voice_id, resolved.replaced_voice_id) == ("fine", None)


@pytest.mark.parametrize("locked", [False, True])
def test_resolve_voice_id_alone_agrees(locked: bool) -> None:
    server = GuildSettings(guild_id=GUILD, voice_id="server-voice", lock_voice=locked)
    user = UserSettings(user_id=USER, voice_id="my-voice")
    voice_id, source = resolve_voice_id(
        override=None, user=user, server=server, default_voice_id=BOT_VOICE
    )
    assert (voice_id, source) == (
        ("server-voice", Source.SERVER) if locked else ("my-voice", Source.USER)
    )
    assert resolve(user=user, server=server).voice_id == voice_id


def test_documented_defaults_are_in_range() -> None:
    assert 0 <= DOCUMENTED_DEFAULTS.stability <= 1
    assert 0 <= DOCUMENTED_DEFAULTS.similarity <= 1
    assert 0.7 <= DOCUMENTED_DEFAULTS.speed <= 1.2


def test_source_labels_for_voice_show() -> None:
    assert [s.value for s in Source] == [
        "your setting here",
        "your setting",
        "server default",
        "voice default",
        "default",
    ]


def test_accepts_the_clients_voice_settings_model() -> None:
    models = pytest.importorskip("bot.elevenlabs.models")
    resolved = resolve(voice_settings=models.VoiceSettings(stability=0.2, use_speaker_boost=False))
    assert (resolved.stability, resolved.speaker_boost) == (0.2, False)
    assert resolved.sources["speaker_boost"] == Source.VOICE
    assert models.VoiceSettings(**resolved.voice_settings()).to_request() == (
        resolved.voice_settings()
    )
