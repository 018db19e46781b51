"""The ticket outbox and the tickets table: written with the journal, read by the worker.

``append_with_outbox(store, events, routing)`` journals a batch and, in the same
transaction, queues the ticket requests its outage events call for: a crash can lose
neither an outage without its ticket request nor a request without its outage.

Tables (created by migration 0003):
- ``ticket_outbox``: one row per request (open / update / resolve of one ticket at one
  sink), delivered in id order per (ticket_key, sink); ``attempts`` is raised *before*
  each send, so after a crash a row with attempts > 0 means "maybe sent: look first".
- ``tickets``: one row per (outage, sink): the sink's ticket id and number, and every
  instant the contract cares about (requested, first sent, acknowledged, resolved).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import (
    Row,
    and_,
    func,
    insert,
    select,
    true,
    update,
)
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from monitor.events import Event, Outage, OutageClosed, OutageKind, OutageOpened, as_utc
from monitor.store.engine import writing
from monitor.store.lease import Lease, require
from monitor.store.schema import OutboxStatus, TicketState, outages, ticket_outbox, tickets
from monitor.tickets.base import Action, TicketContext, TicketRef, ticket_ref
from monitor.tickets.plan import (
    Book,
    Merge,
    NewTicket,
    OutboxRequest,
    Step,
    TicketEntry,
    WaitingOpen,
    plan,
)
from monitor.tickets.routing import TicketRouting

if TYPE_CHECKING:
    from monitor.store.store import Store


@dataclass(slots=True, frozen=True)
class OutboxRow:
    id: int
    ticket_key: str
    sink: str
    action: Action
    idempotency_key: str
    context: TicketContext
    created_at: datetime
    due_at: datetime
    attempts: int
    last_error: str | None
    status: str


@dataclass(slots=True, frozen=True)
class TicketRow:
    """One outage's ticket at one sink, with the contract's instants."""

    outage_id: str
    sink: str
    ticket_key: str
    trunk: str
    kind: str
    state: str
    ref: str
    external_id: str | None
    number: str | None
    url: str | None
    requested_at: datetime
    first_sent_at: datetime | None
    acknowledged_at: datetime | None
    sink_created_at: datetime | None
    number_captured_at: datetime | None
    resolved_at: datetime | None
    last_error: str | None
    data: Mapping[str, str]

    def ticket_ref(self) -> TicketRef | None:
        if self.external_id is None:
            return None
        return TicketRef(
            external_id=self.external_id,
            number=self.number,
            url=self.url,
            sink_created_at=self.sink_created_at,
            data=dict(self.data),
        )


# --- writing requests with the journal -----------------------------------------------------


async def append_with_outbox(
    store: Store,
    events: Sequence[Event],
    routing: TicketRouting,
    now: datetime,
    *,
    fenced: Lease | None = None,
) -> None:
    """``store.append(events)`` plus the ticket requests they call for, in one transaction;
    with `fenced`, only while that lease is current (LeaseLost otherwise, nothing written)."""
    now = as_utc(now, "now")

    async def queue(conn: AsyncConnection) -> None:
        if fenced is not None:
            await require(conn, fenced)
        await enqueue(conn, events, routing, now)

    await store.append(events, extra=queue)


async def enqueue(
    conn: AsyncConnection, events: Sequence[Event], routing: TicketRouting, now: datetime
) -> None:
    """Queue requests for ``events`` on ``conn`` (inside the journal's transaction, after
    the outage rows are written): read the book, let ``tickets.plan`` decide, write."""
    book = await _load_book(conn, events, routing)
    for step in plan(events, routing, book, now):
        await _apply(conn, step, now)


async def _load_book(
    conn: AsyncConnection, events: Sequence[Event], routing: TicketRouting
) -> Book:
    ids = {e.outage.id for e in events if isinstance(e, OutageOpened | OutageClosed)}
    if not ids:
        return Book()
    grouping_trunks: set[str] = set()
    for event in events:
        if isinstance(event, OutageOpened) and event.outage.kind is OutageKind.OUTAGE:
            carrier = routing.carrier_of(event.outage.trunk)
            if routing.groups(carrier):
                grouping_trunks |= routing.trunks_of(carrier)
    open_of_grouping = and_(
        outages.c.closed_at.is_(None),
        outages.c.kind == OutageKind.OUTAGE.value,
        outages.c.trunk.in_(sorted(grouping_trunks)),
    )
    found = await _load_outages(conn, outages.c.id.in_(sorted(ids)) | open_of_grouping)
    book = Book(outages={o.id: o for o in found})
    rows = (
        await conn.execute(select(tickets).where(tickets.c.outage_id.in_(sorted(book.outages))))
    ).all()
    # The other members of the grouped tickets among them: a closing member needs them all.
    groups = sorted({r.ticket_key for r in rows if r.ticket_key != r.outage_id})
    if groups:
        rows = (
            await conn.execute(
                select(tickets).where(
                    tickets.c.outage_id.in_(sorted(book.outages)) | tickets.c.ticket_key.in_(groups)
                )
            )
        ).all()
        missing = {r.outage_id for r in rows} - book.outages.keys()
        for o in await _load_outages(conn, outages.c.id.in_(sorted(missing))):
            book.outages[o.id] = o
    book.tickets = [TicketEntry(r.outage_id, r.sink, r.ticket_key, r.state) for r in rows]
    if grouping_trunks:
        waiting = (
            await conn.execute(
                select(ticket_outbox).where(
                    ticket_outbox.c.ticket_key.in_(
                        sorted(o.id for o in book.outages.values() if o.trunk in grouping_trunks)
                    ),
                    ticket_outbox.c.action == Action.OPEN.value,
                    ticket_outbox.c.status == OutboxStatus.PENDING,
                    ticket_outbox.c.attempts == 0,
                )
            )
        ).all()
        for row in map(_outbox_row, waiting):
            outage = row.context.outages[0]
            book.waiting.append(WaitingOpen(row.idempotency_key, row.ticket_key, row.sink, outage))
    return book


async def _apply(conn: AsyncConnection, step: Step, now: datetime) -> None:
    """Write one planned step (the decisions were all made by ``tickets.plan``)."""
    if isinstance(step, NewTicket):
        outage = step.outage
        await conn.execute(
            insert(tickets).values(
                outage_id=outage.id,
                sink=step.sink,
                ticket_key=outage.id,
                trunk=outage.trunk,
                kind=outage.kind.value,
                state=TicketState.REQUESTED,
                ref=ticket_ref(outage.id),
                requested_at=step.requested_at,
            )
        )
    elif isinstance(step, OutboxRequest):
        await _insert_request(conn, step)
    elif isinstance(step, Merge):
        await conn.execute(
            update(ticket_outbox)
            .where(ticket_outbox.c.idempotency_key.in_(step.requests))
            .values(status=OutboxStatus.MERGED, finished_at=now)
        )
        await conn.execute(
            update(tickets)
            .where(tickets.c.outage_id.in_(step.members), tickets.c.sink == step.sink)
            .values(ticket_key=step.group, ref=ticket_ref(step.group))
        )
    else:
        await conn.execute(
            update(ticket_outbox)
            .where(ticket_outbox.c.idempotency_key.in_(step.requests))
            .values(due_at=now)
        )


async def _insert_request(conn: AsyncConnection, request: OutboxRequest) -> None:
    key = request.idempotency_key
    seen = await conn.execute(
        select(ticket_outbox.c.id).where(ticket_outbox.c.idempotency_key == key)
    )
    if seen.first() is not None:
        return  # the same request is already queued (or delivered)
    await conn.execute(
        insert(ticket_outbox).values(
            ticket_key=request.context.key,
            sink=request.sink,
            action=request.action.value,
            idempotency_key=key,
            payload=request.context.to_json(),
            created_at=request.created_at,
            due_at=request.due_at,
            attempts=0,
            status=OutboxStatus.PENDING,
        )
    )


async def _load_outages(conn: AsyncConnection, where: Any) -> list[Outage]:
    rows = (await conn.execute(select(outages).where(where))).all()
    return [
        Outage(
            id=r.id,
            trunk=r.trunk,
            kind=OutageKind(r.kind),
            first_failure_at=r.first_failure_at,
            confirmed_at=r.confirmed_at,
            first_outcome=r.first_outcome,
            detail=r.detail,
            restored_at=r.restored_at,
            closed_at=r.closed_at,
        )
        for r in rows
    ]


# --- the worker's side -----------------------------------------------------------------------


class TicketStore:
    """The outbox worker's queries; every write is its own short transaction."""

    def __init__(self, engine: AsyncEngine, fence: Callable[[], Any] = true) -> None:
        self._engine = engine
        # A WHERE clause true only while this agent leads (Leadership.fence): a deposed
        # leader claims nothing, so it sends nothing.
        self._fence = fence

    async def live_rows(self) -> list[OutboxRow]:
        """Pending and held requests, oldest first (the worker's whole to-do list)."""
        query = (
            select(ticket_outbox)
            .where(ticket_outbox.c.status.in_((OutboxStatus.PENDING, OutboxStatus.HELD)))
            .order_by(ticket_outbox.c.id)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_outbox_row(r) for r in rows]

    async def pending_count(self) -> int:
        query = select(func.count()).where(ticket_outbox.c.status == OutboxStatus.PENDING)
        async with self._engine.connect() as conn:
            count: int = (await conn.execute(query)).scalar_one()
        return count

    async def claim(self, row: OutboxRow, now: datetime) -> bool:
        """Count an attempt before sending it; False if the row changed meanwhile (merged)."""
        async with writing(self._engine) as conn:
            result = await conn.execute(
                update(ticket_outbox)
                .where(
                    ticket_outbox.c.id == row.id,
                    ticket_outbox.c.status == OutboxStatus.PENDING,
                    ticket_outbox.c.attempts == row.attempts,
                    self._fence(),
                )
                .values(attempts=row.attempts + 1, last_attempt_at=now)
            )
            if result.rowcount != 1:
                return False
            if row.action is Action.OPEN:
                await conn.execute(
                    update(tickets)
                    .where(_ticket_of(row), tickets.c.first_sent_at.is_(None))
                    .values(first_sent_at=now)
                )
        return True

    async def ticket_of(self, row: OutboxRow) -> TicketRow | None:
        """The ticket this request is about (any member's row: they share the ids)."""
        query = select(tickets).where(_ticket_of(row)).order_by(tickets.c.outage_id).limit(1)
        async with self._engine.connect() as conn:
            found = (await conn.execute(query)).first()
        return None if found is None else _ticket_row(found)

    async def opened(self, row: OutboxRow, ref: TicketRef, now: datetime) -> None:
        async with writing(self._engine) as conn:
            await self._finish(conn, row, OutboxStatus.DONE, now, None)
            await conn.execute(
                update(tickets)
                .where(_ticket_of(row))
                .values(
                    state=TicketState.OPEN,
                    external_id=ref.external_id,
                    number=ref.number,
                    url=ref.url,
                    acknowledged_at=now,
                    sink_created_at=ref.sink_created_at,
                    last_error=None,
                    data=json.dumps(dict(ref.data), sort_keys=True) if ref.data else None,
                )
            )

    async def delivered(self, row: OutboxRow, now: datetime) -> None:
        async with writing(self._engine) as conn:
            await self._finish(conn, row, OutboxStatus.DONE, now, None)
            if row.action is Action.RESOLVE:
                await conn.execute(
                    update(tickets)
                    .where(_ticket_of(row))
                    .values(state=TicketState.RESOLVED, resolved_at=now, last_error=None)
                )

    async def retry(self, row: OutboxRow, due: datetime, error: str) -> None:
        async with writing(self._engine) as conn:
            await conn.execute(
                update(ticket_outbox)
                .where(ticket_outbox.c.id == row.id)
                .values(due_at=due, last_error=error)
            )
            await conn.execute(update(tickets).where(_ticket_of(row)).values(last_error=error))

    async def failed(self, row: OutboxRow, now: datetime, error: str) -> None:
        """The sink refused for good; a refused open cancels the requests queued after it."""
        async with writing(self._engine) as conn:
            await self._finish(conn, row, OutboxStatus.FAILED, now, error)
            values: dict[str, Any] = {"last_error": error}
            if row.action is Action.OPEN:
                values["state"] = TicketState.FAILED
                await _cancel_later(conn, row, now, "cancelled: the open was refused")
            await conn.execute(update(tickets).where(_ticket_of(row)).values(**values))

    async def cancel(self, row: OutboxRow, now: datetime, why: str) -> None:
        async with writing(self._engine) as conn:
            await self._finish(conn, row, OutboxStatus.CANCELLED, now, why)

    async def hold(self, row: OutboxRow, due: datetime) -> None:
        async with writing(self._engine) as conn:
            await conn.execute(
                update(ticket_outbox)
                .where(ticket_outbox.c.id == row.id, ticket_outbox.c.status == row.status)
                .values(status=OutboxStatus.HELD, due_at=due)
            )
            await conn.execute(
                update(tickets).where(_ticket_of(row)).values(state=TicketState.HELD)
            )

    async def release(self, row: OutboxRow, now: datetime) -> None:
        """The maintenance window ended with the outage still open: the ticket is due now."""
        async with writing(self._engine) as conn:
            await conn.execute(
                update(ticket_outbox)
                .where(ticket_outbox.c.id == row.id, ticket_outbox.c.status == OutboxStatus.HELD)
                .values(status=OutboxStatus.PENDING, due_at=now)
            )
            await conn.execute(
                update(tickets).where(_ticket_of(row)).values(state=TicketState.REQUESTED)
            )

    async def suppress(self, row: OutboxRow, now: datetime) -> None:
        """The outage ended inside the maintenance window: no ticket, ever."""
        async with writing(self._engine) as conn:
            await self._finish(conn, row, OutboxStatus.CANCELLED, now, "suppressed: maintenance")
            await _cancel_later(conn, row, now, "suppressed: maintenance")
            await conn.execute(
                update(tickets).where(_ticket_of(row)).values(state=TicketState.SUPPRESSED)
            )

    async def set_number(
        self, ticket_key: str, sink: str, number: str, at: datetime, data: str
    ) -> None:
        """The carrier's own ticket number, captured from its reply (e-mail sinks)."""
        async with writing(self._engine) as conn:
            await conn.execute(
                update(tickets)
                .where(tickets.c.ticket_key == ticket_key, tickets.c.sink == sink)
                .values(number=number, number_captured_at=at, data=data)
            )

    async def tickets_without_number(self, sink: str, since: datetime) -> list[TicketRow]:
        query = (
            select(tickets)
            .where(
                tickets.c.sink == sink,
                tickets.c.number.is_(None),
                tickets.c.external_id.is_not(None),
                tickets.c.requested_at >= since,
            )
            .order_by(tickets.c.requested_at)
        )
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_ticket_row(r) for r in rows]

    async def _finish(
        self, conn: AsyncConnection, row: OutboxRow, status: str, now: datetime, error: str | None
    ) -> None:
        await conn.execute(
            update(ticket_outbox)
            .where(ticket_outbox.c.id == row.id)
            .values(status=status, finished_at=now, last_error=error)
        )


async def list_tickets(store: Store) -> list[TicketRow]:
    """Every ticket, newest request first (for ``trunkwatch tickets`` and the API)."""
    query = select(tickets).order_by(tickets.c.requested_at.desc(), tickets.c.sink)
    async with store.engine.connect() as conn:
        rows = (await conn.execute(query)).all()
    return [_ticket_row(r) for r in rows]


async def outbox_rows(store: Store) -> list[OutboxRow]:
    """Every outbox row in id order (tests and diagnostics)."""
    async with store.engine.connect() as conn:
        rows = (await conn.execute(select(ticket_outbox).order_by(ticket_outbox.c.id))).all()
    return [_outbox_row(r) for r in rows]


def _ticket_of(row: OutboxRow) -> Any:
    return and_(tickets.c.ticket_key == row.ticket_key, tickets.c.sink == row.sink)


async def _cancel_later(conn: AsyncConnection, row: OutboxRow, now: datetime, why: str) -> None:
    await conn.execute(
        update(ticket_outbox)
        .where(
            ticket_outbox.c.ticket_key == row.ticket_key,
            ticket_outbox.c.sink == row.sink,
            ticket_outbox.c.id > row.id,
            ticket_outbox.c.status.in_((OutboxStatus.PENDING, OutboxStatus.HELD)),
        )
        .values(status=OutboxStatus.CANCELLED, finished_at=now, last_error=why)
    )


def _outbox_row(row: Row[Any]) -> OutboxRow:
    return OutboxRow(
        id=row.id,
        ticket_key=row.ticket_key,
        sink=row.sink,
        action=Action(row.action),
        idempotency_key=row.idempotency_key,
        context=TicketContext.from_json(row.payload),
        created_at=row.created_at,
        due_at=row.due_at,
        attempts=row.attempts,
        last_error=row.last_error,
        status=row.status,
    )


def _ticket_row(row: Row[Any]) -> TicketRow:
    data: Mapping[str, str] = {}
    if row.data:
        loaded = json.loads(row.data)
        if isinstance(loaded, dict):
            data = {str(k): str(v) for k, v in loaded.items()}
    return TicketRow(
        outage_id=row.outage_id,
        sink=row.sink,
        ticket_key=row.ticket_key,
        trunk=row.trunk,
        kind=row.kind,
        state=row.state,
        ref=row.ref,
        external_id=row.external_id,
        number=row.number,
        url=row.url,
        requested_at=row.requested_at,
        first_sent_at=row.first_sent_at,
        acknowledged_at=row.acknowledged_at,
        sink_created_at=row.sink_created_at,
        number_captured_at=row.number_captured_at,
        resolved_at=row.resolved_at,
        last_error=row.last_error,
        data=data,
    )
