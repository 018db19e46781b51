"""Test-call figures for /metrics: last call's quality per trunk, setup-time histograms,
outcome counters, threshold violations and the RFC 6076 ratios over recent attempts.

Calls are rare (one per trunk every few minutes), so this keeps plain per-trunk state and
writes its families on demand; the exporter appends them to every scrape.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from monitor.metrics.exposition import (
    ExpositionFormat,
    Family,
    Histogram,
    Kind,
    count_text,
    family,
    label_text,
    sample_line,
)
from probes.media.rfc6076 import CallAttempt, SessionMetricsWindow
from probes.media.thresholds import Metric, ThresholdProfile
from probes.result import CallMeasurements, MediaDirection, Outcome, ProbeResult

# PDD and setup buckets (seconds): carriers' PDD targets sit at 2–6 s; setup adds answer time.
SETUP_BUCKETS = (0.1, 0.25, 0.5, 1.0, 2.0, 3.0, 4.0, 6.0, 10.0, 20.0)
# RFC 6076 ratios over this many most recent attempts per trunk.
RFC6076_ATTEMPTS = 100

# Which profile limit each Metric is judged by (a profile without the limit has no gauge).
_PROFILE_LIMIT = {
    Metric.ONE_WAY_LATENCY: "one_way_latency_s",
    Metric.RTT: "rtt_s",
    Metric.BURST_LOSS: "burst_loss_ratio",
    Metric.LOSS: "loss_ratio",
    Metric.JITTER: "jitter_s",
    Metric.REORDER: "reorder_ratio",
}


CALL_OUTCOME = family("call_outcome", Kind.COUNTER, "Test calls by outcome.")
CALL_PDD = family(
    "call_pdd_seconds", Kind.HISTOGRAM, "Post-dial delay of test calls: INVITE to first 18x."
)
CALL_SETUP = family(
    "call_setup_seconds", Kind.HISTOGRAM, "Setup time of test calls: INVITE to 200 OK."
)
CALL_MOS = family("call_mos", Kind.GAUGE, "E-model MOS (G.107) of the last test call.")
CALL_R = family("call_r_factor", Kind.GAUGE, "E-model R-factor of the last test call.")
RTP_JITTER = family(
    "rtp_jitter_seconds",
    Kind.GAUGE,
    "RFC 3550 inter-arrival jitter of the last test call, worst window mean where known.",
)
RTP_LOSS = family("rtp_loss_ratio", Kind.GAUGE, "RTP packet loss of the last test call (0-1).")
RTP_BURST = family(
    "rtp_burst_loss_ratio",
    Kind.GAUGE,
    "Worst burst-window RTP loss of the last test call (0-1).",
)
RTP_RTT = family(
    "rtp_rtt_seconds",
    Kind.GAUGE,
    "Round-trip time of the last test call: median of our echoed RTP (source=rtp_echo) "
    "or RTCP's mean (source=rtcp).",
)
VIOLATION = family(
    "threshold_violation",
    Kind.GAUGE,
    "1 while the last test call broke the trunk profile's limit for the metric, else 0.",
)
SER = family("call_ser_ratio", Kind.GAUGE, "RFC 6076 session establishment ratio.")
SEER = family("call_seer_ratio", Kind.GAUGE, "RFC 6076 session establishment effectiveness.")
ISA = family("call_isa_ratio", Kind.GAUGE, "RFC 6076 ineffective session attempts.")
SCR = family("call_scr_ratio", Kind.GAUGE, "RFC 6076 session completion ratio.")
SRD = family("call_srd_seconds", Kind.GAUGE, "RFC 6076 mean session request delay.")


@dataclass(slots=True)
class _TrunkCalls:
    profile: ThresholdProfile | None
    outcomes: dict[Outcome, int] = field(default_factory=dict)
    pdd: Histogram = field(default_factory=lambda: Histogram(SETUP_BUCKETS))
    setup: Histogram = field(default_factory=lambda: Histogram(SETUP_BUCKETS))
    last: CallMeasurements | None = None
    attempts: SessionMetricsWindow = field(
        default_factory=lambda: SessionMetricsWindow(max_attempts=RFC6076_ATTEMPTS)
    )


class CallMetrics:
    """Per-trunk call figures; `record` on each call result, `render` at scrape time."""

    def __init__(self, profiles: dict[str, ThresholdProfile | None], *, agent: str) -> None:
        self._trunks = {trunk: _TrunkCalls(profile) for trunk, profile in profiles.items()}
        # Sorted label names: `agent` comes first in every label set here, so one text serves.
        self._agent = f"{label_text(agent=agent)},"

    def record(self, result: ProbeResult) -> None:
        calls = self._trunks.get(result.trunk)
        if calls is None:
            return
        calls.outcomes[result.outcome] = calls.outcomes.get(result.outcome, 0) + 1
        m = result.call
        if result.outcome is Outcome.PROBE_CRASHED or m is None:
            return  # the monitor's own failure says nothing about the trunk
        calls.last = m
        if m.pdd_s is not None:
            calls.pdd.observe(m.pdd_s)
        if m.setup_s is not None:
            calls.setup.observe(m.setup_s)
        completed = result.outcome is Outcome.OK
        calls.attempts.add(CallAttempt(time.monotonic_ns(), result.status_code, m.srd_s, completed))

    def render(self, fmt: ExpositionFormat) -> str:
        if not self._trunks:
            return ""
        out: list[str] = [CALL_OUTCOME.header(fmt)]
        for trunk, calls in self._trunks.items():
            for outcome, n in calls.outcomes.items():
                labels = label_text(outcome=outcome.value, trunk=trunk)
                out.append(f"{CALL_OUTCOME.sample}{{{self._agent}{labels}}} {count_text(n)}\n")
        for fam, pick in ((CALL_PDD, "pdd"), (CALL_SETUP, "setup")):
            out.append(fam.header(fmt))
            for trunk, calls in self._trunks.items():
                out.append(getattr(calls, pick).text(fam, self._agent + label_text(trunk=trunk)))
        out.extend(self._last_call_gauges(fmt))
        out.extend(self._rfc6076(fmt))
        return "".join(out)

    def _last_call_gauges(self, fmt: ExpositionFormat) -> list[str]:
        lines: dict[Family, list[str]] = {
            f: [] for f in (CALL_MOS, CALL_R, RTP_JITTER, RTP_LOSS, RTP_BURST, RTP_RTT, VIOLATION)
        }
        for trunk, calls in self._trunks.items():
            m = calls.last
            if m is None:
                continue
            agent = self._agent
            of_trunk = agent + label_text(trunk=trunk)
            _gauge(lines[CALL_MOS], CALL_MOS, of_trunk, m.mos)
            _gauge(lines[CALL_R], CALL_R, of_trunk, m.r_factor)
            if m.rtt_source is not None:  # bounded: two sources
                rtt_labels = agent + label_text(source=m.rtt_source.value, trunk=trunk)
                _gauge(lines[RTP_RTT], RTP_RTT, rtt_labels, m.rtt_s)
            for direction, media in (("rx", m.rx), ("tx", m.tx)):
                labels = agent + label_text(direction=direction, trunk=trunk)
                _gauge(lines[RTP_JITTER], RTP_JITTER, labels, _jitter(media))
                _gauge(lines[RTP_LOSS], RTP_LOSS, labels, media.loss_ratio if media else None)
                _gauge(
                    lines[RTP_BURST], RTP_BURST, labels, media.burst_loss_ratio if media else None
                )
            profile = calls.profile
            if profile is not None:
                violated = {v.metric for v in m.violations}
                for metric, limit in _PROFILE_LIMIT.items():
                    if getattr(profile, limit) is None:
                        continue
                    labels = agent + label_text(
                        metric=metric.value, profile=profile.name, trunk=trunk
                    )
                    value = 1.0 if metric in violated else 0.0
                    _gauge(lines[VIOLATION], VIOLATION, labels, value)
        return [fam.header(fmt) + "".join(rows) for fam, rows in lines.items()]

    def _rfc6076(self, fmt: ExpositionFormat) -> list[str]:
        lines: dict[Family, list[str]] = {f: [] for f in (SER, SEER, ISA, SCR, SRD)}
        now = time.monotonic_ns()
        for trunk, calls in self._trunks.items():
            figures = calls.attempts.metrics(now)
            if figures.attempts == 0:
                continue
            labels = self._agent + label_text(trunk=trunk)
            _gauge(lines[SER], SER, labels, figures.ser)
            _gauge(lines[SEER], SEER, labels, figures.seer)
            _gauge(lines[ISA], ISA, labels, figures.isa)
            _gauge(lines[SCR], SCR, labels, figures.scr)
            _gauge(lines[SRD], SRD, labels, figures.mean_srd_s)
        return [fam.header(fmt) + "".join(rows) for fam, rows in lines.items()]


def _jitter(media: MediaDirection | None) -> float | None:
    if media is None:
        return None
    return media.jitter_worst_s if media.jitter_worst_s is not None else media.jitter_s


def _gauge(rows: list[str], fam: Family, labels: str, value: float | None) -> None:
    if value is not None:
        rows.append(sample_line(fam.sample, labels, value))
