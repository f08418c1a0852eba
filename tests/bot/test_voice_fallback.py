"""A voice ElevenLabs refuses at synthesis time: the item is spoken in the fallback voice."""

from __future__ import annotations

import asyncio

from bot.player import Outcome
from tests.fakes.discord import DiscordHarness
from tests.fakes.elevenlabs import FakeElevenLabs

DEFAULT_VOICE = "21m00Tcm4TlvDq8ikWAM"


async def test_a_refused_voice_falls_back_to_the_default_and_the_user_is_told(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    alice = tts.member("alice")
    mine = next(
        v["voice_id"] for v in fake_elevenlabs.available_voices if v["voice_id"] != DEFAULT_VOICE
    )
    await tts.bot.storage.users.update(alice.id, voice_id=mine)
    fake_elevenlabs.fail_next(status=404, code="voice_not_found")

    queued = await tts.bot.speech.speak(alice, "Hello in whatever voice works.")
    result = await asyncio.wait_for(queued.result(), 20)

    assert result.outcome is Outcome.PLAYED
    assert result.notice and "/voice set" in result.notice
    paths = [r.path for r in fake_elevenlabs.tts_requests]
    assert paths[-2].endswith(f"/{mine}/stream") and paths[-1].endswith(f"/{DEFAULT_VOICE}/stream")

    # The refused voice is skipped from now on, without asking ElevenLabs again.
    again = await tts.bot.speech.speak(alice, "Second message.")
    assert (await asyncio.wait_for(again.result(), 20)).outcome is Outcome.PLAYED
    assert fake_elevenlabs.tts_requests[-1].path.endswith(f"/{DEFAULT_VOICE}/stream")


async def test_a_key_problem_is_not_retried_in_another_voice(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    alice = tts.member("alice")
    fake_elevenlabs.fail_next(status=401, code="invalid_api_key")
    queued = await tts.bot.speech.speak(alice, "This one fails.")
    result = await asyncio.wait_for(queued.result(), 20)
    assert result.outcome is Outcome.FAILED
    assert len(fake_elevenlabs.tts_requests) == 1  # no fallback attempt for a key problem


async def test_speak_tells_the_caller_in_a_follow_up(
    tts: DiscordHarness, fake_elevenlabs: FakeElevenLabs
) -> None:
    alice = tts.member("alice")
    mine = next(
        v["voice_id"] for v in fake_elevenlabs.available_voices if v["voice_id"] != DEFAULT_VOICE
    )
    await tts.bot.storage.users.update(alice.id, voice_id=mine)
    fake_elevenlabs.fail_next(status=404, code="voice_not_found")
    log = await tts.invoke("speak", text="Tell me if my voice changed.")
    replies = await tts.wait_for_replies(log, 3, time_limit=20)
    notice = replies[-1]
    assert notice.ephemeral and notice.pings_nobody
    assert "/voice set" in notice.content
