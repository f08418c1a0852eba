"""2. Gapless queue: silence the player adds between queued items.

Twenty short messages are queued at once on one `GuildPlayer` (prefetch as in the bot). The
packets sent are decoded back to PCM by discord.py's own Opus decoder and laid on a timeline:
a pause between two packets longer than 20 ms (a playback that ended and restarted) becomes
that much silence, as a listener would hear it. Each item's reference speech (the fake's PCM
before encoding, with its own leading and trailing silence) is then located in that timeline
by cross-correlation; the silence added between item i and i+1 is

    start(i+1) - (start(i) + len(reference i))

so the silence inside the audio itself is not counted, and whatever the decoder adds (mp3
encoder delay and padding) is.
"""

from __future__ import annotations

import asyncio
import itertools
from typing import Any

from bench.common import GAPLESS_TEXTS, VOICE, elevenlabs_client, percentile, r1
from bot.audio.frames import FRAME_BYTES
from bot.player import GuildPlayer, Outcome, SpeechItem
from bot.speech import SpeechRequest
from bot.testing.loopback import LoopbackVoiceClient, SentPacket
from bot.testing.pcm import align
from tests.fakes import speech
from tests.fakes.elevenlabs import FakeElevenLabs

SAMPLES_PER_MS = 48


def timeline(voice: LoopbackVoiceClient, packets: list[SentPacket]) -> bytes:
    """Decoded PCM with the wall-clock pauses between packets filled with silence.

    Only a pause over 60 ms counts (a playback that ended, then restarted): shorter ones are
    the player thread's jitter, which it makes up at once and a listener's jitter buffer hides.
    """
    frames = voice.decoded_frames(packets)
    out = bytearray()
    for (prev, cur), frame in zip(itertools.pairwise([None, *packets]), frames, strict=True):
        if prev is not None and cur.sent_at - prev.sent_at > 0.060:
            missing = round((cur.sent_at - prev.sent_at) / 0.020) - 1
            if missing > 0:
                out += bytes(missing * FRAME_BYTES)
        out += frame
    return bytes(out)


async def run(*, count: int, fmt: str = "mp3_44100_128", pace: float = 1.0) -> dict[str, Any]:
    texts = GAPLESS_TEXTS[:count]
    references = [await speech.reference_pcm(VOICE, text, channels=2) for text in texts]
    for text in texts:
        await speech.render_speech(VOICE, text, fmt)
    async with (
        FakeElevenLabs(first_byte_delay=0.3, pace=pace) as fake,
        elevenlabs_client(fake.base_url, fake.api_key) as synth,
    ):
        voice = await LoopbackVoiceClient.create()
        voice.wait_timeout = 120.0
        try:
            player = GuildPlayer(voice.guild.id, queue_limit=len(texts) + 1)
            player.attach(voice)
            items = []
            for text in texts:
                request = SpeechRequest(text, VOICE, output_format=fmt)
                item = SpeechItem(
                    make_job=lambda frames, r=request: synth.job(r, frames=frames),
                    requester_id=1,
                )
                player.enqueue(item)
                items.append(item)
            results = await asyncio.gather(*(item.wait() for item in items))
            await voice.wait_until_done()
            assert all(r.outcome is Outcome.PLAYED for r in results), results
            packets = voice.packets
            # Silence the player sent because an item had no frame ready (at its start or
            # in its middle): what explains an added gap.
            underruns = [item.frames.underruns for item in items]
            playbacks = player.playbacks
            await player.aclose()
        finally:
            await voice.close()

    pcm = await asyncio.to_thread(timeline, voice, packets)
    total = len(pcm) // 4
    starts: list[int] = []
    correlations: list[float] = []
    expected = 0
    for reference in references:
        lo = max(0, expected - 200 * SAMPLES_PER_MS)
        hi = min(total - 1, expected + 800 * SAMPLES_PER_MS)
        found = await asyncio.to_thread(
            align,
            reference,
            pcm,
            min_lag=lo,
            max_lag=hi,
            # Search over the whole reference (a short message is mostly its own silence),
            # coarsely at 0.5 ms, then refined at full rate.
            search_window=len(reference) // 4,
            decimation=24,
        )
        starts.append(found.lag)
        correlations.append(found.correlation)
        expected = found.lag + len(reference) // 4
    added_ms = [
        (starts[i + 1] - (starts[i] + len(references[i]) // 4)) / SAMPLES_PER_MS
        for i in range(len(references) - 1)
    ]
    return {
        "gap_between_items_ms": {
            "p50": r1(percentile(added_ms, 50)),
            "max": r1(max(added_ms)),
            "min": r1(min(added_ms)),
            "n": len(added_ms),
        },
        "gap_conditions": {
            "format": fmt,
            "items": len(texts),
            "pace": pace,
            "first_byte_delay_s": 0.3,
            "playbacks": playbacks,
            "underrun_frames_per_item": underruns,
            "correlations": [round(c, 3) for c in correlations],
            "per_boundary_ms": [r1(x) for x in added_ms],
        },
    }
