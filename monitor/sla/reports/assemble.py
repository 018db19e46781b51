"""Report assembly with the store: this period's SLA plus the credit carried from earlier months."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Final

from monitor.sla import (
    CreditBalance,
    CreditMonth,
    PeriodKind,
    carry_credits,
    month_of,
    month_period,
)
from monitor.sla.reports.model import AgentView, Report, build_report, exclusion_proposals
from monitor.sla.reports.quality import TrunkQuality, quality_of
from monitor.sla.service import ServiceSla, SlaContext
from monitor.store.samples import query_call_samples, query_probe_samples

__all__ = ["MAX_CREDIT_MONTHS", "credit_history", "make_report", "service_quality"]

# Credits carry over until applied; two contract years bound the months recomputed per report.
MAX_CREDIT_MONTHS: Final = 24


async def credit_history(
    ctx: SlaContext, service: str, sla: ServiceSla, now: datetime
) -> tuple[CreditBalance, ...]:
    """Credit earned in each month since acceptance (the last MAX_CREDIT_MONTHS), up to this one."""
    contract = sla.inputs.contract
    period = sla.result.period
    if period.kind is not PeriodKind.MONTH:
        return ()
    first = month_of(contract.acceptance_utc, contract.tz)
    year, month = (int(p) for p in period.label.split("-"))
    index = year * 12 + month - 1
    first_index = max(
        index - MAX_CREDIT_MONTHS + 1,
        int(first.label[:4]) * 12 + int(first.label[5:]) - 1,
    )
    months: list[CreditMonth] = []
    for i in range(first_index, index + 1):
        p = month_period(i // 12, i % 12 + 1, contract.tz)
        result = sla.result if i == index else (await ctx.sla(service, p, now)).result
        months.append(CreditMonth(p.label, result.credit))
    return carry_credits(Decimal(0), months)


async def make_report(
    ctx: SlaContext, service: str, period_label: str, now: datetime, *, lang: str = "es"
) -> Report:
    """The report of service for month period_label ("2026-10") as of now, with credit history."""
    period = ctx.month(service, period_label)
    sla = await ctx.sla(service, period, now)
    history = await credit_history(ctx, service, sla, now)
    quality = await service_quality(ctx, sla)
    views = await agent_views(ctx, sla)
    return build_report(
        sla, lang=lang, generated_at=now, credit_history=history, quality=quality,
        agent_views=views, proposals=exclusion_proposals(sla),
    )  # fmt: skip


async def agent_views(ctx: SlaContext, sla: ServiceSla) -> tuple[AgentView, ...]:
    """Each agent's own outages of the service's trunks met in the period (several agents)."""
    period = sla.result.period
    parts = set(sla.inputs.service.parts)
    return tuple(
        AgentView(agent, o.trunk, o.first_failure_at, o.restored_at, str(o.first_outcome))
        for agent, o in await ctx.store.agent_views(since=period.start_utc)
        if o.trunk in parts and o.first_failure_at < period.end_utc
    )


async def service_quality(ctx: SlaContext, sla: ServiceSla) -> tuple[TrunkQuality, ...]:
    """Percentiles of the service's trunks over the period, from the stored samples."""
    parts = sla.inputs.service.parts
    period = sla.result.period
    engine = ctx.store.engine
    calls = await query_call_samples(engine, period.start_utc, period.end_utc, trunks=parts)
    probes = await query_probe_samples(engine, period.start_utc, period.end_utc, trunks=parts)
    return quality_of(parts, calls, probes)
