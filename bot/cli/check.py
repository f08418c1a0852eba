"""`python -m bot check`: is this machine ready to run the bot? One line per problem."""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
from datetime import UTC, datetime

from bot.audio import mpg123
from bot.config import ConfigError, Settings, load_settings
from bot.errors import BotError


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("check", help="check ffmpeg, Opus, DAVE, the settings and the key")
    parser.set_defaults(handler=run)


async def ffmpeg_version(path: str) -> str:
    """The first line of `ffmpeg -version`, or raise BotError saying how to fix it."""
    resolved = shutil.which(path)
    if resolved is None:
        raise BotError(f"ffmpeg: not found at {path!r}: apt-get install ffmpeg, or set FFMPEG_PATH")
    try:
        proc = await asyncio.create_subprocess_exec(
            resolved,
            "-version",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.DEVNULL,
        )
    except OSError as exc:  # e.g. not a binary for this machine
        raise BotError(
            f"ffmpeg: {resolved} could not be run ({exc.strerror or type(exc).__name__}): "
            "reinstall ffmpeg, or set FFMPEG_PATH"
        ) from None
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout=15)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise BotError(f"ffmpeg: {resolved} -version hung: reinstall ffmpeg") from None
    if proc.returncode != 0 or not out:
        raise BotError(f"ffmpeg: {resolved} -version failed: reinstall ffmpeg, or set FFMPEG_PATH")
    first = out.decode(errors="replace").splitlines()[0]
    return " ".join(first.split()[:3])


def opus_loaded() -> bool:
    import discord.opus

    if discord.opus.is_loaded():
        return True
    return bool(discord.opus._load_default())


async def run(args: argparse.Namespace) -> int:
    problems: list[str] = []
    ok: list[str] = []
    settings: Settings | None = None
    try:
        settings = load_settings()
        ok.append("settings: valid")
    except ConfigError as exc:
        problems.append(f"settings: {exc}")

    try:
        version = await ffmpeg_version(settings.ffmpeg_path if settings else "ffmpeg")
        ok.append(f"ffmpeg: {version}")
    except BotError as exc:
        problems.append(str(exc))

    choice = settings.mp3_decoder if settings else "auto"
    if choice == "ffmpeg":
        ok.append("mp3: decoded by ffmpeg (MP3_DECODER=ffmpeg)")
    elif mpg123.available():
        ok.append("mp3: decoded in the process by libmpg123")
    elif choice == "libmpg123":
        problems.append("mp3: libmpg123 not loadable: apt-get install libmpg123-0")
    else:
        ok.append("mp3: decoded by ffmpeg (apt-get install libmpg123-0 to decode in the process)")

    if opus_loaded():
        ok.append("opus: libopus loaded")
    else:
        problems.append("opus: libopus not loadable: apt-get install libopus0")

    try:
        import davey

        ok.append(f"dave: davey {getattr(davey, '__version__', '')} importable".replace("  ", " "))
    except ImportError:
        problems.append("dave: davey missing: pip install 'discord.py[voice]>=2.7.1'")

    if settings is not None:
        if settings.elevenlabs_api_key is None:
            problems.append(
                "ELEVENLABS_API_KEY is not set: create a key at "
                "https://elevenlabs.io/app/settings/api-keys and put it in .env"
            )
        else:
            from bot.cli.common import elevenlabs_client

            try:
                async with elevenlabs_client(settings) as client:
                    sub = await client.subscription()
                reset = ""
                if sub.next_character_count_reset_unix:
                    when = datetime.fromtimestamp(sub.next_character_count_reset_unix, UTC)
                    reset = f", resets {when:%Y-%m-%d}"
                ok.append(
                    f"elevenlabs: key works, plan {sub.tier or 'unknown'}, "
                    f"{sub.remaining:,} of {sub.character_limit:,} credits left{reset}"
                )
            except BotError as exc:
                problems.append(f"elevenlabs: {exc}")
        if settings.discord_token is None:
            problems.append("DISCORD_TOKEN is not set: needed for `python -m bot run`")

    for line in ok:
        print(f"ok       {line}")
    for line in problems:
        print(f"problem  {line}", file=sys.stderr)
    return 1 if problems else 0
