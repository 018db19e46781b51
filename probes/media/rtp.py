"""RTP receive statistics (RFC 3550): sequence extension (A.1), loss (A.3), jitter (A.8).

Pure arithmetic: the caller hands in `(seq, rtp_timestamp, arrival_ns)` for every packet it
receives, in arrival order, and reads counters back. Nothing here touches a socket or a clock.

Two consumers:
- the test relay (and anything else that sees raw RTP) feeds `RtpReceiverStats.receive` and
  keeps the returned `PacketRecord`s for the per-packet window evaluations in `windows.py`;
- `Snapshot` is the shape of cumulative counters sampled over time, which is all a pjsua2
  worker can get (`Call.getStreamStat`); `RtpReceiverStats.snapshot` produces the same shape so
  both paths can be compared on one stream.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum, StrEnum

# RFC 3550 A.1: sequence numbers are 16 bits.
RTP_SEQ_MOD = 1 << 16
# RFC 3550 A.1 constants, with the RFC's own values and reasons: a forward jump of fewer than
# MAX_DROPOUT is taken as loss; a packet up to MAX_MISORDER behind the highest is late or a
# duplicate; anything else is a jump (two sequential packets after it mean the sender restarted).
MAX_DROPOUT = 3000
MAX_MISORDER = 100
# RFC 3550 A.1: a source is valid after MIN_SEQUENTIAL packets in sequence (probation).
MIN_SEQUENTIAL = 2

# RTP timestamps are 32 bits (RFC 3550 §5.1) and wrap.
RTP_TS_MOD = 1 << 32

# G.711 (PCMU/PCMA) RTP clock: 8000 Hz (RFC 3551 §4.5.14, Table 4), one timestamp unit per sample.
G711_CLOCK_RATE = 8000
# The usual G.711 packet time (RFC 3551 §4.5 default ptime 20 ms): 160 samples per packet.
G711_DEFAULT_PTIME_S = 0.020

NS_PER_S = 1_000_000_000


def ts_delta(later: int, earlier: int) -> int:
    """Signed difference of two 32-bit RTP timestamps, correct across the 2**32 wrap."""
    d = (later - earlier) % RTP_TS_MOD
    return d - RTP_TS_MOD if d >= RTP_TS_MOD // 2 else d


def ts_to_seconds(units: float, clock_rate: int = G711_CLOCK_RATE) -> float:
    """RTP timestamp units to seconds (G.711: 8000 units per second)."""
    return units / clock_rate


def seconds_to_ts(seconds: float, clock_rate: int = G711_CLOCK_RATE) -> float:
    """Seconds to RTP timestamp units (not rounded: jitter is fractional)."""
    return seconds * clock_rate


def samples_per_packet(
    ptime_s: float = G711_DEFAULT_PTIME_S, clock_rate: int = G711_CLOCK_RATE
) -> int:
    """Timestamp increment per packet for a packet time (G.711 at 20 ms: 160)."""
    return round(ptime_s * clock_rate)


class PacketKind(StrEnum):
    """What one received packet was, as RFC 3550 A.1 sorts it (plus duplicate vs late)."""

    PROBATION = "probation"  # source not yet valid (A.1 probation); not counted
    FIRST = "first"  # ended probation: the sequence base (A.1 init_seq), counted
    IN_ORDER = "in_order"  # advanced the highest sequence number (possibly over a gap)
    LATE = "late"  # behind the highest and not seen before: reordered
    DUPLICATE = "duplicate"  # a sequence number already received (RFC still counts it)
    JUMP = "jump"  # a very large jump, held until a second one confirms a restart; not counted
    RESTART = "restart"  # the second packet after a jump: the sender restarted, statistics re-based


# Packets that A.1 counts as received (update_seq returned 1).
COUNTED_KINDS = frozenset(
    {
        PacketKind.FIRST,
        PacketKind.IN_ORDER,
        PacketKind.LATE,
        PacketKind.DUPLICATE,
        PacketKind.RESTART,
    }
)


@dataclass(slots=True, frozen=True)
class PacketRecord:
    """One received packet and what the statistics made of it (input to windows.py)."""

    arrival_ns: int
    seq: int
    rtp_timestamp: int
    kind: PacketKind
    ext_seq: int | None  # extended (cycle-counted) sequence number; None when not counted
    jitter_ts: float | None  # running A.8 jitter after this packet; None if it gave no sample


@dataclass(slots=True, frozen=True)
class Snapshot:
    """Cumulative receive counters at one instant, sampled at >= 5 Hz during a call.

    From a pjsua2 worker: `t_ns` monotonic, `received` = `rxStat.pkt`, `lost` = `rxStat.loss`,
    `jitter_s` = `rxStat.jitterUsec.last / 1e6` (the running RFC 3550 value, not the mean).
    pjsua2's `rxStat.reorder` is not a reorder count (notes/pjsua2.md: it equals the loss), so
    pass `reordered=None` unless it was counted from sequence numbers; the same for duplicates.
    Take one snapshot at media start: windows are differences between snapshots.
    """

    t_ns: int
    received: int
    lost: int
    jitter_s: float
    reordered: int | None = None
    duplicates: int | None = None


class _Branch(Enum):
    """Which arm of RFC 3550 A.1 update_seq() a packet took."""

    PROBATION_WAIT = 1  # `if (s->probation)`, not yet done: return 0
    PROBATION_DONE = 2  # probation reached 0: init_seq, received++, return 1
    IN_ORDER = 3  # `udelta < MAX_DROPOUT`: in order, with permissible gap
    JUMP_HELD = 4  # very large jump, remember bad_seq, return 0
    RESYNC = 5  # `seq == s->bad_seq`: two sequential packets after a jump, init_seq
    MISORDER = 6  # "duplicate or reordered packet"


class RtpReceiverStats:
    """Receive statistics for one SSRC: RFC 3550 A.1 sequence state, A.3 loss, A.8 jitter.

    Counters follow the RFC: `received` counts every packet A.1 accepts (duplicates included),
    `expected` is extended max - base + 1, `lost` = expected - received (negative when there were
    duplicates, RFC 3550 §6.4.1). `duplicates` and `reordered` are extra: a sequence number seen
    twice, and a packet that arrived behind the highest sequence number seen and was new.
    After a sender restart (A.1 resync) the sequence counters are re-based as the RFC does and
    `restarts` counts it; jitter keeps its value but its transit is re-seeded, because the new
    stream's timestamps have a new random offset (one difference across it would be garbage).
    """

    __slots__ = (
        "_bad_seq",
        "_base_seq",
        "_carried_expected",
        "_carried_received",
        "_cycles",
        "_heard",
        "_last_arrival_ns",
        "_last_ts",
        "_latest_arrival_ns",
        "_max_seq",
        "_min_sequential",
        "_probation",
        "_received",
        "_seen",
        "clock_rate",
        "duplicates",
        "jitter_ts",
        "jumps",
        "probation_packets",
        "reordered",
        "restarts",
    )

    def __init__(
        self, clock_rate: int = G711_CLOCK_RATE, *, min_sequential: int = MIN_SEQUENTIAL
    ) -> None:
        if clock_rate <= 0:
            raise ValueError(f"clock_rate must be positive, got {clock_rate}")
        if min_sequential < 1:
            raise ValueError(f"min_sequential must be >= 1, got {min_sequential}")
        self.clock_rate = clock_rate
        self._min_sequential = min_sequential
        self._heard = False
        self._max_seq = 0
        self._cycles = 0
        self._base_seq = 0
        self._bad_seq = RTP_SEQ_MOD + 1
        self._probation = 0
        self._received = 0
        self._carried_received = 0
        self._carried_expected = 0
        # Bit k set <=> extended sequence number (extended max - k) was received; k <= MAX_MISORDER
        # is all A.1 ever lets back in behind the highest, so that is all duplicate detection needs.
        self._seen = 0
        self._last_arrival_ns: int | None = None  # of the last packet that fed the jitter
        self._latest_arrival_ns: int | None = None  # of any packet, to reject time going back
        self._last_ts = 0
        self.jitter_ts = 0.0
        self.duplicates = 0
        self.reordered = 0
        self.restarts = 0
        self.jumps = 0
        self.probation_packets = 0

    # --- RFC 3550 A.1, transcribed --------------------------------------------------------

    def _init_seq(self, seq: int) -> None:
        self._base_seq = seq
        self._max_seq = seq
        self._bad_seq = RTP_SEQ_MOD + 1  # so seq == bad_seq is false
        self._cycles = 0
        self._received = 0

    def _carry_counters(self) -> None:
        # Not in A.1: keep the totals of the sequence space a restart ends, so cumulative
        # snapshots never go backwards.
        self._carried_received += self._received
        self._carried_expected += self.extended_max - self._base_seq + 1

    def _update_seq(self, seq: int) -> _Branch:
        udelta = (seq - self._max_seq) % RTP_SEQ_MOD
        if self._probation:
            # packet is in sequence
            if seq == (self._max_seq + 1) % RTP_SEQ_MOD:
                self._probation -= 1
                self._max_seq = seq
                if self._probation == 0:
                    self._init_seq(seq)
                    self._received += 1
                    return _Branch.PROBATION_DONE
            else:
                self._probation = self._min_sequential - 1
                self._max_seq = seq
            return _Branch.PROBATION_WAIT
        if udelta < MAX_DROPOUT:
            # in order, with permissible gap
            if seq < self._max_seq:
                # Sequence number wrapped: count another 64K cycle.
                self._cycles += RTP_SEQ_MOD
            self._max_seq = seq
            branch = _Branch.IN_ORDER
        elif udelta <= RTP_SEQ_MOD - MAX_MISORDER:
            # the sequence number made a very large jump
            if seq == self._bad_seq:
                # Two sequential packets: assume the other side restarted without telling us,
                # so just re-sync (pretend this was the first packet).
                self._carry_counters()
                self._init_seq(seq)
                branch = _Branch.RESYNC
            else:
                self._bad_seq = (seq + 1) & (RTP_SEQ_MOD - 1)
                return _Branch.JUMP_HELD
        else:
            # duplicate or reordered packet
            branch = _Branch.MISORDER
        self._received += 1
        return branch

    # --- per packet ----------------------------------------------------------------------

    def receive(self, seq: int, rtp_timestamp: int, arrival_ns: int) -> PacketRecord:
        """Account one packet (in arrival order) and say what it was."""
        if not 0 <= seq < RTP_SEQ_MOD:
            raise ValueError(f"RTP sequence number out of range 0..65535: {seq}")
        if not 0 <= rtp_timestamp < RTP_TS_MOD:
            raise ValueError(f"RTP timestamp out of range 0..2**32-1: {rtp_timestamp}")
        if self._latest_arrival_ns is not None and arrival_ns < self._latest_arrival_ns:
            raise ValueError(
                f"arrival times must not go backwards: {arrival_ns} < {self._latest_arrival_ns}"
            )
        self._latest_arrival_ns = arrival_ns
        if not self._heard:
            # A.1: "When a new source is heard for the first time ..."
            self._heard = True
            self._init_seq(seq)
            self._max_seq = (seq - 1) % RTP_SEQ_MOD
            self._probation = self._min_sequential

        old_ext_max = self._cycles + self._max_seq
        branch = self._update_seq(seq)
        kind, ext_seq = self._classify(branch, seq, old_ext_max)
        jitter = self._update_jitter(kind, rtp_timestamp, arrival_ns)
        return PacketRecord(arrival_ns, seq, rtp_timestamp, kind, ext_seq, jitter)

    def _classify(
        self, branch: _Branch, seq: int, old_ext_max: int
    ) -> tuple[PacketKind, int | None]:
        window_mask = (1 << (MAX_MISORDER + 1)) - 1
        if branch is _Branch.PROBATION_WAIT:
            self.probation_packets += 1
            return PacketKind.PROBATION, None
        if branch is _Branch.JUMP_HELD:
            self.jumps += 1
            return PacketKind.JUMP, None
        if branch in (_Branch.PROBATION_DONE, _Branch.RESYNC):
            self._seen = 1
            if branch is _Branch.RESYNC:
                self.restarts += 1
                return PacketKind.RESTART, self.extended_max
            return PacketKind.FIRST, self.extended_max
        ext_max = self.extended_max
        if branch is _Branch.IN_ORDER:
            advance = ext_max - old_ext_max
            if advance == 0:  # udelta == 0: the highest packet again
                self.duplicates += 1
                return PacketKind.DUPLICATE, ext_max
            self._seen = ((self._seen << advance) | 1) & window_mask
            return PacketKind.IN_ORDER, ext_max
        # MISORDER: behind the highest by 1..MAX_MISORDER-1
        behind = (self._max_seq - seq) % RTP_SEQ_MOD
        ext_seq = ext_max - behind
        bit = 1 << behind
        if self._seen & bit:
            self.duplicates += 1
            return PacketKind.DUPLICATE, ext_seq
        self._seen |= bit
        self.reordered += 1
        return PacketKind.LATE, ext_seq

    def _update_jitter(self, kind: PacketKind, rtp_timestamp: int, arrival_ns: int) -> float | None:
        """RFC 3550 A.8 over every counted packet, in arrival order (§6.4.1: "not necessarily in
        sequence"). The first counted packet (and the first after a restart) seeds the transit."""
        if kind not in COUNTED_KINDS:
            return None
        last = self._last_arrival_ns
        prev_ts = self._last_ts
        self._last_arrival_ns = arrival_ns
        self._last_ts = rtp_timestamp
        if last is None or kind in (PacketKind.FIRST, PacketKind.RESTART):
            return None
        # D(i-1, i) = (R_i - R_{i-1}) - (S_i - S_{i-1}), in timestamp units (§6.4.1), which equals
        # A.8's `transit - s->transit` without 32-bit overflow.
        arrival_delta = (arrival_ns - last) * self.clock_rate / NS_PER_S
        d = abs(arrival_delta - ts_delta(rtp_timestamp, prev_ts))
        self.jitter_ts += (d - self.jitter_ts) / 16
        return self.jitter_ts

    # --- counters (A.3) --------------------------------------------------------------------

    @property
    def valid(self) -> bool:
        """The source has passed probation (A.1)."""
        return self._heard and self._probation == 0

    @property
    def received(self) -> int:
        return self._received if self.valid else 0

    @property
    def extended_max(self) -> int:
        """Highest extended sequence number: cycles + max_seq (A.1/A.3)."""
        return self._cycles + self._max_seq

    @property
    def base_seq(self) -> int:
        return self._base_seq

    @property
    def expected(self) -> int:
        """A.3: extended_max - base_seq + 1 (0 before the source is valid)."""
        return self.extended_max - self._base_seq + 1 if self.valid else 0

    @property
    def lost(self) -> int:
        """A.3 cumulative packets lost: expected - received; negative with duplicates."""
        return self.expected - self.received

    @property
    def loss_ratio(self) -> float:
        """Cumulative fraction lost, 0 when negative (as §6.4.1 does for the RR fraction)."""
        expected = self.expected
        return max(0, self.lost) / expected if expected > 0 else 0.0

    @property
    def jitter_s(self) -> float:
        """The running A.8 interarrival jitter in seconds."""
        return self.jitter_ts / self.clock_rate

    @property
    def received_total(self) -> int:
        """`received` summed over every sequence space (restarts included)."""
        return self._carried_received + self.received

    @property
    def lost_total(self) -> int:
        """`lost` summed over every sequence space (restarts included)."""
        return self._carried_expected + self.expected - self.received_total

    def snapshot(self, t_ns: int) -> Snapshot:
        """The cumulative counters now, in the same shape a pjsua2 worker samples."""
        return Snapshot(
            t_ns=t_ns,
            received=self.received_total,
            lost=self.lost_total,
            jitter_s=self.jitter_s,
            reordered=self.reordered,
            duplicates=self.duplicates,
        )
