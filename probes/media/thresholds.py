"""Media threshold profiles (DESIGN.md §3) and their evaluation into typed violations.

A profile is data: the two built-ins transcribe the annex's LAN table; users define their own
in config with the same fields. Every limit is strict ("< 50 ms"): a value equal to the limit
violates. A limit of None is not checked; a measurement of None (not measured) is not judged.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from probes.media.windows import (
    BURST_WINDOW_S,
    JITTER_WINDOW_S,
    LOSS_WINDOW_S,
    MediaQuality,
    WindowSpec,
)

Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Ratio = Annotated[float, Field(gt=0, le=1, allow_inf_nan=False)]

# Window lengths of a measurement and a profile are floats from config and arithmetic; they
# match if equal to within this relative tolerance.
WINDOW_MATCH_REL_TOL = 1e-9


class Metric(StrEnum):
    """Stable metric names: label values in metrics, keys in logs and reports."""

    ONE_WAY_LATENCY = "one_way_latency"
    RTT = "rtt"
    BURST_LOSS = "burst_loss"
    LOSS = "loss"
    JITTER = "jitter"
    REORDER = "reorder"


class ThresholdProfile(BaseModel):
    """Limits a trunk's media must stay strictly below (seconds and 0..1 ratios)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: Annotated[str, Field(min_length=1)]
    one_way_latency_s: Seconds | None = None
    rtt_s: Seconds | None = None
    burst_loss_ratio: Ratio | None = None
    burst_window_s: Seconds = BURST_WINDOW_S
    loss_ratio: Ratio | None = None
    loss_window_s: Seconds = LOSS_WINDOW_S
    jitter_s: Seconds | None = None
    jitter_window_s: Seconds = JITTER_WINDOW_S
    reorder_ratio: Ratio | None = None

    @property
    def windows(self) -> WindowSpec:
        """The windows to measure with (`windows.measure_*`) so `evaluate` can judge them."""
        return WindowSpec(
            burst_s=self.burst_window_s, loss_s=self.loss_window_s, jitter_s=self.jitter_window_s
        )


# DESIGN.md §3 (the annex's LAN values, Microsoft's media quality figures).
CLIENT_TO_EDGE = ThresholdProfile(
    name="client_to_edge",
    one_way_latency_s=0.050,
    rtt_s=0.100,
    burst_loss_ratio=0.10,
    burst_window_s=0.2,
    loss_ratio=0.01,
    loss_window_s=15.0,
    jitter_s=0.030,
    jitter_window_s=15.0,
    reorder_ratio=0.0005,
)
EDGE_TO_EDGE = ThresholdProfile(
    name="edge_to_edge",
    one_way_latency_s=0.030,
    rtt_s=0.060,
    burst_loss_ratio=0.01,
    burst_window_s=0.2,
    loss_ratio=0.001,
    loss_window_s=15.0,
    jitter_s=0.015,
    jitter_window_s=15.0,
    reorder_ratio=0.0001,
)
BUILTIN_PROFILES: Mapping[str, ThresholdProfile] = MappingProxyType(
    {p.name: p for p in (CLIENT_TO_EDGE, EDGE_TO_EDGE)}
)


@dataclass(slots=True, frozen=True)
class Measurements:
    """What one call measured, in one direction; None = not measured (never judged)."""

    one_way_latency_s: float | None = None
    rtt_s: float | None = None
    burst_loss_ratio: float | None = None
    burst_window_s: float = BURST_WINDOW_S
    loss_ratio: float | None = None
    loss_window_s: float = LOSS_WINDOW_S
    jitter_s: float | None = None
    jitter_window_s: float = JITTER_WINDOW_S
    reorder_ratio: float | None = None

    @classmethod
    def from_quality(
        cls,
        quality: MediaQuality,
        *,
        one_way_latency_s: float | None = None,
        rtt_s: float | None = None,
    ) -> Measurements:
        """The windowed figures of `windows.measure_*` plus the delays measured elsewhere."""
        return cls(
            one_way_latency_s=one_way_latency_s,
            rtt_s=rtt_s,
            burst_loss_ratio=quality.worst_burst_loss_ratio,
            burst_window_s=quality.windows.burst_s,
            loss_ratio=quality.worst_loss_ratio,
            loss_window_s=quality.windows.loss_s,
            jitter_s=quality.worst_jitter_s,
            jitter_window_s=quality.windows.jitter_s,
            reorder_ratio=quality.reorder_ratio,
        )


_RATIO_METRICS = frozenset({Metric.BURST_LOSS, Metric.LOSS, Metric.REORDER})


@dataclass(slots=True, frozen=True)
class Violation:
    """One limit not met: the same object goes to logs, metrics and reports."""

    metric: Metric
    window_s: float | None  # the sliding window the value was taken over; None for none
    value: float
    limit: float

    def __str__(self) -> str:
        if self.metric in _RATIO_METRICS:
            value, limit = f"{self.value * 100:.3g} %", f"{self.limit * 100:.3g} %"
        else:
            value, limit = f"{self.value * 1000:.4g} ms", f"{self.limit * 1000:.4g} ms"
        window = "" if self.window_s is None else f" in {self.window_s:g} s"
        return f"{self.metric.value} {value}{window}, limit < {limit}"


def _windows_match(measured: float, required: float) -> bool:
    return math.isclose(measured, required, rel_tol=WINDOW_MATCH_REL_TOL)


def evaluate(profile: ThresholdProfile, measurements: Measurements) -> list[Violation]:
    """Every limit of `profile` that `measurements` does not stay strictly below, in a fixed
    order. Raises ValueError if a windowed figure was measured over another window than the
    profile's (a wiring bug: measure with `profile.windows`)."""
    m = measurements
    checks: list[tuple[Metric, float | None, float | None, float | None, float | None]] = [
        (Metric.ONE_WAY_LATENCY, m.one_way_latency_s, profile.one_way_latency_s, None, None),
        (Metric.RTT, m.rtt_s, profile.rtt_s, None, None),
        (
            Metric.BURST_LOSS,
            m.burst_loss_ratio,
            profile.burst_loss_ratio,
            m.burst_window_s,
            profile.burst_window_s,
        ),
        (Metric.LOSS, m.loss_ratio, profile.loss_ratio, m.loss_window_s, profile.loss_window_s),
        (Metric.JITTER, m.jitter_s, profile.jitter_s, m.jitter_window_s, profile.jitter_window_s),
        (Metric.REORDER, m.reorder_ratio, profile.reorder_ratio, None, None),
    ]
    violations = []
    for metric, value, limit, measured_window, required_window in checks:
        if value is None or limit is None:
            continue
        if measured_window is not None and required_window is not None:
            if not _windows_match(measured_window, required_window):
                raise ValueError(
                    f"{metric.value} was measured over {measured_window:g} s but profile "
                    f"{profile.name!r} needs {required_window:g} s windows"
                )
        if math.isnan(value):
            raise ValueError(f"{metric.value} measurement is NaN")
        if value >= limit:  # limits are strict: equal violates
            violations.append(Violation(metric, required_window, value, limit))
    return violations
