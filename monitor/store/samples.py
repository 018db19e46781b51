"""Probe samples around transitions and test-call figures: batch insert, range queries."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.ext.asyncio import AsyncEngine

from monitor.events import as_utc
from monitor.store.engine import writing
from monitor.store.schema import call_samples, probe_samples

__all__ = [
    "CallSample",
    "ProbeSample",
    "insert_samples",
    "query_call_samples",
    "query_probe_samples",
]


@dataclass(frozen=True, slots=True)
class ProbeSample:
    """One OPTIONS result, tagged with the transition it was kept for."""

    agent: str
    trunk: str
    transition_kind: str
    transition_at: datetime
    at: datetime
    outcome: str
    rtt_s: float | None
    status: int | None

    def to_dict(self) -> dict[str, Any]:
        d = _row(self)
        d["transition_at"] = self.transition_at.isoformat()
        d["at"] = self.at.isoformat()
        return d


@dataclass(frozen=True, slots=True)
class CallSample:
    """One test call's figures (seconds and 0..1 ratios) and the profile limits it met."""

    agent: str
    trunk: str
    at: datetime
    outcome: str
    mos: float | None
    rx_jitter_s: float | None
    tx_jitter_s: float | None
    loss_ratio: float | None
    burst_loss_ratio: float | None
    rtt_s: float | None
    one_way_latency_s: float | None
    violations: tuple[str, ...]
    profile: str | None
    # Metric name → limit of the profile in force when the call was judged (None: unchecked).
    limits: dict[str, float | None]
    rtt_source: str | None = None  # "rtp_echo" / "rtcp" (probes.result.RttSource); None: no RTT

    @property
    def jitter_s(self) -> float | None:
        """The worse direction's jitter (what the profile limit applies to)."""
        known = [v for v in (self.rx_jitter_s, self.tx_jitter_s) if v is not None]
        return max(known) if known else None

    def to_dict(self) -> dict[str, Any]:
        d = _row(self)
        d["at"] = self.at.isoformat()
        d["violations"] = list(self.violations)
        d["limits"] = dict(self.limits)
        return d


_FIELDS: dict[type, tuple[str, ...]] = {
    kind: tuple(f.name for f in fields(kind)) for kind in (ProbeSample, CallSample)
}


def _row(sample: ProbeSample | CallSample) -> dict[str, Any]:
    """A sample's fields as an insert's parameters, values shared, not copied.

    `dataclasses.asdict` deep-copies every value (the datetimes too): ~35 µs a probe row
    of loop time (500 rows held the loop 22.5 ms with it, 4.8 ms without).
    """
    return {name: getattr(sample, name) for name in _FIELDS[type(sample)]}


def _call_row(s: CallSample) -> dict[str, Any]:
    row = _row(s)
    row["violations"] = json.dumps(list(s.violations))
    row["limits"] = json.dumps(s.limits, sort_keys=True)
    return row


async def insert_samples(
    engine: AsyncEngine, probes: Sequence[ProbeSample], calls: Sequence[CallSample]
) -> None:
    """Both kinds in one transaction (all or nothing), one executemany each."""
    if not probes and not calls:
        return
    async with writing(engine) as conn:
        if probes:
            await conn.execute(insert(probe_samples), [_row(p) for p in probes])
        if calls:
            await conn.execute(insert(call_samples), [_call_row(c) for c in calls])


def _range(table: Any, trunks: Sequence[str] | None, since: datetime, until: datetime) -> Any:
    query = select(table).where(
        table.c.at >= as_utc(since, "since"), table.c.at < as_utc(until, "until")
    )
    if trunks is not None:
        query = query.where(table.c.trunk.in_(list(trunks)))
    return query.order_by(table.c.trunk, table.c.at, table.c.id)


async def query_probe_samples(
    engine: AsyncEngine, since: datetime, until: datetime, *, trunks: Sequence[str] | None = None
) -> list[ProbeSample]:
    """Samples taken in [since, until), of `trunks` (all when None), by trunk then time."""
    async with engine.connect() as conn:
        rows = (await conn.execute(_range(probe_samples, trunks, since, until))).all()
    return [
        ProbeSample(
            agent=r.agent,
            trunk=r.trunk,
            transition_kind=r.transition_kind,
            transition_at=r.transition_at,
            at=r.at,
            outcome=r.outcome,
            rtt_s=r.rtt_s,
            status=r.status,
        )
        for r in rows
    ]


async def query_call_samples(
    engine: AsyncEngine, since: datetime, until: datetime, *, trunks: Sequence[str] | None = None
) -> list[CallSample]:
    """Test calls made in [since, until), of `trunks` (all when None), by trunk then time."""
    async with engine.connect() as conn:
        rows = (await conn.execute(_range(call_samples, trunks, since, until))).all()
    return [
        CallSample(
            agent=r.agent,
            trunk=r.trunk,
            at=r.at,
            outcome=r.outcome,
            mos=r.mos,
            rx_jitter_s=r.rx_jitter_s,
            tx_jitter_s=r.tx_jitter_s,
            loss_ratio=r.loss_ratio,
            burst_loss_ratio=r.burst_loss_ratio,
            rtt_s=r.rtt_s,
            one_way_latency_s=r.one_way_latency_s,
            violations=tuple(json.loads(r.violations)),
            profile=r.profile,
            limits=json.loads(r.limits),
            rtt_source=r.rtt_source,
        )
        for r in rows
    ]
