"""Which ticket requests a batch of journal events calls for: a pure function (no I/O).

``plan(events, routing, book, now)`` reads what the store already holds about the outages
concerned (a :class:`Book`, loaded in the journal's transaction after the batch's outage rows
are written) and returns the steps to persist, in order, in that same transaction:

- :class:`NewTicket`: a ticket row for (outage, sink), in state ``requested``;
- :class:`OutboxRequest`: an open, update or resolve request for one ticket at one sink;
- :class:`Merge`: waiting open requests that become one grouped ticket (``grouping.py``);
- :class:`Expedite`: waiting open requests that need not wait for a group any longer.

The store applies the steps and decides nothing; a replayed batch plans nothing twice (a
ticket row that exists is never requested again, and a request's id is deterministic).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from monitor.events import (
    END_REMOVED,
    Event,
    Outage,
    OutageClosed,
    OutageKind,
    OutageOpened,
    as_utc,
)
from monitor.probable_cause import probable_cause
from monitor.tickets.base import Action, TicketContext, idempotency_key
from monitor.tickets.grouping import all_down, group_key, mergeable
from monitor.tickets.routing import TicketRouting

__all__ = [
    "NO_TICKET_STATES",
    "Book",
    "Expedite",
    "Merge",
    "NewTicket",
    "OutboxRequest",
    "Step",
    "TicketEntry",
    "WaitingOpen",
    "plan",
]

# A ticket in these states does not exist at the sink: nothing to update or resolve.
NO_TICKET_STATES = frozenset({"failed", "suppressed"})


@dataclass(frozen=True, slots=True)
class TicketEntry:
    """A stored ticket row as planning needs it."""

    outage_id: str
    sink: str
    ticket_key: str
    state: str


@dataclass(frozen=True, slots=True)
class WaitingOpen:
    """An open request still pending and never attempted: it may join a grouped ticket."""

    idempotency_key: str
    ticket_key: str
    sink: str
    outage: Outage


@dataclass(slots=True)
class Book:
    """What the store holds about a batch's outages, after the batch's outage rows are written.

    ``outages``: the batch's outages, the members of their grouped tickets and the open
    outages of every carrier whose tickets are grouped; ``tickets``: their ticket rows;
    ``waiting``: the open requests of those open outages that are still waiting.
    """

    outages: dict[str, Outage] = field(default_factory=dict)
    tickets: list[TicketEntry] = field(default_factory=list)
    waiting: list[WaitingOpen] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class NewTicket:
    outage: Outage
    sink: str
    requested_at: datetime


@dataclass(frozen=True, slots=True)
class OutboxRequest:
    context: TicketContext
    sink: str
    action: Action
    discriminator: str
    created_at: datetime
    due_at: datetime

    @property
    def idempotency_key(self) -> str:
        return idempotency_key(self.context.key, self.sink, self.action, self.discriminator)


@dataclass(frozen=True, slots=True)
class Merge:
    """These waiting opens (idempotency keys) are merged; their tickets take ``group``'s key."""

    sink: str
    requests: tuple[str, ...]
    members: tuple[str, ...]  # outage ids
    group: str


@dataclass(frozen=True, slots=True)
class Expedite:
    """These waiting opens (idempotency keys) are due now."""

    requests: tuple[str, ...]


Step = NewTicket | OutboxRequest | Merge | Expedite


def plan(events: Iterable[Event], routing: TicketRouting, book: Book, now: datetime) -> list[Step]:
    """The steps that queue the ticket requests ``events`` call for (see the module doc)."""
    planner = _Planner(routing, book, as_utc(now, "now"))
    for event in events:
        if isinstance(event, OutageOpened):
            planner.opened(event.outage)
        elif isinstance(event, OutageClosed):
            planner.closed(event.outage)
    return planner.steps


class _Planner:
    """Plans event by event, keeping its own copy of the book up to date as it goes."""

    def __init__(self, routing: TicketRouting, book: Book, now: datetime) -> None:
        self.routing = routing
        self.outages = dict(book.outages)
        self.tickets = list(book.tickets)
        self.waiting = list(book.waiting)
        self.now = now
        self.steps: list[Step] = []

    def _request(
        self, context: TicketContext, sink: str, action: Action, member: str, due: datetime
    ) -> OutboxRequest:
        request = OutboxRequest(context, sink, action, member, self.now, due)
        self.steps.append(request)
        return request

    def opened(self, outage: Outage) -> None:
        cause = probable_cause(outage.first_outcome, outage.detail)
        sinks = self.routing.sinks_for(outage.trunk, outage.kind, cause)
        if not sinks:
            return
        carrier = self.routing.carrier_of(outage.trunk)
        grouped = self.routing.groups(carrier) and outage.kind is OutageKind.OUTAGE
        due = self.now + timedelta(seconds=self.routing.group_window_s) if grouped else self.now
        context = TicketContext(key=outage.id, carrier=carrier, outages=(outage,))
        known = {(t.outage_id, t.sink) for t in self.tickets}
        for sink in sinks:
            if (outage.id, sink) in known:
                continue  # this outage's request was queued before (a replayed batch)
            self.steps.append(NewTicket(outage, sink, self.now))
            self.tickets.append(TicketEntry(outage.id, sink, outage.id, "requested"))
            request = self._request(context, sink, Action.OPEN, "", due)
            self.waiting.append(WaitingOpen(request.idempotency_key, outage.id, sink, outage))
        if grouped:
            self._maybe_group(carrier)

    def _maybe_group(self, carrier: str) -> None:
        trunks = self.routing.trunks_of(carrier)
        open_outages = {
            o.trunk: o.id
            for o in self.outages.values()
            if o.trunk in trunks and o.is_open and o.kind is OutageKind.OUTAGE
        }
        if not all_down(trunks, open_outages):
            return
        by_sink: dict[str, list[WaitingOpen]] = {}
        for waiting in self.waiting:
            if waiting.ticket_key in open_outages.values():
                by_sink.setdefault(waiting.sink, []).append(waiting)
        for sink, requests in sorted(by_sink.items()):
            members = mergeable({r.ticket_key: r.outage.trunk for r in requests}, open_outages)
            if not members:
                # A lone waiter: nobody else will join it, so it need not wait any longer.
                self.steps.append(Expedite(tuple(r.idempotency_key for r in requests)))
                continue
            key = group_key(members)
            joining = [r for r in requests if r.ticket_key in members]
            self.steps.append(
                Merge(sink, tuple(r.idempotency_key for r in joining), tuple(members), key)
            )
            self.waiting = [w for w in self.waiting if w not in joining]
            self.tickets = [
                TicketEntry(t.outage_id, t.sink, key, t.state)
                if t.sink == sink and t.outage_id in members
                else t
                for t in self.tickets
            ]
            context = TicketContext(
                key=key,
                carrier=carrier,
                outages=tuple(sorted((r.outage for r in joining), key=lambda o: o.trunk)),
                grouped=True,
            )
            self._request(context, sink, Action.OPEN, "", self.now)

    def closed(self, outage: Outage) -> None:
        self.outages[outage.id] = outage
        if outage.end_cause == END_REMOVED:
            # Monitoring stopped, the service was not seen back: the carrier is not told it
            # was restored; the ticket stays as it is for the operator (app logs it).
            return
        carrier = self.routing.carrier_of(outage.trunk)
        for row in [t for t in self.tickets if t.outage_id == outage.id]:
            if row.state in NO_TICKET_STATES:
                continue
            if row.ticket_key == outage.id:
                context = TicketContext(key=outage.id, carrier=carrier, outages=(outage,))
                self._request(context, row.sink, Action.RESOLVE, "", self.now)
                continue
            members = self._members(row)
            context = TicketContext(
                key=row.ticket_key,
                carrier=carrier,
                outages=tuple(sorted(members, key=lambda o: o.trunk)),
                grouped=True,
                member=outage.id,
            )
            if all(not o.is_open for o in members):
                self._request(context, row.sink, Action.RESOLVE, "", self.now)
            else:
                self._request(context, row.sink, Action.UPDATE, outage.id, self.now)

    def _members(self, row: TicketEntry) -> Sequence[Outage]:
        ids = {
            t.outage_id
            for t in self.tickets
            if (t.ticket_key, t.sink) == (row.ticket_key, row.sink)
        }
        return [self.outages[i] for i in sorted(ids) if i in self.outages]
