"""The report as data: built from one ``ServiceSla`` (the same numbers as the API and metrics).

Every renderer (JSON, CSV, HTML, PDF) reads this model and computes nothing of its own.
The JSON form is documented in docs/sla-report-schema.md (schema ``trunkwatch-sla-report/1``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, Final
from zoneinfo import ZoneInfo

from monitor.probable_cause import PROPOSED_EXCLUSION, probable_cause
from monitor.sla import CreditBalance, OutageKind, OutageLine
from monitor.sla.clocks import ClockLimits, ClockVerdict
from monitor.sla.intervals import Interval, intersection, microseconds, span
from monitor.sla.maintenance import occurrences
from monitor.sla.reports.i18n import check_lang
from monitor.sla.reports.quality import TrunkQuality
from monitor.sla.service import ServiceOutage, ServiceSla

__all__ = ["SCHEMA", "GapLine", "MaintenanceLine", "OutageRow", "Report", "build_report"]

SCHEMA: Final = "trunkwatch-sla-report/1"
_MINUTE_QUANTUM = Decimal("0.01")  # minutes shown to the hundredth (0.6 s)


def minutes(duration_us: int) -> Decimal:
    """Exact microseconds → minutes, rounded half-up to 0.01."""
    return (Decimal(duration_us) / Decimal(60_000_000)).quantize(_MINUTE_QUANTUM, ROUND_HALF_UP)


def _us(delta: Any) -> int:
    return microseconds(delta)


@dataclass(frozen=True, slots=True)
class OutageRow:
    id: str
    kind: str
    source: str
    trunks: tuple[str, ...]
    first_failure_at: datetime
    confirmed_at: datetime
    ticket_opened_at: datetime | None
    ticket_source: str
    carrier_ticket: str | None
    ticket_acknowledged_at: datetime | None
    restored_at: datetime | None
    closed_at: datetime | None
    open: bool
    duration_us: int
    counted_us: int
    unclaimed_us: int
    maintenance_us: int
    unknown_us: int
    withheld_us: int
    overlap_us: int
    outside_us: int
    reasons: tuple[str, ...]
    exclusion: dict[str, Any] | None
    evidence_ref: str | None
    clocks: ClockVerdict = field(default_factory=ClockVerdict)


class ReportsExtraMissing(RuntimeError):
    """HTML/PDF reports need the `reports` extra (matplotlib, WeasyPrint), not installed."""

    def __init__(self, package: str) -> None:
        super().__init__(
            f"HTML and PDF reports need {package}, which is not installed: "
            "pip install 'trunkwatch[reports]' (JSON and CSV work without it)"
        )


@dataclass(frozen=True, slots=True)
class MaintenanceLine:
    window_id: str
    title: str
    origin: str
    notice_ref: str
    start: datetime
    end: datetime
    recurring: bool
    in_period_us: int


@dataclass(frozen=True, slots=True)
class AgentView:
    """One agent's own outage of a trunk of the service (several agents: monitor/quorum.py);
    the contract counts the quorum's outages, these are the detail behind them."""

    agent: str
    trunk: str
    first_failure_at: datetime
    restored_at: datetime | None
    first_outcome: str


@dataclass(frozen=True, slots=True)
class ExclusionProposal:
    """An exclusion the report suggests and never applies: someone classifies the outage
    (`trunkwatch exclude`), audited, or not."""

    outage_id: str
    trunk: str  # the part (an endpoint) whose outage has the probable cause
    cause: str  # monitor/probable_cause.py
    kind: str  # the exclusion kind proposed, e.g. customer_equipment
    detail: str | None  # the failed probe's cause, e.g. the certificate verify message


def exclusion_proposals(sla: ServiceSla) -> tuple[ExclusionProposal, ...]:
    """Outages not yet excluded whose probable cause suggests an exclusion."""
    excluded = {line.id for line in sla.result.lines if line.exclusion is not None}
    parts = {o.id: o for o in sla.inputs.trunk_outages}
    out: list[ExclusionProposal] = []
    for outage in sla.inputs.outages:
        if outage.record.id in excluded:
            continue
        for part_id in outage.trunk_outage_ids:
            part = parts.get(part_id)
            if part is None:
                continue
            cause = probable_cause(part.first_outcome, part.detail)
            if cause is not None:
                kind = PROPOSED_EXCLUSION[cause]
                proposal = ExclusionProposal(outage.record.id, part.trunk, cause, kind, part.detail)
                out.append(proposal)
                break
    return tuple(out)


@dataclass(frozen=True, slots=True)
class GapLine:
    start: datetime
    end: datetime
    duration_us: int


@dataclass(frozen=True, slots=True)
class Report:
    """One service, one period: everything any renderer shows."""

    lang: str
    service: str
    rule: str
    parts: tuple[str, ...]
    contract: str
    carrier: str
    currency: str
    tz: str
    period_label: str
    period_kind: str
    period_start: datetime
    period_end: datetime
    effective_start: datetime
    partial: bool
    as_of: datetime
    generated_at: datetime
    complete: bool
    basis: str
    basis_note: str
    clock: str
    degradation_counts: bool
    ttotal_us: int
    tnodisp_us: int
    availability_pct: Decimal
    availability_exact: str  # the exact fraction "n/d", so anyone can check the rounding
    target_pct: Decimal
    target_met: bool
    tier: dict[str, str] | None
    credit: Decimal
    monthly_fee: Decimal
    credit_history: tuple[CreditBalance, ...]
    unclaimed_us: int
    observed_us: int
    unknown_us: int
    coverage_pct: Decimal | None
    coverage_exact: str | None  # the exact fraction "n/d" of coverage_pct
    coverage_floor_pct: Decimal
    outages: tuple[OutageRow, ...]
    maintenance: tuple[MaintenanceLine, ...]
    gaps: tuple[GapLine, ...]
    # Per trunk of the service with samples in the period (monitor/sla/reports/quality.py).
    quality: tuple[TrunkQuality, ...] = ()
    # With several agents: what each one saw (empty for a single agent).
    agent_views: tuple[AgentView, ...] = ()
    limits: ClockLimits = field(default_factory=ClockLimits)
    # Suggested, never applied: outages whose probable cause is the customer's side.
    proposals: tuple[ExclusionProposal, ...] = ()

    def local(self, instant: datetime | None) -> str:
        """An instant as wall time in the contract's zone, with its UTC offset."""
        if instant is None:
            return ""
        return instant.astimezone(ZoneInfo(self.tz)).strftime("%Y-%m-%d %H:%M:%S %z")

    @property
    def breaches(self) -> list[tuple[OutageRow, str, timedelta]]:
        """(outage, "response" or "repair", elapsed) for every limit missed, even running."""
        out: list[tuple[OutageRow, str, timedelta]] = []
        for o in self.outages:
            if o.clocks.response_met is False and o.clocks.response is not None:
                out.append((o, "response", o.clocks.response))
            if o.clocks.repair_met is False and o.clocks.repair is not None:
                out.append((o, "repair", o.clocks.repair))
        return out

    @property
    def coverage_sufficient(self) -> bool:
        """Coverage at or above the contract's floor (nothing observed yet is not)."""
        return self.coverage_pct is not None and self.coverage_pct >= self.coverage_floor_pct

    @property
    def degraded_us(self) -> int:
        """In-period time of the degradations (faults that are not downtime)."""
        return sum(o.duration_us - o.outside_us for o in self.outages if o.kind == "degradation")

    @property
    def counted_minutes(self) -> Decimal:
        return minutes(self.tnodisp_us)

    @property
    def carried_forward(self) -> Decimal:
        return self.credit_history[-1].carried_forward if self.credit_history else self.credit

    @property
    def brought_forward(self) -> Decimal:
        return self.credit_history[-1].brought_forward if self.credit_history else Decimal(0)

    def formula_text(self) -> str:
        """(Ttotal − Tnodisp) / Ttotal × 100 with this report's numbers, in hours."""
        tt = Decimal(self.ttotal_us) / Decimal(3_600_000_000)
        tn = Decimal(self.tnodisp_us) / Decimal(3_600_000_000)

        def h(x: Decimal) -> str:
            text = f"{x.quantize(Decimal('0.0001'), ROUND_HALF_UP):f}".rstrip("0").rstrip(".")
            return f"{text} h"

        return f"({h(tt)} − {h(tn)}) / {h(tt)} × 100 = {self.availability_pct} %"


def _exclusion(line: OutageLine) -> dict[str, Any] | None:
    e = line.exclusion
    if e is None:
        return None
    return {
        "kind": e.kind.value,
        "by": e.by,
        "at": e.at.isoformat(),
        "reason": e.reason,
        "reference": e.reference,
    }


def _row(outage: ServiceOutage, line: OutageLine, clocks: ClockVerdict) -> OutageRow:
    r = outage.record
    acknowledged = [t.acknowledged_at for t in outage.tickets if t.acknowledged_at is not None]
    refs = [t.carrier_ref for t in outage.tickets if t.carrier_ref]
    return OutageRow(
        id=r.id,
        kind=r.kind.value,
        source=outage.source,
        trunks=outage.trunks,
        first_failure_at=r.first_failure_at,
        confirmed_at=r.confirmed_at,
        ticket_opened_at=r.ticket_opened_at,
        ticket_source=outage.ticket_source,
        carrier_ticket=outage.carrier_ticket or (refs[0] if refs else None),
        ticket_acknowledged_at=min(acknowledged) if acknowledged else None,
        restored_at=r.restored_at,
        closed_at=outage.closed_at,
        open=line.open,
        duration_us=_us(line.duration),
        counted_us=_us(line.counted),
        unclaimed_us=_us(line.unclaimed),
        maintenance_us=_us(line.maintenance),
        unknown_us=_us(line.unknown),
        withheld_us=_us(line.withheld),
        overlap_us=_us(line.overlap),
        outside_us=_us(line.outside),
        reasons=tuple(reason.value for reason in line.reasons),
        exclusion=_exclusion(line),
        evidence_ref=outage.evidence_ref,
        clocks=clocks,
    )


def build_report(
    sla: ServiceSla,
    *,
    lang: str,
    generated_at: datetime,
    credit_history: Sequence[CreditBalance] = (),
    quality: Sequence[TrunkQuality] = (),
    agent_views: Sequence[AgentView] = (),
    proposals: Sequence[ExclusionProposal] = (),
) -> Report:
    """The report model for one computed SLA; credit_history ends with this period's balance."""
    check_lang(lang)
    inputs, result = sla.inputs, sla.result
    contract = inputs.contract
    by_id = {o.record.id: o for o in inputs.outages}
    rows = tuple(_row(by_id[line.id], line, sla.clocks(by_id[line.id])) for line in result.lines)
    period = result.period
    window = span(result.effective_start, period.end_utc)
    maintenance: list[MaintenanceLine] = []
    for w in inputs.windows:
        if w.cancelled:
            continue
        for occ in occurrences(w, period.start_utc, period.end_utc):
            inside = intersection((occ,), window)
            maintenance.append(
                MaintenanceLine(
                    window_id=w.id,
                    title=w.title,
                    origin=w.origin.value,
                    notice_ref=w.notice_ref,
                    start=occ.start,
                    end=occ.end,
                    recurring=w.rrule is not None,
                    in_period_us=sum(_us(i.duration) for i in inside),
                )
            )
    observed_end = min(period.end_utc, inputs.now)
    gaps = tuple(
        GapLine(g.start, g.end, _us(g.duration))
        for g in intersection(inputs.gaps, span(result.effective_start, observed_end))
        if isinstance(g, Interval)
    )
    tier = (
        None
        if result.tier is None
        else {"below_pct": str(result.tier.below_pct), "credit_pct": str(result.tier.credit_pct)}
    )
    exact, coverage = result.availability_exact, result.coverage_exact
    return Report(
        lang=lang,
        service=inputs.service.name,
        rule=inputs.service.rule.value,
        parts=inputs.service.parts,
        contract=contract.name,
        carrier=contract.carrier,
        currency=contract.currency,
        tz=contract.tz,
        period_label=period.label,
        period_kind=period.kind.value,
        period_start=period.start_utc,
        period_end=period.end_utc,
        effective_start=result.effective_start,
        partial=result.effective_start > period.start_utc,
        as_of=inputs.now,
        generated_at=generated_at,
        complete=result.complete,
        basis=contract.basis.value,
        basis_note=result.basis_note,
        clock=contract.clock.value,
        degradation_counts=contract.degradation_counts,
        ttotal_us=_us(result.ttotal),
        tnodisp_us=_us(result.tnodisp),
        availability_pct=result.availability_pct,
        availability_exact=f"{exact.numerator}/{exact.denominator}",
        target_pct=result.target_pct,
        target_met=result.target_met,
        tier=tier,
        credit=result.credit,
        monthly_fee=contract.monthly_fee,
        credit_history=tuple(credit_history),
        unclaimed_us=_us(result.unclaimed),
        observed_us=_us(result.observed),
        unknown_us=_us(result.unknown),
        coverage_pct=result.coverage_pct,
        coverage_exact=None if coverage is None else f"{coverage.numerator}/{coverage.denominator}",
        coverage_floor_pct=contract.coverage_floor_pct,
        outages=rows,
        maintenance=tuple(sorted(maintenance, key=lambda m: (m.start, m.window_id))),
        gaps=gaps,
        quality=tuple(quality),
        agent_views=tuple(agent_views),
        limits=contract.limits_for(inputs.service.name),
        proposals=tuple(proposals),
    )


def outage_kind_rows(report: Report, kind: OutageKind) -> list[OutageRow]:
    return [o for o in report.outages if o.kind == kind.value]
