"""Quota fixtures: a ledger on each backend's freshly migrated database (`db_engine`)."""

from __future__ import annotations

import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from bot.quota import QuotaLedger
from tests.quota.support import ALLOWANCE, RETENTION, TTL


@pytest.fixture
def ledger(db_engine: AsyncEngine) -> QuotaLedger:
    return QuotaLedger(
        db_engine, default_allowance=ALLOWANCE, reservation_ttl=TTL, retention=RETENTION
    )
