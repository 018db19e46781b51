"""Per-probe running figures, updated on each result and read by the exporter at scrape time."""

from __future__ import annotations

from dataclasses import dataclass, field

from monitor.metrics.exposition import Histogram
from probes.result import Outcome, ProbeResult

# OPTIONS RTT buckets (seconds) placed at the quality thresholds (DESIGN.md §3:
# round-trip < 60 ms edge-to-edge, < 100 ms client-to-edge) plus a tail for slow SBCs.
RTT_BUCKETS = (0.005, 0.01, 0.03, 0.06, 0.1, 0.25, 0.5, 1.0, 2.0)
OUTCOMES = tuple(Outcome)


@dataclass(slots=True, eq=False)
class ProbeStats:
    """What the exporter shows for one (trunk, probe) pair."""

    trunk: str
    probe: str
    last_success: int = -1  # -1 before the first result
    last_status: int = 0  # 0 when the last probe got no SIP answer
    last_duration_s: float = 0.0
    # Keyed by the outcome's text (Outcome is a StrEnum: lookups by member still work): a
    # dict of str and int is never tracked by the cyclic GC, one keyed by enum members is,
    # and 100,000 of them made every full collection ~60 ms longer.
    outcome_counts: dict[str, int] = field(default_factory=dict)
    rtt: Histogram = field(default_factory=lambda: Histogram(RTT_BUCKETS))

    def record(self, result: ProbeResult) -> None:
        outcome = result.outcome
        key = outcome.value
        self.outcome_counts[key] = self.outcome_counts.get(key, 0) + 1
        if outcome is Outcome.PROBE_CRASHED:
            return  # the monitor's own fault says nothing about the trunk
        self.last_success = 1 if outcome is Outcome.OK else 0
        self.last_status = result.status_code or 0
        if result.duration_ns is not None:
            self.last_duration_s = result.duration_ns / 1e9
        if result.rtt_ns is not None and result.status_code is not None:
            self.rtt.observe(result.rtt_ns / 1e9)
