"""SLA gauges for /metrics, computed by the same ``SlaContext.sla`` as the reports and the API.

The database work happens in ``SlaMetrics.refresh`` (a background task every
REFRESH_INTERVAL); a scrape only reads ``samples()``, the last consistent snapshot.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from fractions import Fraction
from typing import Final

from monitor.log import get_logger
from monitor.metrics.exposition import (
    ExpositionFormat,
    Family,
    Kind,
    family,
    label_text,
    sample_line,
)
from monitor.sla import SlaInputError
from monitor.sla.intervals import microseconds
from monitor.sla.maintenance import MaintenanceCalendar
from monitor.sla.service import ServiceSla, SlaContext

__all__ = ["METRICS", "REFRESH_INTERVAL_S", "SlaMetrics", "SlaSample", "compute_samples"]

log = get_logger("trunkwatch.sla")

# Availability moves by minutes; recomputing a month per service every 30 s keeps the gauges
# current without putting month-long queries on every scrape.
REFRESH_INTERVAL_S: Final = 30.0

_HELP: Final = {
    "availability_ratio": (
        "Contract availability (0-1) per service: window=month (calendar month so far, "
        "contract time zone) or rolling (last 30 days)."
    ),
    "sla_budget_remaining_seconds": (
        "Downtime the service can still have this month before missing its target "
        "(negative: target already missed)."
    ),
    "monitoring_coverage_ratio": "Share (0-1) of this month so far that the monitor was watching.",
    "sla_target_ratio": "The contract's availability target (0-1).",
    "sla_credit_ratio": "Credit due this month so far as a share (0-1) of the monthly fee.",
    "ticket_response_overdue": (
        "1 while an open outage's ticket is past the contract's response time "
        "(no acknowledgement from the carrier yet)."
    ),
    "ticket_repair_overdue": (
        "1 while an open outage is past the contract's repair time since its ticket opened."
    ),
}
# Full name → family; every one is a gauge, written in this order.
METRICS: Final[dict[str, Family]] = {
    f.name: f for f in (family(name, Kind.GAUGE, help) for name, help in _HELP.items())
}


@dataclass(frozen=True, slots=True)
class SlaSample:
    name: str
    labels: tuple[tuple[str, str], ...]
    value: float


def _ratio(pct: Fraction) -> float:
    return float(pct / 100)


def _month_samples(service: str, sla: ServiceSla) -> list[SlaSample]:
    r = sla.result
    target = Fraction(r.target_pct) / 100
    # Allowed downtime is (1 − target) × Ttotal; what is left is that minus Tnodisp so far.
    allowed_us = (1 - target) * microseconds(r.ttotal)
    budget_s = float((allowed_us - microseconds(r.tnodisp)) / 1_000_000)
    credit = 0.0 if r.tier is None else float(r.tier.credit_pct / 100)
    coverage = 1.0 if r.coverage_exact is None else _ratio(r.coverage_exact)
    svc = (("service", service),)
    return [
        SlaSample(
            "trunkwatch_availability_ratio",
            (("service", service), ("window", "month")),
            _ratio(r.availability_exact),
        ),
        SlaSample("trunkwatch_sla_budget_remaining_seconds", svc, budget_s),
        SlaSample("trunkwatch_monitoring_coverage_ratio", svc, coverage),
        SlaSample("trunkwatch_sla_target_ratio", svc, float(target)),
        SlaSample("trunkwatch_sla_credit_ratio", svc, credit),
        *_overdue_samples(service, sla),
    ]


def _overdue_samples(service: str, sla: ServiceSla) -> list[SlaSample]:
    clocks = [sla.clocks(o) for o in sla.inputs.outages if o.record.restored_at is None]
    svc = (("service", service),)
    response = any(c.response_overdue for c in clocks)
    repair = any(c.repair_overdue for c in clocks)
    return [
        SlaSample("trunkwatch_ticket_response_overdue", svc, float(response)),
        SlaSample("trunkwatch_ticket_repair_overdue", svc, float(repair)),
    ]


async def compute_samples(ctx: SlaContext, now: datetime) -> list[SlaSample]:
    """Every SLA gauge for every service with a contract, as of now."""
    out: list[SlaSample] = []
    for service in ctx.settings.covered_services():
        try:
            month = await ctx.sla(service, ctx.current_month(service, now), now)
            rolling = await ctx.rolling(service, now)
        except SlaInputError as exc:
            # Not accepted yet (acceptance in the future): no figures, rather than wrong ones.
            log.info("sla_metrics_skipped", service=service, reason=str(exc)[:200])
            continue
        out.extend(_month_samples(service, month))
        out.append(
            SlaSample(
                "trunkwatch_availability_ratio",
                (("service", service), ("window", "rolling")),
                _ratio(rolling.result.availability_exact),
            )
        )
    return out


class SlaMetrics:
    """The last computed samples; ``refresh`` replaces them whole (scrapes see one snapshot)."""

    def __init__(self, ctx: SlaContext) -> None:
        self._ctx = ctx
        self._samples: tuple[SlaSample, ...] = ()
        self.errors = 0

    async def refresh(self, now: datetime) -> None:
        try:
            self._samples = tuple(await compute_samples(self._ctx, now))
        except Exception as exc:  # a failed refresh keeps the last snapshot; counted and logged
            self.errors += 1
            log.error("sla_metrics_refresh_failed", error=repr(exc)[:200])

    def samples(self) -> tuple[SlaSample, ...]:
        return self._samples

    def render(self, fmt: ExpositionFormat) -> str:
        """The last samples as exposition text, each family under one header."""
        samples = self._samples  # replaced whole by refresh: one consistent set
        out: list[str] = []
        for name, fam in METRICS.items():
            rows = [
                sample_line(name, label_text(**dict(s.labels)), s.value)
                for s in samples
                if s.name == name
            ]
            if rows:
                out.append(fam.header(fmt))
                out.extend(rows)
        return "".join(out)

    async def refresh_maintenance(self, calendar: MaintenanceCalendar) -> None:
        try:
            calendar.replace(await self._ctx.ledger.windows(include_cancelled=False))
        except Exception as exc:  # keep the last list; tickets must not stop on this
            log.error("maintenance_refresh_failed", error=repr(exc)[:200])

    async def run(self, calendar: MaintenanceCalendar) -> None:
        """Every REFRESH_INTERVAL_S: the gauges, and the maintenance windows the ticket
        outbox consults (the API and the CLI may have added some)."""
        while True:
            await self.refresh_maintenance(calendar)
            await self.refresh(datetime.now(UTC))
            await asyncio.sleep(REFRESH_INTERVAL_S)
