"""Output formats: the ffmpeg command for each, and the policy that remembers refusals."""

from __future__ import annotations

import asyncio

import pytest

from bot.audio.formats import FALLBACK_FORMAT, FormatPolicy, InputFormat, ffmpeg_command
from bot.config import OUTPUT_FORMATS
from bot.testing.pcm import align
from tests.fakes import speech

VOICE = "21m00Tcm4TlvDq8ikWAM"
TEXT = "Pack my box with five dozen liquor jugs."


@pytest.mark.parametrize("name", OUTPUT_FORMATS)
def test_every_configurable_format_parses(name: str) -> None:
    fmt = InputFormat.parse(name)
    assert fmt.name == name
    assert fmt.needs_ffmpeg == name.startswith(("mp3", "opus"))


@pytest.mark.parametrize("name", ["mp3", "wav_44100", "pcm_abc", "", "flac_48000"])
def test_unknown_formats_are_refused(name: str) -> None:
    with pytest.raises(ValueError):
        InputFormat.parse(name)


@pytest.mark.parametrize("name", sorted(speech.OUTPUT_FORMATS))
def test_every_input_starts_decoding_without_probing(name: str) -> None:
    """Without these ffmpeg holds 2 s of mp3, and raw PCM until 5 s or the end of input."""
    args = InputFormat.parse(name).ffmpeg_input_args()
    assert args[args.index("-probesize") + 1] == "32"
    assert args[args.index("-analyzeduration") + 1] == "0"


def test_the_command_writes_discord_pcm_to_stdout() -> None:
    cmd = ffmpeg_command("/usr/bin/ffmpeg", InputFormat.parse("pcm_24000"))
    assert cmd[0] == "/usr/bin/ffmpeg"
    assert cmd[cmd.index("-i") + 1] == "pipe:0"
    assert cmd[-1] == "pipe:1"
    tail = cmd[cmd.index("-i") :]
    assert tail[tail.index("-ar") + 1] == "48000" and tail[tail.index("-ac") + 1] == "2"
    assert "nobuffer" not in cmd  # garbles piped mp3


async def ffmpeg_decode(name: str, data: bytes) -> bytes:
    """`data` in format `name` decoded by the bot's ffmpeg command."""
    proc = await asyncio.create_subprocess_exec(
        *ffmpeg_command("ffmpeg", InputFormat.parse(name)),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate(data)
    assert proc.returncode == 0, err
    return out


@pytest.mark.parametrize("name", sorted(set(speech.OUTPUT_FORMATS) - {"pcm_48000"}))
async def test_the_command_decodes_every_format_the_service_sends(name: str) -> None:
    reference = await speech.reference_pcm(VOICE, TEXT, channels=2)
    audio = await speech.render_speech(VOICE, TEXT, name)
    decoded = await ffmpeg_decode(name, audio.data)
    fit = align(reference, decoded, max_lag=8192)
    assert fit.correlation > 0.9, fit


def test_the_policy_remembers_refusals_for_the_process() -> None:
    policy = FormatPolicy()
    assert policy.choose("pcm_24000") == "pcm_24000"
    assert policy.refuse("pcm_24000") == FALLBACK_FORMAT
    assert policy.choose("pcm_24000") == FALLBACK_FORMAT
    assert policy.choose("pcm_16000") == "pcm_16000"
    assert policy.refused == frozenset({"pcm_24000"})
    assert policy.refuse("pcm_24000") == FALLBACK_FORMAT  # idempotent


def test_a_refused_fallback_has_no_fallback() -> None:
    policy = FormatPolicy()
    assert policy.refuse(FALLBACK_FORMAT) is None
    assert policy.choose(FALLBACK_FORMAT) == FALLBACK_FORMAT
