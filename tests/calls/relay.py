"""A small seeded UDP relay for RTP/RTCP on loopback: fixed delay, jitter, reordering, loss.

There is no netem here (DESIGN.md §7), so test calls are impaired by this relay and the probe's
figures are checked against the relay's own log of what it received and when it delivered it.

Topology (no SDP rewriting): both ends bind their media on 127.0.0.1 and advertise an alias
address in SDP (pjsua's media `publicAddress`): the caller `caller_alias`, the callee
`callee_alias`. The relay binds every port of both ends' port blocks on the alias addresses.
A packet the caller sends to callee_alias:p leaves the relay from caller_alias:q (q its source
port) to 127.0.0.1:p, and the way back mirrors it, so each end hears its peer from exactly the
address its SDP named and neither latches onto anything else.

Impairments apply per direction. RTP gets the fixed delay, a uniform random extra delay
(jitter), random loss, scheduled loss bursts, reordering (a packet held back) and duplicates;
RTCP gets only the fixed delay, so the round trip RTCP measures is the sum of the two
directions' delays plus whatever lateness the relay and the ends add; `rtcp_round_trips_ns`
times each exchange on the wire as RFC 3550 computes it. The relay's clock is
time.monotonic_ns: the kernel's receive timestamp of each datagram, and the instant just
before it is sent. Both are taken so that the thread's own lateness (waiting for the GIL
while the test's event loop runs, up to the 5 ms switch interval) is not in them.
"""

from __future__ import annotations

import heapq
import itertools
import random
import select
import socket
import statistics
import struct
import threading
import time
from dataclasses import dataclass, field
from typing import Literal

from probes.media.rtp import NS_PER_S, PacketRecord, RtpReceiverStats
from probes.media.windows import MediaQuality, WindowSpec, measure_packets

Direction = Literal["a2b", "b2a"]  # a = caller side, b = callee side
LOOPBACK = "127.0.0.1"
# Linux <asm-generic/socket.h>; Python 3.11's socket module does not name them.
SO_TIMESTAMPNS = SCM_TIMESTAMPNS = 35
TIMESPEC = struct.Struct("qq")
ANCILLARY_SPACE = socket.CMSG_SPACE(TIMESPEC.size)


def realtime_offset_ns() -> int:
    """CLOCK_REALTIME minus CLOCK_MONOTONIC, from the closest of a few paired readings."""
    readings = []  # (the pair's spread, the offset it gives)
    for _ in range(20):
        before = time.monotonic_ns()
        real = time.time_ns()
        after = time.monotonic_ns()
        readings.append((after - before, real - (before + after) // 2))
    return min(readings)[1]


# RFC 3550 §5.1: version 2 in the first two bits; RFC 5761 §4: RTCP packet types 200..204
# sit where RTP has marker + payload type (RTP payload types 72..76 are reserved for this).
RTP_VERSION = 2
RTCP_TYPES = range(200, 205)
RTP_HEADER = struct.Struct("!BBHII")
# RFC 3550 §6.4: SR (200) and RR (201) carry report blocks; LSR and DLSR in 1/65536 s.
RTCP_SR, RTCP_RR = 200, 201
RTCP_HEADER = struct.Struct("!BBH")
SR_NTP = struct.Struct("!II")
REPORT_BLOCK = struct.Struct("!I4xIIII")  # SSRC, (loss), highest seq, jitter, LSR, DLSR
# The relay thread wakes at least this often to notice stop().
IDLE_WAIT_S = 0.05
MAX_DATAGRAM = 65_535


@dataclass(slots=True, frozen=True)
class Burst:
    """Drop `loss` of the RTP packets (spread evenly, exact count) for `duration_s` from
    `start_s` after the direction's first RTP packet."""

    start_s: float
    duration_s: float
    loss: float


@dataclass(slots=True, frozen=True)
class Impairment:
    delay_s: float = 0.0
    jitter_s: float = 0.0  # extra delay per RTP packet, uniform in [0, jitter_s)
    loss: float = 0.0  # random loss probability per RTP packet
    reorder: float = 0.0  # probability an RTP packet is held back by reorder_hold_s
    reorder_hold_s: float = 0.045  # > 2 packet times: it arrives behind the next two
    duplicate: float = 0.0  # probability an RTP packet is delivered twice
    bursts: tuple[Burst, ...] = ()


CLEAN = Impairment()


@dataclass(slots=True)
class LogEntry:
    direction: Direction
    kind: Literal["rtp", "rtcp", "other"]
    arrival_ns: int
    seq: int | None = None
    timestamp: int | None = None
    fate: Literal["delivered", "dropped", "burst", "pending"] = "pending"
    deliver_ns: list[int] = field(default_factory=list)  # actual send times (2 if duplicated)
    rtcp: bytes = b""  # an RTCP packet's bytes, for the round trips its reports describe


@dataclass(slots=True, frozen=True)
class DirectionTruth:
    """What really happened to one direction's RTP, from the relay's log."""

    offered: int  # RTP packets the relay received from the sender
    dropped: int  # by the relay (random and burst)
    injected_loss_ratio: float  # dropped / offered
    quality: MediaQuality  # RFC 3550 statistics of what the relay delivered, per packet
    jitter_final_s: float  # the running RFC 3550 jitter after the last delivered packet
    jitter_mean_s: float  # mean of the running jitter over the delivered packets
    records: tuple[PacketRecord, ...]


def _kind(data: bytes) -> Literal["rtp", "rtcp", "other"]:
    if len(data) < 2 or data[0] >> 6 != RTP_VERSION:
        return "other"
    return "rtcp" if data[1] in RTCP_TYPES else "rtp"


def _rtcp_packets(data: bytes) -> list[tuple[int, bytes]]:
    """The (packet type, packet) pairs of a compound RTCP datagram; stops at a bad length."""
    out = []
    offset = 0
    while offset + RTCP_HEADER.size <= len(data):
        _, pt, words = RTCP_HEADER.unpack_from(data, offset)
        end = offset + 4 * (words + 1)
        if end > len(data):
            break
        out.append((pt, data[offset:end]))
        offset = end
    return out


def _report_blocks(data: bytes) -> list[tuple[int, int]]:
    """(LSR, DLSR) of every report block in an RTCP datagram's SRs and RRs, LSR non-zero."""
    out = []
    for pt, body in _rtcp_packets(data):
        if pt not in (RTCP_SR, RTCP_RR):
            continue
        offset = 8 + (SR_NTP.size + 12 if pt == RTCP_SR else 0)  # header+SSRC (+ sender info)
        for _ in range(body[0] & 0x1F):  # RC: the number of report blocks
            if offset + REPORT_BLOCK.size > len(body):
                break
            _, _, _, lsr, dlsr = REPORT_BLOCK.unpack_from(body, offset)
            if lsr:
                out.append((lsr, dlsr))
            offset += REPORT_BLOCK.size
    return out


class Relay:
    """The relay; `start()` binds and runs it in a thread, `stop()` returns nothing, `log` stays."""

    def __init__(
        self,
        *,
        caller_alias: str,
        callee_alias: str,
        caller_ports: range,
        callee_ports: range,
        a2b: Impairment = CLEAN,
        b2a: Impairment = CLEAN,
        seed: int = 1,
    ) -> None:
        self.caller_alias = caller_alias
        self.callee_alias = callee_alias
        self.caller_ports = caller_ports
        self.callee_ports = callee_ports
        self.impairment = {"a2b": a2b, "b2a": b2a}
        self.rng = random.Random(seed)
        self.log: list[LogEntry] = []
        self._socks: dict[tuple[str, int], socket.socket] = {}
        self._queue: list[tuple[int, int, socket.socket, bytes, tuple[str, int], LogEntry]] = []
        self._order = itertools.count()
        self._first_rtp_ns: dict[Direction, int] = {}
        self._burst_count: dict[tuple[Direction, int], int] = {}
        self._realtime_offset_ns = realtime_offset_ns()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        for alias, ports in (
            (self.callee_alias, self.callee_ports),
            (self.caller_alias, self.caller_ports),
        ):
            for port in ports:
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.bind((alias, port))
                sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
                sock.setblocking(False)
                self._socks[(alias, port)] = sock
        self._thread = threading.Thread(target=self._run, name="rtp-relay", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for sock in self._socks.values():
            sock.close()

    def __enter__(self) -> Relay:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- the thread -------------------------------------------------------------------------

    def _run(self) -> None:
        by_fd = {s.fileno(): (key, s) for key, s in self._socks.items()}
        socks = list(self._socks.values())
        while not self._stop.is_set():
            now = time.monotonic_ns()
            wait = IDLE_WAIT_S
            if self._queue:
                wait = max(0.0, min(wait, (self._queue[0][0] - now) / NS_PER_S))
            # select(2) takes microseconds, unlike epoll's milliseconds: delivery stays precise.
            readable, _, _ = select.select(socks, [], [], wait)
            for sock in readable:
                key, _ = by_fd[sock.fileno()]
                while True:
                    try:
                        data, ancdata, _, src = sock.recvmsg(MAX_DATAGRAM, ANCILLARY_SPACE)
                    except BlockingIOError:
                        break
                    self._route(key, data, src, self._arrival_ns(ancdata))
            now = time.monotonic_ns()
            while self._queue and self._queue[0][0] <= now:
                _, _, out, data, dest, entry = heapq.heappop(self._queue)
                sent = time.monotonic_ns()  # sendto hands it to the peer's socket at once
                try:
                    out.sendto(data, dest)
                except OSError:
                    continue
                entry.deliver_ns.append(sent)
                entry.fate = "delivered"

    def _arrival_ns(self, ancdata: list[tuple[int, int, bytes]]) -> int:
        """The kernel's receive instant on the monotonic clock (now, if it gave none)."""
        for level, kind, data in ancdata:
            if level == socket.SOL_SOCKET and kind == SCM_TIMESTAMPNS:
                sec, nsec = TIMESPEC.unpack_from(data)
                return int(sec * NS_PER_S + nsec - self._realtime_offset_ns)
        return time.monotonic_ns()

    def _route(self, key: tuple[str, int], data: bytes, src: tuple[str, int], now: int) -> None:
        alias, port = key
        src_port = src[1]
        if alias == self.callee_alias:  # caller -> callee
            direction: Direction = "a2b"
            out = self._socks.get((self.caller_alias, src_port))
            dest = (LOOPBACK, port)
        else:
            direction = "b2a"
            out = self._socks.get((self.callee_alias, src_port))
            dest = (LOOPBACK, port)
        kind = _kind(data)
        entry = LogEntry(direction=direction, kind=kind, arrival_ns=now)
        self.log.append(entry)
        if kind == "rtcp":
            entry.rtcp = data
        if out is None:
            entry.fate = "dropped"  # from a port outside the blocks: not part of the test
            return
        imp = self.impairment[direction]
        delay = imp.delay_s
        copies = 1
        if kind == "rtp" and len(data) >= RTP_HEADER.size:
            _, _, seq, ts, _ = RTP_HEADER.unpack_from(data)
            entry.seq, entry.timestamp = seq, ts
            first = self._first_rtp_ns.setdefault(direction, now)
            if self._in_burst(direction, imp, (now - first) / NS_PER_S):
                entry.fate = "burst"
                return
            # Draw every random number for every packet, so one setting's stream of random
            # numbers does not depend on which packets an earlier draw dropped.
            lost, jitter, held, dup = (self.rng.random() for _ in range(4))
            if lost < imp.loss:
                entry.fate = "dropped"
                return
            delay += jitter * imp.jitter_s
            if held < imp.reorder:
                delay += imp.reorder_hold_s
            if dup < imp.duplicate:
                copies = 2
        due = now + round(delay * NS_PER_S)
        for _ in range(copies):
            heapq.heappush(self._queue, (due, next(self._order), out, data, dest, entry))

    def _in_burst(self, direction: Direction, imp: Impairment, t_s: float) -> bool:
        for index, burst in enumerate(imp.bursts):
            if burst.start_s <= t_s < burst.start_s + burst.duration_s:
                k = self._burst_count.get((direction, index), 0)
                self._burst_count[(direction, index)] = k + 1
                # Evenly spread, exact count: packet k is dropped when floor((k+1) p) > floor(k p).
                return int((k + 1) * burst.loss) > int(k * burst.loss)
        return False

    # --- truth ------------------------------------------------------------------------------

    def echo_round_trips_ns(self) -> list[int]:
        """Per echoed RTP packet, the delay the relay really applied both ways (its first
        delivery minus its arrival, a2b plus b2a): the injected round trip plus the relay's
        own lateness, for packets an echo peer sent back with the same seq and timestamp."""
        out: dict[tuple[int | None, int | None], int] = {}
        for e in self.log:
            if e.direction == "a2b" and e.kind == "rtp" and e.deliver_ns:
                out.setdefault((e.seq, e.timestamp), e.deliver_ns[0] - e.arrival_ns)
        trips = []
        for e in self.log:
            if e.direction == "b2a" and e.kind == "rtp" and e.deliver_ns:
                there = out.pop((e.seq, e.timestamp), None)
                if there is not None:
                    trips.append(there + e.deliver_ns[0] - e.arrival_ns)
        return trips

    def rtcp_round_trips_ns(self) -> list[int]:
        """Per report block the caller received (b2a) about one of its SRs, the round trip RFC
        3550 §6.4.1 computes, timed on the wire: the RR's delivery to the caller minus the SR's
        arrival from it, minus the callee's DLSR. It holds the relay's delays and lateness and
        the callee's (a late read of the SR shortens its DLSR); not the caller's own."""
        sr_arrival: dict[int, int] = {}
        for e in self.log:
            if e.direction == "a2b" and e.rtcp:
                for pt, body in _rtcp_packets(e.rtcp):
                    if pt == RTCP_SR and len(body) >= 8 + SR_NTP.size:
                        msw, lsw = SR_NTP.unpack_from(body, 8)  # after header and SSRC
                        sr_arrival.setdefault(((msw & 0xFFFF) << 16) | (lsw >> 16), e.arrival_ns)
        trips = []
        for e in self.log:
            if e.direction == "b2a" and e.rtcp and e.deliver_ns:
                for lsr, dlsr in _report_blocks(e.rtcp):
                    sent = sr_arrival.get(lsr)
                    if sent is not None:
                        trips.append(e.deliver_ns[0] - sent - dlsr * NS_PER_S // 65536)
        return trips

    def truth(self, direction: Direction, windows: WindowSpec | None = None) -> DirectionTruth:
        """RFC 3550 statistics of one direction's RTP as delivered, from the relay's log."""
        rtp = [e for e in self.log if e.direction == direction and e.kind == "rtp"]
        deliveries = sorted(
            (t, e.seq, e.timestamp)
            for e in rtp
            if e.seq is not None and e.timestamp is not None
            for t in e.deliver_ns
        )
        stats = RtpReceiverStats()
        records = tuple(stats.receive(seq, ts, t) for t, seq, ts in deliveries)
        jitters = [r.jitter_ts / stats.clock_rate for r in records if r.jitter_ts is not None]
        dropped = sum(e.fate in ("dropped", "burst") for e in rtp)
        return DirectionTruth(
            offered=len(rtp),
            dropped=dropped,
            injected_loss_ratio=dropped / len(rtp) if rtp else 0.0,
            quality=measure_packets(records, windows),
            jitter_final_s=stats.jitter_s,
            jitter_mean_s=statistics.fmean(jitters) if jitters else 0.0,
            records=records,
        )
