"""stream_speech against the fake: the audio, the headers, the request it sends, its timings."""

from __future__ import annotations

import pytest

from bot.elevenlabs.client import ElevenLabsClient, SpeechStream
from bot.elevenlabs.models import VoiceSettings
from tests.elevenlabs.conftest import RACHEL, TEXT, MakeClient, read_all
from tests.fakes import speech
from tests.fakes.elevenlabs import DEFAULT_MODEL_ID, FakeElevenLabs


@pytest.mark.parametrize("output_format", ["mp3_44100_128", "pcm_24000", "opus_48000_64"])
async def test_audio_is_exactly_what_the_service_rendered(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs, output_format: str
) -> None:
    stream, audio = await read_all(client, output_format=output_format)

    expected = await speech.render_speech(RACHEL, TEXT, output_format)
    assert audio == expected.data
    assert stream.complete
    assert stream.bytes_received == len(expected.data)
    assert stream.content_type == speech.OUTPUT_FORMATS[output_format].content_type
    (rec,) = fake_elevenlabs.tts_requests
    assert rec.path == f"/v1/text-to-speech/{RACHEL}/stream"
    assert dict(rec.query) == {"output_format": output_format}
    assert len(rec.chunk_sizes) > 1  # it really arrived in pieces


async def test_another_voice_sounds_different(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    other = fake_elevenlabs.available_voices[1]["voice_id"]
    _, audio = await read_all(client, other)
    assert audio == (await speech.render_speech(other, TEXT, "mp3_44100_128")).data
    assert audio != (await speech.render_speech(RACHEL, TEXT, "mp3_44100_128")).data


async def test_response_headers_are_exposed(
    fake_elevenlabs_factory, make_client: MakeClient
) -> None:
    fake = await fake_elevenlabs_factory(max_concurrent_requests=7)
    client = make_client(fake)

    stream, _ = await read_all(client, model_id="eleven_flash_v2_5")

    (rec,) = fake.tts_requests
    assert stream.status == 200
    assert stream.request_id == rec.request_id
    assert stream.character_cost == fake.character_cost(TEXT, "eleven_flash_v2_5")
    assert stream.character_cost == 14  # 28 characters at 0.5 credit each
    assert stream.history_item_id and len(stream.history_item_id) == 20
    assert stream.current_concurrent_requests == 1
    assert stream.maximum_concurrent_requests == 7
    assert stream.attempts == 1


async def test_character_cost_falls_back_to_x_character_count(
    fake_elevenlabs_factory, make_client: MakeClient
) -> None:
    fake = await fake_elevenlabs_factory(send_character_cost=False)
    client = make_client(fake)

    stream, _ = await read_all(client)

    assert stream.character_cost == fake.character_cost(TEXT, DEFAULT_MODEL_ID) == len(TEXT)


async def test_minimal_body_is_just_the_text(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    await read_all(client)
    (rec,) = fake_elevenlabs.tts_requests
    assert rec.json == {"text": TEXT}
    assert rec.headers["Content-Type"].startswith("application/json")


async def test_every_body_field_reaches_the_service(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    _, audio = await read_all(
        client,
        model_id="eleven_flash_v2_5",
        voice_settings=VoiceSettings(stability=0.3, speed=1.1),
        output_format="mp3_22050_32",
        language_code="en",
        seed=42,
        previous_text="Before this.",
        next_text="After this.",
        apply_text_normalization="off",
    )

    (rec,) = fake_elevenlabs.tts_requests
    assert rec.status == 200
    assert rec.query["output_format"] == "mp3_22050_32"
    assert rec.json == {
        "text": TEXT,
        "model_id": "eleven_flash_v2_5",
        "voice_settings": {"stability": 0.3, "speed": 1.1},  # only the fields that are set
        "language_code": "en",
        "seed": 42,
        "previous_text": "Before this.",
        "next_text": "After this.",
        "apply_text_normalization": "off",
    }
    assert audio == (await speech.render_speech(RACHEL, TEXT, "mp3_22050_32")).data


async def test_empty_voice_settings_are_left_out(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    await read_all(client, voice_settings=VoiceSettings())
    assert "voice_settings" not in fake_elevenlabs.tts_requests[0].json


async def test_every_voice_setting_in_range_is_accepted(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    settings = VoiceSettings(
        stability=0.0, similarity_boost=1.0, style=0.5, use_speaker_boost=False, speed=0.7
    )
    await read_all(client, voice_settings=settings)
    assert fake_elevenlabs.tts_requests[0].json["voice_settings"] == settings.model_dump()


async def test_timings_are_in_order(client: ElevenLabsClient) -> None:
    stream, _ = await read_all(client)

    assert stream.sent_at is not None
    assert stream.headers_at is not None
    assert stream.first_byte_at is not None
    assert stream.finished_at is not None
    assert stream.sent_at <= stream.headers_at <= stream.first_byte_at <= stream.finished_at


async def test_entering_returns_once_the_first_byte_arrived(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    async with client.stream_speech(RACHEL, TEXT) as stream:
        assert stream.headers_received
        assert stream.first_byte_at is not None
        assert stream.bytes_received > 0
        assert not stream.complete
        audio = b"".join([chunk async for chunk in stream])
    assert audio == (await speech.render_speech(RACHEL, TEXT, "mp3_44100_128")).data


async def test_on_headers_is_called_with_the_stream(client: ElevenLabsClient) -> None:
    seen: list[tuple[str | None, bool]] = []

    async def on_headers(stream: SpeechStream) -> None:
        seen.append((stream.request_id, stream.first_byte_at is None))

    stream, _ = await read_all(client, on_headers=on_headers)

    assert seen == [(stream.request_id, True)]


async def test_iterating_before_entering_is_a_programming_error(client: ElevenLabsClient) -> None:
    stream = client.stream_speech(RACHEL, TEXT)
    with pytest.raises(RuntimeError):
        async for _ in stream:
            pass


async def test_a_stream_opens_only_once(
    client: ElevenLabsClient, fake_elevenlabs: FakeElevenLabs
) -> None:
    async with client.stream_speech(RACHEL, TEXT) as stream:
        with pytest.raises(RuntimeError):
            await stream.open()
        assert client.in_flight == 1
    assert client.in_flight == 0
    assert fake_elevenlabs.tts_count == 1
