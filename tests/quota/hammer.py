"""A separate process that hammers `QuotaLedger.reserve` on one guild (two-process test).

    python -m tests.quota.hammer URL GUILD ATTEMPTS CREDITS ALLOWANCE

Prints "ready" once imported and waits for a line on stdin (so that the test starts both
processes at the same moment), then makes ATTEMPTS concurrent reservations, settling each
granted one at its estimate, and prints {"granted": n, "refused": m, "first_answer": t0,
"last_answer": t1} as JSON (wall-clock instants of its first and last answered reservation).

The attempts start `RAMP` seconds apart (one second in all, many in flight at once). Fired
all at once, one process writes its whole burst in a few milliseconds, its transactions
back to back (`bot.storage.engine` queues them in memory), and SQLite's busy handler,
polling other processes every 100 ms at worst, would let it finish before the other one
got a turn: the test would then prove nothing about two processes at once.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

from bot.quota import QuotaExceeded, QuotaLedger
from bot.storage.engine import create_engine

RAMP = 0.005


async def main(url: str, guild_id: int, attempts: int, credits: int, allowance: int) -> dict:
    engine = create_engine(url)
    ledger = QuotaLedger(engine, default_allowance=allowance)

    answered: list[float] = []  # wall-clock instants the database answered a reservation

    async def one(index: int, user_id: int) -> bool:
        await asyncio.sleep(index * RAMP)
        try:
            reservation = await ledger.reserve(
                guild_id, user_id, credits, model_id=None, voice_id=None, characters=credits
            )
        except QuotaExceeded:
            answered.append(time.time())
            return False
        answered.append(time.time())
        await ledger.settle(reservation, None)
        return True

    try:
        results = await asyncio.gather(*(one(i, 1000 + i % 5) for i in range(attempts)))
    finally:
        await engine.dispose()
    return {
        "granted": sum(results),
        "refused": attempts - sum(results),
        "first_answer": min(answered),
        "last_answer": max(answered),
    }


if __name__ == "__main__":
    url, guild, attempts, credits, allowance = sys.argv[1:]
    print("ready", flush=True)
    sys.stdin.readline()
    print(
        json.dumps(asyncio.run(main(url, int(guild), int(attempts), int(credits), int(allowance))))
    )
