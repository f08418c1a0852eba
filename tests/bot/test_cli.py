"""`python -m bot run | invite | sync` as subprocesses, against the fake Discord REST.

The subprocess is started with asyncio so the fakes (in this test's event loop) keep answering.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import discord
import pytest

from bot.app import INVITE_PERMISSIONS
from tests.fakes.discord import FakeDiscordREST
from tests.fakes.elevenlabs import FakeElevenLabs

REPO = Path(__file__).resolve().parents[2]
TIMEOUT = 60


class Result:
    def __init__(self, code: int, stdout: str, stderr: str) -> None:
        self.code, self.stdout, self.stderr = code, stdout, stderr

    @property
    def lines(self) -> list[str]:
        return [line for line in self.stderr.splitlines() if line.strip()]

    def assert_one_line(self) -> str:
        assert self.code != 0, self
        assert len(self.lines) == 1, self.stderr
        assert "Traceback" not in self.stderr + self.stdout
        return self.lines[0]

    def __repr__(self) -> str:
        return f"exit {self.code}\nstdout: {self.stdout}\nstderr: {self.stderr}"


@pytest.fixture
def cli_env(
    tmp_path: Path, discord_rest: FakeDiscordREST, fake_elevenlabs: FakeElevenLabs
) -> dict[str, str]:
    """A clean environment: nothing from the developer's own .env or shell leaks in."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "PYTHONPATH": str(REPO),
        "HOME": str(tmp_path),
        "DISCORD_TOKEN": discord_rest.token,
        "DISCORD_API_BASE": discord_rest.api_base,
        "ELEVENLABS_API_KEY": fake_elevenlabs.api_key,
        "ELEVENLABS_BASE_URL": fake_elevenlabs.base_url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path}/bot.sqlite3",
    }


async def start(env: dict[str, str], cwd: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )


async def run_cli(env: dict[str, str], cwd: Path, *args: str) -> Result:
    proc = await start(env, cwd, *args)
    communicate = asyncio.ensure_future(proc.communicate())
    try:
        out, err = await asyncio.wait_for(asyncio.shield(communicate), TIMEOUT)
    except TimeoutError:
        proc.kill()
        out, err = await communicate
        raise AssertionError(
            f"python -m bot {' '.join(args)} still running after {TIMEOUT} s:\n{err.decode()}"
        ) from None
    return Result(proc.returncode or 0, out.decode(), err.decode())


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# ---------------------------------------------------------------- run: failures are one line


async def test_run_with_a_rejected_token(
    cli_env: dict[str, str], tmp_path: Path, discord_rest: FakeDiscordREST
) -> None:
    cli_env["DISCORD_TOKEN"] = "not-the-token.abcdefghijklmnop"
    result = await run_cli(cli_env, tmp_path, "run")
    line = result.assert_one_line()
    assert "Discord rejected DISCORD_TOKEN" in line
    assert "not-the-token" not in result.stderr + result.stdout
    assert discord_rest.calls_to("GET", "/users/@me")[0].status == 401


async def test_run_without_a_token(cli_env: dict[str, str], tmp_path: Path) -> None:
    del cli_env["DISCORD_TOKEN"]
    line = (await run_cli(cli_env, tmp_path, "run")).assert_one_line()
    assert "DISCORD_TOKEN is not set" in line


async def test_run_without_an_elevenlabs_key(cli_env: dict[str, str], tmp_path: Path) -> None:
    del cli_env["ELEVENLABS_API_KEY"]
    line = (await run_cli(cli_env, tmp_path, "run")).assert_one_line()
    assert "ELEVENLABS_API_KEY is not set" in line


async def test_run_without_the_message_content_intent(
    cli_env: dict[str, str], tmp_path: Path, discord_rest: FakeDiscordREST
) -> None:
    discord_rest.gateway = "identify"
    discord_rest.message_content_intent = False
    result = await run_cli(cli_env, tmp_path, "run")
    line = result.assert_one_line()
    assert "Message Content intent" in line and "READ_MESSAGES=false" in line
    assert discord_rest.gateway_sessions[-1]["closed_with"] == 4014
    assert discord_rest.token not in result.stderr + result.stdout


async def test_run_without_network(cli_env: dict[str, str], tmp_path: Path) -> None:
    cli_env["DISCORD_API_BASE"] = f"http://127.0.0.1:{closed_port()}/api/v10"
    line = (await run_cli(cli_env, tmp_path, "run")).assert_one_line()
    assert "Cannot reach Discord" in line and "DISCORD_API_BASE" in line


async def test_run_with_bad_settings(cli_env: dict[str, str], tmp_path: Path) -> None:
    cli_env["SHARD_IDS"] = "0,1"
    line = (await run_cli(cli_env, tmp_path, "run")).assert_one_line()
    assert "SHARD_IDS" in line and "SHARD_COUNT" in line


async def test_sigterm_stops_a_running_bot_cleanly(
    cli_env: dict[str, str], tmp_path: Path, discord_rest: FakeDiscordREST
) -> None:
    discord_rest.gateway = "identify"
    proc = await start(cli_env, tmp_path, "run")
    assert proc.stderr is not None
    lines: list[str] = []

    async def until_ready() -> None:
        while True:
            line = (await proc.stderr.readline()).decode()
            assert line, f"the bot exited before it was ready: {lines}"
            lines.append(line)
            if "ready as" in line:
                return

    try:
        await asyncio.wait_for(until_ready(), TIMEOUT)
        identify = discord_rest.gateway_sessions[-1]["identify"]
        assert identify is not None and "token" not in identify
        proc.send_signal(signal.SIGTERM)
        out, err = await asyncio.wait_for(proc.communicate(), TIMEOUT)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    output = "".join(lines) + err.decode() + out.decode()
    assert proc.returncode == 0, output
    assert "Traceback" not in output and discord_rest.token not in output
    assert "shutting down" in output


# ---------------------------------------------------------------- invite


async def test_invite_prints_the_url(
    cli_env: dict[str, str], tmp_path: Path, discord_rest: FakeDiscordREST
) -> None:
    result = await run_cli(cli_env, tmp_path, "invite")
    assert result.code == 0, result
    assert "Traceback" not in result.stderr
    url = urlparse(result.stdout.strip())
    assert url.netloc == "discord.com" and url.path == "/oauth2/authorize"
    query = parse_qs(url.query)
    assert query["client_id"] == [str(discord_rest.application_id)]
    assert query["scope"] == ["bot applications.commands"]
    granted = discord.Permissions(int(query["permissions"][0]))
    assert granted == INVITE_PERMISSIONS
    required = discord.Permissions(
        view_channel=True, send_messages=True, embed_links=True, connect=True, speak=True
    )
    assert required <= granted
    # Nothing an admin would balk at: no Administrator, no moderation.
    assert not granted.administrator and not granted.manage_guild and not granted.move_members


async def test_invite_with_a_rejected_token(cli_env: dict[str, str], tmp_path: Path) -> None:
    cli_env["DISCORD_TOKEN"] = "not-the-token.abcdefghijklmnop"
    result = await run_cli(cli_env, tmp_path, "invite")
    assert "Discord rejected DISCORD_TOKEN" in result.assert_one_line()
    assert not result.stdout


# ---------------------------------------------------------------- sync


def put_bodies(rest: FakeDiscordREST, guild_id: int | None) -> list[list[dict[str, Any]]]:
    if guild_id is None:
        path = rf"/applications/{rest.application_id}/commands"
    else:
        path = rf"/applications/{rest.application_id}/guilds/{guild_id}/commands"
    return [call.json for call in rest.calls_to("PUT", path)]


def names(body: list[dict[str, Any]]) -> list[str]:
    return [command["name"] for command in body]


PUBLIC = {"speak", "skip", "stop", "queue", "join", "leave", "privacy"}  # and other cogs' own


async def test_sync_puts_the_global_commands(
    cli_env: dict[str, str], tmp_path: Path, discord_rest: FakeDiscordREST
) -> None:
    result = await run_cli(cli_env, tmp_path, "sync")
    assert result.code == 0, result
    assert result.stdout.startswith("Synced ")
    (body,) = put_bodies(discord_rest, None)
    assert set(names(body)) >= PUBLIC
    assert len(names(body)) == len(set(names(body)))
    assert "admin" not in names(body)
    assert not discord_rest.guild_commands  # no DEV_GUILD_ID: no guild sync
    assert not discord_rest.unknown_calls
    assert not any("/gateway" in call.path for call in discord_rest.calls)  # never connects


async def test_sync_with_a_dev_guild_puts_admin_there_only(
    cli_env: dict[str, str], tmp_path: Path, discord_rest: FakeDiscordREST
) -> None:
    cli_env["DEV_GUILD_ID"] = "123456789012345678"
    result = await run_cli(cli_env, tmp_path, "sync")
    assert result.code == 0, result
    (global_body,) = put_bodies(discord_rest, None)
    assert "admin" not in names(global_body)
    (dev_body,) = put_bodies(discord_rest, 123456789012345678)
    assert names(dev_body) == ["admin"]
    admin = dev_body[0]
    assert int(admin["default_member_permissions"]) == discord.Permissions(administrator=True).value
    assert sorted(o["name"] for o in admin["options"]) == ["account", "sync"]


async def test_sync_to_one_guild(
    cli_env: dict[str, str], tmp_path: Path, discord_rest: FakeDiscordREST
) -> None:
    cli_env["DEV_GUILD_ID"] = "123456789012345678"
    result = await run_cli(cli_env, tmp_path, "sync", "--guild", "555555555555555555")
    assert result.code == 0, result
    assert "555555555555555555" in result.stdout
    assert not put_bodies(discord_rest, None)
    (body,) = put_bodies(discord_rest, 555555555555555555)
    assert set(names(body)) >= PUBLIC and "admin" not in names(body)
    assert len(body) == len(set(names(body)))
    assert not put_bodies(discord_rest, 123456789012345678)


async def test_sync_to_the_dev_guild_includes_admin(
    cli_env: dict[str, str], tmp_path: Path, discord_rest: FakeDiscordREST
) -> None:
    cli_env["DEV_GUILD_ID"] = "123456789012345678"
    result = await run_cli(cli_env, tmp_path, "sync", "--guild", "123456789012345678")
    assert result.code == 0, result
    (body,) = put_bodies(discord_rest, 123456789012345678)
    assert set(names(body)) >= PUBLIC | {"admin"}
    assert len(body) == len(set(names(body)))


async def test_sync_with_a_rejected_token(cli_env: dict[str, str], tmp_path: Path) -> None:
    cli_env["DISCORD_TOKEN"] = "not-the-token.abcdefghijklmnop"
    result = await run_cli(cli_env, tmp_path, "sync")
    assert "Discord rejected DISCORD_TOKEN" in result.assert_one_line()
