"""TicketService: what the app wires in: sinks, the outbox worker, IMAP pollers, metrics.

How app.py uses it::

    tickets = TicketService(cfg.tickets, [(t.name, t.carrier) for t in cfg.trunks],
                            in_maintenance=maintenance.covers)   # default: never
    await tickets.start(store)                # after resume(); delivers what a crash left
    ...
    tickets.on_events(events)                 # in Monitor._emit: sync, no I/O, never blocks
    await tickets.append(store, batch)        # in Monitor._flush, instead of store.append
    ExportSources(..., sections=[tickets.metrics_section(), ...])
    ...
    await tickets.stop()                      # before store.close()

``in_maintenance(trunk, at) -> bool`` answers whether ``trunk`` is inside a maintenance
window at instant ``at`` (aware UTC). It is called from the worker, often (every held
ticket once a second), so it must be a cheap in-memory lookup, not a database query.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING

import aiohttp

from monitor.events import Event, OutageClosed, OutageKind, OutageOpened
from monitor.leadership import Leadership
from monitor.log import get_logger
from monitor.metrics.exposition import Section
from monitor.metrics.tickets import TicketMetrics
from monitor.quorum import QuorumLoop
from monitor.store.lease import Lease
from monitor.store.store import Store
from monitor.tickets.base import TicketRef, TicketRequest, TicketSink
from monitor.tickets.compose import compose
from monitor.tickets.config import (
    EmailSinkSettings,
    JiraSinkSettings,
    PagerDutySinkSettings,
    RtSinkSettings,
    ServiceNowSinkSettings,
    SinkSettings,
    TicketsSettings,
    WebhookSinkSettings,
    ZammadSinkSettings,
)
from monitor.tickets.email import EmailSink, ImapPoller
from monitor.tickets.jira import JiraSink
from monitor.tickets.ledger import OutboxRow, TicketStore, append_with_outbox
from monitor.tickets.outbox import InMaintenance, OutboxWorker, never_in_maintenance
from monitor.tickets.pagerduty import PagerDutySink
from monitor.tickets.routing import TicketRouting
from monitor.tickets.rt import RtSink
from monitor.tickets.servicenow import ServiceNowSink
from monitor.tickets.webhook import WebhookSink
from monitor.tickets.zammad import ZammadSink
from probes.clock import SYSTEM_CLOCK, Clock, utc_now
from probes.untrusted import truncate_untrusted

if TYPE_CHECKING:
    from monitor.config import Config

log = get_logger("trunkwatch.tickets")

# An orderly stop waits this long for deliveries in flight; what is cut off is retried
# (and found, not duplicated) at the next start.
STOP_DRAIN_S = 5.0
# A poller whose IMAP server fails waits this long before the next try.
IMAP_ERROR_PAUSE_S = 30.0


def build_sink(
    settings: SinkSettings,
    session: aiohttp.ClientSession,
    *,
    timeout_s: float,
    clock: Clock,
) -> TicketSink:
    timeout = settings.timeout or timeout_s
    if isinstance(settings, WebhookSinkSettings):
        return WebhookSink(settings, session, timeout_s=timeout, clock=clock)
    if isinstance(settings, EmailSinkSettings):
        return EmailSink(settings, timeout_s=timeout, clock=clock)
    if isinstance(settings, RtSinkSettings):
        return RtSink(settings, session, timeout_s=timeout)
    if isinstance(settings, PagerDutySinkSettings):
        return PagerDutySink(settings, session, timeout_s=timeout)
    if isinstance(settings, ServiceNowSinkSettings):
        return ServiceNowSink(settings, session, timeout_s=timeout)
    if isinstance(settings, JiraSinkSettings):
        return JiraSink(settings, session, timeout_s=timeout)
    assert isinstance(settings, ZammadSinkSettings)
    return ZammadSink(settings, session, timeout_s=timeout)


class TicketService:
    def __init__(
        self,
        settings: TicketsSettings | None,
        trunks: Iterable[tuple[str, str]],
        *,
        in_maintenance: InMaintenance = never_in_maintenance,
        clock: Clock = SYSTEM_CLOCK,
        quorum: Mapping[str, int | None] | None = None,
        watchers: Mapping[str, frozenset[str]] | None = None,
    ) -> None:
        """``trunks``: (name, carrier) of every configured trunk."""
        self.settings = settings or TicketsSettings()
        self.routing = TicketRouting.build(settings, trunks)
        self.metrics = TicketMetrics()
        self._in_maintenance = in_maintenance
        self._clock = clock
        self._sinks: dict[str, TicketSink] = {}
        self._session: aiohttp.ClientSession | None = None
        self._worker: OutboxWorker | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._db: TicketStore | None = None
        # Several agents (trunk → quorum): the leader derives the contract's outages and
        # tickets from the agents' views (monitor/quorum.py); None: this agent's are those.
        self._quorum = quorum
        self._watchers = watchers or {}
        self.leadership: Leadership | None = None
        self._verdicts: QuorumLoop | None = None

    @classmethod
    def from_config(cls, config: Config, in_maintenance: InMaintenance) -> TicketService:
        """The service for a whole config (every agent's trunks, the quorum sees them all;
        endpoints' tickets go to their owner)."""
        service = cls(config.tickets, (), in_maintenance=in_maintenance)
        service.follow(config)
        return service

    def follow(self, config: Config) -> None:
        """Routes, trunk → carrier and quorums from `config` (at start and on a reload; the
        sinks stay the ones built at start: a change of sinks needs a restart)."""
        trunks, endpoints = config.trunks, config.endpoints
        targets = [(t.name, t.carrier) for t in trunks] + [(e.name, e.owner) for e in endpoints]
        self.routing = TicketRouting.build(config.tickets, targets)
        self._quorum = config.cluster.quorums(trunks, endpoints)
        self._watchers = config.cluster.watchers(trunks)
        if self._verdicts is not None:
            self._verdicts.retarget(self.routing, self._quorum or {}, self._watchers)

    @property
    def sink_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.settings.sinks)

    async def start(self, store: Store) -> None:
        """Build the sinks and start delivering (including what earlier runs left queued)."""
        self.leadership = Leadership(
            store.engine, store.agent, clock=self._clock, on_acquired=self.wake
        )
        await self.leadership.step()  # an agent alone leads from its first pass
        self._tasks.append(asyncio.create_task(self.leadership.run(), name="leader-lease"))
        self._db = TicketStore(store.engine, fence=self.leadership.fence)
        outbox = self.settings.outbox
        if self.settings.sinks:
            self._session = aiohttp.ClientSession()
            self._sinks = {
                s.name: build_sink(
                    s, self._session, timeout_s=outbox.request_timeout, clock=self._clock
                )
                for s in self.settings.sinks
            }
        self._check_routes()
        self._worker = OutboxWorker(
            self._db,
            self._sinks,
            self._compose,
            clock=self._clock,
            in_maintenance=self._in_maintenance,
            metrics=self.metrics,
            retry_initial_s=outbox.retry_initial,
            retry_max_s=outbox.retry_max,
            leads=self._leads,
        )
        self._tasks.append(asyncio.create_task(self._worker.run(), name="ticket-outbox"))
        if self._quorum is not None:
            verdicts = self._verdicts = QuorumLoop(
                store, self.routing, self._quorum, self._leads,
                watchers=self._watchers, lease=self._lease, wake=self.wake, clock=self._clock,
            )  # fmt: skip
            self._tasks.append(asyncio.create_task(verdicts.run(), name="quorum"))
        for sink in self.settings.sinks:
            if isinstance(sink, EmailSinkSettings) and sink.imap is not None:
                poller = ImapPoller(
                    sink,
                    self._db,
                    timeout_s=sink.timeout or outbox.request_timeout,
                    clock=self._clock,
                )
                self._tasks.append(
                    asyncio.create_task(self._poll(poller, sink.name), name=f"imap:{sink.name}")
                )
        log.info("tickets_started", sinks=len(self._sinks), routes=len(self.routing.routes))

    def _leads(self) -> bool:
        return self.leadership is not None and self.leadership.is_leader

    def _lease(self) -> Lease | None:
        return None if self.leadership is None else self.leadership.lease

    def on_events(self, events: Sequence[Event]) -> None:
        """From the hot path's consumer: no I/O. The requests are written by ``append``;
        this only makes the worker look as soon as they are."""
        if self._worker is None:
            return
        if any(isinstance(e, OutageOpened | OutageClosed) for e in events):
            self._worker.wake()

    async def append(self, store: Store, events: Sequence[Event]) -> None:
        """Journal ``events`` with their ticket requests in one transaction, then deliver."""
        if self._quorum is None:
            await append_with_outbox(store, events, self.routing, utc_now(self._clock))
        else:  # one of several agents: its outages are its view; the leader tickets
            await store.append(events)
        if self._worker is not None:
            self._worker.wake()

    def wake(self) -> None:
        if self._worker is not None:
            self._worker.wake()

    def metrics_section(self) -> Section:
        return self.metrics.section(self.sink_names)

    async def stop(self) -> None:
        if self._worker is not None:
            await self._worker.drain(STOP_DRAIN_S)
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._worker = None
        if self.leadership is not None:
            await self.leadership.release()  # the next agent need not wait for expiry
        for sink in self._sinks.values():
            await sink.close()
        if self._session is not None:
            await self._session.close()
            self._session = None
        log.info("tickets_stopped")

    def _compose(self, row: OutboxRow, ticket: TicketRef | None, attempt: int) -> TicketRequest:
        return compose(
            self.settings,
            self.settings.sink(row.sink),
            row.action,
            row.context,
            row.idempotency_key,
            ticket,
            attempt,
        )

    def _check_routes(self) -> None:
        if not self._sinks:
            return
        for trunk, carrier in self.routing.carriers.items():
            if not self.routing.sinks_for(trunk, OutageKind.OUTAGE):
                log.warning("tickets_trunk_unrouted", trunk=trunk, carrier=carrier)

    async def _poll(self, poller: ImapPoller, sink: str) -> None:
        while True:
            try:
                await poller.poll_once()
                await asyncio.sleep(poller.interval_s)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                log.warning(
                    "ticket_imap_poll_failed", sink=sink, error=truncate_untrusted(repr(exc), 160)
                )
                await asyncio.sleep(IMAP_ERROR_PAUSE_S)
