"""The ElevenLabs API: client, response models, typed errors."""

from bot.elevenlabs.client import ElevenLabsClient, RetryPolicy, SpeechStream
from bot.elevenlabs.errors import ElevenLabsError
from bot.elevenlabs.models import Subscription, TTSModel, Voice, VoiceSettings, VoicesPage

__all__ = [
    "ElevenLabsClient",
    "ElevenLabsError",
    "RetryPolicy",
    "SpeechStream",
    "Subscription",
    "TTSModel",
    "Voice",
    "VoiceSettings",
    "VoicesPage",
]
