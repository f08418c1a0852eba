"""`python -m bot check` as a subprocess: success lines, and one line per problem."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

from tests.cli import Done, assert_one_clean_line, cli_env, run_cli
from tests.fakes.elevenlabs import FakeElevenLabs

TOKEN = "MTIzNDU2Nzg5.discord.TOKENSECRET"


async def check(fake: FakeElevenLabs, cwd: Path, **settings: str | None) -> Done:
    settings.setdefault("ELEVENLABS_BASE_URL", fake.base_url)
    settings.setdefault("ELEVENLABS_API_KEY", fake.api_key)
    settings.setdefault("DISCORD_TOKEN", TOKEN)
    return await run_cli("check", cwd=cwd, env=cli_env(**settings))


async def test_all_good(fake_elevenlabs: FakeElevenLabs, tmp_path: Path) -> None:
    fake_elevenlabs.character_count = 1_234

    done = await check(fake_elevenlabs, tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert lines[0] == "ok       settings: valid"
    assert re.fullmatch(r"ok       ffmpeg: ffmpeg version \S+", lines[1])
    assert lines[2] == "ok       mp3: decoded in the process by libmpg123"
    assert lines[3] == "ok       opus: libopus loaded"
    assert re.fullmatch(r"ok       dave: davey [\d.]+ importable", lines[4])
    assert lines[5] == (
        "ok       elevenlabs: key works, plan creator, 98,766 of 100,000 credits left, "
        "resets 2027-01-01"
    )
    assert len(lines) == 6
    assert fake_elevenlabs.api_key not in done.output and TOKEN not in done.output
    (request,) = fake_elevenlabs.requests
    assert request.path == "/v1/user/subscription"


async def test_a_bad_key(fake_elevenlabs: FakeElevenLabs, tmp_path: Path) -> None:
    wrong = "sk_wrong_key_0123456789abcdef"

    done = await check(fake_elevenlabs, tmp_path, ELEVENLABS_API_KEY=wrong)

    line = assert_one_clean_line(done, wrong, fake_elevenlabs.api_key, TOKEN)
    assert done.returncode == 1
    assert line == (
        "problem  elevenlabs: The bot's ElevenLabs API key was refused; "
        "the operator needs to check ELEVENLABS_API_KEY."
    )
    assert "ok       ffmpeg: " in done.stdout  # the other checks still ran


async def test_each_problem_is_one_line(
    fake_elevenlabs: FakeElevenLabs, tmp_path: Path, unused_tcp_port: int
) -> None:
    """Each broken thing on its own: exit 1, one problem line saying what to do."""
    cases: dict[str, tuple[dict[str, str | None], str]] = {
        "ffmpeg missing": (
            {"FFMPEG_PATH": "/nonexistent"},
            "problem  ffmpeg: not found at '/nonexistent': apt-get install ffmpeg, "
            "or set FFMPEG_PATH",
        ),
        "no key": (
            {"ELEVENLABS_API_KEY": None},
            "problem  ELEVENLABS_API_KEY is not set: create a key at "
            "https://elevenlabs.io/app/settings/api-keys and put it in .env",
        ),
        "no token": (
            {"DISCORD_TOKEN": None},
            "problem  DISCORD_TOKEN is not set: needed for `python -m bot run`",
        ),
        "malformed setting": (
            {"ELEVENLABS_MAX_CONCURRENCY": "lots"},
            "problem  settings: ELEVENLABS_MAX_CONCURRENCY: Input should be a valid integer, "
            "unable to parse string as an integer",
        ),
        "network": (
            {
                "ELEVENLABS_BASE_URL": f"http://127.0.0.1:{unused_tcp_port}",
                "ELEVENLABS_MAX_RETRIES": "1",
            },
            "problem  elevenlabs: The bot could not reach ElevenLabs; try again in a moment.",
        ),
    }
    results = await asyncio.gather(
        *(check(fake_elevenlabs, tmp_path, **env) for env, _ in cases.values())
    )

    for (case, (_, expected)), done in zip(cases.items(), results, strict=True):
        line = assert_one_clean_line(done, fake_elevenlabs.api_key, TOKEN)
        assert done.returncode == 1, case
        assert line == expected, case


async def test_quota_and_outage_are_problems(
    fake_elevenlabs: FakeElevenLabs, tmp_path: Path
) -> None:
    fake_elevenlabs.fail_next(401, "quota_exceeded", endpoint="subscription")
    quota = await check(fake_elevenlabs, tmp_path)
    fake_elevenlabs.fail_next(503, shape="text", endpoint="subscription", times=10)
    outage = await check(fake_elevenlabs, tmp_path, ELEVENLABS_MAX_RETRIES="1")

    assert assert_one_clean_line(quota, fake_elevenlabs.api_key) == (
        "problem  elevenlabs: The bot's ElevenLabs credits are used up."
    )
    assert assert_one_clean_line(outage, fake_elevenlabs.api_key) == (
        "problem  elevenlabs: ElevenLabs had a problem on its side; try again in a moment."
    )
    assert [r.status for r in fake_elevenlabs.requests] == [401, 503, 503]


async def test_several_problems_each_get_a_line(
    fake_elevenlabs: FakeElevenLabs, tmp_path: Path
) -> None:
    done = await check(
        fake_elevenlabs, tmp_path, FFMPEG_PATH="/nonexistent", ELEVENLABS_API_KEY="sk_" + "x" * 20
    )

    assert done.returncode == 1
    assert "Traceback" not in done.output
    problems = done.stderr.splitlines()
    assert [p.split(":")[0] for p in problems] == ["problem  ffmpeg", "problem  elevenlabs"]
    assert "x" * 20 not in done.output


async def test_mp3_by_ffmpeg_when_asked(fake_elevenlabs: FakeElevenLabs, tmp_path: Path) -> None:
    done = await check(fake_elevenlabs, tmp_path, MP3_DECODER="ffmpeg")
    assert done.returncode == 0, done.stderr
    assert "ok       mp3: decoded by ffmpeg (MP3_DECODER=ffmpeg)" in done.stdout.splitlines()


async def test_an_unknown_mp3_decoder_is_a_settings_problem(
    fake_elevenlabs: FakeElevenLabs, tmp_path: Path
) -> None:
    done = await check(fake_elevenlabs, tmp_path, MP3_DECODER="lame")
    assert done.returncode == 1
    assert "problem  settings: MP3_DECODER: must be one of" in done.stderr
    assert "Traceback" not in done.output
