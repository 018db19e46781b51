"""Every change to the SLA ledger, with its one validation: the CLI and the API both call
these, so a rule (a known outage id, an allowed exclusion kind, a ticket time that cannot
precede the outage) holds whichever front end the operator uses."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any

from monitor.events import as_utc
from monitor.sla import ExclusionKind, OutageKind
from monitor.sla.ledger import (
    MANUAL_ID_PREFIX,
    ExclusionRecord,
    IcsImportResult,
    LedgerError,
    LedgerNotFound,
    ManualOutage,
    TicketCorrection,
)
from monitor.sla.maintenance import ALL_SERVICES, MaintenanceWindow, Origin, parse_ics
from monitor.sla.service import SlaContext

__all__ = [
    "add_exclusion",
    "add_manual_outage",
    "add_window",
    "cancel_window",
    "correct_ticket",
    "import_ics",
    "outage_start",
    "revoke_exclusion",
    "update_window",
    "withdraw_manual_outage",
]


def _services(ctx: SlaContext, names: Iterable[str]) -> tuple[str, ...]:
    names = tuple(names)
    if not names:
        raise LedgerError("name at least one service, or * for all")
    for name in names:
        if name != ALL_SERVICES:
            ctx.service(name)  # UnknownService for a name not configured
    return names


async def outage_start(ctx: SlaContext, outage_id: str, service: str | None = None) -> datetime:
    """The first failure of a known outage (journal, degradation piece or manual entry), of
    `service` when given; LedgerNotFound otherwise."""
    where = "" if service is None else f" of service {service}"
    if outage_id.startswith(MANUAL_ID_PREFIX):
        manual = await ctx.ledger.manual_outage(outage_id)
        if service is not None and manual.service != service:
            raise LedgerNotFound(f"manual outage {outage_id} is not of service {service}")
        return manual.first_failure_at
    trunk_id, piece, piece_start = outage_id.partition("@")
    outage = await ctx.store.outage(trunk_id)
    parts = None if service is None else ctx.service(service)[0].parts
    if outage is None or (parts is not None and outage.trunk not in parts):
        raise LedgerNotFound(f"no outage {outage_id}{where}")
    if piece:
        try:
            return as_utc(datetime.fromisoformat(piece_start), "outage id")
        except ValueError:
            raise LedgerNotFound(f"no outage {outage_id}{where}") from None
    return outage.first_failure_at


async def add_manual_outage(
    ctx: SlaContext,
    *,
    service: str,
    kind: OutageKind | str,
    first_failure_at: datetime,
    restored_at: datetime | None,
    ticket_opened_at: datetime | None,
    carrier_ticket: str,
    evidence_ref: str,
    note: str,
    by: str,
    at: datetime,
    trunk: str | None = None,
) -> ManualOutage:
    svc, _ = ctx.service(service)
    if trunk is not None and trunk not in svc.parts:
        raise LedgerError(f"trunk {trunk!r} is not a part of {service} ({', '.join(svc.parts)})")
    if ticket_opened_at is not None and ticket_opened_at < first_failure_at:
        raise LedgerError("ticket_opened_at is before first_failure_at")
    return await ctx.ledger.add_manual_outage(
        service=service, kind=kind, first_failure_at=first_failure_at, restored_at=restored_at,
        ticket_opened_at=ticket_opened_at, carrier_ticket=carrier_ticket,
        evidence_ref=evidence_ref, note=note, by=by, at=at, trunk=trunk,
    )  # fmt: skip


async def withdraw_manual_outage(
    ctx: SlaContext, outage_id: str, *, reason: str, by: str, at: datetime
) -> ManualOutage:
    return await ctx.ledger.withdraw_manual_outage(outage_id, reason=reason, by=by, at=at)


async def add_exclusion(
    ctx: SlaContext,
    *,
    outage_id: str,
    service: str,
    kind: ExclusionKind | str,
    reason: str,
    reference: str,
    by: str,
    at: datetime,
) -> ExclusionRecord:
    _, contract = ctx.service(service)
    allowed = sorted(k.value for k in contract.exclusion_kinds)
    value = kind.value if isinstance(kind, ExclusionKind) else kind
    if value not in allowed:
        known = "" if value in {k.value for k in ExclusionKind} else "unknown exclusion kind; "
        raise LedgerError(
            f"{known}contract {contract.name} allows {', '.join(allowed)}, not {value!r}"
        )
    await outage_start(ctx, outage_id, service)
    return await ctx.ledger.add_exclusion(
        outage_id=outage_id, service=service, kind=ExclusionKind(value), reason=reason,
        reference=reference, by=by, at=at,
    )  # fmt: skip


async def revoke_exclusion(
    ctx: SlaContext, exclusion_id: str, *, reason: str, by: str, at: datetime
) -> ExclusionRecord:
    return await ctx.ledger.revoke_exclusion(exclusion_id, reason=reason, by=by, at=at)


async def correct_ticket(
    ctx: SlaContext,
    *,
    outage_id: str,
    value: datetime,
    previous: datetime | None,
    reason: str,
    reference: str,
    by: str,
    at: datetime,
) -> TicketCorrection:
    start = await outage_start(ctx, outage_id)
    if as_utc(value, "value") < start:
        raise LedgerError(
            f"a ticket time before the outage's first failure ({start.isoformat()}) is refused"
        )
    return await ctx.ledger.correct_ticket_time(
        outage_id=outage_id, value=value, previous=previous, reason=reason,
        reference=reference, by=by, at=at,
    )  # fmt: skip


async def add_window(
    ctx: SlaContext,
    *,
    title: str,
    services: Iterable[str],
    origin: Origin | str,
    start: datetime,
    end: datetime,
    tz: str,
    rrule: str | None,
    exdates: Iterable[datetime] = (),
    notice_ref: str = "",
    by: str,
    at: datetime,
) -> MaintenanceWindow:
    try:
        origin = Origin(origin)
    except ValueError:
        allowed = ", ".join(o.value for o in Origin)
        raise LedgerError(f"origin {origin!r} is not one of: {allowed}") from None
    window = MaintenanceWindow(
        id=str(uuid.uuid4()), title=title, services=_services(ctx, services), origin=origin,
        start=start, end=end, tz=tz, rrule=rrule, exdates=tuple(exdates), notice_ref=notice_ref,
    )  # fmt: skip
    return await ctx.ledger.add_window(window, by=by, at=at)


async def update_window(
    ctx: SlaContext, window_id: str, changes: Mapping[str, Any], *, by: str, at: datetime
) -> MaintenanceWindow:
    fields = dict(changes)
    if fields.get("services") is not None:
        fields["services"] = _services(ctx, fields["services"])
    return await ctx.ledger.update_window(window_id, by=by, at=at, **fields)


async def cancel_window(
    ctx: SlaContext, window_id: str, *, reason: str, by: str, at: datetime
) -> MaintenanceWindow:
    return await ctx.ledger.cancel_window(window_id, reason=reason, by=by, at=at)


async def import_ics(
    ctx: SlaContext,
    data: bytes,
    *,
    services: Iterable[str],
    origin: str,
    tz: str,
    by: str,
    at: datetime,
) -> IcsImportResult:
    names = _services(ctx, services)
    return await ctx.ledger.import_ics(
        parse_ics(data, tz), services=list(names), origin=origin, by=by, at=at
    )
