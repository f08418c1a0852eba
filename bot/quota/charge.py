"""The charging rule, and `SynthesisCharge`, the helper that applies it around a request.

The rule (`ChargePolicy`): ElevenLabs bills a synthesis once it has answered with a
successful status, whatever happens to the audio afterwards. So

- a request that failed before the response headers arrived (connection error, timeout,
  cancelled while waiting), or that was answered with an error status (401, 429, 5xx), is
  **released**: nothing was billed;
- a request whose successful headers arrived is **settled**, at the ``character-cost``
  header when present, else at the reserved estimate, even if it is then cancelled (skip,
  stop, a dropped prefetch) or cut mid-stream;
- retries before the first byte (after a 429 or a connection error) belong to the same
  synthesis: they reuse the one reservation. A retry after headers is billed again, so it
  takes a new charge.

Wiring it around `ElevenLabsClient.stream_speech`, whose `on_headers` callback runs once
per attempt whose response headers say 200 (its retries before the first byte all happen
inside one `stream_speech`, so they share the charge)::

    charge = await ledger.charge(
        guild_id, user_id, estimate_credits(len(text), multiplier),
        model_id=model_id, voice_id=voice_id, characters=len(text),
    )                                            # QuotaExceeded: refuse, nothing held
    async with charge:                           # leaving it settles or releases
        async with client.stream_speech(
            voice_id, text, model_id=model_id, on_headers=charge.on_headers
        ) as stream:                             # 401, 5xx storm, dropped: released
            async for chunk in stream:           # from the headers on: charged,
                await sink.feed(chunk)           # even if skipped or cut here

With a bare aiohttp request, call ``charge.error_status(response.status)`` on an error
response (then retry or raise) and ``charge.headers_received(cost, request_id=...)`` on a
successful one, before reading the body (see ``tests/quota/test_charge.py``).

Leaving the ``async with`` normally records SUCCESS; through CancelledError, CANCELLED;
through another exception, ERROR_STATUS if no successful headers came and the last response
(or the exception's ``status``) was an error status, else FAILED. Call
``await charge.finish(outcome)`` first to record another outcome.
"""

from __future__ import annotations

import asyncio
import logging
from enum import StrEnum
from types import TracebackType
from typing import TYPE_CHECKING, Any

from bot.quota.models import Outcome, Reservation

if TYPE_CHECKING:
    from bot.quota.ledger import QuotaLedger

log = logging.getLogger(__name__)

_FINISHING: set[asyncio.Task[bool]] = set()


class Decision(StrEnum):
    SETTLE = "settle"
    RELEASE = "release"


class ChargePolicy:
    """When a synthesis is charged: the rule in this module's docstring, in one place."""

    @staticmethod
    def decide(*, headers_received: bool) -> Decision:
        """Settle once a successful response's headers have arrived; otherwise release.

        An error status is not "headers received" in this sense: it is never billed. The
        outcome (success, cancelled, failed) does not change the decision, only the record.
        """
        return Decision.SETTLE if headers_received else Decision.RELEASE


def parse_character_cost(value: str | None) -> int | None:
    """The ``character-cost`` header as credits; None when absent or not a number."""
    if value is None:
        return None
    try:
        cost = int(value.strip())
    except ValueError:
        log.warning("unparsable character-cost header %r; charging the estimate", value)
        return None
    return cost if cost >= 0 else None


class SynthesisCharge:
    """One synthesis' reservation, and what its requests have learnt so far.

    Not shared between tasks: one charge belongs to the task that streams the request.
    """

    def __init__(self, ledger: QuotaLedger, reservation: Reservation) -> None:
        self._ledger = ledger
        self.reservation = reservation
        self._headers = False
        self._billed: int | None = None
        self._estimated_parts = 0
        self._last_status: int | None = None
        self.request_id: str | None = None
        self._finishing: asyncio.Task[bool] | None = None

    @property
    def headers_seen(self) -> bool:
        """True once a successful response has started: the synthesis is billed."""
        return self._headers

    @property
    def decision(self) -> Decision:
        return ChargePolicy.decide(headers_received=self._headers)

    @property
    def billed_credits(self) -> int:
        """What a settle would charge now: the header costs, the estimate where none came."""
        return (self._billed or 0) + self._estimated_parts * self.reservation.credits

    @property
    def finished(self) -> bool:
        return self._finishing is not None

    def headers_received(
        self, character_cost: int | None, *, request_id: str | None = None
    ) -> None:
        """A successful response's headers arrived: from now on this synthesis is billed.

        Called again (a second successful response, i.e. a retry after headers, such as
        the client's retry of a 200 whose body ended before any audio), both responses
        are charged: ElevenLabs billed both.
        """
        if self._headers:
            log.warning(
                "second billed response on reservation %s; charging both", self.reservation.id
            )
        self._headers = True
        self._last_status = None
        if character_cost is None:
            self._estimated_parts += 1
        else:
            self._billed = (self._billed or 0) + character_cost
        if request_id is not None:
            self.request_id = request_id

    def on_headers(self, stream: Any) -> None:
        """`stream_speech(on_headers=...)`: reads ``character_cost`` and ``request_id``."""
        self.headers_received(stream.character_cost, request_id=stream.request_id)

    def error_status(self, status: int, *, request_id: str | None = None) -> None:
        """The response was an error status: not billed; a retry may follow on this charge."""
        self._last_status = status
        if request_id is not None:
            self.request_id = request_id

    async def finish(self, outcome: Outcome | None = None) -> bool:
        """Settle or release per `ChargePolicy`; later calls return the first call's result.

        Without an outcome the synthesis was dropped (`SpeechService` calls ``finish()`` for
        a queued item that never ran, or that the queue refused): CANCELLED.

        Shielded: a cancellation arriving while it writes does not leave the hold behind.
        Returns True when this charge changed the database (False: it was already done,
        e.g. expired and released, by this process or another).
        """
        if self._finishing is None:
            self._finishing = asyncio.ensure_future(self._finish(outcome or Outcome.CANCELLED))
            # Keep the task alive even if this charge is dropped while it runs.
            _FINISHING.add(self._finishing)
            self._finishing.add_done_callback(_FINISHING.discard)
        return await asyncio.shield(self._finishing)

    async def _finish(self, outcome: Outcome) -> bool:
        if self.decision is Decision.SETTLE:
            return await self._ledger.settle(
                self.reservation,
                self.billed_credits,
                request_id=self.request_id,
                outcome=outcome,
            )
        return await self._ledger.release(self.reservation, outcome, request_id=self.request_id)

    async def __aenter__(self) -> SynthesisCharge:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        # After an explicit `finish`, this only waits for it (the first outcome stands).
        if exc_type is None:
            outcome = Outcome.SUCCESS if self._headers else Outcome.FAILED
        elif issubclass(exc_type, asyncio.CancelledError):
            outcome = Outcome.CANCELLED
        else:
            outcome = Outcome.FAILED
        refused = self._last_status is not None or _error_status(exc) is not None
        if refused and not self._headers and outcome is not Outcome.CANCELLED:
            outcome = Outcome.ERROR_STATUS
        try:
            await self.finish(outcome)
        except Exception:
            # The hold stays; `expire_stale` gives it back after the TTL. Never mask the
            # request's own exception with a bookkeeping one.
            log.exception("could not finish reservation %s", self.reservation.id)
            if exc_type is None:
                raise


def _error_status(exc: BaseException | None) -> int | None:
    """The HTTP error status an exception carries (``ElevenLabsError.status``), if any."""
    status = getattr(exc, "status", None)
    return status if isinstance(status, int) and status >= 400 else None
