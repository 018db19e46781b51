"""The typed result every probe returns; outcomes are values, never exceptions."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from probes.media.thresholds import Violation


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
    # The trunk answered OPTIONS, but its required registration is not in force.
    UNREGISTERED = "unregistered"
    # Test calls (probes/call.py). The trunk answered SIP but the call did not work:
    BUSY = "busy"  # 486 Busy Here, 600 Busy Everywhere
    NOT_FOUND = "not_found"  # 404 Not Found, 604 Does Not Exist Anywhere
    SERVICE_UNAVAILABLE = "service_unavailable"  # 503
    NO_ANSWER = "no_answer"  # it rang (or answered provisionally) but never answered in time
    CODEC_MISMATCH = "codec_mismatch"  # no common G.711 codec (488/606 or an answer without one)
    BAD_SDP = "bad_sdp"  # the far end's SDP could not be parsed or negotiated otherwise
    NO_AUDIO = "no_audio"  # answered, but no RTP arrived and the far end reports none of ours
    ONE_WAY_AUDIO = "one_way_audio"  # RTP in one direction only, or it carries no reference tone
    DROPPED = "dropped"  # the far end hung up before the test call's planned end
    # Endpoints (probes/https.py, probes/icmp/): an HTTP answer the endpoint's policy does
    # not count as alive (5xx by default); a probe the kernel refuses to let us send.
    HTTP_ERROR = "http_error"
    NOT_PERMITTED = "not_permitted"  # e.g. ICMP sockets outside net.ipv4.ping_group_range


# Outcomes that say nothing about the trunk (the monitor's own fault): health ignores them.
NOT_THE_TRUNKS_FAULT = frozenset({Outcome.PROBE_CRASHED, Outcome.NOT_PERMITTED})
# Test-call outcomes where the trunk set the call up (or answered it) but the media failed:
# the signalling path is alive, the service is not usable.
CALL_MEDIA_FAULTS = frozenset(
    {
        Outcome.NO_AUDIO,
        Outcome.ONE_WAY_AUDIO,
        Outcome.DROPPED,
        Outcome.CODEC_MISMATCH,
        Outcome.BAD_SDP,
    }
)


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
    call: CallMeasurements | None = None  # test calls only
    endpoint: EndpointMeasurements | None = None  # https/tcp/tls/icmp endpoints only

    @property
    def ok(self) -> bool:
        return self.outcome is Outcome.OK


@dataclass(slots=True, frozen=True)
class EndpointMeasurements:
    """An endpoint probe's phases (seconds, monotonic) and ICMP echo figures; None: not measured."""

    connect_s: float | None = None  # TCP connect (TLS handshake not included)
    tls_s: float | None = None  # TLS handshake after connect
    ttfb_s: float | None = None  # request written -> first response byte (https)
    total_s: float | None = None  # probe start -> response read (https) or last echo
    echo_sent: int = 0  # icmp
    echo_received: int = 0
    loss_ratio: float | None = None  # icmp: 1 - received/sent
    rtt_min_s: float | None = None
    rtt_avg_s: float | None = None
    rtt_max_s: float | None = None


class Disconnect(StrEnum):
    """How a test call ended."""

    LOCAL = "local"  # we hung up at the planned end (max_call_s): the normal end
    REMOTE = "remote"  # the far end sent BYE
    CANCELLED = "cancelled"  # we cancelled it unanswered (answer timeout)
    REJECTED = "rejected"  # a final non-2xx answer to the INVITE
    TIMEOUT = "timeout"  # no answer to the INVITE at all
    ERROR = "error"  # failed locally: media negotiation, transport error, the call was never placed


class RttSource(StrEnum):
    """Where a test call's round-trip time came from."""

    RTP_ECHO = "rtp_echo"  # our own RTP reflected by the far end, timed per packet (capture)
    RTCP = "rtcp"  # RTCP SR/RR (RFC 3550 §6.4.1 LSR/DLSR): needs a far end that sends reports


class JitterSource(StrEnum):
    """Whose receive timestamps the rx jitter was computed from."""

    CAPTURE = "capture"  # kernel timestamps of every received packet, RFC 3550 A.8 in full
    PJMEDIA = "pjmedia"  # pjmedia's running value: in-sequence packets only (reads low)


@dataclass(slots=True, frozen=True)
class MediaDirection:
    """One direction of a test call's RTP; every figure is None when not known.

    `rx` is measured here from 10 Hz samples of the receive statistics (windowed figures
    included), its jitter from every captured packet where the worker could capture
    (CallMeasurements.rx_jitter_source); `tx` is what the far end reported back in RTCP
    receiver reports (cumulative only).
    Jitter is RFC 3550 inter-arrival jitter: `jitter_s` its running value at the end of the call,
    `jitter_mean_s` the mean over the call, `jitter_worst_s` the worst window mean.
    """

    packets: int | None = None  # packets the receiver of this direction got
    lost: int | None = None
    loss_ratio: float | None = None  # whole call, 0..1
    worst_loss_ratio: float | None = None  # worst loss window (profile loss_window_s)
    burst_loss_ratio: float | None = None  # worst burst window (profile burst_window_s)
    jitter_s: float | None = None
    jitter_mean_s: float | None = None
    jitter_worst_s: float | None = None  # worst window (profile jitter_window_s)
    reorder_ratio: float | None = None
    duplicates: int | None = None
    r_factor: float | None = None  # ITU-T G.107 E-model
    mos: float | None = None
    tone_found: bool | None = None  # the reference tone was heard by this direction's receiver
    tone_coverage: float | None = None  # fraction of 100 ms blocks in which it was found


@dataclass(slots=True, frozen=True)
class CallMeasurements:
    """What one test call measured (ProbeResult.call). Times in seconds, ratios 0..1."""

    disconnect: Disconnect
    srd_s: float | None = None  # INVITE -> first non-100 response (RFC 6076 §4.3)
    pdd_s: float | None = None  # INVITE -> first 18x (post-dial delay)
    setup_s: float | None = None  # INVITE -> 200 OK
    duration_s: float | None = None  # 200 OK -> end of the call
    disconnect_status: int | None = None  # SIP status of the ending (BYE 200, 487, ...)
    disconnect_reason: str | None = None
    codec: str | None = None  # "PCMU" / "PCMA"
    rx: MediaDirection | None = None  # far end -> us
    tx: MediaDirection | None = None  # us -> far end
    # Round-trip time: the echo's median when the far end echoes our RTP, else RTCP's mean.
    rtt_s: float | None = None
    rtt_samples: int = 0  # samples behind rtt_s (echoed packets, or RTCP reports)
    rtt_source: RttSource | None = None
    rtt_p95_s: float | None = None  # echo only: per-packet round trips
    rtt_max_s: float | None = None
    rtcp_rtt_s: float | None = None  # RTCP's mean even when the echo is used (None: no reports)
    one_way_latency_s: float | None = None  # rtt_s / 2: a round trip cannot see the asymmetry
    rx_jitter_source: JitterSource | None = None
    mos: float | None = None  # the worse direction known
    r_factor: float | None = None
    reinvites: int = 0  # re-INVITEs / UPDATEs the far end sent during the call
    profile: str | None = None  # threshold profile the violations were judged against
    violations: tuple[Violation, ...] = ()
