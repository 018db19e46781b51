"""Media and OPTIONS percentiles per trunk over a period, next to the trunk's profile limits.

Pure: stored samples in, figures out. Percentiles are nearest-rank (the smallest value with
at least p % of the samples at or below it), so every figure is a value actually measured.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Final

from monitor.store.samples import CallSample, ProbeSample

__all__ = ["PERCENTILES", "MetricQuality", "TrunkQuality", "percentile", "quality_of"]

PERCENTILES: Final = (50, 95, 99)
OPTIONS_RTT: Final = "options_rtt"  # not a profile metric: OPTIONS answers, not media

# Report metric → (unit, how to read it from a call sample); names are probes Metric values.
_CALL_METRICS: Final[tuple[tuple[str, str, Callable[[CallSample], float | None]], ...]] = (
    ("one_way_latency", "s", lambda c: c.one_way_latency_s),
    ("rtt", "s", lambda c: c.rtt_s),
    ("jitter", "s", lambda c: c.jitter_s),
    ("loss", "ratio", lambda c: c.loss_ratio),
    ("burst_loss", "ratio", lambda c: c.burst_loss_ratio),
)


def percentile(ordered: Sequence[float], p: float) -> float:
    """Nearest-rank p-th percentile of already sorted values (0 < p <= 100)."""
    if not ordered:
        raise ValueError("percentile of no samples")
    if not 0 < p <= 100:
        raise ValueError(f"percentile {p} is not in (0, 100]")
    return ordered[max(1, math.ceil(p / 100 * len(ordered))) - 1]


@dataclass(frozen=True, slots=True)
class MetricQuality:
    metric: str
    unit: str  # "s" or "ratio" (0..1)
    samples: int
    p50: float
    p95: float
    p99: float
    max: float
    limit: float | None  # the profile's (strict) limit; None: not checked / no profile


@dataclass(frozen=True, slots=True)
class TrunkQuality:
    trunk: str
    profile: str | None
    calls: int
    options_samples: int
    metrics: tuple[MetricQuality, ...]


def _figures(metric: str, unit: str, values: list[float], limit: float | None) -> MetricQuality:
    ordered = sorted(values)
    p50, p95, p99 = (percentile(ordered, p) for p in PERCENTILES)
    return MetricQuality(metric, unit, len(ordered), p50, p95, p99, ordered[-1], limit)


def quality_of(
    trunks: Sequence[str], calls: Sequence[CallSample], probes: Sequence[ProbeSample]
) -> tuple[TrunkQuality, ...]:
    """Per trunk with any sample: call-metric percentiles and OPTIONS RTT percentiles."""
    out: list[TrunkQuality] = []
    for trunk in trunks:
        mine = sorted((c for c in calls if c.trunk == trunk), key=lambda c: c.at)
        # A result kept for two nearby transitions is stored twice: count it once.
        rtts = {
            p.at: p.rtt_s
            for p in probes
            if p.trunk == trunk and p.outcome == "ok" and p.rtt_s is not None
        }
        if not mine and not rtts:
            continue
        # The limits in force at the latest call (a profile changed mid-month shows the new).
        limits = mine[-1].limits if mine else {}
        metrics: list[MetricQuality] = []
        for name, unit, read in _CALL_METRICS:
            values = [v for v in map(read, mine) if v is not None]
            if values:
                metrics.append(_figures(name, unit, values, limits.get(name)))
        if rtts:
            metrics.append(
                _figures(OPTIONS_RTT, "s", [v for v in rtts.values() if v is not None], None)
            )
        out.append(
            TrunkQuality(
                trunk=trunk,
                profile=mine[-1].profile if mine else None,
                calls=len(mine),
                options_samples=len(rtts),
                metrics=tuple(metrics),
            )
        )
    return tuple(out)
