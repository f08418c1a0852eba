"""Running `python -m bot` as a subprocess against the fake, from an empty directory."""

from __future__ import annotations

import asyncio
import os
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class Done:
    returncode: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def stderr_lines(self) -> list[str]:
        return self.stderr.splitlines()


def cli_env(**settings: str | None) -> dict[str, str]:
    """A clean environment: nothing from the machine's own settings leaks in."""
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": os.environ.get("HOME", "/tmp"),
        "PYTHONPATH": str(ROOT),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.update({name: value for name, value in settings.items() if value is not None})
    return env


CLI_TIMEOUT = 60.0  # seconds; a hung CLI fails its test instead of the whole run


async def run_cli(*args: str, cwd: Path, env: dict[str, str]) -> Done:
    """Run `python -m bot ARGS` in `cwd` (so only a .env placed there is read)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd,
        env=env,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        async with asyncio.timeout(CLI_TIMEOUT):
            out, err = await proc.communicate()
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise
    assert proc.returncode is not None
    return Done(proc.returncode, out.decode(), err.decode())


def assert_one_clean_line(done: Done, *secrets: str) -> str:
    """A failure: non-zero, exactly one line on stderr, no traceback, no secret anywhere."""
    assert done.returncode != 0, done
    assert len(done.stderr_lines) == 1, done.stderr
    assert "Traceback" not in done.output
    for secret in secrets:
        assert secret not in done.output
    return done.stderr_lines[0]
