"""JSON and CSV forms of a report (schema: docs/sla-report-schema.md)."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Final

from monitor.sla.reports.model import SCHEMA, OutageRow, Report, minutes
from monitor.sla.reports.quality import TrunkQuality

__all__ = ["CSV_COLUMNS", "render_csv", "render_json", "report_dict"]


def _dec(value: Decimal) -> str:
    return f"{value:f}"


def _secs(us: int) -> str:
    """Exact seconds as a decimal string (microsecond precision, no trailing zeros)."""
    whole, frac = divmod(us, 1_000_000)
    return str(whole) if frac == 0 else f"{whole}.{frac:06d}".rstrip("0")


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _duration(us: int) -> dict[str, str]:
    return {"seconds": _secs(us), "minutes": _dec(minutes(us))}


def _outage(o: OutageRow) -> dict[str, Any]:
    return {
        "id": o.id,
        "kind": o.kind,
        "source": o.source,
        "trunks": list(o.trunks),
        "first_failure_at": o.first_failure_at.isoformat(),
        "confirmed_at": o.confirmed_at.isoformat(),
        "ticket_opened_at": _iso(o.ticket_opened_at),
        "ticket_source": o.ticket_source,
        "carrier_ticket": o.carrier_ticket,
        "ticket_acknowledged_at": _iso(o.ticket_acknowledged_at),
        "restored_at": _iso(o.restored_at),
        "closed_at": _iso(o.closed_at),
        "open": o.open,
        "duration": _duration(o.duration_us),
        "counted": _duration(o.counted_us),
        "unclaimed": _duration(o.unclaimed_us),
        "maintenance": _duration(o.maintenance_us),
        "unknown": _duration(o.unknown_us),
        "withheld": _duration(o.withheld_us),
        "overlap": _duration(o.overlap_us),
        "outside": _duration(o.outside_us),
        "reasons": list(o.reasons),
        "exclusion": o.exclusion,
        "evidence_ref": o.evidence_ref,
        "clocks": {
            "response": _maybe_duration(o.clocks.response),
            "response_met": o.clocks.response_met,
            "repair": _maybe_duration(o.clocks.repair),
            "repair_met": o.clocks.repair_met,
        },
    }


def _maybe_duration(value: timedelta | None) -> dict[str, str] | None:
    return None if value is None else _duration(value // timedelta(microseconds=1))


def _figure(value: float | None) -> str | None:
    """Seconds or 0..1 ratios to the microsecond / millionth, as a decimal string."""
    return None if value is None else f"{value:.6f}"


def _quality(trunks: tuple[TrunkQuality, ...]) -> dict[str, Any]:
    return {
        "available": bool(trunks),
        "samples": sum(q.calls + q.options_samples for q in trunks),
        "trunks": [
            {
                "trunk": q.trunk,
                "profile": q.profile,
                "calls": q.calls,
                "options_samples": q.options_samples,
                "metrics": {
                    m.metric: {
                        "unit": m.unit,
                        "samples": m.samples,
                        "p50": _figure(m.p50),
                        "p95": _figure(m.p95),
                        "p99": _figure(m.p99),
                        "max": _figure(m.max),
                        "limit": _figure(m.limit),
                    }
                    for m in q.metrics
                },
            }
            for q in trunks
        ],
    }


def report_dict(r: Report) -> dict[str, Any]:
    """The report as JSON-ready data (instants ISO 8601 UTC, amounts and durations as strings)."""
    return {
        "schema": SCHEMA,
        "lang": r.lang,
        "service": {"name": r.service, "rule": r.rule, "parts": list(r.parts)},
        "contract": {
            "name": r.contract,
            "carrier": r.carrier,
            "tz": r.tz,
            "basis": r.basis,
            "clock": r.clock,
            "degradation_counts": r.degradation_counts,
            "target_pct": _dec(r.target_pct),
            "monthly_fee": _dec(r.monthly_fee),
            "currency": r.currency,
        },
        "period": {
            "label": r.period_label,
            "kind": r.period_kind,
            "start": r.period_start.isoformat(),
            "end": r.period_end.isoformat(),
            "effective_start": r.effective_start.isoformat(),
            "partial": r.partial,
            "complete": r.complete,
        },
        "as_of": r.as_of.isoformat(),
        "generated_at": r.generated_at.isoformat(),
        "availability": {
            "pct": _dec(r.availability_pct),
            "exact": r.availability_exact,
            "formula": r.formula_text(),
            "ttotal": _duration(r.ttotal_us),
            "tnodisp": _duration(r.tnodisp_us),
            "basis_note": r.basis_note,
            "target_pct": _dec(r.target_pct),
            "target_met": r.target_met,
        },
        "credit": {
            "tier": r.tier,
            "amount": _dec(r.credit),
            "currency": r.currency,
            "brought_forward": _dec(r.brought_forward),
            "carried_forward": _dec(r.carried_forward),
            "history": [
                {
                    "period": b.label,
                    "brought_forward": _dec(b.brought_forward),
                    "earned": _dec(b.earned),
                    "applied": _dec(b.applied),
                    "carried_forward": _dec(b.carried_forward),
                }
                for b in r.credit_history
            ],
        },
        "unclaimed": _duration(r.unclaimed_us),
        "limits": {
            "response_max": _maybe_duration(r.limits.response_max),
            "repair_max": _maybe_duration(r.limits.repair_max),
        },
        "breaches": [
            {
                "outage_id": o.id,
                "clock": clock,
                "elapsed": _maybe_duration(elapsed),
                "limit": _maybe_duration(
                    r.limits.response_max if clock == "response" else r.limits.repair_max
                ),
                "running": o.clocks.response_running
                if clock == "response"
                else o.clocks.repair_running,
            }
            for o, clock, elapsed in r.breaches
        ],
        "totals": {
            "counted": _duration(r.tnodisp_us),
            "unclaimed": _duration(r.unclaimed_us),
            "degraded": _duration(r.degraded_us),
            "maintenance": _duration(sum(o.maintenance_us for o in r.outages)),
            "withheld": _duration(sum(o.withheld_us for o in r.outages)),
            "unknown": _duration(r.unknown_us),
        },
        "coverage": {
            "pct": None if r.coverage_pct is None else _dec(r.coverage_pct),
            "exact": r.coverage_exact,
            "floor_pct": _dec(r.coverage_floor_pct),
            "sufficient": r.coverage_sufficient,
            "observed": _duration(r.observed_us),
            "unknown": _duration(r.unknown_us),
            "gaps": [
                {"start": g.start.isoformat(), "end": g.end.isoformat(), **_duration(g.duration_us)}
                for g in r.gaps
            ],
        },
        "outages": [_outage(o) for o in r.outages],
        "maintenance": [
            {
                "window_id": m.window_id,
                "title": m.title,
                "origin": m.origin,
                "notice_ref": m.notice_ref,
                "start": m.start.isoformat(),
                "end": m.end.isoformat(),
                "recurring": m.recurring,
                "in_period": _duration(m.in_period_us),
            }
            for m in r.maintenance
        ],
        "quality": _quality(r.quality),
        "agent_views": [
            {
                "agent": v.agent,
                "trunk": v.trunk,
                "first_failure_at": v.first_failure_at.isoformat(),
                "restored_at": _iso(v.restored_at),
                "first_outcome": v.first_outcome,
            }
            for v in r.agent_views
        ],
        # Suggested by the monitor, never applied: `trunkwatch exclude` records the decision.
        "proposed_exclusions": [
            {
                "outage_id": p.outage_id,
                "part": p.trunk,
                "probable_cause": p.cause,
                "kind": p.kind,
                "detail": p.detail,
            }
            for p in r.proposals
        ],
    }


def render_json(r: Report) -> bytes:
    return (json.dumps(report_dict(r), ensure_ascii=False, indent=2) + "\n").encode("utf-8")


# One row per outage line; the summary columns repeat on every row so each row stands alone.
# A period without outages gives one row with the outage columns empty.
CSV_COLUMNS: Final = (
    "service",
    "contract",
    "carrier",
    "period",
    "tz",
    "period_start",
    "period_end",
    "effective_start",
    "complete",
    "basis",
    "clock",
    "ttotal_hours",
    "tnodisp_minutes",
    "availability_pct",
    "target_pct",
    "target_met",
    "credit",
    "currency",
    "unclaimed_minutes",
    "coverage_pct",
    "coverage_sufficient",
    "degraded_minutes",
    "outage_id",
    "kind",
    "source",
    "trunks",
    "first_failure_at",
    "confirmed_at",
    "ticket_opened_at",
    "ticket_source",
    "carrier_ticket",
    "restored_at",
    "closed_at",
    "open",
    "duration_minutes",
    "counted_minutes",
    "unclaimed_outage_minutes",
    "maintenance_minutes",
    "unknown_minutes",
    "withheld_minutes",
    "overlap_minutes",
    "outside_minutes",
    "reasons",
    "exclusion_kind",
    "exclusion_by",
    "exclusion_reason",
    "exclusion_reference",
    "evidence_ref",
    "response_minutes",
    "response_met",
    "repair_minutes",
    "repair_met",
    "quality",
)


def _clock_minutes(value: timedelta | None) -> str:
    return "" if value is None else _dec(minutes(value // timedelta(microseconds=1)))


def _met(value: bool | None) -> str:
    return "" if value is None else str(value).lower()


def render_csv(r: Report) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")  # RFC 4180 §2 line breaks
    writer.writerow(CSV_COLUMNS)
    hours = Decimal(r.ttotal_us) / Decimal(3_600_000_000)
    summary = [
        r.service,
        r.contract,
        r.carrier,
        r.period_label,
        r.tz,
        r.period_start.isoformat(),
        r.period_end.isoformat(),
        r.effective_start.isoformat(),
        str(r.complete).lower(),
        r.basis,
        r.clock,
        f"{hours.normalize():f}",
        _dec(minutes(r.tnodisp_us)),
        _dec(r.availability_pct),
        _dec(r.target_pct),
        str(r.target_met).lower(),
        _dec(r.credit),
        r.currency,
        _dec(minutes(r.unclaimed_us)),
        "" if r.coverage_pct is None else _dec(r.coverage_pct),
        str(r.coverage_sufficient).lower(),
        _dec(minutes(r.degraded_us)),
    ]
    # The quality block is per trunk and metric: one JSON cell (same as the JSON form).
    quality = json.dumps(_quality(r.quality)["trunks"], ensure_ascii=False, sort_keys=True)
    if not r.outages:
        writer.writerow([*summary, *([""] * (len(CSV_COLUMNS) - len(summary) - 1)), quality])
    for o in r.outages:
        exclusion = o.exclusion or {}
        writer.writerow(
            [
                *summary,
                o.id,
                o.kind,
                o.source,
                " ".join(o.trunks),
                o.first_failure_at.isoformat(),
                o.confirmed_at.isoformat(),
                _iso(o.ticket_opened_at) or "",
                o.ticket_source,
                o.carrier_ticket or "",
                _iso(o.restored_at) or "",
                _iso(o.closed_at) or "",
                str(o.open).lower(),
                _dec(minutes(o.duration_us)),
                _dec(minutes(o.counted_us)),
                _dec(minutes(o.unclaimed_us)),
                _dec(minutes(o.maintenance_us)),
                _dec(minutes(o.unknown_us)),
                _dec(minutes(o.withheld_us)),
                _dec(minutes(o.overlap_us)),
                _dec(minutes(o.outside_us)),
                " ".join(o.reasons),
                exclusion.get("kind", ""),
                exclusion.get("by", ""),
                exclusion.get("reason", ""),
                exclusion.get("reference", ""),
                o.evidence_ref or "",
                _clock_minutes(o.clocks.response),
                _met(o.clocks.response_met),
                _clock_minutes(o.clocks.repair),
                _met(o.clocks.repair_met),
                quality,
            ]
        )
    return buffer.getvalue().encode("utf-8")
