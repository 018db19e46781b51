"""Prometheus exposition: one collector reads a consistent snapshot at scrape time.

Nothing is updated per probe through prometheus_client (its label lookups and locks
cost more than the probe); the hot path updates plain slots objects and this collector
turns them into metric families when Prometheus asks.
"""

from __future__ import annotations

import platform
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from monitor import __version__
from monitor.health import TrunkHealth, TrunkState
from monitor.scheduler import Scheduler
from monitor.stats import RTT_BUCKETS, ProbeStats
from probes.options import MalformedCounter

PREFIX = "trunkwatch"


@dataclass(slots=True)
class TrunkInfo:
    """Static, config-derived facts about a trunk (labels come only from config)."""

    trunk: str
    carrier: str
    transport: str


@dataclass(slots=True)
class ExportSources:
    """Everything the collector reads; owned by the app, shared by reference."""

    agent: str
    loop_name: str
    trunks: list[TrunkInfo]
    stats: list[ProbeStats]
    health: dict[str, TrunkHealth]
    scheduler: Scheduler | None
    malformed: MalformedCounter
    outages_opened: dict[str, int]
    store_pending: Callable[[], int]
    store_errors: Callable[[], int]
    gaps_recorded: Callable[[], int]


def _buckets(bounds: Iterable[float], counts: list[int]) -> list[tuple[str, float]]:
    """Cumulative (le, count) pairs from per-bucket counts; the last count is +Inf."""
    out: list[tuple[str, float]] = []
    running = 0
    for bound, count in zip(bounds, counts, strict=False):
        running += count
        out.append((repr(float(bound)), float(running)))
    running += counts[-1]
    out.append(("+Inf", float(running)))
    return out


class TrunkwatchCollector(Collector):
    def __init__(self, sources: ExportSources) -> None:
        self.src = sources

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: families depend on config

    def collect(self) -> Iterator[Metric]:
        src = self.src
        build = GaugeMetricFamily(
            f"{PREFIX}_build_info",
            "trunkwatch version and runtime; always 1.",
            labels=["version", "python", "loop", "agent"],
        )
        build.add_metric([__version__, platform.python_version(), src.loop_name, src.agent], 1.0)
        yield build

        info = GaugeMetricFamily(
            f"{PREFIX}_trunk_info",
            "Configured trunks with their carrier and transport; always 1.",
            labels=["trunk", "carrier", "transport"],
        )
        for trunk in src.trunks:
            info.add_metric([trunk.trunk, trunk.carrier, trunk.transport], 1.0)
        yield info

        yield from self._probe_families()
        yield from self._health_families()
        yield from self._monitor_families()

    def _probe_families(self) -> Iterator[Metric]:
        labels = ["trunk", "probe"]
        success = GaugeMetricFamily(
            f"{PREFIX}_probe_success",
            "1 if the last probe found the trunk alive, 0 if not.",
            labels=labels,
        )
        duration = GaugeMetricFamily(
            f"{PREFIX}_probe_duration_seconds",
            "How long the last probe took (DNS, connect and authentication included).",
            labels=labels,
        )
        status = GaugeMetricFamily(
            f"{PREFIX}_sip_last_status_code",
            "SIP status code of the last answer; 0 when the last probe got none.",
            labels=labels,
        )
        outcomes = CounterMetricFamily(
            f"{PREFIX}_probe_outcome",
            "Probe results by outcome.",
            labels=[*labels, "outcome"],
        )
        rtt = HistogramMetricFamily(
            f"{PREFIX}_sip_options_rtt_seconds",
            "Round-trip time of SIP OPTIONS, request sent to final response.",
            labels=["trunk"],
        )
        for st in self.src.stats:
            key = [st.trunk, st.probe]
            for outcome, count in st.outcome_counts.items():
                outcomes.add_metric([*key, outcome.value], float(count))
            if st.last_success < 0:
                continue
            success.add_metric(key, float(st.last_success))
            duration.add_metric(key, st.last_duration_s)
            status.add_metric(key, float(st.last_status))
            if st.probe == "options":
                rtt.add_metric(
                    [st.trunk], _buckets(RTT_BUCKETS, st.rtt_counts), sum_value=st.rtt_sum
                )
        yield from (success, duration, status, outcomes, rtt)

    def _health_families(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            f"{PREFIX}_trunk_state",
            "1 for the trunk's current state, 0 for the others.",
            labels=["trunk", "state"],
        )
        open_ = GaugeMetricFamily(
            f"{PREFIX}_outage_open",
            "1 while the trunk has an open outage.",
            labels=["trunk"],
        )
        opened = CounterMetricFamily(
            f"{PREFIX}_outages_opened",
            "Outages opened by this process since it started.",
            labels=["trunk"],
        )
        for name, health in self.src.health.items():
            for candidate in TrunkState:
                state.add_metric([name, candidate.value], 1.0 if health.state is candidate else 0.0)
            open_.add_metric([name], 1.0 if health.open_outage is not None else 0.0)
            opened.add_metric([name], float(self.src.outages_opened.get(name, 0)))
        yield from (state, open_, opened)

    def _monitor_families(self) -> Iterator[Metric]:
        src = self.src
        malformed = CounterMetricFamily(
            f"{PREFIX}_sip_malformed_packets",
            "Packets received that were not a valid answer to a probe.",
            labels=["kind"],
        )
        malformed.add_metric(["parse_error"], float(src.malformed.parse_errors))
        malformed.add_metric(["mismatch"], float(src.malformed.mismatches))
        yield malformed

        pending = GaugeMetricFamily(
            f"{PREFIX}_store_pending_events", "Journal events waiting to be written."
        )
        pending.add_metric([], float(src.store_pending()))
        yield pending
        errors = CounterMetricFamily(
            f"{PREFIX}_store_write_errors", "Failed journal writes (retried)."
        )
        errors.add_metric([], float(src.store_errors()))
        yield errors
        gaps = CounterMetricFamily(
            f"{PREFIX}_monitor_gaps", "Monitoring gaps (unknown time) recorded at start-up."
        )
        gaps.add_metric([], float(src.gaps_recorded()))
        yield gaps

        sched = src.scheduler
        if sched is None:
            return
        lag = HistogramMetricFamily(
            f"{PREFIX}_scheduler_lag_seconds",
            "Probe send lateness: actual minus planned start time.",
        )
        lag.add_metric([], _buckets(sched.lag.bounds, sched.lag.counts), sum_value=sched.lag.total)
        yield lag
        in_flight = GaugeMetricFamily(
            f"{PREFIX}_scheduler_in_flight", "Probes started and not yet finished."
        )
        in_flight.add_metric([], float(sched.in_flight))
        yield in_flight
        skipped = CounterMetricFamily(
            f"{PREFIX}_scheduler_skipped_probes",
            "Probes not started because the previous one was still running or the cap was hit.",
        )
        skipped.add_metric([], float(sched.skipped))
        yield skipped
        errors = CounterMetricFamily(
            f"{PREFIX}_scheduler_errors", "Exceptions raised by probe code (bugs), caught."
        )
        errors.add_metric([], float(sched.errors))
        yield errors
        targets = GaugeMetricFamily(f"{PREFIX}_scheduler_targets", "Probes on the schedule.")
        targets.add_metric([], float(len(sched.items)))
        yield targets


def loop_name() -> str:
    import asyncio

    loop = asyncio.get_event_loop()
    module = type(loop).__module__.split(".")[0]
    return "uvloop" if module == "uvloop" else f"asyncio-{sys.implementation.name}"
