"""Round-trip time from our own RTP reflected by an echo peer (SIPp `-rtp_echo`, test numbers).

Pure: the caller hands in every RTP packet it sent and received, with the instant it saw it,
and reads RTT percentiles back. An echoed packet is matched to its send by (sequence number,
RTP timestamp, head of the payload): a reflecting peer copies all three, and sequence number
and timestamp together are unique across the 16-bit sequence wrap (the 32-bit timestamp moves
160 per packet for G.711, so a pair repeats only after 2**32 / 160 packets, ~10 days). The SSRC
is not part of the key, so an echo that rewrites the SSRC still matches. The payload is:
pjmedia numbers RTP timestamps from 0, so a pjsua far end whose random first sequence number
equals ours sends a stream numbered exactly like ours (it happened once in the relay tests: a
pjsua responder playing our audio back in its own stream, "echo" RTT off by its start-up lag),
and only the audio in a packet tells its own stream from a reflection of ours. A far-end source
counts as an echo only when most of its packets match something we sent.
"""

from __future__ import annotations

import math
import statistics
from collections import OrderedDict
from dataclasses import dataclass

from probes.media.rtp import G711_CLOCK_RATE, RtpReceiverStats

NS_PER_S = 1_000_000_000
# Sends remembered for matching: 10 s of 20 ms packets. An echo later than that is no echo a
# probe can use (and a round trip over 10 s is an outage, not a delay); bounds the memory.
MAX_PENDING = 500
# An echo must come back within this long of its send to be matched.
MAX_RTT_NS = 10 * NS_PER_S
# A far-end SSRC is an echo of ours when at least this fraction of its packets matched a send...
MIN_ECHO_FRACTION = 0.5
# ...and at least this many did: a handful of coincidences never make an echo.
MIN_ECHO_MATCHES = 10


@dataclass(slots=True, frozen=True)
class EchoRtt:
    """RTT of one call measured from our echoed RTP; seconds."""

    p50_s: float
    p95_s: float
    max_s: float
    min_s: float
    samples: int  # round trips matched (first echo of each sent packet)
    sent: int  # RTP packets we sent while matching
    duplicates: int  # echoes of a packet already matched (ignored)
    ssrc_rewritten: bool  # the echo came back with another SSRC than ours


def percentile(sorted_values: list[int], q: float) -> int:
    """Nearest-rank percentile (q in 0..1) of an ascending, non-empty list."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"q must be within 0..1, got {q}")
    # round() first: 0.95 * 20 is 19.000000000000004 in floating point, whose ceil is 20.
    rank = max(1, math.ceil(round(q * len(sorted_values), 9)))
    return sorted_values[rank - 1]


class EchoMatcher:
    """Matches echoed RTP packets to their sends; feed packets in the order they were seen."""

    __slots__ = ("_duplicates", "_matched", "_our_ssrcs", "_pending", "_per_ssrc", "_rtts", "_sent")

    def __init__(self) -> None:
        # (seq, ts, payload head) -> send instant, oldest first; a matched entry stays (value
        # None) to spot duplicates.
        self._pending: OrderedDict[tuple[int, int, bytes], int | None] = OrderedDict()
        self._our_ssrcs: set[int] = set()
        # far-end SSRC -> [packets received, packets matched, duplicates]
        self._per_ssrc: dict[int, list[int]] = {}
        # far-end SSRC -> its matched round trips in ns
        self._rtts: dict[int, list[int]] = {}
        self._sent = 0
        self._matched = 0
        self._duplicates = 0

    def sent(self, ssrc: int, seq: int, timestamp: int, t_ns: int, payload: bytes = b"") -> None:
        """One RTP packet we sent, at `t_ns` (`payload`: its head, as captured)."""
        self._our_ssrcs.add(ssrc)
        self._sent += 1
        key = (seq, timestamp, payload)
        self._pending.pop(key, None)  # a resend of the same numbers replaces the old send
        self._pending[key] = t_ns
        while len(self._pending) > MAX_PENDING:
            self._pending.popitem(last=False)

    def received(
        self, ssrc: int, seq: int, timestamp: int, t_ns: int, payload: bytes = b""
    ) -> int | None:
        """One RTP packet from the far end, at `t_ns`; its round trip in ns if it is an echo."""
        counts = self._per_ssrc.setdefault(ssrc, [0, 0, 0])
        counts[0] += 1
        key = (seq, timestamp, payload)
        if key not in self._pending:
            return None
        sent_ns = self._pending[key]
        if sent_ns is None:
            counts[2] += 1  # a duplicate echo: the first copy already timed this packet
            return None
        rtt = t_ns - sent_ns
        if not 0 <= rtt <= MAX_RTT_NS:
            return None
        self._pending[key] = None
        counts[1] += 1
        self._rtts.setdefault(ssrc, []).append(rtt)
        return rtt

    def _echo_ssrcs(self) -> list[int]:
        return [
            ssrc
            for ssrc, (received, matched, _) in self._per_ssrc.items()
            if matched >= MIN_ECHO_MATCHES and matched >= MIN_ECHO_FRACTION * received
        ]

    def result(self) -> EchoRtt | None:
        """RTT percentiles over every echo source, or None when the far end does not echo."""
        echoes = self._echo_ssrcs()
        rtts = sorted(r for ssrc in echoes for r in self._rtts[ssrc])
        if not rtts:
            return None
        return EchoRtt(
            p50_s=percentile(rtts, 0.50) / NS_PER_S,
            p95_s=percentile(rtts, 0.95) / NS_PER_S,
            max_s=rtts[-1] / NS_PER_S,
            min_s=rtts[0] / NS_PER_S,
            samples=len(rtts),
            sent=self._sent,
            duplicates=sum(self._per_ssrc[s][2] for s in echoes),
            ssrc_rewritten=any(s not in self._our_ssrcs for s in echoes),
        )


@dataclass(slots=True, frozen=True)
class CapturedPacket:
    """One RTP packet of a call as a capture saw it: ours going out, or the far end's coming in."""

    outgoing: bool
    ssrc: int
    seq: int
    timestamp: int
    t_ns: int
    payload_head: bytes = b""  # the start of the payload (probes/media/sniff.py)


@dataclass(slots=True, frozen=True)
class OwnRtp:
    """What a call's captured RTP says: echo RTT, and RFC 3550 jitter of what we received."""

    tx_packets: int
    rx_packets: int
    echo: EchoRtt | None
    jitter_last_s: float | None  # running A.8 jitter after the last packet
    jitter_mean_s: float | None  # mean of the running value over the packets
    jitter_max_s: float | None
    rx_main: tuple[CapturedPacket, ...] = ()  # the far end's main SSRC, in arrival order


def own_rtp(packets: list[CapturedPacket], clock_rate: int = G711_CLOCK_RATE) -> OwnRtp:
    """Echo RTT and receive jitter from a call's captured packets (any order; sorted by time).

    Jitter is RFC 3550 A.8 over every packet of the far end's main SSRC in arrival order, as
    §6.4.1 asks and as the relay's truth computes it: pjmedia instead skips every packet that
    does not directly follow the previous one (after a loss or a reordering), which are the
    packets with the largest transit differences, so its figure reads low under heavy jitter.
    """
    ordered = sorted(packets, key=lambda p: p.t_ns)
    matcher = EchoMatcher()
    per_ssrc: dict[int, int] = {}
    for p in ordered:
        if p.outgoing:
            matcher.sent(p.ssrc, p.seq, p.timestamp, p.t_ns, p.payload_head)
        else:
            matcher.received(p.ssrc, p.seq, p.timestamp, p.t_ns, p.payload_head)
            per_ssrc[p.ssrc] = per_ssrc.get(p.ssrc, 0) + 1
    rx = [p for p in ordered if not p.outgoing]
    last = mean = worst = None
    main_stream: tuple[CapturedPacket, ...] = ()
    if per_ssrc:
        main = max(per_ssrc, key=lambda s: per_ssrc[s])
        main_stream = tuple(p for p in rx if p.ssrc == main)
        stats = RtpReceiverStats(clock_rate)
        jitters = [
            r.jitter_ts
            for r in (stats.receive(p.seq, p.timestamp, p.t_ns) for p in main_stream)
            if r.jitter_ts is not None
        ]
        if jitters:
            last = stats.jitter_s
            mean = statistics.fmean(jitters) / clock_rate
            worst = max(jitters) / clock_rate
    return OwnRtp(
        tx_packets=len(ordered) - len(rx),
        rx_packets=len(rx),
        echo=matcher.result(),
        jitter_last_s=last,
        jitter_mean_s=mean,
        jitter_max_s=worst,
        rx_main=main_stream,
    )
