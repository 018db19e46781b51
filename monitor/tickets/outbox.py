"""The outbox worker: delivers queued ticket requests, forever, one ticket per outage per sink.

Per (ticket, sink) the requests go out in order (open, then notes, then resolve); different
tickets and sinks proceed independently, so one dead sink delays nobody else. Each attempt
is counted in the store *before* it is sent: an open whose earlier attempt may have reached
the sink (attempts > 0: the reply was lost, or the process died) first asks the sink for
the existing ticket (``find_existing``) and only creates one if there is none.

Backoff: exponential from ``retry_initial`` to ``retry_max`` with "equal jitter" (half
fixed, half random, so many failed requests spread out but none retries at once), never
giving up; a sink's Retry-After is honoured as a minimum.

Maintenance: an open whose trunks are all inside a maintenance window is held, and
re-checked every MAINTENANCE_RECHECK_S; when the window ends with the outage still open
the ticket is sent then; an outage that ends inside the window never gets a ticket.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Callable, Coroutine, Mapping
from datetime import datetime, timedelta
from typing import Any

from monitor.log import get_logger
from monitor.metrics.tickets import TicketMetrics
from monitor.store.schema import OutboxStatus, TicketState
from monitor.tickets.base import (
    Action,
    Delivered,
    FindResult,
    NotFound,
    RetryLater,
    SinkResult,
    TicketContext,
    TicketRef,
    TicketRequest,
    TicketSink,
)
from monitor.tickets.ledger import OutboxRow, TicketStore
from probes.clock import Clock, utc_now
from probes.untrusted import truncate_untrusted

log = get_logger("trunkwatch.tickets")

# How often a held open is re-checked against the maintenance calendar: the lateness of
# a ticket opened at a window's end, which the contract counts against the customer.
MAINTENANCE_RECHECK_S = 1.0
# With nothing due, the worker still looks at the store this often (another process, e.g.
# the CLI, may have queued or changed requests).
IDLE_POLL_S = 30.0
# A database error in the worker's own loop: wait this long before looking again.
DB_ERROR_PAUSE_S = 2.0
# Deliveries in flight at once across all sinks (each is one HTTP/SMTP exchange).
MAX_IN_FLIGHT = 32

InMaintenance = Callable[[str, datetime], bool]
Compose = Callable[[OutboxRow, TicketRef | None, int], TicketRequest]


def backoff_delay(
    attempt: int,
    initial_s: float,
    max_s: float,
    rng: random.Random,
    retry_after_s: float | None = None,
) -> float:
    """Seconds before retry number ``attempt`` (1 = the first retry): equal jitter."""
    exponent = min(max(attempt - 1, 0), 62)  # 2**62 s is past any cap; avoids overflow
    ceiling = min(max_s, initial_s * 2.0**exponent)
    delay = ceiling / 2 + rng.uniform(0, ceiling / 2)
    if retry_after_s is not None:
        delay = max(delay, retry_after_s)
    return delay


def never_in_maintenance(_trunk: str, _at: datetime) -> bool:
    return False


class OutboxWorker:
    """Runs until cancelled; ``wake()`` after queuing requests makes it look at once."""

    def __init__(
        self,
        db: TicketStore,
        sinks: Mapping[str, TicketSink],
        compose: Compose,
        *,
        clock: Clock,
        in_maintenance: InMaintenance = never_in_maintenance,
        metrics: TicketMetrics | None = None,
        retry_initial_s: float = 1.0,
        retry_max_s: float = 300.0,
        rng: random.Random | None = None,
        leads: Callable[[], bool] = lambda: True,
    ) -> None:
        self._db = db
        self._leads = leads  # only the leader delivers (monitor/leadership.py)
        self._sinks = sinks
        self._compose = compose
        self._clock = clock
        self._in_maintenance = in_maintenance
        self.metrics = metrics or TicketMetrics()
        self._retry_initial_s = retry_initial_s
        self._retry_max_s = retry_max_s
        self._rng = rng or random.Random()
        self._wake = asyncio.Event()
        self._in_flight: dict[tuple[str, str], asyncio.Task[None]] = {}
        self._slots = asyncio.Semaphore(MAX_IN_FLIGHT)
        # A ticket whose delivery raised (its store writes failed) waits before the next
        # try, so a failing database is not hammered in a tight loop.
        self._cooldown: dict[tuple[str, str], datetime] = {}

    def wake(self) -> None:
        self._wake.set()

    async def run(self) -> None:
        try:
            while True:
                try:
                    timeout = await self._pass()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    log.error("ticket_outbox_error", error=truncate_untrusted(repr(exc), 200))
                    timeout = DB_ERROR_PAUSE_S
                # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancel
                # that arrives as the event is set, and the worker would never stop.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._wake.wait()
                self._wake.clear()
        finally:
            await self._cancel_in_flight()

    async def drain(self, timeout_s: float) -> None:
        """Wait (at most timeout_s) for deliveries in flight; for an orderly stop."""
        tasks = list(self._in_flight.values())
        if tasks:
            await asyncio.wait(tasks, timeout=timeout_s)

    async def _cancel_in_flight(self) -> None:
        tasks = list(self._in_flight.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _pass(self) -> float:
        """Start every due delivery; seconds until the next thing is due."""
        if not self._leads():
            return IDLE_POLL_S
        rows = await self._db.live_rows()
        now = utc_now(self._clock)
        self.metrics.pending = sum(1 for r in rows if r.status == OutboxStatus.PENDING)
        heads: dict[tuple[str, str], OutboxRow] = {}
        later: dict[tuple[str, str], list[OutboxRow]] = {}
        for row in rows:
            pair = (row.ticket_key, row.sink)
            if pair in heads:
                later.setdefault(pair, []).append(row)
            else:
                heads[pair] = row
        next_due: datetime | None = None
        for pair, row in heads.items():
            if pair in self._in_flight:
                continue
            due = max(row.due_at, self._cooldown.get(pair, row.due_at))
            if due > now:
                next_due = due if next_due is None else min(next_due, due)
                continue
            self._cooldown.pop(pair, None)
            if row.status == OutboxStatus.HELD:
                resolved = any(r.action is Action.RESOLVE for r in later.get(pair, []))
                self._start(pair, self._recheck_hold(row, ended=resolved))
            else:
                self._start(pair, self._deliver(row))
        if next_due is None:
            return IDLE_POLL_S
        return min(IDLE_POLL_S, max(0.0, (next_due - now).total_seconds()))

    def _start(self, pair: tuple[str, str], work: Coroutine[Any, Any, None]) -> None:
        async def run() -> None:
            try:
                async with self._slots:
                    await work
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the store failed (or a bug): pause this ticket
                self._cooldown[pair] = utc_now(self._clock) + timedelta(seconds=DB_ERROR_PAUSE_S)
                log.error(
                    "ticket_delivery_error",
                    ticket_key=pair[0],
                    sink=pair[1],
                    error=truncate_untrusted(repr(exc), 200),
                )
            finally:
                self._in_flight.pop(pair, None)
                self._wake.set()

        self._in_flight[pair] = asyncio.create_task(run(), name=f"ticket:{pair[1]}:{pair[0]}")

    def _maintenance(self, context: TicketContext, at: datetime) -> bool:
        return all(self._in_maintenance(trunk, at) for trunk in context.trunks)

    async def _recheck_hold(self, row: OutboxRow, *, ended: bool) -> None:
        now = utc_now(self._clock)
        if ended:
            await self._db.suppress(row, now)
            log.info(
                "ticket_suppressed", sink=row.sink, ticket_key=row.ticket_key, why="maintenance"
            )
        elif self._maintenance(row.context, now):
            await self._db.hold(row, now + timedelta(seconds=MAINTENANCE_RECHECK_S))
        else:
            await self._db.release(row, now)
            log.info("ticket_released", sink=row.sink, ticket_key=row.ticket_key)

    async def _deliver(self, row: OutboxRow) -> None:
        now = utc_now(self._clock)
        if row.action is Action.OPEN and row.attempts == 0 and self._maintenance(row.context, now):
            await self._db.hold(row, now + timedelta(seconds=MAINTENANCE_RECHECK_S))
            log.info(
                "ticket_held",
                sink=row.sink,
                ticket_key=row.ticket_key,
                trunks=",".join(row.context.trunks),
                why="maintenance",
            )
            return
        sink = self._sinks.get(row.sink)
        if sink is None:
            # Removed from config with requests still queued: keep them for when it's back.
            await self._retry(row, RetryLater(f"sink {row.sink!r} is not configured"))
            return
        ticket_row = await self._db.ticket_of(row)
        ticket = ticket_row.ticket_ref() if ticket_row is not None else None
        if row.action is not Action.OPEN and ticket is None:
            if ticket_row is None or ticket_row.state in (
                TicketState.FAILED,
                TicketState.SUPPRESSED,
            ):
                await self._db.cancel(row, now, "cancelled: no ticket was opened")
            else:
                await self._retry(row, RetryLater("the ticket is not open yet"))
            return
        if not await self._db.claim(row, now):
            return  # merged into a grouped ticket, or changed by another worker
        request = self._compose(row, ticket, row.attempts + 1)
        try:
            result = await self._send(sink, row, request)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a sink bug: retried with backoff like any failure
            log.error(
                "ticket_sink_error",
                sink=row.sink,
                ticket_key=row.ticket_key,
                error=truncate_untrusted(repr(exc), 200),
            )
            result = RetryLater(f"internal error: {truncate_untrusted(repr(exc), 160)}")
        await self._record(row, request, result)

    async def _send(self, sink: TicketSink, row: OutboxRow, request: TicketRequest) -> SinkResult:
        if row.action is Action.OPEN:
            if row.attempts > 0:
                found: FindResult = await sink.find_existing(request)
                if isinstance(found, Delivered):
                    log.info(
                        "ticket_found_existing",
                        sink=row.sink,
                        ticket_key=row.ticket_key,
                        external_id=found.ref.external_id if found.ref else None,
                    )
                    return found
                if not isinstance(found, NotFound):
                    return found
            return await sink.open(request)
        if row.action is Action.UPDATE:
            return await sink.update(request)
        return await sink.resolve(request)

    async def _record(self, row: OutboxRow, request: TicketRequest, result: SinkResult) -> None:
        now = utc_now(self._clock)
        if isinstance(result, Delivered):
            self.metrics.count(row.sink, "success")
            if row.action is Action.OPEN:
                ref = result.ref or TicketRef(external_id=request.ref)
                await self._db.opened(row, ref, now)
                latency = (now - row.context.confirmed_at).total_seconds()
                self.metrics.observe_open_latency(row.sink, latency)
                log.info(
                    "ticket_opened",
                    sink=row.sink,
                    ticket_key=row.ticket_key,
                    ref=request.ref,
                    external_id=ref.external_id,
                    number=ref.number,
                    attempts=row.attempts + 1,
                    latency_s=round(latency, 3),
                )
            else:
                await self._db.delivered(row, now)
                log.info(
                    f"ticket_{row.action.value}d",
                    sink=row.sink,
                    ticket_key=row.ticket_key,
                    attempts=row.attempts + 1,
                )
        elif isinstance(result, RetryLater):
            self.metrics.count(row.sink, "retry")
            await self._retry(row, result, attempt=row.attempts + 1)
        else:
            self.metrics.count(row.sink, "rejected")
            await self._db.failed(row, now, result.reason)
            log.error(
                "ticket_rejected",
                sink=row.sink,
                ticket_key=row.ticket_key,
                action=row.action.value,
                reason=result.reason,
            )

    async def _retry(self, row: OutboxRow, result: RetryLater, attempt: int | None = None) -> None:
        delay = backoff_delay(
            attempt if attempt is not None else max(row.attempts, 1),
            self._retry_initial_s,
            self._retry_max_s,
            self._rng,
            result.retry_after_s,
        )
        await self._db.retry(row, utc_now(self._clock) + timedelta(seconds=delay), result.reason)
        log.warning(
            "ticket_retry",
            sink=row.sink,
            ticket_key=row.ticket_key,
            action=row.action.value,
            attempts=row.attempts + (0 if attempt is None else 1),
            retry_in_s=round(delay, 3),
            reason=result.reason,
        )
