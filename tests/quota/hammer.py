"""A separate process that hammers `QuotaLedger.reserve` on one guild (two-process test).

    python -m tests.quota.hammer URL GUILD ATTEMPTS CREDITS ALLOWANCE

Prints "ready" once imported and waits for a line on stdin (so that the test starts both
processes at the same moment), then makes ATTEMPTS concurrent reservations, settling each
granted one at its estimate, and prints {"granted": n, "refused": m} as JSON.
"""

from __future__ import annotations

import asyncio
import json
import sys

from bot.quota import QuotaExceeded, QuotaLedger
from bot.storage.engine import create_engine


async def main(url: str, guild_id: int, attempts: int, credits: int, allowance: int) -> dict:
    engine = create_engine(url)
    ledger = QuotaLedger(engine, default_allowance=allowance)

    async def one(user_id: int) -> bool:
        try:
            reservation = await ledger.reserve(
                guild_id, user_id, credits, model_id=None, voice_id=None, characters=credits
            )
        except QuotaExceeded:
            return False
        await ledger.settle(reservation, None)
        return True

    try:
        results = await asyncio.gather(*(one(1000 + i % 5) for i in range(attempts)))
    finally:
        await engine.dispose()
    return {"granted": sum(results), "refused": attempts - sum(results)}


if __name__ == "__main__":
    url, guild, attempts, credits, allowance = sys.argv[1:]
    print("ready", flush=True)
    sys.stdin.readline()
    print(
        json.dumps(asyncio.run(main(url, int(guild), int(attempts), int(credits), int(allowance))))
    )
