"""The typed result every probe returns; outcomes are values, never exceptions."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    OK = "ok"
    TIMEOUT = "timeout"
    REFUSED = "refused"  # ICMP port unreachable, TCP RST
    DNS = "dns"
    TLS = "tls"
    AUTH = "auth"  # challenged and our credentials were refused (or none configured for 407)
    SIP_ERROR = "sip_error"  # a reply the trunk's policy does not count as alive
    PARSE_ERROR = "parse_error"  # the peer answered bytes that are not SIP
    MISMATCH = "mismatch"  # only answers that did not belong to our transaction
    NETWORK = "network"  # any other socket error (unreachable network, reset...)
    PROBE_CRASHED = "probe_crashed"  # the prober itself failed; never counted against a trunk


# Outcomes that say nothing about the trunk (the monitor's own fault): health ignores them.
NOT_THE_TRUNKS_FAULT = frozenset({Outcome.PROBE_CRASHED})


# Not frozen: a frozen dataclass's __init__ costs 1.6 µs more per result on the hot path.
# Nothing mutates a result once made; treat it as a value.
@dataclass(slots=True)
class ProbeResult:
    trunk: str
    probe: str  # probe type: "options", later "call", "tls_cert"
    outcome: Outcome
    sent_wall_ns: int  # UTC instant of the send (time.time_ns scale)
    rtt_ns: int | None = None  # monotonic: last request sent → its final answer
    duration_ns: int | None = None  # monotonic: probe start → result (connect, DNS, auth included)
    status_code: int | None = None
    reason: str | None = None  # reason phrase, truncated untrusted text
    detail: str | None = None  # short human-readable cause for failures

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK
