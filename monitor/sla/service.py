"""From stored records to ``sla.availability`` for one service: the one computation behind the
reports, the API, the evidence bundle and the metrics.

A service's outages are composed from its trunks' outages (rule all/any, DESIGN.md §2), then
manual outages are added; ticket times come from the tickets (earliest among the composed
trunk outages) unless a ticket-time correction says otherwise (the latest one wins).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from monitor import events
from monitor.sla import (
    CompositionRule,
    OutageKind,
    OutageRecord,
    Period,
    SlaInputError,
    SlaResult,
    availability,
    compose,
    month_of,
    month_period,
    rolling_period,
)
from monitor.sla.clocks import ClockVerdict, judge
from monitor.sla.contracts import ContractConfig, ContractsSettings, ServiceConfig
from monitor.sla.intervals import (
    Interval,
    IntervalSet,
    difference,
    intersection_all,
    span,
    union,
)
from monitor.sla.ledger import (
    TICKET_OPENED_AT,
    ExclusionRecord,
    ManualOutage,
    SlaStore,
    TicketCorrection,
)
from monitor.sla.maintenance import MaintenanceWindow, windows_for
from monitor.store import Store
from monitor.tickets.ledger import TicketRow, list_tickets

__all__ = [
    "HEARTBEAT_STALE",
    "ComposedOutage",
    "ServiceInputs",
    "ServiceOutage",
    "ServiceSla",
    "SlaContext",
    "TicketRecord",
    "UnknownService",
    "compose_outages",
    "parse_month",
    "ticket_records",
]

# app.HEARTBEAT_S is 10 s: six missed heartbeats mean the daemon is not running, so the time
# since its last one is unknown (not up, not down) in a report made by the CLI meanwhile.
HEARTBEAT_STALE: Final = timedelta(seconds=60)


class UnknownService(LookupError):
    """A service name that is not configured, or has no contract."""


@dataclass(frozen=True, slots=True)
class TicketRecord:
    """A carrier ticket as the SLA needs it (the tickets module owns the full record)."""

    id: str
    outage_id: str
    opened_at: datetime | None  # the carrier was asked: the ticket clock starts here
    acknowledged_at: datetime | None = None  # the carrier answered with its number
    carrier_ref: str | None = None
    status: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "outage_id": self.outage_id,
            "opened_at": None if self.opened_at is None else self.opened_at.isoformat(),
            "acknowledged_at": (
                None if self.acknowledged_at is None else self.acknowledged_at.isoformat()
            ),
            "carrier_ref": self.carrier_ref,
            "status": self.status,
        }


def ticket_records(rows: Iterable[TicketRow]) -> list[TicketRecord]:
    """Stored tickets as the SLA sees them: the contract clock starts when the carrier's
    system acknowledged the ticket (issue 4); corrections in the ledger override it."""
    return [
        TicketRecord(
            id=f"{row.sink}:{row.ticket_key}",
            outage_id=row.outage_id,
            opened_at=row.acknowledged_at or row.sink_created_at,
            # The carrier's acknowledgement: its number captured from a reply (e-mail), else
            # the sink's answer that created the ticket.
            acknowledged_at=row.number_captured_at or row.acknowledged_at,
            carrier_ref=row.number or row.external_id,
            status=row.state,
        )
        for row in rows
    ]


@dataclass(frozen=True, slots=True)
class ComposedOutage:
    """A service-level interval built from trunk outages; id is its head trunk outage's."""

    id: str
    kind: OutageKind
    start: datetime
    end: datetime | None  # None: still open
    confirmed_at: datetime
    constituents: tuple[events.Outage, ...]


def _interval(o: events.Outage, now: datetime) -> IntervalSet:
    return span(o.first_failure_at, o.restored_at if o.restored_at is not None else now)


def _overlapping(
    outages: Iterable[events.Outage], piece: Interval, now: datetime
) -> list[events.Outage]:
    return [
        o
        for o in outages
        if o.first_failure_at < piece.end
        and ((o.restored_at if o.restored_at is not None else now) > piece.start)
    ]


def _head(candidates: Sequence[events.Outage], at: datetime) -> events.Outage:
    """The trunk outage that made the interval start at `at`: the latest started by then."""
    started = [o for o in candidates if o.first_failure_at <= at] or list(candidates)
    return sorted(started, key=lambda o: (-o.first_failure_at.timestamp(), o.id))[0]


def compose_outages(
    service: ServiceConfig, outages: Sequence[events.Outage], now: datetime
) -> list[ComposedOutage]:
    """The service's outages (down per its rule) and degradations (some part faulty, not down)."""
    now = events.as_utc(now, "now")
    mine = [o for o in outages if o.trunk in service.parts]
    down_parts = {
        part: union(
            *(
                _interval(o, now)
                for o in mine
                if o.trunk == part and o.kind is events.OutageKind.OUTAGE
            )
        )
        for part in service.parts
    }
    down = compose(CompositionRule(service.rule), down_parts)
    faults = union(*(_interval(o, now) for o in mine))
    out: list[ComposedOutage] = []
    total = [o for o in mine if o.kind is events.OutageKind.OUTAGE]
    for piece in down:
        constituents = _overlapping(total, piece, now)
        head = _head(constituents, piece.start)
        confirmed = min(max(head.confirmed_at, piece.start), piece.end)
        out.append(
            ComposedOutage(
                id=head.id,
                kind=OutageKind.OUTAGE,
                start=piece.start,
                end=None if piece.end >= now else piece.end,
                confirmed_at=confirmed,
                constituents=tuple(constituents),
            )
        )
    for piece in difference(faults, down):
        constituents = _overlapping(mine, piece, now)
        head = _head(constituents, piece.start)
        # A piece that starts with its head keeps the head's id (a plain quality degradation);
        # one that starts when the service came back is named by its head and instant.
        ident = (
            head.id
            if head.first_failure_at == piece.start
            else (f"{head.id}@{piece.start.strftime('%Y%m%dT%H%M%S.%fZ')}")
        )
        out.append(
            ComposedOutage(
                id=ident,
                kind=OutageKind.DEGRADATION,
                start=piece.start,
                end=None if piece.end >= now else piece.end,
                confirmed_at=min(max(head.confirmed_at, piece.start), piece.end),
                constituents=tuple(constituents),
            )
        )
    return sorted(out, key=lambda c: (c.start, c.id))


@dataclass(frozen=True, slots=True)
class ServiceOutage:
    """One outage of a service with where each of its times came from, for reports."""

    record: OutageRecord
    source: str  # "monitor" (composed from the journal) or "manual"
    trunks: tuple[str, ...]
    trunk_outage_ids: tuple[str, ...]
    closed_at: datetime | None
    ticket_source: str  # "ticket", "correction", "manual" or "none"
    tickets: tuple[TicketRecord, ...]
    corrections: tuple[TicketCorrection, ...]
    carrier_ticket: str | None
    evidence_ref: str | None


def _as_trunk_outage(m: ManualOutage) -> events.Outage:
    """A per-trunk manual outage as a trunk outage, to be composed with the journal's."""
    assert m.trunk is not None
    return events.Outage(
        id=m.id,
        trunk=m.trunk,
        kind=events.OutageKind(m.kind.value),
        first_failure_at=m.first_failure_at,
        confirmed_at=m.first_failure_at,
        first_outcome="manual",
        detail=m.evidence_ref,
        restored_at=m.restored_at,
        closed_at=m.restored_at,
    )


def _latest_correction(corrections: Sequence[TicketCorrection]) -> TicketCorrection | None:
    relevant = [c for c in corrections if c.field == TICKET_OPENED_AT]
    return max(relevant, key=lambda c: (c.created_at, c.id)) if relevant else None


def build_service_outages(
    composed: Sequence[ComposedOutage],
    manual: Sequence[ManualOutage],
    tickets: Sequence[TicketRecord],
    corrections: Sequence[TicketCorrection],
    exclusions: Sequence[ExclusionRecord],
    *,
    per_trunk: Mapping[str, ManualOutage] | None = None,
) -> list[ServiceOutage]:
    """OutageRecords for sla.availability, with tickets, corrections and exclusions applied.

    ``manual`` are whole-service manual outages; ``per_trunk`` (by id) the manual outages
    of single trunks, already among the composed outages' constituents."""
    per_trunk = per_trunk or {}
    by_outage: dict[str, list[TicketRecord]] = {}
    for t in tickets:
        by_outage.setdefault(t.outage_id, []).append(t)
    fixes: dict[str, list[TicketCorrection]] = {}
    for fix in corrections:
        fixes.setdefault(fix.outage_id, []).append(fix)
    excl: dict[str, list[ExclusionRecord]] = {}
    for e in exclusions:
        excl.setdefault(e.outage_id, []).append(e)

    out: list[ServiceOutage] = []
    for c in composed:
        mine = [t for o in c.constituents for t in by_outage.get(o.id, ())]
        opened = [t for t in mine if t.opened_at is not None]
        first = min(opened, key=lambda t: (t.opened_at, t.id)) if opened else None
        ticket_at = None if first is None else first.opened_at
        source = "ticket" if first is not None else "none"
        entered = [per_trunk[o.id] for o in c.constituents if o.id in per_trunk]
        entered_tickets = [m.ticket_opened_at for m in entered if m.ticket_opened_at is not None]
        if first is None and entered_tickets:
            ticket_at, source = min(entered_tickets), "manual"
        correction = _latest_correction(fixes.get(c.id, ()))
        if correction is not None:
            ticket_at, source = correction.value, "correction"
        closed = [o.closed_at for o in c.constituents if o.closed_at is not None]
        record = OutageRecord(
            id=c.id,
            first_failure_at=c.start,
            confirmed_at=c.confirmed_at,
            ticket_opened_at=ticket_at,
            restored_at=c.end,
            kind=c.kind,
            exclusions=tuple(e.to_sla() for e in excl.get(c.id, ())),
        )
        acknowledged = first.carrier_ref if first is not None else None
        if acknowledged is None:
            acknowledged = next((m.carrier_ticket for m in entered if m.carrier_ticket), None)
        out.append(
            ServiceOutage(
                record=record,
                source="manual" if c.id in per_trunk else "monitor",
                trunks=tuple(sorted({o.trunk for o in c.constituents})),
                trunk_outage_ids=tuple(o.id for o in c.constituents),
                closed_at=max(closed) if c.end is not None and closed else None,
                ticket_source=source,
                tickets=tuple(mine),
                corrections=tuple(fixes.get(c.id, ())),
                carrier_ticket=acknowledged,
                evidence_ref="; ".join(m.evidence_ref for m in entered) or None,
            )
        )
    for m in manual:
        ticket_at = m.ticket_opened_at
        source = "manual" if ticket_at is not None else "none"
        correction = _latest_correction(fixes.get(m.id, ()))
        if correction is not None:
            ticket_at, source = correction.value, "correction"
        record = OutageRecord(
            id=m.id,
            first_failure_at=m.first_failure_at,
            confirmed_at=m.first_failure_at,
            ticket_opened_at=ticket_at,
            restored_at=m.restored_at,
            kind=m.kind,
            exclusions=tuple(e.to_sla() for e in excl.get(m.id, ())),
        )
        out.append(
            ServiceOutage(
                record=record,
                source="manual",
                trunks=(),
                trunk_outage_ids=(),
                closed_at=m.restored_at,
                ticket_source=source,
                tickets=(),
                corrections=tuple(fixes.get(m.id, ())),
                carrier_ticket=m.carrier_ticket or None,
                evidence_ref=m.evidence_ref,
            )
        )
    return sorted(out, key=lambda s: (s.record.first_failure_at, s.record.id))


def parse_month(text: str) -> tuple[int, int]:
    """'2026-10' → (2026, 10); anything else is SlaInputError."""
    year_text, sep, month_text = text.partition("-")
    if (
        not sep
        or len(year_text) != 4
        or len(month_text) != 2
        or not (year_text.isdigit() and month_text.isdigit())
    ):
        raise SlaInputError(f"month must look like 2026-10, got {text!r}")
    year, month = int(year_text), int(month_text)
    if not 1 <= month <= 12:
        raise SlaInputError(f"month must be 01..12, got {text!r}")
    return year, month


@dataclass(frozen=True, slots=True)
class ServiceInputs:
    """Everything read for one service and period (the evidence bundle's raw data)."""

    service: ServiceConfig
    contract: ContractConfig
    period: Period
    now: datetime
    trunk_outages: tuple[events.Outage, ...]
    outages: tuple[ServiceOutage, ...]
    windows: tuple[MaintenanceWindow, ...]
    maintenance: IntervalSet
    gaps: IntervalSet
    exclusions: tuple[ExclusionRecord, ...]
    manual: tuple[ManualOutage, ...]
    corrections: tuple[TicketCorrection, ...]
    tickets: tuple[TicketRecord, ...]


@dataclass(frozen=True, slots=True)
class ServiceSla:
    inputs: ServiceInputs
    result: SlaResult

    def clocks(self, outage: ServiceOutage) -> ClockVerdict:
        """The contract's response and repair clocks of one of these outages."""
        acknowledged = [t.acknowledged_at for t in outage.tickets if t.acknowledged_at]
        return judge(
            outage.record.ticket_opened_at,
            min(acknowledged) if acknowledged else None,
            outage.record.restored_at,
            self.inputs.contract.limits_for(self.inputs.service.name),
            self.inputs.now,
        )


@dataclass(slots=True)
class SlaContext:
    """What the SLA computation reads: the store (journal, tickets, ledger) and the contracts.

    The one way every front end (daemon gauges, API, CLI, evidence) builds its SLA view:
    everything is read from the store, so no front end can leave an input out (issue 9).
    """

    store: Store
    settings: ContractsSettings
    ledger: SlaStore = field(init=False)

    def __post_init__(self) -> None:
        self.ledger = SlaStore(self.store.engine)

    def service(self, name: str) -> tuple[ServiceConfig, ContractConfig]:
        service = self.settings.service(name)
        if service is None:
            raise UnknownService(f"no service {name!r} in config")
        contract = self.settings.contract_of(name)
        if contract is None:
            raise UnknownService(f"service {name!r} is not covered by any contract")
        return service, contract

    def month(self, name: str, month: str) -> Period:
        _, contract = self.service(name)
        year, number = parse_month(month)
        return month_period(year, number, contract.tz)

    def current_month(self, name: str, now: datetime) -> Period:
        _, contract = self.service(name)
        return month_of(now, contract.tz)

    async def all_tickets(self) -> list[TicketRecord]:
        return ticket_records(await list_tickets(self.store))

    async def unknown_time(self, start: datetime, end: datetime, now: datetime) -> IntervalSet:
        """Time no agent watched within [start, end): with several agents sharing the store,
        only the time every one of them was away is unknown (coverage is their union)."""
        agents = await self.store.watchers()
        return intersection_all(
            [await self._unknown_of(agent, start, end, now) for agent in agents]
        )

    async def _unknown_of(
        self, agent: str, start: datetime, end: datetime, now: datetime
    ) -> IntervalSet:
        """Time `agent` did not watch: its recorded gaps, before its first journal event,
        and since its last heartbeat when it has stopped beating."""
        gaps = [span(g.start, g.end) for g in await self.store.gaps(agent=agent)]
        first_ts = await self.store.first_event_at(agent)
        last_beat = await self.store.last_heartbeat(agent)
        if first_ts is None:
            gaps.append(span(start, end))
        else:
            gaps.append(span(start, first_ts))
        if last_beat is not None and now - last_beat > HEARTBEAT_STALE:
            gaps.append(span(last_beat, end))
        return union(*gaps)

    async def inputs(self, name: str, period: Period, now: datetime) -> ServiceInputs:
        service, contract = self.service(name)
        now = events.as_utc(now, "now")
        start = max(period.start_utc, contract.acceptance_utc.astimezone(UTC))
        until = min(period.end_utc, now)
        trunk_outages: list[events.Outage] = []
        for part in service.parts:
            trunk_outages.extend(
                await self.store.outages(trunk=part, since=period.start_utc, until=until)
            )
        manual = [
            m
            for m in await self.ledger.manual_outages(service=name)
            if m.first_failure_at < until and (m.restored_at is None or m.restored_at > start)
        ]
        # A manual outage of one trunk is composed with the journal's, part by part.
        per_trunk = {m.id: m for m in manual if m.trunk is not None}
        composed = compose_outages(
            service, [*trunk_outages, *(_as_trunk_outage(m) for m in per_trunk.values())], now
        )
        whole = [m for m in manual if m.trunk is None]
        ids = [c.id for c in composed] + [m.id for m in whole]
        exclusions = await self.ledger.exclusions(service=name, outage_ids=ids)
        corrections = await self.ledger.ticket_corrections(ids)
        tickets = [
            t for t in await self.all_tickets() if t.outage_id in {o.id for o in trunk_outages}
        ]
        windows = [w for w in await self.ledger.windows() if w.covers(name)]
        maintenance = windows_for(name, windows, period.start_utc, period.end_utc)
        gaps: IntervalSet = ()
        if until > start:
            # A manual outage entered with evidence is known time, usually for a period the
            # monitor did not see: it is not unknown, so it counts (and adds to coverage).
            known = union(*(span(m.first_failure_at, m.restored_at or now) for m in manual))
            gaps = difference(await self.unknown_time(period.start_utc, period.end_utc, now), known)
        outages = build_service_outages(
            composed, whole, tickets, corrections, exclusions, per_trunk=per_trunk
        )
        return ServiceInputs(
            service=service,
            contract=contract,
            period=period,
            now=now,
            trunk_outages=tuple(trunk_outages),
            outages=tuple(outages),
            windows=tuple(windows),
            maintenance=maintenance,
            gaps=gaps,
            exclusions=tuple(exclusions),
            manual=tuple(manual),
            corrections=tuple(corrections),
            tickets=tuple(tickets),
        )

    async def sla(self, name: str, period: Period, now: datetime) -> ServiceSla:
        """The SLA of service `name` over period as of now (SlaInputError for a bad period)."""
        inputs = await self.inputs(name, period, now)
        result = availability(
            inputs.contract.terms(),
            period,
            [o.record for o in inputs.outages],
            inputs.maintenance,
            inputs.gaps,
            inputs.now,
        )
        return ServiceSla(inputs, result)

    async def rolling(self, name: str, now: datetime) -> ServiceSla:
        return await self.sla(name, rolling_period(now), now)
