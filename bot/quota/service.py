"""`QuotaService`: the quota ledger as the bot uses it.

The ledger decides about credits; this service is what sits between it and the bot:

- `charge(guild_id, user_id, text, choice)` is `SpeechService`'s charge factory: it estimates
  the credits (text length x the model's multiplier from GET /v1/models, cached), reserves
  them, and returns a `ServiceCharge` (a `SynthesisCharge` that also reports back here).
  A refusal is the ledger's `QuotaExceeded`, worded in characters for the person who asked.
- ElevenLabs' own quota: a synthesis that fails with `QuotaExceededError` (observed through
  the charge, or reported with `note_failure`) makes every further `charge` refuse at once
  with `AccountCreditsExhausted`, until the subscription shows credits again (asked at most
  every `account_recheck`) or its reset date; the owner is told once per episode through
  `on_account_exhausted`.
- Alerts: after each settle, the thresholds the guild crossed go to `on_alert` (the cog
  posts them); the database makes sure each is announced once per period.
- Maintenance: `start()` runs `expire_stale` every `expire_interval` and `purge_ledger` every
  `purge_interval`; `aclose()` stops it and waits for the alerts and notices in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from bot.elevenlabs.errors import ElevenLabsError, QuotaExceededError
from bot.errors import BotError
from bot.quota.charge import Decision, SynthesisCharge
from bot.quota.ledger import QuotaLedger
from bot.quota.models import (
    GuildUsage,
    Outcome,
    PurgeCounts,
    QuotaAlert,
    QuotaExceeded,
    QuotaLimit,
    Reservation,
    UserTotal,
    UserUsage,
)
from bot.quota.periods import credits_to_characters, estimate_credits

if TYPE_CHECKING:
    from bot.elevenlabs.models import Subscription, TTSModel
    from bot.tts import VoiceChoice

log = logging.getLogger(__name__)

#: The monthly allowance of a guild that set none, until Settings has `quota_default_allowance`.
DEFAULT_MONTHLY_ALLOWANCE = 20_000
#: The multiplier when the model is unknown or the list unavailable: the dearest usual rate,
#: so that an estimate errs on the side of reserving too much (the bill settles it anyway).
FALLBACK_MULTIPLIER = Decimal(1)

#: After GET /v1/models failed, how long estimates use what is known before asking again.
MODELS_RETRY = timedelta(minutes=1)
#: Seconds `aclose` waits for alerts and owner notices still being sent.
CLOSE_GRACE = 5.0

AlertHook = Callable[[QuotaAlert], Awaitable[None]]
AccountHook = Callable[["AccountExhausted"], Awaitable[None]]


class ElevenLabsAccount(Protocol):
    """What the service asks of `ElevenLabsClient`."""

    async def models(self) -> list[TTSModel]: ...

    async def subscription(self) -> Subscription: ...


def discord_date(instant: datetime, style: str = "D") -> str:
    """Discord's timestamp markup: every reader sees the instant in their own time zone."""
    return f"<t:{int(instant.timestamp())}:{style}>"


# ---------------------------------------------------------------------------- settings


@dataclass(frozen=True, slots=True)
class QuotaSettings:
    """The quota knobs, read from `Settings`."""

    default_allowance: int = DEFAULT_MONTHLY_ALLOWANCE
    reservation_ttl: timedelta = timedelta(minutes=10)
    retention: timedelta = timedelta(days=400)

    @classmethod
    def from_settings(cls, settings: Any) -> QuotaSettings:
        """`QUOTA_DEFAULT_ALLOWANCE`, `QUOTA_RESERVATION_TTL_SECONDS`,
        `QUOTA_LEDGER_RETENTION_DAYS`."""
        return cls(
            default_allowance=settings.quota_default_allowance,
            reservation_ttl=timedelta(seconds=settings.quota_reservation_ttl_seconds),
            retention=timedelta(days=settings.quota_ledger_retention_days),
        )

    def ledger(self, engine: Any) -> QuotaLedger:
        return QuotaLedger(
            engine,
            default_allowance=self.default_allowance,
            reservation_ttl=self.reservation_ttl,
            retention=self.retention,
        )


# ---------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class ModelRate:
    """A model's price: credits per character (GET /v1/models), and its name for display."""

    model_id: str
    name: str
    multiplier: Decimal
    known: bool = True  # False: the model was not in the list; the fallback rate applies

    def characters(self, credits: int) -> int:
        return credits_to_characters(credits, self.multiplier)


@dataclass(frozen=True, slots=True)
class QuotaView:
    """Everything `/quota show` prints, read in one go."""

    guild: GuildUsage
    user: UserUsage
    rate: ModelRate


@dataclass(frozen=True, slots=True)
class MaintenanceReport:
    expired: int
    purged: PurgeCounts | None  # None: no purge was due in this step


@dataclass(frozen=True, slots=True)
class AccountExhausted:
    """ElevenLabs refused a synthesis: the bot's account has no credits left."""

    noticed_at: datetime
    resets_at: datetime | None = None  # the subscription's next reset, when known
    tier: str | None = None
    character_count: int | None = None
    character_limit: int | None = None
    request_id: str | None = None

    def describe(self) -> str:
        """One paragraph for the owner (a DM or a log line): what happened, what to do."""
        used = ""
        if self.character_count is not None and self.character_limit is not None:
            used = f" ({self.character_count:,} of {self.character_limit:,} credits used"
            used += f", plan {self.tier})" if self.tier else ")"
        when = (
            f"They renew on {self.resets_at:%Y-%m-%d %H:%M} UTC"
            if self.resets_at is not None
            else "The renewal date is unknown"
        )
        return (
            f"ElevenLabs refused a synthesis: the bot's ElevenLabs credits are used up{used}. "
            f"{when}; until then nobody can use the bot's speech. Upgrade the plan or add "
            "credits to resume sooner."
        )


class AccountCreditsExhausted(BotError):
    """The refusal while ElevenLabs' own quota is used up: nothing was reserved."""

    def __init__(self, resets_at: datetime | None) -> None:
        self.resets_at = resets_at
        when = (
            f"; they renew {discord_date(resets_at, 'R')}, on {discord_date(resets_at)}"
            if resets_at is not None
            else "; try again later"
        )
        super().__init__(f"The bot's ElevenLabs credits are used up{when}.")


class QuotaRefused(QuotaExceeded):
    """The ledger's `QuotaExceeded`, worded for the person who asked: in characters.

    Still a `QuotaExceeded` (same fields), so anything that handles that handles this.
    """

    def __init__(self, refused: QuotaExceeded, *, rate: ModelRate, characters: int) -> None:
        super().__init__(
            refused.limit,
            remaining=refused.remaining,
            requested=refused.requested,
            limit_credits=refused.limit_credits,
            resets_at=refused.resets_at,
        )
        self.rate = rate
        self.characters = characters
        self.remaining_characters = rate.characters(self.remaining)
        renews = f"{discord_date(self.resets_at, 'R')} ({discord_date(self.resets_at)})"
        if refused.limit is QuotaLimit.GUILD_PERIOD:
            what = "This server's monthly text-to-speech allowance"
        else:
            what = "Your daily text-to-speech allowance on this server"
        if self.remaining_characters == 0:
            message = f"{what} is used up; it renews {renews}."
        else:
            message = (
                f"{what} has about {self.remaining_characters:,} characters left, not enough "
                f"for this message ({characters:,}); send a shorter one, or wait: it renews "
                f"{renews}."
            )
        self.message = message
        self.args = (message,)


# ---------------------------------------------------------------------------- the charge


class ServiceCharge(SynthesisCharge):
    """A `SynthesisCharge` that tells the service how its synthesis ended.

    A billed settle triggers the alert check (in the background: it may post to Discord)
    and proves the ElevenLabs account works; a `QuotaExceededError` leaving the block marks
    the account as exhausted.
    """

    def __init__(self, service: QuotaService, reservation: Reservation) -> None:
        super().__init__(service.ledger, reservation)
        self._service = service

    async def _finish(self, outcome: Outcome) -> bool:
        changed = await super()._finish(outcome)
        if changed and self.decision is Decision.SETTLE:
            self._service.settled(self.reservation.guild_id, self.reservation.created_at)
        return changed

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is not None:
            self._service.note_failure(exc)
        await super().__aexit__(exc_type, exc, tb)


@dataclass(frozen=True, slots=True)
class _Exhaustion:
    since: datetime
    recheck_at: datetime  # when `charge` asks the subscription again
    resets_at: datetime | None = None
    request_id: str | None = None


# ---------------------------------------------------------------------------- the service


class QuotaService:
    """The quota as the bot uses it; built in `setup_hook`, closed in `close()`."""

    def __init__(
        self,
        ledger: QuotaLedger,
        *,
        client: ElevenLabsAccount,
        default_model: str,
        models_ttl: timedelta = timedelta(minutes=10),
        expire_interval: timedelta = timedelta(minutes=1),
        purge_interval: timedelta = timedelta(hours=6),
        account_recheck: timedelta = timedelta(minutes=5),
        on_alert: AlertHook | None = None,
        on_account_exhausted: AccountHook | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if min(models_ttl, expire_interval, purge_interval, account_recheck) <= timedelta(0):
            raise ValueError("the quota service's intervals must be positive")
        self.ledger = ledger
        self.client = client
        self.default_model = default_model
        self.models_ttl = models_ttl
        self.expire_interval = expire_interval
        self.purge_interval = purge_interval
        self.account_recheck = account_recheck
        self.on_alert = on_alert
        self.on_account_exhausted = on_account_exhausted
        self._clock = clock or (lambda: datetime.now(UTC))
        self._models: tuple[datetime, dict[str, TTSModel]] | None = None
        self._models_lock = asyncio.Lock()
        self._models_failed_at: datetime | None = None
        self._exhausted: _Exhaustion | None = None
        self._owner_told = False
        self._learning: asyncio.Task[None] | None = None
        self._account_lock = asyncio.Lock()
        self._next_purge: datetime | None = None
        self._maintenance: asyncio.Task[None] | None = None
        self._stopping = asyncio.Event()
        self._background: set[asyncio.Task[Any]] = set()

    # ------------------------------------------------------------------ charging

    async def charge(
        self, guild_id: int, user_id: int, text: str, choice: VoiceChoice
    ) -> SynthesisCharge:
        """Reserve the estimate of speaking `text` with `choice`; the charge to wrap the job in.

        Raises `AccountCreditsExhausted` while ElevenLabs' credits are used up and
        `QuotaExceeded` (a `QuotaRefused`) when the guild's or the member's allowance is.
        """
        rate = await self.model_rate(choice.model_id)
        characters = len(text)
        credits = estimate_credits(characters, rate.multiplier)
        await self._check_account(credits)
        try:
            reservation = await self.ledger.reserve(
                guild_id,
                user_id,
                credits,
                model_id=rate.model_id,
                voice_id=choice.voice_id,
                characters=characters,
                now=self._clock(),
            )
        except QuotaExceeded as refused:
            log.info(
                "guild %s: refused %d credits for user %s (%s, %d left)",
                guild_id,
                credits,
                user_id,
                refused.limit,
                refused.remaining,
            )
            raise QuotaRefused(refused, rate=rate, characters=characters) from None
        return ServiceCharge(self, reservation)

    async def model_rate(self, model_id: str | None) -> ModelRate:
        """The price of `model_id` (None: the bot's default model), from the cached list.

        An unknown model, or no list at all (ElevenLabs unreachable), costs the fallback
        rate: a reservation a little too large rather than a synthesis refused for it.
        """
        model_id = model_id or self.default_model
        try:
            models = await self._model_list()
        except ElevenLabsError as exc:
            log.warning("model list unavailable (%s); estimating at the fallback rate", exc)
            models = {}
        model = models.get(model_id)
        if model is None:
            return ModelRate(model_id, model_id, FALLBACK_MULTIPLIER, known=False)
        multiplier = Decimal(str(model.credits_per_character))
        if not multiplier.is_finite() or multiplier <= 0:
            multiplier = FALLBACK_MULTIPLIER
        return ModelRate(model_id, model.name or model_id, multiplier)

    async def _model_list(self) -> dict[str, TTSModel]:
        async with self._models_lock:
            now = self._clock()
            if self._models is not None and now - self._models[0] < self.models_ttl:
                return self._models[1]
            failed = self._models_failed_at
            if failed is not None and now - failed < MODELS_RETRY:
                # Do not make every utterance wait for the client's retries meanwhile.
                return self._models[1] if self._models is not None else {}
            try:
                fetched = await self.client.models()
            except ElevenLabsError:
                self._models_failed_at = now
                if self._models is None:
                    raise
                log.warning("model list refresh failed; keeping the previous prices")
                return self._models[1]
            self._models_failed_at = None
            models = {model.model_id: model for model in fetched}
            self._models = (now, models)
            return models

    # ------------------------------------------------------------------ ElevenLabs' own quota

    @property
    def account_exhausted(self) -> bool:
        return self._exhausted is not None

    def note_failure(self, error: BaseException) -> None:
        """A synthesis failed with `error`: if ElevenLabs' quota is used up, stop charging.

        Safe to call for any error and more than once (the charge calls it itself).
        """
        if not isinstance(error, QuotaExceededError):
            return
        now = self._clock()
        known = self._exhausted
        self._exhausted = _Exhaustion(
            since=known.since if known else now,
            recheck_at=now + self.account_recheck,
            resets_at=known.resets_at if known else None,
            request_id=error.request_id,
        )
        if known is None:
            log.warning(
                "ElevenLabs credits used up (request %s): refusing speech", error.request_id
            )
        if self._learning is None or self._learning.done():
            # One subscription request for a burst of failures, not one each.
            self._learning = self._spawn(self._learn_account(), name="quota: ElevenLabs account")

    async def _learn_account(self) -> None:
        """Read the subscription for the reset date, then tell the owner (once)."""
        subscription = await self._subscription()
        state = self._exhausted
        if state is None:
            return
        if subscription is not None:
            state = replace(state, resets_at=_reset_of(subscription))
            self._exhausted = replace(
                state, recheck_at=_earliest(state.recheck_at, state.resets_at)
            )
        if self._owner_told:
            return
        self._owner_told = True
        notice = AccountExhausted(
            noticed_at=state.since,
            resets_at=state.resets_at,
            tier=subscription.tier if subscription else None,
            character_count=subscription.character_count if subscription else None,
            character_limit=subscription.character_limit if subscription else None,
            request_id=state.request_id,
        )
        log.warning("owner notice: %s", notice.describe())
        if self.on_account_exhausted is not None:
            await self.on_account_exhausted(notice)

    async def _check_account(self, credits: int) -> None:
        if self._exhausted is None:
            return
        async with self._account_lock:
            state = self._exhausted
            if state is None:
                return
            now = self._clock()
            if now < state.recheck_at:
                raise AccountCreditsExhausted(_future(state.resets_at, now))
            subscription = await self._subscription()
            if subscription is None:
                # Cannot tell: let this one try; a refusal puts the gate back.
                self._exhausted = replace(state, recheck_at=now + self.account_recheck)
                return
            resets_at = _reset_of(subscription)
            if subscription.remaining >= credits:
                log.info("ElevenLabs credits available again: speech resumes")
                self._exhausted = None
                return
            self._exhausted = replace(
                state,
                resets_at=resets_at,
                recheck_at=_earliest(now + self.account_recheck, _future(resets_at, now)),
            )
            raise AccountCreditsExhausted(_future(resets_at, now))

    async def _subscription(self) -> Subscription | None:
        try:
            return await self.client.subscription()
        except ElevenLabsError as exc:
            log.warning("subscription unavailable: %s", exc)
            return None

    # ------------------------------------------------------------------ after a settle: alerts

    def settled(self, guild_id: int, reserved_at: datetime | None = None) -> None:
        """A synthesis was billed: the guild may have crossed a threshold.

        One admitted after ElevenLabs ran out (`reserved_at` later than that) also proves
        that the account has credits again; one already in flight then proves nothing.
        """
        state = self._exhausted
        if state is None or reserved_at is None or reserved_at >= state.since:
            if state is not None:
                log.info("a synthesis was billed: ElevenLabs credits available again")
            self._exhausted = None
            self._owner_told = False
        self._spawn(self.check_alerts(guild_id), name=f"quota alerts guild {guild_id}")

    async def check_alerts(self, guild_id: int, now: datetime | None = None) -> list[QuotaAlert]:
        """Claim the thresholds `guild_id` crossed and hand the highest to `on_alert`, once.

        Crossing 80 % and 100 % in one synthesis claims both but announces only "all used":
        an "80 % used" posted next to it would only confuse.
        """
        alerts = await self.ledger.crossed_alerts(guild_id, now or self._clock())
        if not alerts:
            return alerts
        alert = max(alerts, key=lambda crossed: crossed.threshold)
        log.info(
            "guild %s crossed %d%% of its allowance (%d of %d credits)",
            alert.guild_id,
            alert.threshold,
            alert.used,
            alert.allowance,
        )
        if self.on_alert is not None:
            try:
                await self.on_alert(alert)
            except Exception:
                # Claimed already: it will not be posted again this period.
                log.exception("guild %s: could not post the quota alert", alert.guild_id)
        return alerts

    # ------------------------------------------------------------------ views

    async def view(self, guild_id: int, user_id: int, model_id: str | None) -> QuotaView:
        """The guild's period, the member's day, and the price of the server's model."""
        now = self._clock()
        return QuotaView(
            guild=await self.ledger.guild_usage(guild_id, now),
            user=await self.ledger.user_usage_today(guild_id, user_id, now),
            rate=await self.model_rate(model_id),
        )

    async def top_users(self, guild_id: int, limit: int = 10) -> list[UserTotal]:
        """The members who used the most credits in the guild's current period."""
        return await self.ledger.top_users(guild_id, limit=limit, now=self._clock())

    # ------------------------------------------------------------------ maintenance

    def start(self) -> None:
        """Start the periodic maintenance (idempotent)."""
        if self._maintenance is None or self._maintenance.done():
            self._stopping = asyncio.Event()
            self._maintenance = asyncio.get_running_loop().create_task(
                self._maintain(), name="quota maintenance"
            )

    async def maintenance_step(self, now: datetime | None = None) -> MaintenanceReport:
        """Release abandoned holds; purge old rows when `purge_interval` has passed."""
        now = now or self._clock()
        expired = await self.ledger.expire_stale(now)
        purged = None
        if self._next_purge is None or now >= self._next_purge:
            purged = await self.ledger.purge_ledger(now)
            self._next_purge = now + self.purge_interval
            if purged.ledger_rows or purged.reservations or purged.counters:
                log.info("quota purge: %s", purged)
        return MaintenanceReport(expired=expired, purged=purged)

    async def _maintain(self) -> None:
        stopping = self._stopping
        while not stopping.is_set():
            try:
                await self.maintenance_step()
            except Exception:
                log.exception("quota maintenance failed; trying again next time")
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.expire_interval.total_seconds())

    async def wait_idle(self) -> None:
        """Wait for the alerts and owner notices in flight (tests, shutdown)."""
        while self._background:
            await asyncio.gather(*list(self._background), return_exceptions=True)

    async def aclose(self) -> None:
        """Stop the maintenance; give alerts and notices in flight `CLOSE_GRACE` seconds."""
        task, self._maintenance = self._maintenance, None
        if task is not None:
            # Let a step in progress finish its transaction: a database call cancelled
            # halfway leaves the SQLite driver with a connection that never closes.
            self._stopping.set()
            try:
                await asyncio.wait_for(asyncio.shield(task), CLOSE_GRACE)
            except TimeoutError:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
        if self._background:
            _done, pending = await asyncio.wait(list(self._background), timeout=CLOSE_GRACE)
            for leftover in pending:
                leftover.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, Any], *, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._background.add(task)
        task.add_done_callback(self._background_done)
        return task

    def _background_done(self, task: asyncio.Task[Any]) -> None:
        self._background.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s failed", task.get_name(), exc_info=task.exception())


def _reset_of(subscription: Subscription) -> datetime | None:
    unix = subscription.next_character_count_reset_unix
    return None if unix is None else datetime.fromtimestamp(unix, UTC)


def _future(instant: datetime | None, now: datetime) -> datetime | None:
    return instant if instant is not None and instant > now else None


def _earliest(first: datetime, second: datetime | None) -> datetime:
    return first if second is None else min(first, second)


__all__ = [
    "DEFAULT_MONTHLY_ALLOWANCE",
    "AccountCreditsExhausted",
    "AccountExhausted",
    "MaintenanceReport",
    "ModelRate",
    "QuotaRefused",
    "QuotaService",
    "QuotaSettings",
    "QuotaView",
    "ServiceCharge",
    "discord_date",
]
