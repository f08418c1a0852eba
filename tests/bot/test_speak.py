"""/speak end to end: interaction in, loopback voice client out, the fake's speech decoded."""

from __future__ import annotations

from bot.testing.loopback import LoopbackVoiceClient
from bot.testing.pcm import align
from tests.fakes.discord import DiscordHarness
from tests.fakes.speech import reference_pcm

DEFAULT_VOICE = "21m00Tcm4TlvDq8ikWAM"


async def test_speak_joins_the_callers_channel_and_says_the_text(tts: DiscordHarness) -> None:
    log = await tts.invoke("speak", text="Hello from the speak command.")
    assert log.callback.deferred and log.callback.ephemeral
    reply = (await tts.wait_for_replies(log, 2))[-1]
    assert reply.ephemeral and reply.pings_nobody
    assert "Speaking now" in reply.content

    voice = tts.guild.guild.voice_client
    assert isinstance(voice, LoopbackVoiceClient)
    assert voice.channel.id == tts.guild.channel_ids["lounge"]
    await voice.wait_until(lambda: voice.playbacks == 1)
    await voice.wait_until_done()
    reference = await reference_pcm(DEFAULT_VOICE, "Hello from the speak command.", channels=2)
    assert align(reference, voice.decode_pcm()).correlation > 0.95
