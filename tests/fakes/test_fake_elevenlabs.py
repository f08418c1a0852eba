"""The fake ElevenLabs must be as strict as the service; these tests prove it with plain aiohttp.

If the fake accepted what the service refuses, every client test built on it would prove nothing.
"""

from __future__ import annotations

import asyncio
import json
import math
import time
from typing import Any

import aiohttp
import pytest

from tests.fakes import speech
from tests.fakes.elevenlabs import DEFAULT_API_KEY, FakeElevenLabs

RACHEL = "21m00Tcm4TlvDq8ikWAM"
TEXT = "Hello there, this is a test."
TTS = "/v1/text-to-speech/{}/stream"


@pytest.fixture
async def http() -> Any:
    async with aiohttp.ClientSession() as session:
        yield session


async def tts(
    http: aiohttp.ClientSession,
    fake: FakeElevenLabs,
    body: Any = None,
    *,
    voice_id: str = RACHEL,
    params: dict[str, str] | None = None,
    key: str | None = None,
) -> tuple[int, dict[str, str], bytes]:
    """POST a TTS stream request and read it all."""
    headers = {"xi-api-key": key or fake.api_key}
    async with http.post(
        fake.url(TTS.format(voice_id)),
        json={"text": TEXT} if body is None else body,
        params=params or {},
        headers=headers,
    ) as resp:
        return resp.status, dict(resp.headers), await resp.read()


async def decode_to_pcm48(data: bytes, output_format: str) -> bytes:
    """Decode any output format with ffmpeg into 48 kHz s16le mono, as the bot would."""
    fmt = speech.OUTPUT_FORMATS[output_format]
    raw_input = {"pcm": "s16le", "ulaw": "mulaw", "alaw": "alaw"}
    input_args = (
        ["-f", raw_input[fmt.codec], "-ar", str(fmt.sample_rate), "-ac", "1"]
        if fmt.codec in raw_input
        else []
    )
    proc = await asyncio.create_subprocess_exec(
        *["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", *input_args],
        *["-i", "pipe:0", "-f", "s16le", "-ac", "1", "-ar", "48000", "pipe:1"],
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(data)
    assert proc.returncode == 0, err.decode()
    return out


# ---- authentication -----------------------------------------------------------------------

API_GETS = [
    "/v2/voices",
    f"/v1/voices/{RACHEL}",
    f"/v1/voices/{RACHEL}/settings",
    "/v1/voices/settings/default",
    "/v1/models",
    "/v1/user/subscription",
]


@pytest.mark.parametrize("path", API_GETS)
@pytest.mark.parametrize("key", [None, "wrong-key"])
async def test_every_endpoint_refuses_missing_or_wrong_key(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession, path: str, key: str | None
) -> None:
    headers = {"xi-api-key": key} if key else {}
    async with http.get(fake_elevenlabs.url(path), headers=headers) as resp:
        assert resp.status == 401
        assert await resp.json() == {
            "detail": {"status": "invalid_api_key", "message": "Invalid API key"}
        }


async def test_tts_refuses_wrong_key_and_records_no_secret(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession
) -> None:
    status, _, body = await tts(http, fake_elevenlabs, key="nope")
    assert status == 401 and b"invalid_api_key" in body
    await tts(http, fake_elevenlabs)
    assert fake_elevenlabs.requests[0].api_key_present
    assert not fake_elevenlabs.requests[0].api_key_valid
    assert fake_elevenlabs.requests[1].api_key_valid
    assert all(DEFAULT_API_KEY not in repr(r) for r in fake_elevenlabs.requests)


# ---- catalogue ----------------------------------------------------------------------------


async def test_catalogue_is_varied_and_previews_are_real_mp3(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession
) -> None:
    voices = fake_elevenlabs.voices
    assert len(voices) == 40
    assert {v["category"] for v in voices} == {"premade", "cloned", "generated", "professional"}
    assert fake_elevenlabs.voice(RACHEL)["name"] == "Rachel"
    assert fake_elevenlabs.unavailable_voices, "some voices must be locked to higher tiers"
    assert len({v["voice_id"] for v in voices}) == 40
    async with http.get(
        fake_elevenlabs.url(f"/v1/voices/{RACHEL}"), headers=fake_elevenlabs.auth_headers
    ) as resp:
        rachel = await resp.json()
    assert rachel["labels"]["accent"] == "American"
    assert rachel["preview_url"] == fake_elevenlabs.preview_url(RACHEL)
    async with http.get(rachel["preview_url"]) as resp:  # public, no key
        assert resp.status == 200 and resp.content_type == "audio/mpeg"
        pcm = await decode_to_pcm48(await resp.read(), "mp3_44100_128")
    assert len(pcm) > 48_000 * 2  # more than a second of speech


async def test_unknown_voice_is_404_everywhere(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession
) -> None:
    for path in ("/v1/voices/nope", "/v1/voices/nope/settings"):
        async with http.get(fake_elevenlabs.url(path), headers=fake_elevenlabs.auth_headers) as r:
            assert r.status == 404
            assert (await r.json())["detail"]["code"] == "voice_not_found"
    status, _, body = await tts(http, fake_elevenlabs, voice_id="nope")
    assert status == 404 and b"voice_not_found" in body


async def test_settings_models_and_subscription(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession
) -> None:
    h = fake_elevenlabs.auth_headers
    async with http.get(fake_elevenlabs.url("/v1/voices/settings/default"), headers=h) as r:
        assert set(await r.json()) == {
            "stability",
            "similarity_boost",
            "style",
            "use_speaker_boost",
            "speed",
        }
    async with http.get(fake_elevenlabs.url(f"/v1/voices/{RACHEL}/settings"), headers=h) as r:
        assert (await r.json())["speed"] == 1
    async with http.get(fake_elevenlabs.url("/v1/models"), headers=h) as r:
        models = {m["model_id"]: m for m in await r.json()}
    assert models["eleven_flash_v2_5"]["model_rates"]["character_cost_multiplier"] == 0.5
    assert models["eleven_turbo_v2_5"]["model_rates"]["character_cost_multiplier"] == 0.5
    assert models["eleven_multilingual_v2"]["model_rates"]["character_cost_multiplier"] == 1.0
    assert models["eleven_english_sts_v2"]["can_do_text_to_speech"] is False
    assert models["eleven_flash_v2_5"]["languages"][0] == {"language_id": "en", "name": "English"}
    async with http.get(fake_elevenlabs.url("/v1/user/subscription"), headers=h) as r:
        sub = await r.json()
    assert sub["tier"] == "creator"
    assert {"character_count", "character_limit", "next_character_count_reset_unix"} <= set(sub)


# ---- /v2/voices ---------------------------------------------------------------------------


async def voices_page(
    http: aiohttp.ClientSession, fake: FakeElevenLabs, params: Any
) -> tuple[int, Any]:
    async with http.get(fake.url("/v2/voices"), params=params, headers=fake.auth_headers) as r:
        return r.status, await r.json()


async def test_pagination_walks_every_voice_once(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession
) -> None:
    seen: list[str] = []
    token = None
    pages = 0
    while True:
        params = {"page_size": "7", "sort": "name"}
        if token:
            params["next_page_token"] = token
        status, page = await voices_page(http, fake_elevenlabs, params)
        assert status == 200
        assert page["total_count"] == 40  # include_total_count defaults to true
        seen += [v["voice_id"] for v in page["voices"]]
        pages += 1
        token = page["next_page_token"]
        assert page["has_more"] is (token is not None)
        if not page["has_more"]:
            break
    assert pages == 6 and len(seen) == 40 and len(set(seen)) == 40
    names = [fake_elevenlabs.voice(v)["name"].casefold() for v in seen]
    assert names == sorted(names)


async def test_page_token_is_checked(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession
) -> None:
    _, first = await voices_page(http, fake_elevenlabs, {"page_size": "5"})
    token = first["next_page_token"]
    status, body = await voices_page(http, fake_elevenlabs, {"next_page_token": "garbage!"})
    assert status == 422 and body["detail"][0]["loc"] == ["query", "next_page_token"]
    # A token belongs to the search it came from.
    status, _ = await voices_page(
        http, fake_elevenlabs, {"next_page_token": token, "category": "premade"}
    )
    assert status == 422
    status, body = await voices_page(http, fake_elevenlabs, {"next_page_token": token})
    assert status == 200 and body["voices"][0]["voice_id"] == fake_elevenlabs.voices[5]["voice_id"]


@pytest.mark.parametrize(
    ("params", "loc"),
    [
        ({"page_size": "101"}, ["query", "page_size"]),
        ({"page_size": "0"}, ["query", "page_size"]),
        ({"page_size": "ten"}, ["query", "page_size"]),
        ({"sort": "rating"}, ["query", "sort"]),
        ({"sort_direction": "up"}, ["query", "sort_direction"]),
        ({"voice_type": "mine"}, ["query", "voice_type"]),
        ({"category": "famous-ish"}, ["query", "category"]),
        ({"fine_tuning_state": "done"}, ["query", "fine_tuning_state"]),
        ({"include_total_count": "maybe"}, ["query", "include_total_count"]),
        ({"pagesize": "5"}, ["query", "pagesize"]),
    ],
)
async def test_v2_voices_refuses_bad_parameters(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession, params: Any, loc: list[str]
) -> None:
    status, body = await voices_page(http, fake_elevenlabs, params)
    assert status == 422
    assert body["detail"][0]["loc"] == loc and {"msg", "type"} <= set(body["detail"][0])


async def test_v2_voices_filters(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession
) -> None:
    fake = fake_elevenlabs
    _, body = await voices_page(http, fake, {"search": "rachel"})
    assert [v["name"] for v in body["voices"]] == ["Rachel"]
    _, body = await voices_page(http, fake, {"category": "premade", "page_size": "100"})
    assert body["total_count"] == 15 and {v["category"] for v in body["voices"]} == {"premade"}
    _, default = await voices_page(http, fake, {"voice_type": "default", "page_size": "100"})
    _, non_default = await voices_page(http, fake, {"voice_type": "non-default"})
    assert default["total_count"] + non_default["total_count"] == 40
    ids = [fake.voices[3]["voice_id"], fake.voices[7]["voice_id"]]
    _, body = await voices_page(http, fake, [("voice_ids", ids[0]), ("voice_ids", ids[1])])
    assert sorted(v["voice_id"] for v in body["voices"]) == sorted(ids)
    _, body = await voices_page(http, fake, {"fine_tuning_state": "fine_tuned"})
    assert body["total_count"] >= 1
    assert all(v["category"] == "professional" for v in body["voices"])
    _, body = await voices_page(http, fake, {"collection_id": "narrators", "page_size": "100"})
    assert [v["voice_id"] for v in body["voices"]] == fake.collections["narrators"]
    _, body = await voices_page(http, fake, {"include_total_count": "false"})
    assert "total_count" not in body
    _, body = await voices_page(
        http, fake, {"sort": "created_at_unix", "sort_direction": "asc", "page_size": "100"}
    )
    created = [v["created_at_unix"] for v in body["voices"]]
    assert created == sorted(created)


async def test_custom_voices(http: aiohttp.ClientSession) -> None:
    custom = [dict(FakeElevenLabs().voices[1], voice_id="custom0000000000000", name="Solo")]
    async with FakeElevenLabs(voices=custom) as fake:
        _, body = await voices_page(http, fake, {})
        assert [v["name"] for v in body["voices"]] == ["Solo"]
        status, _, _ = await tts(http, fake, voice_id="custom0000000000000")
        assert status == 200


# ---- TTS validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "loc"),
    [
        ({}, ["body", "text"]),
        ({"text": ""}, ["body", "text"]),
        ({"text": "   "}, ["body", "text"]),
        ({"text": 5}, ["body", "text"]),
        ({"text": "hi", "output_format": "pcm_48000"}, ["body", "output_format"]),
        (
            {"text": "hi", "voice_settings": {"stability": 1.5}},
            ["body", "voice_settings", "stability"],
        ),
        (
            {"text": "hi", "voice_settings": {"similarity_boost": -0.1}},
            ["body", "voice_settings", "similarity_boost"],
        ),
        ({"text": "hi", "voice_settings": {"style": 2}}, ["body", "voice_settings", "style"]),
        ({"text": "hi", "voice_settings": {"speed": 0.5}}, ["body", "voice_settings", "speed"]),
        ({"text": "hi", "voice_settings": {"speed": 1.3}}, ["body", "voice_settings", "speed"]),
        (
            {"text": "hi", "voice_settings": {"use_speaker_boost": "yes"}},
            ["body", "voice_settings", "use_speaker_boost"],
        ),
        (
            {"text": "hi", "voice_settings": {"stabilty": 0.5}},
            ["body", "voice_settings", "stabilty"],
        ),
        ({"text": "hi", "seed": -1}, ["body", "seed"]),
        ({"text": "hi", "seed": 4_294_967_296}, ["body", "seed"]),
        ({"text": "hi", "seed": "1"}, ["body", "seed"]),
        ({"text": "hi", "previous_text": 3}, ["body", "previous_text"]),
        (
            {"text": "hi", "apply_text_normalization": "always"},
            ["body", "apply_text_normalization"],
        ),
        ("just a string", ["body"]),
    ],
)
async def test_tts_body_validation(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession, body: Any, loc: list[str]
) -> None:
    status, _, raw = await tts(http, fake_elevenlabs, body)
    assert status == 422
    detail = json.loads(raw)["detail"]
    assert isinstance(detail, list)
    assert loc in [d["loc"] for d in detail]
    assert all({"loc", "msg", "type"} <= set(d) for d in detail)


async def test_tts_accepts_every_documented_field(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession
) -> None:
    body = {
        "text": "Hi.",
        "model_id": "eleven_flash_v2_5",
        "language_code": "en",
        "voice_settings": {
            "stability": 0,
            "similarity_boost": 1,
            "style": 0.5,
            "use_speaker_boost": False,
            "speed": 0.7,
        },
        "seed": 4_294_967_295,
        "previous_text": "Before.",
        "next_text": "After.",
        "apply_text_normalization": "off",
    }
    params = {"output_format": "mp3_22050_32", "enable_logging": "true"}
    status, headers, audio = await tts(http, fake_elevenlabs, body, params=params)
    assert status == 200 and headers["Content-Type"] == "audio/mpeg" and audio


async def test_tts_refuses_bad_query_and_non_json(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession
) -> None:
    for params in ({"output_format": "mp3_44100_256"}, {"outputFormat": "pcm_16000"}):
        status, _, _ = await tts(http, fake_elevenlabs, params=params)
        assert status == 422
    async with http.post(
        fake_elevenlabs.url(TTS.format(RACHEL)),
        data=b"text=hello",
        headers={**fake_elevenlabs.auth_headers, "Content-Type": "text/plain"},
    ) as resp:
        assert resp.status == 422


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"text": "hi", "model_id": "eleven_nonexistent"}, "model_not_found"),
        ({"text": "hi", "model_id": "eleven_english_sts_v2"}, "model_can_not_do_text_to_speech"),
        ({"text": "x" * 10_001}, "max_character_limit_exceeded"),
        (
            {"text": "x" * 40_001, "model_id": "eleven_flash_v2_5"},
            "max_character_limit_exceeded",
        ),
        (
            {"text": "hi", "model_id": "eleven_flash_v2_5", "apply_text_normalization": "on"},
            "text_normalization_not_supported",
        ),
        (
            {"text": "hi", "model_id": "eleven_turbo_v2_5", "apply_text_normalization": "on"},
            "text_normalization_not_supported",
        ),
        ({"text": "hi", "language_code": "en"}, "unsupported_language"),
        (
            {"text": "hi", "model_id": "eleven_flash_v2_5", "language_code": "xx"},
            "unsupported_language",
        ),
    ],
)
async def test_tts_400s(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession, body: Any, code: str
) -> None:
    status, headers, raw = await tts(http, fake_elevenlabs, body)
    detail = json.loads(raw)["detail"]
    assert status == 400
    assert detail["code"] == detail["status"] == code
    assert detail["request_id"] == headers["request-id"]
    assert detail["type"] and detail["message"]


async def test_plan_refuses_format_with_403(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession
) -> None:
    fake_elevenlabs.allowed_formats -= {"pcm_44100", "mp3_44100_192"}
    for fmt in ("pcm_44100", "mp3_44100_192"):
        status, _, raw = await tts(http, fake_elevenlabs, params={"output_format": fmt})
        detail = json.loads(raw)["detail"]
        assert status == 403
        assert set(detail) == {"type", "code", "status", "message", "request_id"}
    status, _, _ = await tts(http, fake_elevenlabs, params={"output_format": "mp3_44100_128"})
    assert status == 200


async def test_voices_locked_to_other_tiers_are_refused(http: aiohttp.ClientSession) -> None:
    async with FakeElevenLabs() as fake:
        locked = fake.unavailable_voices[0]["voice_id"]
        status, _, raw = await tts(http, fake, voice_id=locked)
        assert status == 403 and b"voice_not_available_for_tier" in raw
    async with FakeElevenLabs(tier="free") as fake:
        status, _, raw = await tts(http, fake, voice_id=locked)
        assert status == 402 and b"paid_plan_required" in raw


async def test_quota_is_charged_and_enforced(http: aiohttp.ClientSession) -> None:
    async with FakeElevenLabs(character_limit=40) as fake:
        body = {"text": "x" * 30, "model_id": "eleven_flash_v2_5"}  # costs 15
        assert (await tts(http, fake, body))[0] == 200
        assert (await tts(http, fake, body))[0] == 200
        assert fake.character_count == 30
        status, _, raw = await tts(http, fake, body)
        assert status == 401 and b"quota_exceeded" in raw


# ---- audio --------------------------------------------------------------------------------


@pytest.mark.parametrize("output_format", list(speech.OUTPUT_FORMATS))
async def test_every_format_is_decodable_speech_of_the_right_length(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession, output_format: str
) -> None:
    fmt = speech.OUTPUT_FORMATS[output_format]
    status, headers, audio = await tts(
        http, fake_elevenlabs, params={"output_format": output_format}
    )
    assert status == 200 and headers["Content-Type"] == fmt.content_type
    reference = await speech.reference_pcm(RACHEL, TEXT)
    expected_s = len(reference) / 96_000
    if fmt.bytes_per_second:  # raw: the length is exact up to resampling rounding
        assert abs(len(audio) / fmt.bytes_per_second - expected_s) < 0.01
    if fmt.codec == "pcm":  # s16le needs no decoder
        assert len(audio) % 2 == 0 and any(audio)
        if fmt.sample_rate == 48_000:
            assert audio == reference  # pcm_48000 is the reference itself
        return
    decoded = await decode_to_pcm48(audio, output_format)
    assert abs(len(decoded) / 96_000 - expected_s) < 0.1
    assert any(decoded)


async def test_reference_pcm_layout() -> None:
    mono = await speech.reference_pcm(RACHEL, TEXT)
    stereo = await speech.reference_pcm(RACHEL, TEXT, channels=2)
    assert len(stereo) == 2 * len(mono)
    assert stereo[0:2] == stereo[2:4] == mono[0:2]
    assert stereo[4000:4002] == stereo[4002:4004] == mono[2000:2002]
    other = await speech.reference_pcm(fake_voice := "pNInz6obpgDQGcFmaJgB", TEXT)
    assert other != mono, f"{fake_voice} should not sound like Rachel"
    assert speech.espeak_voice_for(RACHEL) == speech.espeak_voice_for(RACHEL)


async def test_success_headers(http: aiohttp.ClientSession) -> None:
    async with FakeElevenLabs(max_concurrent_requests=9) as fake:
        body = {"text": "x" * 11, "model_id": "eleven_turbo_v2_5"}
        status, h1, _ = await tts(http, fake, body)
        _, h2, _ = await tts(http, fake, {"text": "x" * 11})
        assert status == 200
        assert h1["character-cost"] == h1["x-character-count"] == "6"  # ceil(11 × 0.5)
        assert h2["character-cost"] == "11"
        assert h1["request-id"] != h2["request-id"]
        assert h1["history-item-id"] != h2["history-item-id"] and len(h1["history-item-id"]) == 20
        assert h1["current-concurrent-requests"] == "1"
        assert h1["maximum-concurrent-requests"] == "9"
        assert h1["Transfer-Encoding"] == "chunked"
        fake.send_character_cost = False
        _, h3, _ = await tts(http, fake)
        assert "character-cost" not in h3 and h3["x-character-count"] == str(len(TEXT))


async def test_body_comes_in_uneven_deterministic_chunks(http: aiohttp.ClientSession) -> None:
    sizes = []
    for _ in range(2):
        async with FakeElevenLabs(chunk_size_range=(100, 900), seed=7) as fake:
            _, _, audio = await tts(http, fake)
            rec = fake.tts_requests[0]
            assert sum(rec.chunk_sizes) == len(audio) == rec.bytes_sent
            assert all(1 <= s <= 900 for s in rec.chunk_sizes)
            assert len(set(rec.chunk_sizes)) > len(rec.chunk_sizes) // 2
            rendered = await speech.render_speech(RACHEL, TEXT, "mp3_44100_128")
            assert audio == rendered.data
            sizes.append(rec.chunk_sizes)
    assert sizes[0] == sizes[1]


async def test_first_byte_delay_comes_after_the_headers(http: aiohttp.ClientSession) -> None:
    async with FakeElevenLabs(first_byte_delay=0.3) as fake:
        async with http.post(
            fake.url(TTS.format(RACHEL)), json={"text": TEXT}, headers=fake.auth_headers
        ) as resp:
            headers_at = time.monotonic()
            first = await resp.content.readany()
            first_at = time.monotonic()
            await resp.read()
        rec = fake.tts_requests[0]
        assert first
        assert rec.headers_sent_at is not None and rec.first_byte_at is not None
        assert rec.received_at <= rec.headers_sent_at < rec.first_byte_at
        assert rec.first_byte_at - rec.received_at >= 0.3
        assert headers_at < rec.first_byte_at <= first_at


async def test_headers_can_be_delayed_too(http: aiohttp.ClientSession) -> None:
    async with FakeElevenLabs(headers_delay=0.2, first_byte_delay=0.2) as fake:
        await tts(http, fake)
        rec = fake.tts_requests[0]
        assert rec.headers_sent_at - rec.received_at >= 0.2
        assert rec.first_byte_at >= rec.headers_sent_at


async def test_pace_streams_no_faster_than_asked(http: aiohttp.ClientSession) -> None:
    async with FakeElevenLabs(pace=4.0) as fake:
        await tts(http, fake)
        rec = fake.tts_requests[0]
        duration = len(await speech.reference_pcm(RACHEL, TEXT)) / 96_000
        last_chunk_start = (rec.bytes_sent - rec.chunk_sizes[-1]) / rec.bytes_sent
        assert rec.finished_at - rec.first_byte_at >= 0.95 * last_chunk_start * duration / 4.0


# ---- faults -------------------------------------------------------------------------------


async def test_cut_stream_ends_without_completing_the_body(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession
) -> None:
    fake_elevenlabs.cut_next(5000)
    received = bytearray()
    async with http.post(
        fake_elevenlabs.url(TTS.format(RACHEL)),
        json={"text": TEXT},
        headers=fake_elevenlabs.auth_headers,
    ) as resp:
        assert resp.status == 200
        with pytest.raises(aiohttp.ClientPayloadError):
            async for chunk in resp.content.iter_any():
                received += chunk
    assert len(received) == 5000
    assert fake_elevenlabs.tts_requests[0].fault == "CutFault"
    # Only the next stream is cut.
    status, _, audio = await tts(http, fake_elevenlabs)
    assert status == 200 and len(audio) > 5000


async def test_stall_pauses_then_completes(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession
) -> None:
    fake_elevenlabs.stall_next(2000, 0.3)
    times: list[tuple[int, float]] = []
    total = 0
    async with http.post(
        fake_elevenlabs.url(TTS.format(RACHEL)),
        json={"text": TEXT},
        headers=fake_elevenlabs.auth_headers,
    ) as resp:
        async for chunk in resp.content.iter_any():
            total += len(chunk)
            times.append((total, time.monotonic()))
    rendered = await speech.render_speech(RACHEL, TEXT, "mp3_44100_128")
    assert total == len(rendered.data)
    before = max(t for n, t in times if n <= 2000)
    after = min(t for n, t in times if n > 2000)
    assert after - before >= 0.25
    assert 2000 in fake_elevenlabs.tts_requests[0].chunk_sizes or any(n == 2000 for n, _ in times)


@pytest.mark.parametrize(
    ("status", "code"),
    [
        (401, "invalid_api_key"),
        (401, "needs_authorization"),
        (401, "quota_exceeded"),
        (400, "voice_not_found"),
        (404, "voice_does_not_exist"),
        (400, "max_character_limit_exceeded"),
        (402, "paid_plan_required"),
        (403, "forbidden"),
        (429, "too_many_concurrent_requests"),
        (429, "concurrent_limit_exceeded"),
        (429, "system_busy"),
        (429, "rate_limit_exceeded"),
        (500, "internal_server_error"),
        (502, "bad_gateway"),
        (503, "service_unavailable"),
    ],
)
@pytest.mark.parametrize("shape", ["old", "new"])
async def test_scripted_errors_in_both_shapes(
    fake_elevenlabs: FakeElevenLabs,
    http: aiohttp.ClientSession,
    status: int,
    code: str,
    shape: Any,
) -> None:
    fake_elevenlabs.fail_next(status, code, shape=shape)
    got, headers, raw = await tts(http, fake_elevenlabs)
    detail = json.loads(raw)["detail"]
    assert got == status and headers["Content-Type"].startswith("application/json")
    if shape == "old":
        assert set(detail) == {"status", "message"} and detail["status"] == code
    else:
        assert set(detail) == {"type", "code", "status", "message", "request_id"}
        assert detail["code"] == code and detail["request_id"] == headers["request-id"]
    assert (await tts(http, fake_elevenlabs))[0] == 200


async def test_scripted_failures_repeat_then_clear_with_retry_after(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession
) -> None:
    fake_elevenlabs.fail_next(429, "system_busy", times=2, retry_after=0.1)
    for _ in range(2):
        status, headers, _ = await tts(http, fake_elevenlabs)
        assert status == 429 and headers["Retry-After"] == "0.1"
    assert (await tts(http, fake_elevenlabs))[0] == 200
    assert fake_elevenlabs.tts_count == 3


async def test_scripted_422_text_5xx_and_other_endpoints(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession
) -> None:
    fake = fake_elevenlabs
    fake.fail_next(422, loc=("body", "model_id"), message="bad model")
    _, _, raw = await tts(http, fake)
    assert json.loads(raw) == {
        "detail": [{"loc": ["body", "model_id"], "msg": "bad model", "type": "value_error"}]
    }
    fake.fail_next(502, shape="text", message="Bad Gateway")
    status, headers, raw = await tts(http, fake)
    assert status == 502 and raw == b"Bad Gateway" and headers["Content-Type"].startswith("text")
    fake.fail_next(503, endpoint="models")
    status, _, _ = await tts(http, fake)
    assert status == 200  # a fault for another endpoint leaves TTS alone
    async with http.get(fake.url("/v1/models"), headers=fake.auth_headers) as resp:
        assert resp.status == 503
    fake.fail_next(500, endpoint="any")
    async with http.get(fake.url("/v1/user/subscription"), headers=fake.auth_headers) as resp:
        assert resp.status == 500


async def test_json_body_on_200(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession
) -> None:
    fake_elevenlabs.json_next({"oops": True})
    status, headers, raw = await tts(http, fake_elevenlabs)
    assert status == 200 and headers["Content-Type"].startswith("application/json")
    assert raw == b'{"oops": true}'


async def test_connection_drop_before_headers(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession
) -> None:
    fake_elevenlabs.drop_next()
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await tts(http, fake_elevenlabs)
    assert fake_elevenlabs.tts_requests[0].status is None
    assert (await tts(http, fake_elevenlabs))[0] == 200


# ---- concurrency and records --------------------------------------------------------------


async def test_concurrent_requests_are_counted(http: aiohttp.ClientSession) -> None:
    async with FakeElevenLabs(first_byte_delay=0.2) as fake:
        results = await asyncio.gather(*(tts(http, fake) for _ in range(5)))
        assert all(status == 200 for status, _, _ in results)
        assert fake.max_tts_in_flight == 5
        assert fake.tts_in_flight == 0 and fake.tts_count == 5
        assert max(int(h["current-concurrent-requests"]) for _, h, _ in results) == 5


async def test_concurrency_limit_answers_429(http: aiohttp.ClientSession) -> None:
    async with FakeElevenLabs(first_byte_delay=0.3, concurrency_limit=2) as fake:
        results = await asyncio.gather(*(tts(http, fake) for _ in range(4)))
        statuses = sorted(status for status, _, _ in results)
        assert statuses == [200, 200, 429, 429]
        refused = [raw for status, _, raw in results if status == 429]
        assert all(b"too_many_concurrent_requests" in raw for raw in refused)


async def test_client_hanging_up_ends_the_request(http: aiohttp.ClientSession) -> None:
    async with FakeElevenLabs(pace=0.5) as fake:
        async with http.post(
            fake.url(TTS.format(RACHEL)), json={"text": TEXT}, headers=fake.auth_headers
        ) as resp:
            await resp.content.readany()
            assert fake.tts_in_flight == 1
            resp.close()
        for _ in range(50):
            if fake.tts_in_flight == 0:
                break
            await asyncio.sleep(0.02)
        assert fake.tts_in_flight == 0


async def test_requests_are_recorded(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession
) -> None:
    await tts(http, fake_elevenlabs, params={"output_format": "pcm_16000"})
    rec = fake_elevenlabs.requests[0]
    assert (rec.method, rec.path, rec.route) == ("POST", TTS.format(RACHEL), "tts")
    assert rec.query["output_format"] == "pcm_16000"
    assert rec.json == {"text": TEXT}
    assert rec.headers["xi-api-key"] == "<redacted>"
    assert rec.status == 200 and rec.finished_at >= rec.first_byte_at >= rec.received_at
    expected = math.ceil(len(TEXT))
    assert fake_elevenlabs.character_count == expected


async def test_context_manager_outside_pytest_fixtures(http: aiohttp.ClientSession) -> None:
    fake = FakeElevenLabs()
    with pytest.raises(RuntimeError):
        _ = fake.base_url
    async with fake:
        url = fake.url("/v1/models")
        async with http.get(url, headers=fake.auth_headers) as resp:
            assert resp.status == 200
    with pytest.raises(aiohttp.ClientConnectionError):
        async with http.get(url, headers=fake.auth_headers):
            pass


async def test_factory_fixture(fake_elevenlabs_factory: Any, http: aiohttp.ClientSession) -> None:
    fake = await fake_elevenlabs_factory(api_key="other-key", tier="pro")
    async with http.get(fake.url("/v1/user/subscription"), headers=fake.auth_headers) as resp:
        assert (await resp.json())["tier"] == "pro"
    status, _, _ = await tts(http, fake, key=DEFAULT_API_KEY)
    assert status == 401


async def test_unknown_path_is_json_404(
    fake_elevenlabs: FakeElevenLabs, http: aiohttp.ClientSession
) -> None:
    async with http.get(
        fake_elevenlabs.url("/v1/nothing"), headers=fake_elevenlabs.auth_headers
    ) as r:
        assert r.status == 404 and (await r.json()) == {"detail": "Not Found"}


async def test_closing_with_a_stalled_stream_is_quick(http: aiohttp.ClientSession) -> None:
    fake = await FakeElevenLabs().start()
    fake.stall_next(1000, 30.0)
    async with http.post(
        fake.url(TTS.format(RACHEL)), json={"text": TEXT}, headers=fake.auth_headers
    ) as resp:
        await resp.content.readexactly(1000)
        started = time.monotonic()
        await fake.close()
        assert time.monotonic() - started < 2.0
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()
    assert fake.tts_in_flight == 0
