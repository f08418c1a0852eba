"""Per-guild ElevenLabs credit quotas: reserve before a request, settle at the bill.

`QuotaLedger` is the one entry point (cogs, player and CLI use it), `SynthesisCharge` the
helper the player wraps around a streaming request (the rule and the wiring are in
`bot.quota.charge`), `periods` the pure arithmetic, `statements` the SQL that decides.

Decisions worth knowing:

- Amounts are ElevenLabs credits everywhere; characters are only computed for display
  (`credits_to_characters`).
- The guild's quota settings live in `quota_guild_config`, not in `guild_settings`, so the
  feature owns its schema and migration. NULL allowance = the bot's default, 0 = unlimited;
  NULL daily cap = no cap (setting 0 removes the cap).
- A hold is settled when the request finishes, on the counter rows of the instant it was
  taken (a request straddling midnight or a reset is charged to the day and period it
  started in). The reservation TTL must therefore exceed the longest synthesis.
- Alerts count billed credits only (not holds): a hold may still be released.
- Changing the reset day carries the used credits into the new current period: no refill.
- Privacy: forgetting a user deletes their day counters and blanks their id in the ledger
  and reservations; the rows stay so the guild's totals and the operator's bill remain
  right. The tables carry the `ERASE_USER`/`ERASE_GUILD` tags, so the storage layer's
  generic erasure does the same.
"""

from bot.quota.charge import ChargePolicy, Decision, SynthesisCharge, parse_character_cost
from bot.quota.ledger import ALERT_THRESHOLDS, QuotaLedger
from bot.quota.models import (
    GuildUsage,
    Outcome,
    PurgeCounts,
    QuotaAlert,
    QuotaConfig,
    QuotaExceeded,
    QuotaLimit,
    Reservation,
    UserTotal,
    UserUsage,
)
from bot.quota.periods import (
    Period,
    characters_to_credits,
    credits_to_characters,
    estimate_credits,
    guild_period,
    user_day,
)

__all__ = [
    "ALERT_THRESHOLDS",
    "ChargePolicy",
    "Decision",
    "GuildUsage",
    "Outcome",
    "Period",
    "PurgeCounts",
    "QuotaAlert",
    "QuotaConfig",
    "QuotaExceeded",
    "QuotaLedger",
    "QuotaLimit",
    "Reservation",
    "SynthesisCharge",
    "UserTotal",
    "UserUsage",
    "characters_to_credits",
    "credits_to_characters",
    "estimate_credits",
    "guild_period",
    "parse_character_cost",
    "user_day",
]
