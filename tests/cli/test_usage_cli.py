"""`python -m bot usage` as a subprocess, against a database the ledger filled (both backends).

The command reads the current period at the real time, so the data is written at the real
time too and the expected reset dates are computed around the run.
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.quota import QuotaLedger, guild_period
from bot.quota.service import DEFAULT_MONTHLY_ALLOWANCE
from tests.cli import Done, assert_one_clean_line, cli_env, run_cli
from tests.quota.support import GUILD, OTHER_GUILD, OTHER_USER, USER

UNLIMITED_GUILD = 555_555_555_555_555_555


async def spend(ledger: QuotaLedger, guild_id: int, user_id: int, credits: int, *, hold=False):
    reservation = await ledger.reserve(
        guild_id, user_id, credits, model_id="eleven_flash_v2_5", voice_id="v", characters=credits
    )
    if not hold:
        await ledger.settle(reservation, credits)


@pytest.fixture
async def filled(db_engine: AsyncEngine) -> QuotaLedger:
    ledger = QuotaLedger(db_engine, default_allowance=DEFAULT_MONTHLY_ALLOWANCE)
    await ledger.set_monthly_allowance(GUILD, 1_000)
    await spend(ledger, GUILD, USER, 300)
    await spend(ledger, GUILD, OTHER_USER, 50)
    await spend(ledger, GUILD, OTHER_USER, 40, hold=True)
    await ledger.set_reset_day(OTHER_GUILD, 15)
    await spend(ledger, OTHER_GUILD, USER, 120)
    await ledger.set_monthly_allowance(UNLIMITED_GUILD, 0)
    await spend(ledger, UNLIMITED_GUILD, USER, 10)
    return ledger


async def usage(db_url: str, cwd: Path, *args: str) -> tuple[Done, set[str], set[str]]:
    """Run the command; also the reset dates a period starting around the run would have."""
    before = datetime.now(UTC)
    done = await run_cli("usage", *args, cwd=cwd, env=cli_env(DATABASE_URL=db_url))
    after = datetime.now(UTC)
    resets = {day: {guild_period(t, day).resets_at for t in (before, after)} for day in (1, 15)}
    return (
        done,
        {f"{r:%Y-%m-%d}" for r in resets[1]},
        {f"{r:%Y-%m-%d}" for r in resets[15]},
    )


def columns(line: str) -> list[str]:
    return re.split(r" {2,}", line.strip())


async def test_the_table_lists_every_guild_and_its_top_users(
    filled: QuotaLedger, db_url: str, tmp_path: Path
) -> None:
    done, resets_1st, resets_15th = await usage(db_url, tmp_path)

    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    lines = done.stdout.splitlines()
    assert columns(lines[0]) == [
        "GUILD",
        "ALLOWANCE",
        "USED",
        "RESERVED",
        "LEFT",
        "USED %",
        "RESETS",
    ]
    first, second, third = (columns(line) for line in lines[1:4])
    assert first[:6] == [str(GUILD), "1,000", "350", "40", "610", "35%"]
    assert first[6] in resets_1st
    assert second[:6] == [str(OTHER_GUILD), "20,000 (default)", "120", "0", "19,880", "0%"]
    assert second[6] in resets_15th
    assert third[:6] == [str(UNLIMITED_GUILD), "unlimited", "10", "0", "-", "-"]
    assert lines[4:] == [
        "",
        "Top users this period (credits used):",
        f"  {GUILD}: {USER} 300, {OTHER_USER} 50",
        f"  {OTHER_GUILD}: {USER} 120",
        f"  {UNLIMITED_GUILD}: {USER} 10",
    ]


async def test_json_for_one_guild(filled: QuotaLedger, db_url: str, tmp_path: Path) -> None:
    done, resets_1st, _ = await usage(db_url, tmp_path, "--guild", str(GUILD), "--json")

    assert done.returncode == 0, done.stderr
    (report,) = json.loads(done.stdout)
    resets_at = datetime.fromisoformat(report.pop("resets_at"))
    period_start = datetime.fromisoformat(report.pop("period_start"))
    assert f"{resets_at:%Y-%m-%d}" in resets_1st
    assert period_start < resets_at and period_start.day == 1
    assert report == {
        "guild_id": str(GUILD),
        "allowance": 1_000,
        "allowance_is_default": False,
        "unlimited": False,
        "used": 350,
        "reserved": 40,
        "remaining": 610,
        "reset_day": 1,
        "user_daily_cap": None,
        "top_users": [
            {"user_id": str(USER), "used": 300},
            {"user_id": str(OTHER_USER), "used": 50},
        ],
    }


async def test_an_empty_database_says_so(db_url: str, tmp_path: Path) -> None:
    done, _, _ = await usage(db_url, tmp_path)
    assert done.returncode == 0
    assert done.stdout == ""
    assert done.stderr == "No guild has used text-to-speech yet.\n"

    done, _, _ = await usage(db_url, tmp_path, "--json")
    assert (done.returncode, json.loads(done.stdout)) == (0, [])


async def test_a_missing_database_is_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "bot.sqlite3"

    done, _, _ = await usage(f"sqlite+aiosqlite:///{missing}", tmp_path)

    line = assert_one_clean_line(done)
    assert line == f"error: No database at {missing}: check DATABASE_URL, or start the bot once."
    assert not missing.exists()  # and it did not create one


async def test_an_unmigrated_database_is_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty.sqlite3"
    empty.touch()

    done, _, _ = await usage(f"sqlite+aiosqlite:///{empty}", tmp_path)

    line = assert_one_clean_line(done)
    assert line.startswith("error: Cannot read the quota tables (OperationalError: ")
    assert line.endswith("is the database migrated? Run `python -m bot db upgrade`.")
