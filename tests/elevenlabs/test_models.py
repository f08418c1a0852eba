"""The response models read the documented examples and tolerate what they do not know."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import ValidationError

from bot.config import ConfigError, load_settings
from bot.elevenlabs.client import ElevenLabsClient
from bot.elevenlabs.models import TTSModel, Voice, VoiceSettings, VoicesPage

API_DOCS = Path(__file__).resolve().parents[3] / "shared" / "elevenlabs-api"


def documented_examples() -> list[tuple[str, Any]]:
    """Every JSON object that starts a line in the shared API documentation."""
    if not API_DOCS.is_dir():
        return []
    decoder = json.JSONDecoder()
    examples: list[tuple[str, Any]] = []
    for path in sorted(API_DOCS.glob("*.txt")):
        text, end = path.read_text(), 0
        for match in re.finditer(r"^\{", text, re.M):
            if match.start() < end:
                continue
            try:
                obj, end = decoder.raw_decode(text, match.start())
            except ValueError:
                continue
            line = text.count("\n", 0, match.start()) + 1
            examples.append((f"{path.name}:{line}", obj))
    return examples


EXAMPLES = documented_examples()
pytestmark = pytest.mark.skipif(not EXAMPLES, reason="../shared/elevenlabs-api is not here")


def examples_with(key: str) -> list[Any]:
    return [pytest.param(obj, id=where) for where, obj in EXAMPLES if key in obj]


@pytest.mark.parametrize("example", examples_with("voices"))
def test_documented_voice_pages_parse(example: dict[str, Any]) -> None:
    page = VoicesPage.model_validate(example)
    assert len(page.voices) == len(example["voices"])
    assert page.has_more == example["has_more"]
    for voice, raw in zip(page.voices, example["voices"], strict=True):
        assert voice.voice_id == raw["voice_id"]
        assert voice.labels == raw.get("labels", {})


@pytest.mark.parametrize("example", examples_with("voice_id"))
def test_documented_voices_parse(example: dict[str, Any]) -> None:
    voice = Voice.model_validate(example)
    assert voice.voice_id == example["voice_id"]
    assert voice.name == example["name"]
    assert voice.labels == example.get("labels", {})


def test_settings_out_of_range_in_a_response_are_unknown_not_fatal() -> None:
    voice = Voice.model_validate(
        {"voice_id": "x", "settings": {"stability": 123, "similarity_boost": 123}}
    )
    assert voice.settings is None
    fine = Voice.model_validate({"voice_id": "y", "settings": {"stability": 0.4}})
    assert fine.settings == VoiceSettings(stability=0.4)


@pytest.mark.parametrize("example", examples_with("similarity_boost"))
def test_documented_voice_settings_parse(example: dict[str, Any]) -> None:
    settings = VoiceSettings.model_validate(example)
    assert settings.to_request() == {k: v for k, v in example.items() if v is not None}


def test_unknown_fields_are_tolerated() -> None:
    voice = Voice.model_validate({"voice_id": "x", "brand_new_field": {"a": 1}})
    assert voice.voice_id == "x" and voice.name == ""
    model = TTSModel.model_validate({"model_id": "m", "new": True})
    assert model.credits_per_character == 1.0


def test_voice_settings_refuse_out_of_range_values() -> None:
    """The same ranges the service enforces: refused here, before a request is spent."""
    for field, value in [("stability", 1.5), ("style", -0.1), ("speed", 1.3), ("speed", 0.6)]:
        with pytest.raises(ValidationError):
            VoiceSettings(**{field: value})


async def test_client_from_settings() -> None:
    key = "sk_from_settings_0123456789"
    settings = load_settings(
        env_file=None,
        elevenlabs_api_key=key,
        elevenlabs_base_url="http://127.0.0.1:9/",
        elevenlabs_max_concurrency=3,
        elevenlabs_connect_timeout=1.5,
        elevenlabs_read_timeout=7,
        elevenlabs_max_retries=1,
        elevenlabs_retry_budget=2.0,
    )
    async with aiohttp.ClientSession() as session:
        client = ElevenLabsClient.from_settings(settings, session)
        assert client.base_url == "http://127.0.0.1:9"
        assert client.max_concurrency == 3
        assert (client.retry.max_retries, client.retry.budget) == (1, 2.0)
        assert client._timeout.total is None  # a long stream is never cut by a total timeout
        assert client._timeout.sock_read == 7
        assert client._timeout.connect == 1.5
        assert key not in repr(client)

        with pytest.raises(ConfigError, match="ELEVENLABS_API_KEY"):
            ElevenLabsClient.from_settings(
                load_settings(env_file=None, elevenlabs_api_key=None), session
            )
