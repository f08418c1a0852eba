"""Concurrent reservations never overspend: many tasks in one process, and two processes."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

from bot.quota import QuotaExceeded, QuotaLedger, QuotaLimit
from tests.quota.support import ALLOWANCE, GUILD, USER, counters

REPO_ROOT = Path(__file__).resolve().parents[2]


async def _attempt(ledger: QuotaLedger, user_id: int, credits: int) -> QuotaLimit | None:
    try:
        await ledger.reserve(
            GUILD, user_id, credits, model_id=None, voice_id=None, characters=credits
        )
    except QuotaExceeded as refused:
        return refused.limit
    return None


async def test_200_concurrent_reservations_grant_exactly_100(ledger, db_engine) -> None:
    credits = ALLOWANCE // 100
    results = await asyncio.gather(*(_attempt(ledger, USER + i % 13, credits) for i in range(200)))
    assert results.count(None) == 100
    assert results.count(QuotaLimit.GUILD_PERIOD) == 100
    totals = await counters(db_engine)
    assert totals == {"used": 0, "reserved": ALLOWANCE, "user_used": 0, "user_reserved": ALLOWANCE}


async def test_concurrent_reservations_against_a_user_cap(ledger, db_engine) -> None:
    await ledger.set_user_daily_cap(GUILD, 50 * 7)
    results = await asyncio.gather(*(_attempt(ledger, USER, 7) for _ in range(200)))
    assert results.count(None) == 50
    assert results.count(QuotaLimit.USER_DAY) == 150
    totals = await counters(db_engine)
    assert totals["reserved"] == totals["user_reserved"] == 350


async def test_two_processes_never_overspend(db_url, db_engine) -> None:
    """Two processes on one database (PostgreSQL, and SQLite's file locking too)."""
    credits, allowance, attempts = 10, 10 * 150, 200
    processes = [
        await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "tests.quota.hammer",
            db_url,
            str(GUILD),
            str(attempts),
            str(credits),
            str(allowance),
            cwd=REPO_ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        for _ in range(2)
    ]
    for process in processes:  # both imported and waiting: then start them together
        assert process.stdout is not None
        ready = await asyncio.wait_for(process.stdout.readline(), timeout=60)
        assert ready == b"ready\n", ready
    outputs = await asyncio.wait_for(
        asyncio.gather(*(process.communicate(b"go\n") for process in processes)), timeout=120
    )
    reports = []
    for process, (stdout, stderr) in zip(processes, outputs, strict=True):
        assert process.returncode == 0, stderr.decode()
        reports.append(json.loads(stdout))
    # Demand (400 x 10) exceeds the allowance (1500): exactly 150 are granted in total.
    assert sum(report["granted"] for report in reports) == allowance // credits
    # And the two really competed: each had reservations answered while the other did.
    # (Which one wins the grants is up to SQLite's lock and the machine's load: under load
    # one process can take all 150 before the other's first write gets the lock.)
    first, second = reports
    assert first["first_answer"] < second["last_answer"]
    assert second["first_answer"] < first["last_answer"]
    totals = await counters(db_engine)
    assert totals == {"used": allowance, "reserved": 0, "user_used": allowance, "user_reserved": 0}
