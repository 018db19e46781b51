"""Ticket metrics as plain counters, turned into Prometheus families at scrape time.

- ``trunkwatch_ticket_requests_total{sink,result}``: deliveries by outcome
  (result: success, retry, rejected).
- ``trunkwatch_ticket_open_latency_seconds{sink}``: outage confirmed → the sink
  acknowledged the ticket (the contract clock's start, measured from detection).
- ``trunkwatch_ticket_outbox_pending``: requests waiting for delivery (held ones excluded).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterator
from dataclasses import dataclass, field

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

PREFIX = "trunkwatch"
RESULTS = ("success", "retry", "rejected")
# The requirement is "within 1 s"; the long tail covers sinks down for hours.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0, 14400.0,
)  # fmt: skip


@dataclass(slots=True)
class _Histogram:
    counts: list[int] = field(default_factory=lambda: [0] * (len(LATENCY_BUCKETS) + 1))
    total: float = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(LATENCY_BUCKETS, value)] += 1
        self.total += value


@dataclass(slots=True)
class TicketMetrics:
    requests: dict[tuple[str, str], int] = field(default_factory=dict)
    latency: dict[str, _Histogram] = field(default_factory=dict)
    pending: int = 0

    def count(self, sink: str, result: str) -> None:
        key = (sink, result)
        self.requests[key] = self.requests.get(key, 0) + 1

    def observe_open_latency(self, sink: str, seconds: float) -> None:
        self.latency.setdefault(sink, _Histogram()).observe(max(0.0, seconds))

    def collector(self, sinks: tuple[str, ...]) -> Collector:
        return _Collector(self, sinks)


class _Collector(Collector):
    def __init__(self, metrics: TicketMetrics, sinks: tuple[str, ...]) -> None:
        self._metrics = metrics
        self._sinks = sinks

    def describe(self) -> list[Metric]:
        return []  # unchecked collector: families depend on config

    def collect(self) -> Iterator[Metric]:
        m = self._metrics
        requests = CounterMetricFamily(
            f"{PREFIX}_ticket_requests",
            "Ticket deliveries to sinks by result (success, retry, rejected).",
            labels=["sink", "result"],
        )
        # Every configured sink and result shows from the start: a rate() over a series
        # that appears only on the first failure misses that failure.
        for sink in self._sinks:
            for result in RESULTS:
                requests.add_metric([sink, result], float(m.requests.get((sink, result), 0)))
        latency = HistogramMetricFamily(
            f"{PREFIX}_ticket_open_latency_seconds",
            "Outage confirmed to ticket acknowledged by the sink.",
            labels=["sink"],
        )
        for sink in self._sinks:
            hist = m.latency.get(sink) or _Histogram()
            buckets: list[tuple[str, float]] = []
            running = 0
            for bound, count in zip(LATENCY_BUCKETS, hist.counts, strict=False):
                running += count
                buckets.append((repr(bound), float(running)))
            running += hist.counts[-1]
            buckets.append(("+Inf", float(running)))
            latency.add_metric([sink], buckets, sum_value=hist.total)
        pending = GaugeMetricFamily(
            f"{PREFIX}_ticket_outbox_pending",
            "Ticket requests waiting for delivery (retries included, maintenance holds not).",
        )
        pending.add_metric([], float(m.pending))
        yield requests
        yield latency
        yield pending
