"""The SLA ledger: maintenance windows, exclusions, manual outages and ticket-time corrections.

Every change is one transaction that also writes an audit_log row (who, when, what, before and
after). Nothing is deleted: windows are cancelled, exclusions revoked, manual outages
withdrawn, corrections superseded by later ones.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Final

from sqlalchemy import Row, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from monitor.events import as_utc
from monitor.sla import Exclusion, ExclusionKind, OutageKind
from monitor.sla.maintenance import IcsEvent, MaintenanceError, MaintenanceWindow, Origin
from monitor.store.engine import writing
from monitor.store.schema import (
    audit_log,
    exclusions,
    maintenance_windows,
    manual_outages,
    ticket_corrections,
)

__all__ = [
    "AUDIT_ENTITIES",
    "MANUAL_ID_PREFIX",
    "TICKET_OPENED_AT",
    "AuditEntry",
    "ExclusionRecord",
    "IcsImportResult",
    "LedgerConflict",
    "LedgerError",
    "LedgerNotFound",
    "ManualOutage",
    "SlaStore",
    "TicketCorrection",
]

# What the audit log records changes of.
AUDIT_ENTITIES: Final = ("exclusion", "manual_outage", "ticket_correction", "maintenance")
MANUAL_ID_PREFIX: Final = "manual-"  # manual outage ids never collide with journal outage ids
TICKET_OPENED_AT: Final = "ticket_opened_at"  # the one ticket time the SLA clock uses
CORRECTABLE_FIELDS: Final = frozenset({TICKET_OPENED_AT})
MAX_TEXT: Final = 2000  # reasons, references, notes: a paragraph, shown in reports
MAX_ACTOR: Final = 200  # schema NAME_LENGTH


class LedgerError(ValueError):
    """A ledger change that cannot be made; the message says why."""


class LedgerNotFound(LedgerError):
    pass


class LedgerConflict(LedgerError):
    """The record is in a state that forbids the change (already revoked, withdrawn...)."""


def _text(value: str, name: str, *, required: bool = True, limit: int = MAX_TEXT) -> str:
    if required and not value.strip():
        raise LedgerError(f"{name} must not be empty")
    if len(value) > limit:
        raise LedgerError(f"{name} is longer than {limit} characters")
    return value


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


@dataclass(frozen=True, slots=True)
class ExclusionRecord:
    id: str
    outage_id: str
    service: str
    kind: ExclusionKind
    reason: str
    reference: str
    created_at: datetime
    created_by: str
    revoked_at: datetime | None = None
    revoked_by: str | None = None
    revoked_reason: str | None = None

    @property
    def active(self) -> bool:
        return self.revoked_at is None

    def to_sla(self) -> Exclusion:
        return Exclusion(
            kind=self.kind,
            by=self.created_by,
            at=self.created_at,
            reason=self.reason,
            reference=self.reference,
            revoked_at=self.revoked_at,
            revoked_by=self.revoked_by,
            revoked_reason=self.revoked_reason,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "outage_id": self.outage_id,
            "service": self.service,
            "kind": self.kind.value,
            "reason": self.reason,
            "reference": self.reference,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "revoked_at": _iso(self.revoked_at),
            "revoked_by": self.revoked_by,
            "revoked_reason": self.revoked_reason,
        }


@dataclass(frozen=True, slots=True)
class ManualOutage:
    """An outage the monitor did not see, entered with evidence the carrier can check."""

    id: str
    service: str
    kind: OutageKind
    first_failure_at: datetime
    ticket_opened_at: datetime | None
    carrier_ticket: str
    restored_at: datetime | None
    evidence_ref: str
    note: str
    created_at: datetime
    created_by: str
    withdrawn_at: datetime | None = None
    withdrawn_by: str | None = None
    withdrawn_reason: str | None = None
    trunk: str | None = None  # one part of the service; None: the whole service

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "service": self.service,
            "trunk": self.trunk,
            "kind": self.kind.value,
            "first_failure_at": self.first_failure_at.isoformat(),
            "ticket_opened_at": _iso(self.ticket_opened_at),
            "carrier_ticket": self.carrier_ticket,
            "restored_at": _iso(self.restored_at),
            "evidence_ref": self.evidence_ref,
            "note": self.note,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
            "withdrawn_at": _iso(self.withdrawn_at),
            "withdrawn_by": self.withdrawn_by,
            "withdrawn_reason": self.withdrawn_reason,
        }


@dataclass(frozen=True, slots=True)
class TicketCorrection:
    id: int
    outage_id: str
    field: str
    value: datetime
    previous: datetime | None
    reason: str
    reference: str
    created_at: datetime
    created_by: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "outage_id": self.outage_id,
            "field": self.field,
            "value": self.value.isoformat(),
            "previous": _iso(self.previous),
            "reason": self.reason,
            "reference": self.reference,
            "created_at": self.created_at.isoformat(),
            "created_by": self.created_by,
        }


@dataclass(frozen=True, slots=True)
class AuditEntry:
    id: int
    at: datetime
    actor: str
    action: str
    entity: str
    entity_id: str
    detail: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "at": self.at.isoformat(),
            "actor": self.actor,
            "action": self.action,
            "entity": self.entity,
            "entity_id": self.entity_id,
            "detail": self.detail,
        }


@dataclass(frozen=True, slots=True)
class IcsImportResult:
    created: tuple[str, ...]
    updated: tuple[str, ...]
    cancelled: tuple[str, ...]
    unchanged: tuple[str, ...]

    def to_dict(self) -> dict[str, list[str]]:
        return {
            "created": list(self.created),
            "updated": list(self.updated),
            "cancelled": list(self.cancelled),
            "unchanged": list(self.unchanged),
        }


class SlaStore:
    """The ledger tables of one database (the Store's engine)."""

    def __init__(self, engine: AsyncEngine) -> None:
        self._engine = engine

    async def _audit(
        self,
        conn: AsyncConnection,
        *,
        at: datetime,
        actor: str,
        action: str,
        entity: str,
        entity_id: str,
        detail: dict[str, Any],
    ) -> None:
        await conn.execute(
            insert(audit_log).values(
                at=at,
                actor=actor,
                action=action,
                entity=entity,
                entity_id=entity_id,
                detail=json.dumps(detail, sort_keys=True, ensure_ascii=False),
            )
        )

    @staticmethod
    def _who(by: str, at: datetime) -> tuple[str, datetime]:
        return _text(by, "actor", limit=MAX_ACTOR), as_utc(at, "change time")

    # ---- exclusions ---------------------------------------------------------------------

    async def add_exclusion(
        self,
        *,
        outage_id: str,
        service: str,
        kind: ExclusionKind | str,
        reason: str,
        reference: str,
        by: str,
        at: datetime,
    ) -> ExclusionRecord:
        """Classify outage_id (of service) as not counted; refused while one is already active."""
        by, at = self._who(by, at)
        try:
            kind = ExclusionKind(kind)
        except ValueError:
            allowed = ", ".join(k.value for k in ExclusionKind)
            raise LedgerError(f"exclusion kind {kind!r} is not one of: {allowed}") from None
        record = ExclusionRecord(
            id=str(uuid.uuid4()),
            outage_id=_text(outage_id, "outage_id", limit=MAX_ACTOR),
            service=_text(service, "service", limit=MAX_ACTOR),
            kind=kind,
            reason=_text(reason, "reason"),
            reference=_text(reference, "reference", required=False),
            created_at=at,
            created_by=by,
        )
        async with writing(self._engine) as conn:
            active = await conn.execute(
                select(exclusions.c.id).where(
                    exclusions.c.outage_id == outage_id,
                    exclusions.c.service == service,
                    exclusions.c.revoked_at.is_(None),
                )
            )
            existing = active.scalar_one_or_none()
            if existing is not None:
                raise LedgerConflict(
                    f"outage {outage_id} already has active exclusion {existing}: revoke it first"
                )
            row = record.to_dict()
            row["kind"] = kind.value
            row.update(created_at=at, revoked_at=None)
            await conn.execute(insert(exclusions).values(**row))
            await self._audit(
                conn,
                at=at,
                actor=by,
                action="exclusion.create",
                entity="exclusion",
                entity_id=record.id,
                detail={"after": record.to_dict()},
            )
        return record

    async def revoke_exclusion(
        self, exclusion_id: str, *, reason: str, by: str, at: datetime
    ) -> ExclusionRecord:
        by, at = self._who(by, at)
        reason = _text(reason, "reason")
        async with writing(self._engine) as conn:
            before = await self._exclusion(conn, exclusion_id)
            if before.revoked_at is not None:
                raise LedgerConflict(f"exclusion {exclusion_id} was already revoked")
            if at < before.created_at:
                raise LedgerError("an exclusion cannot be revoked before it was made")
            after = replace(before, revoked_at=at, revoked_by=by, revoked_reason=reason)
            await conn.execute(
                update(exclusions)
                .where(exclusions.c.id == exclusion_id)
                .values(revoked_at=at, revoked_by=by, revoked_reason=reason)
            )
            await self._audit(
                conn,
                at=at,
                actor=by,
                action="exclusion.revoke",
                entity="exclusion",
                entity_id=exclusion_id,
                detail={"before": before.to_dict(), "after": after.to_dict()},
            )
        return after

    async def _exclusion(self, conn: AsyncConnection, exclusion_id: str) -> ExclusionRecord:
        row = (
            await conn.execute(select(exclusions).where(exclusions.c.id == exclusion_id))
        ).one_or_none()
        if row is None:
            raise LedgerNotFound(f"no exclusion {exclusion_id}")
        return _exclusion_from_row(row)

    async def exclusion(self, exclusion_id: str) -> ExclusionRecord:
        async with self._engine.connect() as conn:
            return await self._exclusion(conn, exclusion_id)

    async def exclusions(
        self, *, service: str | None = None, outage_ids: Iterable[str] | None = None
    ) -> list[ExclusionRecord]:
        """Every exclusion (revoked ones too), oldest first."""
        query = select(exclusions).order_by(exclusions.c.created_at, exclusions.c.id)
        if service is not None:
            query = query.where(exclusions.c.service == service)
        if outage_ids is not None:
            query = query.where(exclusions.c.outage_id.in_(list(outage_ids)))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_exclusion_from_row(r) for r in rows]

    # ---- manual outages -----------------------------------------------------------------

    async def add_manual_outage(
        self,
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
        by, at = self._who(by, at)
        try:
            kind = OutageKind(kind)
        except ValueError:
            raise LedgerError(f"kind {kind!r} is not outage or degradation") from None
        first = as_utc(first_failure_at, "first_failure_at")
        restored = None if restored_at is None else as_utc(restored_at, "restored_at")
        ticket = None if ticket_opened_at is None else as_utc(ticket_opened_at, "ticket_opened_at")
        if restored is not None and restored <= first:
            raise LedgerError("restored_at must be after first_failure_at")
        if first > at:
            raise LedgerError("first_failure_at is in the future")
        record = ManualOutage(
            id=f"{MANUAL_ID_PREFIX}{uuid.uuid4()}",
            service=_text(service, "service", limit=MAX_ACTOR),
            kind=kind,
            first_failure_at=first,
            ticket_opened_at=ticket,
            carrier_ticket=_text(carrier_ticket, "carrier_ticket", required=False),
            restored_at=restored,
            evidence_ref=_text(evidence_ref, "evidence_ref"),
            note=_text(note, "note", required=False),
            created_at=at,
            created_by=by,
            trunk=None if trunk is None else _text(trunk, "trunk", limit=MAX_ACTOR),
        )
        async with writing(self._engine) as conn:
            await conn.execute(
                insert(manual_outages).values(
                    id=record.id,
                    service=record.service,
                    trunk=record.trunk,
                    kind=kind.value,
                    first_failure_at=first,
                    ticket_opened_at=ticket,
                    carrier_ticket=record.carrier_ticket,
                    restored_at=restored,
                    evidence_ref=record.evidence_ref,
                    note=record.note,
                    created_at=at,
                    created_by=by,
                )
            )
            await self._audit(
                conn,
                at=at,
                actor=by,
                action="manual_outage.create",
                entity="manual_outage",
                entity_id=record.id,
                detail={"after": record.to_dict()},
            )
        return record

    async def withdraw_manual_outage(
        self, outage_id: str, *, reason: str, by: str, at: datetime
    ) -> ManualOutage:
        by, at = self._who(by, at)
        reason = _text(reason, "reason")
        async with writing(self._engine) as conn:
            before = await self._manual(conn, outage_id)
            if before.withdrawn_at is not None:
                raise LedgerConflict(f"manual outage {outage_id} was already withdrawn")
            after = replace(before, withdrawn_at=at, withdrawn_by=by, withdrawn_reason=reason)
            await conn.execute(
                update(manual_outages)
                .where(manual_outages.c.id == outage_id)
                .values(withdrawn_at=at, withdrawn_by=by, withdrawn_reason=reason)
            )
            await self._audit(
                conn,
                at=at,
                actor=by,
                action="manual_outage.withdraw",
                entity="manual_outage",
                entity_id=outage_id,
                detail={"before": before.to_dict(), "after": after.to_dict()},
            )
        return after

    async def _manual(self, conn: AsyncConnection, outage_id: str) -> ManualOutage:
        row = (
            await conn.execute(select(manual_outages).where(manual_outages.c.id == outage_id))
        ).one_or_none()
        if row is None:
            raise LedgerNotFound(f"no manual outage {outage_id}")
        return _manual_from_row(row)

    async def manual_outage(self, outage_id: str) -> ManualOutage:
        async with self._engine.connect() as conn:
            return await self._manual(conn, outage_id)

    async def manual_outages(
        self, *, service: str | None = None, include_withdrawn: bool = False
    ) -> list[ManualOutage]:
        query = select(manual_outages).order_by(
            manual_outages.c.first_failure_at, manual_outages.c.id
        )
        if service is not None:
            query = query.where(manual_outages.c.service == service)
        if not include_withdrawn:
            query = query.where(manual_outages.c.withdrawn_at.is_(None))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_manual_from_row(r) for r in rows]

    # ---- ticket-time corrections --------------------------------------------------------

    async def correct_ticket_time(
        self,
        *,
        outage_id: str,
        value: datetime,
        previous: datetime | None,
        reason: str,
        reference: str,
        by: str,
        at: datetime,
        field: str = TICKET_OPENED_AT,
    ) -> TicketCorrection:
        """Record the true ticket time of outage_id (e.g. from the carrier's log); latest wins."""
        by, at = self._who(by, at)
        if field not in CORRECTABLE_FIELDS:
            raise LedgerError(f"field {field!r} is not one of: {', '.join(CORRECTABLE_FIELDS)}")
        value = as_utc(value, "value")
        if value > at:
            raise LedgerError("a ticket cannot have been opened in the future")
        reason = _text(reason, "reason")
        reference = _text(reference, "reference", required=False)
        outage_id = _text(outage_id, "outage_id", limit=MAX_ACTOR)
        previous = None if previous is None else as_utc(previous, "previous")
        async with writing(self._engine) as conn:
            result = await conn.execute(
                insert(ticket_corrections)
                .values(
                    outage_id=outage_id,
                    field=field,
                    value=value,
                    previous=previous,
                    reason=reason,
                    reference=reference,
                    created_at=at,
                    created_by=by,
                )
                .returning(ticket_corrections.c.id)
            )
            new_id = int(result.scalar_one())
            record = TicketCorrection(
                new_id, outage_id, field, value, previous, reason, reference, at, by
            )
            await self._audit(
                conn,
                at=at,
                actor=by,
                action="ticket_correction.create",
                entity="ticket_correction",
                entity_id=str(new_id),
                detail={"after": record.to_dict()},
            )
        return record

    async def ticket_corrections(
        self, outage_ids: Iterable[str] | None = None
    ) -> list[TicketCorrection]:
        query = select(ticket_corrections).order_by(
            ticket_corrections.c.created_at, ticket_corrections.c.id
        )
        if outage_ids is not None:
            query = query.where(ticket_corrections.c.outage_id.in_(list(outage_ids)))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            TicketCorrection(
                int(r.id),
                r.outage_id,
                r.field,
                r.value,
                r.previous,
                r.reason,
                r.reference,
                r.created_at,
                r.created_by,
            )
            for r in rows
        ]

    # ---- maintenance windows ------------------------------------------------------------

    async def add_window(
        self, window: MaintenanceWindow, *, by: str, at: datetime
    ) -> MaintenanceWindow:
        by, at = self._who(by, at)
        stored = window.with_changes(created_at=at, created_by=by)
        async with writing(self._engine) as conn:
            await conn.execute(insert(maintenance_windows).values(**_window_row(stored)))
            await self._audit(
                conn,
                at=at,
                actor=by,
                action="maintenance.create",
                entity="maintenance",
                entity_id=stored.id,
                detail={"after": stored.to_dict()},
            )
        return stored

    async def update_window(
        self, window_id: str, *, by: str, at: datetime, **changes: Any
    ) -> MaintenanceWindow:
        """Change fields of a window (not its id or audit fields); audited with before/after."""
        by, at = self._who(by, at)
        allowed = {
            "title",
            "services",
            "origin",
            "start",
            "end",
            "tz",
            "rrule",
            "exdates",
            "notice_ref",
            "ical_sequence",
        }
        unknown = set(changes) - allowed
        if unknown:
            raise LedgerError(f"cannot change {', '.join(sorted(unknown))}")
        async with writing(self._engine) as conn:
            before = await self._window(conn, window_id)
            if before.cancelled:
                raise LedgerConflict(f"maintenance window {window_id} is cancelled")
            try:
                after = before.with_changes(updated_at=at, updated_by=by, **changes)
            except (MaintenanceError, ValueError, TypeError) as exc:
                raise LedgerError(str(exc)) from None
            row = _window_row(after)
            await conn.execute(
                update(maintenance_windows)
                .where(maintenance_windows.c.id == window_id)
                .values(**row)
            )
            await self._audit(
                conn,
                at=at,
                actor=by,
                action="maintenance.update",
                entity="maintenance",
                entity_id=window_id,
                detail={"before": before.to_dict(), "after": after.to_dict()},
            )
        return after

    async def cancel_window(
        self, window_id: str, *, reason: str, by: str, at: datetime
    ) -> MaintenanceWindow:
        by, at = self._who(by, at)
        reason = _text(reason, "reason")
        async with writing(self._engine) as conn:
            before = await self._window(conn, window_id)
            if before.cancelled:
                raise LedgerConflict(f"maintenance window {window_id} was already cancelled")
            after = before.with_changes(cancelled_at=at, cancelled_by=by, cancel_reason=reason)
            await conn.execute(
                update(maintenance_windows)
                .where(maintenance_windows.c.id == window_id)
                .values(cancelled_at=at, cancelled_by=by, cancel_reason=reason)
            )
            await self._audit(
                conn,
                at=at,
                actor=by,
                action="maintenance.cancel",
                entity="maintenance",
                entity_id=window_id,
                detail={"before": before.to_dict(), "after": after.to_dict()},
            )
        return after

    async def _window(self, conn: AsyncConnection, window_id: str) -> MaintenanceWindow:
        row = (
            await conn.execute(
                select(maintenance_windows).where(maintenance_windows.c.id == window_id)
            )
        ).one_or_none()
        if row is None:
            raise LedgerNotFound(f"no maintenance window {window_id}")
        return _window_from_row(row)

    async def window(self, window_id: str) -> MaintenanceWindow:
        async with self._engine.connect() as conn:
            return await self._window(conn, window_id)

    async def windows(self, *, include_cancelled: bool = True) -> list[MaintenanceWindow]:
        query = select(maintenance_windows).order_by(
            maintenance_windows.c.start_at, maintenance_windows.c.id
        )
        if not include_cancelled:
            query = query.where(maintenance_windows.c.cancelled_at.is_(None))
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_window_from_row(r) for r in rows]

    async def import_ics(
        self,
        events: Sequence[IcsEvent],
        *,
        services: Sequence[str],
        origin: Origin | str,
        by: str,
        at: datetime,
    ) -> IcsImportResult:
        """Create, update (higher SEQUENCE) or cancel (STATUS:CANCELLED) windows by iCal UID."""
        created: list[str] = []
        updated: list[str] = []
        cancelled: list[str] = []
        unchanged: list[str] = []
        existing = {w.ical_uid: w for w in await self.windows() if w.ical_uid is not None}
        for event in events:
            current = existing.get(event.uid)
            fields: dict[str, Any] = {
                "title": event.title,
                "start": event.start,
                "end": event.end,
                "tz": event.tz,
                "rrule": event.rrule,
                "exdates": event.exdates,
                "notice_ref": event.notice_ref,
                "ical_sequence": event.sequence,
            }
            if current is None:
                if event.cancelled:
                    unchanged.append(event.uid)  # a cancellation of something never imported
                    continue
                window = MaintenanceWindow(
                    id=str(uuid.uuid4()),
                    services=tuple(services),
                    origin=Origin(origin),
                    ical_uid=event.uid,
                    **fields,
                )
                await self.add_window(window, by=by, at=at)
                created.append(event.uid)
            elif current.cancelled or event.sequence <= (current.ical_sequence or 0):
                unchanged.append(event.uid)
            elif event.cancelled:
                await self.cancel_window(
                    current.id,
                    reason=f"cancelled by calendar SEQUENCE {event.sequence}",
                    by=by,
                    at=at,
                )
                cancelled.append(event.uid)
            else:
                await self.update_window(current.id, by=by, at=at, **fields)
                updated.append(event.uid)
        return IcsImportResult(tuple(created), tuple(updated), tuple(cancelled), tuple(unchanged))

    # ---- audit --------------------------------------------------------------------------

    async def audit_log(
        self, *, entity: str | None = None, entity_id: str | None = None
    ) -> list[AuditEntry]:
        query = select(audit_log).order_by(audit_log.c.id)
        if entity is not None:
            query = query.where(audit_log.c.entity == entity)
        if entity_id is not None:
            query = query.where(audit_log.c.entity_id == entity_id)
        async with self._engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [
            AuditEntry(
                int(r.id), r.at, r.actor, r.action, r.entity, r.entity_id, json.loads(r.detail)
            )
            for r in rows
        ]


def _exclusion_from_row(row: Row[Any]) -> ExclusionRecord:
    return ExclusionRecord(
        id=row.id,
        outage_id=row.outage_id,
        service=row.service,
        kind=ExclusionKind(row.kind),
        reason=row.reason,
        reference=row.reference,
        created_at=row.created_at,
        created_by=row.created_by,
        revoked_at=row.revoked_at,
        revoked_by=row.revoked_by,
        revoked_reason=row.revoked_reason,
    )


def _manual_from_row(row: Row[Any]) -> ManualOutage:
    return ManualOutage(
        id=row.id,
        service=row.service,
        kind=OutageKind(row.kind),
        first_failure_at=row.first_failure_at,
        ticket_opened_at=row.ticket_opened_at,
        carrier_ticket=row.carrier_ticket,
        restored_at=row.restored_at,
        evidence_ref=row.evidence_ref,
        note=row.note,
        created_at=row.created_at,
        created_by=row.created_by,
        withdrawn_at=row.withdrawn_at,
        withdrawn_by=row.withdrawn_by,
        withdrawn_reason=row.withdrawn_reason,
        trunk=row.trunk,
    )


def _window_row(w: MaintenanceWindow) -> dict[str, Any]:
    return {
        "id": w.id,
        "title": w.title,
        "services": json.dumps(list(w.services)),
        "origin": w.origin.value,
        "start_at": w.start,
        "end_at": w.end,
        "tz": w.tz,
        "rrule": w.rrule,
        "exdates": w.exdates_json(),
        "notice_ref": w.notice_ref,
        "ical_uid": w.ical_uid,
        "ical_sequence": w.ical_sequence,
        "created_at": w.created_at,
        "created_by": w.created_by,
        "updated_at": w.updated_at,
        "updated_by": w.updated_by,
        "cancelled_at": w.cancelled_at,
        "cancelled_by": w.cancelled_by,
        "cancel_reason": w.cancel_reason,
    }


def _window_from_row(row: Row[Any]) -> MaintenanceWindow:
    return MaintenanceWindow(
        id=row.id,
        title=row.title,
        services=tuple(json.loads(row.services)),
        origin=Origin(row.origin),
        start=row.start_at,
        end=row.end_at,
        tz=row.tz,
        rrule=row.rrule,
        exdates=tuple(datetime.fromisoformat(d) for d in json.loads(row.exdates)),
        notice_ref=row.notice_ref,
        ical_uid=row.ical_uid,
        ical_sequence=row.ical_sequence,
        created_at=row.created_at,
        created_by=row.created_by,
        updated_at=row.updated_at,
        updated_by=row.updated_by,
        cancelled_at=row.cancelled_at,
        cancelled_by=row.cancelled_by,
        cancel_reason=row.cancel_reason,
    )
