"""`python -m bot say` end to end: a real subprocess against the fake ElevenLabs."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import socket
import sys
import uuid
import wave
from dataclasses import dataclass
from pathlib import Path

import pytest

from bot.audio.frames import FRAME_BYTES
from tests.fakes import speech
from tests.fakes.elevenlabs import FakeElevenLabs

ROOT = Path(__file__).resolve().parents[2]
VOICE = "21m00Tcm4TlvDq8ikWAM"  # Rachel
TEXT = "Sphinx of black quartz, judge my vow."
MP3_FRAME_S = 1152 / 44_100


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str
    marker: str


async def say(
    fake: FakeElevenLabs | None, cwd: Path, *args: str, base_url: str | None = None, **env: str
) -> Done:
    marker = uuid.uuid4().hex
    environ = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(cwd),
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
        "ELEVENLABS_BASE_URL": base_url or (fake.base_url if fake else ""),
        "ELEVENLABS_API_KEY": fake.api_key if fake else "test-key-0123456789abcdef",
        "SAY_TEST_MARKER": marker,  # inherited by ffmpeg: how a leftover one is found
        **env,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "say",
        *args,
        cwd=cwd,
        env=environ,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode(), marker)


def processes_with_marker(marker: str) -> list[int]:
    """Processes (any parent: an orphan is re-parented) whose environment holds `marker`."""
    found = []
    needle = f"SAY_TEST_MARKER={marker}".encode()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        with contextlib.suppress(OSError), open(f"/proc/{entry}/environ", "rb") as f:
            if needle in f.read().split(b"\0"):
                found.append(int(entry))
    return found


def assert_one_clean_error_line(done: Done, fake: FakeElevenLabs | None = None) -> str:
    assert done.returncode != 0
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert "Traceback" not in done.stderr
    key = fake.api_key if fake else "test-key-0123456789abcdef"
    assert key not in done.stderr and key not in done.stdout
    assert not processes_with_marker(done.marker), "ffmpeg left running"
    return lines[0]


@pytest.fixture
async def fake(fake_elevenlabs: FakeElevenLabs) -> FakeElevenLabs:
    # Warm the fake's render cache so the subprocess does not wait on espeak.
    for fmt in ("mp3_44100_128", "pcm_48000", "pcm_24000"):
        await speech.render_speech(VOICE, TEXT, fmt)
    return fake_elevenlabs


def read_wav(path: Path) -> tuple[wave._wave_params, bytes]:
    with wave.open(str(path), "rb") as f:
        return f.getparams(), f.readframes(f.getnframes())


# ---------------------------------------------------------------------------- success


@pytest.mark.parametrize("output_format", ["mp3_44100_128", "pcm_48000", "pcm_24000"])
async def test_say_writes_the_frames_and_a_consistent_json_summary(
    fake: FakeElevenLabs, tmp_path: Path, output_format: str
) -> None:
    out = tmp_path / "out.wav"
    done = await say(
        fake, tmp_path, TEXT, "--voice", VOICE, "--format", output_format,
        "--out", str(out), "--json",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    params, pcm = read_wav(out)
    assert (params.nchannels, params.sampwidth, params.framerate) == (2, 2, 48_000)
    assert len(pcm) % FRAME_BYTES == 0
    (request,) = fake.tts_requests
    assert request.query["output_format"] == output_format
    assert summary["voice_id"] == VOICE
    assert summary["request_id"] == request.request_id
    assert summary["characters"] == len(TEXT)
    assert summary["character_cost"] == fake.character_cost(TEXT, request.json["model_id"])
    assert summary["frames"] == len(pcm) // FRAME_BYTES
    assert summary["audio_ms"] == summary["frames"] * 20 == round(params.nframes / 48)
    assert 0 < summary["first_byte_ms"] <= summary["first_frame_ms"] <= summary["total_ms"]
    reference = await speech.reference_pcm(VOICE, TEXT, channels=2)
    ref_s = len(reference) / (48_000 * 4)
    wav_s = params.nframes / 48_000
    # Within two mp3 frames of the speech, plus the padding of the last 20 ms frame.
    assert abs(wav_s - ref_s) <= 2 * MP3_FRAME_S + 0.02, (wav_s, ref_s)
    if output_format == "pcm_48000":
        assert pcm[: len(reference)] == reference
    assert not processes_with_marker(done.marker)


async def test_a_voice_by_exact_name_any_case(fake: FakeElevenLabs, tmp_path: Path) -> None:
    done = await say(fake, tmp_path, TEXT, "--voice", "rACHEL", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["voice_id"] == VOICE
    assert fake.tts_requests[0].path.endswith(f"/{VOICE}/stream")


def _unique_prefix(fake: FakeElevenLabs) -> tuple[str, str]:
    names = [v["name"] for v in fake.voices]
    for voice in fake.available_voices:
        name = voice["name"]
        for n in range(2, len(name)):
            prefix = name[:n].lower()
            if prefix.isalpha() and [x.lower().startswith(prefix) for x in names].count(True) == 1:
                return name[:n], voice["voice_id"]
    raise AssertionError("no voice has a unique prefix")


def _ambiguous_prefix(fake: FakeElevenLabs) -> tuple[str, list[str]]:
    names = sorted({v["name"] for v in fake.voices})
    for name in names:
        prefix = name[:2]
        matches = [x for x in names if x.lower().startswith(prefix.lower())]
        if prefix.isalpha() and len(matches) >= 2 and prefix.lower() not in map(str.lower, names):
            return prefix, matches
    raise AssertionError("no ambiguous prefix")


async def test_a_voice_by_unique_prefix(fake: FakeElevenLabs, tmp_path: Path) -> None:
    prefix, voice_id = _unique_prefix(fake)
    text = "Short."
    done = await say(fake, tmp_path, text, "--voice", prefix, "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["voice_id"] == voice_id


async def test_an_unknown_name_suggests_near_ones(fake: FakeElevenLabs, tmp_path: Path) -> None:
    done = await say(fake, tmp_path, TEXT, "--voice", "Rachl")
    line = assert_one_clean_error_line(done, fake)
    assert "Rachl" in line and "Rachel" in line
    assert fake.tts_requests == []


async def test_an_ambiguous_prefix_lists_the_candidates(
    fake: FakeElevenLabs, tmp_path: Path
) -> None:
    prefix, matches = _ambiguous_prefix(fake)
    done = await say(fake, tmp_path, TEXT, "--voice", prefix)
    line = assert_one_clean_error_line(done, fake)
    assert all(name in line for name in matches[:2]), line
    assert fake.tts_requests == []


@pytest.mark.parametrize(
    "setting",
    [
        ("--stability", "1.5"),
        ("--similarity", "-0.1"),
        ("--style", "2"),
        ("--speed", "0.5"),
        ("--speed", "1.3"),
        ("--stability", "abc"),
    ],
)
async def test_out_of_range_settings_are_refused_before_any_request(
    fake: FakeElevenLabs, tmp_path: Path, setting: tuple[str, str]
) -> None:
    done = await say(fake, tmp_path, TEXT, "--voice", VOICE, *setting)
    assert_one_clean_error_line(done, fake)
    assert done.returncode == 2
    assert fake.requests == []


async def test_settings_in_range_reach_the_request(fake: FakeElevenLabs, tmp_path: Path) -> None:
    done = await say(
        fake, tmp_path, TEXT, "--voice", VOICE, "--stability", "0.3", "--speed", "1.2",
        "--no-speaker-boost",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    sent = fake.tts_requests[0].json["voice_settings"]
    assert sent["stability"] == 0.3 and sent["speed"] == 1.2
    assert sent["use_speaker_boost"] is False


# ---------------------------------------------------------------------------- failures


async def test_a_bad_key(fake: FakeElevenLabs, tmp_path: Path) -> None:
    bad = "bad-key-9876543210fedcba"
    done = await say(fake, tmp_path, TEXT, "--voice", VOICE, ELEVENLABS_API_KEY=bad)
    line = assert_one_clean_error_line(done, fake)
    assert bad not in done.stderr
    assert "key" in line.lower() and "refused" in line.lower()


async def test_quota_exceeded(fake: FakeElevenLabs, tmp_path: Path) -> None:
    fake.character_count = fake.character_limit
    done = await say(fake, tmp_path, TEXT, "--voice", VOICE, "--out", str(tmp_path / "x.wav"))
    line = assert_one_clean_error_line(done, fake)
    assert "credits" in line.lower()
    assert not (tmp_path / "x.wav").exists()


async def test_a_cut_stream(fake: FakeElevenLabs, tmp_path: Path) -> None:
    fake.cut_next(after_bytes=4000)
    done = await say(fake, tmp_path, TEXT, "--voice", VOICE)
    line = assert_one_clean_error_line(done, fake)
    assert "cut off" in line
    assert len(fake.tts_requests) == 1  # never retried after audio started


async def test_the_network_down(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens on the port any more: connection refused, retried, then reported.
    done = await say(
        None, tmp_path, TEXT, "--voice", VOICE, base_url=f"http://127.0.0.1:{port}",
        ELEVENLABS_RETRY_BUDGET="1",
    )  # fmt: skip
    line = assert_one_clean_error_line(done)
    assert "could not reach ElevenLabs" in line


async def test_a_missing_ffmpeg(fake: FakeElevenLabs, tmp_path: Path) -> None:
    done = await say(
        fake,
        tmp_path,
        TEXT,
        "--voice",
        VOICE,
        FFMPEG_PATH="/nonexistent/ffmpeg",
        MP3_DECODER="ffmpeg",
    )
    line = assert_one_clean_error_line(done, fake)
    assert "ffmpeg" in line
    assert fake.tts_requests == []


async def test_mp3_plays_without_ffmpeg_when_libmpg123_decodes(
    fake: FakeElevenLabs, tmp_path: Path
) -> None:
    done = await say(fake, tmp_path, TEXT, "--voice", VOICE, FFMPEG_PATH="/nonexistent/ffmpeg")
    assert done.returncode == 0, done.stderr
    assert "s of audio" in done.stdout


async def test_empty_text_is_refused(fake: FakeElevenLabs, tmp_path: Path) -> None:
    done = await say(fake, tmp_path, "   ", "--voice", VOICE)
    assert_one_clean_error_line(done, fake)
    assert fake.requests == []
