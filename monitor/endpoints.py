"""The top-level `endpoints:` (https, tcp, tls, icmp) in the daemon: their probes on the
scheduler, their health through the pipeline (outages, journal, tickets like a trunk's,
under the endpoint's `owner` as carrier) and their figures on /metrics.

The app calls `EndpointWatch` in a few lines; everything else about endpoints is here.
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from monitor.health import HealthPolicy, TrunkHealth, TrunkState
from monitor.log import get_logger
from monitor.metrics.exposition import (
    ExpositionFormat,
    Family,
    Kind,
    count_text,
    family,
    label_text,
    sample_line,
)
from probes.https import HttpsProbe
from probes.icmp.probe import IcmpProbe
from probes.probe import Probe
from probes.result import Outcome, ProbeResult
from probes.task_probe import client_context
from probes.tcp_connect import ConnectProbe

if TYPE_CHECKING:
    from monitor.config import Config, EndpointConfig
    from monitor.pipeline import Pipeline

log = get_logger("trunkwatch.endpoints")

INFO = family(
    "endpoint_info",
    Kind.GAUGE,
    "Configured endpoints with their kind, role, owner and service; always 1.",
)
UP = family(
    "endpoint_up",
    Kind.GAUGE,
    "1 while the endpoint is available (up or degraded), 0 while it is down (an open outage).",
)
SUCCESS = family(
    "endpoint_probe_success",
    Kind.GAUGE,
    "1 if the endpoint's last probe succeeded, else 0.",
)
PROBES = family("endpoint_probes", Kind.COUNTER, "Endpoint probes completed, by outcome.")
DURATION = family(
    "endpoint_probe_duration_seconds",
    Kind.GAUGE,
    "How long the endpoint's last successful probe took, start to end.",
)
HTTP_STATUS = family(
    "http_status_code", Kind.GAUGE, "The HTTP status code of the https endpoint's last answer."
)
HTTP_TTFB = family(
    "http_ttfb_seconds",
    Kind.GAUGE,
    "Time to first byte of the last answer: request written to first response byte.",
)
TCP_CONNECT = family(
    "tcp_connect_seconds", Kind.GAUGE, "TCP connect time of the endpoint's last probe."
)
TLS_HANDSHAKE = family(
    "tls_handshake_seconds", Kind.GAUGE, "TLS handshake time of the endpoint's last probe."
)
ICMP_RTT = family(
    "icmp_rtt_seconds",
    Kind.GAUGE,
    "Mean echo round-trip time of the endpoint's last round of ICMP echoes.",
)
ICMP_LOSS = family(
    "icmp_loss_ratio", Kind.GAUGE, "Echoes lost in the endpoint's last round (0..1)."
)


def build_probe(endpoint: EndpointConfig, contexts: dict[Path | None, ssl.SSLContext]) -> Probe:
    """The probe of one endpoint's kind; TLS contexts are shared per CA file."""
    e = endpoint
    tls: ssl.SSLContext | None = None
    if e.kind in ("https", "tls"):
        key = e.ca_file if e.verify else Path("/dev/null/unverified")
        tls = contexts.get(key)
        if tls is None:
            tls = contexts[key] = client_context(e.ca_file, verify=e.verify)
    if e.kind == "https":
        assert e.port is not None
        return HttpsProbe(
            e.name,
            e.host,
            e.port,
            path=e.path,
            sni=e.sni,
            tls=tls,
            alive_status=e.expect_status,
            timeout=e.timeout,
        )
    if e.kind in ("tcp", "tls"):
        assert e.port is not None
        return ConnectProbe(e.name, e.host, e.port, tls=tls, sni=e.sni, timeout=e.timeout)
    return IcmpProbe(e.name, e.host, count=e.count, spacing=e.spacing, timeout=e.timeout)


@dataclass(slots=True)
class _Last:
    result: ProbeResult | None = None
    counts: dict[Outcome, int] | None = None


class EndpointWatch:
    """The configured endpoints: probes to schedule, health, last results for /metrics."""

    def __init__(self, config: Config) -> None:
        self.endpoints = config.endpoints
        self._certified = config.certified_endpoints()
        self.health: dict[str, TrunkHealth] = {}
        self._last: dict[str, _Last] = {e.name: _Last(counts={}) for e in self.endpoints}
        agent = config.agent  # several agents scraped by one Prometheus keep their views apart
        self._labels = {
            e.name: label_text(agent=agent, endpoint=e.name, kind=e.kind, role=e.role)
            for e in self.endpoints
        }
        self._names = {e.name: label_text(agent=agent, endpoint=e.name) for e in self.endpoints}
        self._info = {
            e.name: label_text(
                agent=agent,
                endpoint=e.name,
                kind=e.kind,
                owner=e.owner,
                role=e.role,
                service=e.service or "",
            )
            for e in self.endpoints
        }
        self._agent = f"{label_text(agent=agent)},"  # `agent` sorts first in each label set

    def certified(self) -> frozenset[str]:
        """The tls and https endpoints: a failed handshake of theirs is the certificate's."""
        return self._certified

    def owners(self) -> list[tuple[str, str]]:
        """(name, owner) of every endpoint: the ticket routing's (target, carrier)."""
        return [(e.name, e.owner) for e in self.endpoints]

    def attach(
        self, pipeline: Pipeline, restored: Mapping[str, TrunkHealth]
    ) -> list[tuple[Probe, float]]:
        """Give the pipeline the endpoints' health (resumed from the journal) and policies;
        the probes to schedule, each with its interval."""
        self.health.update(
            {e.name: restored.get(e.name) or TrunkHealth(e.name) for e in self.endpoints}
        )
        policies = {e.name: HealthPolicy(e.down_after, e.up_after) for e in self.endpoints}
        pipeline.add_endpoints(self.health, policies, self, self.certified())
        contexts: dict[Path | None, ssl.SSLContext] = {}
        return [(build_probe(e, contexts), e.interval) for e in self.endpoints]

    def live_states(self, trunks: Mapping[str, TrunkHealth]) -> dict[str, str]:
        """Every target's state by name (the API's live view): the trunks', then these."""
        return {name: h.state.value for name, h in (*trunks.items(), *self.health.items())}

    def record(self, result: ProbeResult) -> None:
        last = self._last.get(result.trunk)
        if last is None or last.counts is None:
            return
        refused = result.outcome is Outcome.NOT_PERMITTED
        if refused and (last.result is None or last.result.outcome is not Outcome.NOT_PERMITTED):
            # Counts against nobody, so no outage says it: this line does (once per change).
            log.warning("endpoint_probe_not_permitted", endpoint=result.trunk, detail=result.detail)
        last.counts[result.outcome] = last.counts.get(result.outcome, 0) + 1
        if result.outcome is not Outcome.PROBE_CRASHED:
            last.result = result

    def render(self, fmt: ExpositionFormat) -> str:
        if not self.endpoints:
            return ""
        lines: dict[Family, list[str]] = {f: [] for f in _FAMILIES}
        for e in self.endpoints:
            lines[INFO].append(sample_line(INFO.sample, self._info[e.name], 1.0))
            labels, name = self._labels[e.name], self._names[e.name]
            health = self.health.get(e.name)
            if health is not None and health.state is not TrunkState.UNKNOWN:
                up = 0.0 if health.state is TrunkState.DOWN else 1.0
                lines[UP].append(sample_line(UP.sample, labels, up))
            last = self._last[e.name]
            for outcome, n in sorted((last.counts or {}).items()):
                with_outcome = self._agent + label_text(endpoint=e.name, outcome=outcome.value)
                lines[PROBES].append(f"{PROBES.sample}{{{with_outcome}}} {count_text(n)}\n")
            result = last.result
            if result is None:
                continue
            lines[SUCCESS].append(sample_line(SUCCESS.sample, labels, float(result.ok)))
            if result.status_code is not None:
                lines[HTTP_STATUS].append(sample_line(HTTP_STATUS.sample, name, result.status_code))
            m = result.endpoint
            if m is not None and m.loss_ratio is not None:  # every echo lost is a figure too
                lines[ICMP_LOSS].append(sample_line(ICMP_LOSS.sample, name, m.loss_ratio))
            if m is None or not result.ok:
                continue  # a failed probe's timings would be the timeout's, not the endpoint's
            figures = (
                (DURATION, m.total_s),
                (HTTP_TTFB, m.ttfb_s),
                (TCP_CONNECT, m.connect_s),
                (TLS_HANDSHAKE, m.tls_s),
                (ICMP_RTT, m.rtt_avg_s),
            )
            for fam, value in figures:
                if value is not None:
                    lines[fam].append(sample_line(fam.sample, name, value))
        return "".join(f.header(fmt) + "".join(body) for f, body in lines.items() if body)


_FAMILIES = (
    INFO,
    UP,
    SUCCESS,
    PROBES,
    DURATION,
    HTTP_STATUS,
    HTTP_TTFB,
    TCP_CONNECT,
    TLS_HANDSHAKE,
    ICMP_RTT,
    ICMP_LOSS,
)
