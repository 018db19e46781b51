"""RFC 3550 receive statistics: A.1 sequence extension and its branches, A.3 loss, A.8 jitter."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probes.media.rtp import (
    G711_CLOCK_RATE,
    MAX_DROPOUT,
    MAX_MISORDER,
    RTP_SEQ_MOD,
    RTP_TS_MOD,
    PacketKind,
    RtpReceiverStats,
    samples_per_packet,
    seconds_to_ts,
    ts_delta,
    ts_to_seconds,
)

PTIME_NS = 20_000_000
K = PacketKind


def feed(seqs: list[int], *, min_sequential: int = 2) -> tuple[RtpReceiverStats, list[PacketKind]]:
    """Feed sequence numbers 20 ms apart with matching G.711 timestamps."""
    stats = RtpReceiverStats(min_sequential=min_sequential)
    kinds = []
    for i, seq in enumerate(seqs):
        kinds.append(stats.receive(seq, (seq * 160) % RTP_TS_MOD, i * PTIME_NS).kind)
    return stats, kinds


# (name, seqs, min_sequential, received, expected, lost, duplicates, reordered, kinds)
SEQUENCE_CASES = [
    (
        "in order, probation eats the first packet (A.1 MIN_SEQUENTIAL = 2)",
        list(range(10)),
        2,
        9,
        9,
        0,
        0,
        0,
        [K.PROBATION, K.FIRST] + [K.IN_ORDER] * 8,
    ),
    (
        "in order, min_sequential=1 counts from the first packet",
        list(range(10)),
        1,
        10,
        10,
        0,
        0,
        0,
        [K.FIRST] + [K.IN_ORDER] * 9,
    ),
    ("a gap of two", [0, 1, 2, 5, 6], 1, 5, 7, 2, 0, 0, None),
    (
        "one reordered",
        [0, 1, 3, 2, 4],
        1,
        5,
        5,
        0,
        0,
        1,
        [K.FIRST, *[K.IN_ORDER] * 2, K.LATE, K.IN_ORDER],
    ),
    (
        "a duplicate is received twice, so lost goes negative (RFC 3550 §6.4.1)",
        [0, 1, 2, 2, 3],
        1,
        5,
        4,
        -1,
        1,
        0,
        [K.FIRST, K.IN_ORDER, K.IN_ORDER, K.DUPLICATE, K.IN_ORDER],
    ),
    (
        "a late duplicate is a duplicate, not a reorder",
        [0, 1, 3, 2, 2, 4],
        1,
        6,
        5,
        -1,
        1,
        1,
        [K.FIRST, K.IN_ORDER, K.IN_ORDER, K.LATE, K.DUPLICATE, K.IN_ORDER],
    ),
    ("wrap 65535 -> 0", [65533, 65534, 65535, 0, 1, 2], 1, 6, 6, 0, 0, 0, None),
    (
        "late packet across the wrap",
        [65534, 65535, 1, 0, 2],
        1,
        5,
        5,
        0,
        0,
        1,
        [K.FIRST, K.IN_ORDER, K.IN_ORDER, K.LATE, K.IN_ORDER],
    ),
    (
        "probation restarts on an out-of-sequence packet",
        [5, 7, 8, 9],
        2,
        2,
        2,
        0,
        0,
        0,
        [K.PROBATION, K.PROBATION, K.FIRST, K.IN_ORDER],
    ),
    (
        "one stray jump is held, not counted",
        [0, 1, 2, 40000, 3, 4],
        1,
        5,
        5,
        0,
        0,
        0,
        [K.FIRST, K.IN_ORDER, K.IN_ORDER, K.JUMP, K.IN_ORDER, K.IN_ORDER],
    ),
    (
        "two sequential packets after a jump: the sender restarted, re-based",
        [0, 1, 2, 40000, 40001, 40002],
        1,
        2,
        2,
        0,
        0,
        0,
        [K.FIRST, K.IN_ORDER, K.IN_ORDER, K.JUMP, K.RESTART, K.IN_ORDER],
    ),
    (
        "a gap just under MAX_DROPOUT is loss",
        [0, 1, 1 + MAX_DROPOUT - 1],
        1,
        3,
        MAX_DROPOUT + 1,
        MAX_DROPOUT - 2,
        0,
        0,
        [K.FIRST, K.IN_ORDER, K.IN_ORDER],
    ),
    (
        "a gap of MAX_DROPOUT is a jump",
        [0, 1, 1 + MAX_DROPOUT],
        1,
        2,
        2,
        0,
        0,
        0,
        [K.FIRST, K.IN_ORDER, K.JUMP],
    ),
]


@pytest.mark.parametrize(
    ("seqs", "min_seq", "received", "expected", "lost", "dups", "reordered", "kinds"),
    [case[1:] for case in SEQUENCE_CASES],
    ids=[case[0] for case in SEQUENCE_CASES],
)
def test_sequence_cases(
    seqs: list[int],
    min_seq: int,
    received: int,
    expected: int,
    lost: int,
    dups: int,
    reordered: int,
    kinds: list[PacketKind] | None,
) -> None:
    stats, got_kinds = feed(seqs, min_sequential=min_seq)
    assert (stats.received, stats.expected, stats.lost) == (received, expected, lost)
    assert (stats.duplicates, stats.reordered) == (dups, reordered)
    if kinds is not None:
        assert got_kinds == kinds


def test_misorder_boundary() -> None:
    """A.1: up to MAX_MISORDER - 1 behind the highest is late; MAX_MISORDER behind is a jump."""
    top = 300
    for behind, kind in ((MAX_MISORDER - 1, K.LATE), (MAX_MISORDER, K.JUMP)):
        held_back = top - behind
        _, kinds = feed(
            [*(s for s in range(top + 1) if s != held_back), held_back], min_sequential=1
        )
        assert kinds[-1] is kind


def test_extended_sequence_numbers_across_wrap() -> None:
    stats = RtpReceiverStats(min_sequential=1)
    records = [stats.receive(s % RTP_SEQ_MOD, 0, i) for i, s in enumerate(range(65530, 65545))]
    assert [r.ext_seq for r in records] == list(range(65530, 65545))
    assert stats.extended_max == 65544
    assert stats.expected == 15


def test_restart_keeps_cumulative_snapshot_totals() -> None:
    stats, _ = feed([0, 1, 2, 3, 40000, 40001, 40003], min_sequential=1)
    assert stats.restarts == 1 and stats.jumps == 1
    # RFC counters re-based at 40001: {40001, 40003} received out of 40001..40003.
    assert (stats.received, stats.expected, stats.lost) == (2, 3, 1)
    snap = stats.snapshot(7)
    assert (snap.received, snap.lost) == (4 + 2, 1)


@settings(max_examples=60, deadline=None)
@given(
    start=st.integers(min_value=65535 - 400, max_value=65535),
    gaps=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=200),
)
def test_in_order_input_extends_monotonically_across_wrap(start: int, gaps: list[int]) -> None:
    stats = RtpReceiverStats(min_sequential=1)
    seq = start
    seqs = [seq]
    for g in gaps:
        seq += g
        seqs.append(seq)
    records = [
        stats.receive(s % RTP_SEQ_MOD, (s * 160) % RTP_TS_MOD, i) for i, s in enumerate(seqs)
    ]
    ext = [r.ext_seq for r in records]
    assert all(e is not None for e in ext)
    assert ext == seqs  # the extension undoes the modulo exactly
    assert all(b > a for a, b in itertools.pairwise(ext))
    assert stats.lost == sum(g - 1 for g in gaps) >= 0
    assert stats.reordered == stats.duplicates == 0


def test_jitter_hand_computed() -> None:
    """A.8 J += (|D| - J) / 16. Packet 3 arrives 10 ms (80 units) late: D3 = +80, D4 = -80."""
    stats = RtpReceiverStats(min_sequential=1)
    late = {3: 10_000_000}
    jitters = [stats.receive(i, i * 160, i * PTIME_NS + late.get(i, 0)).jitter_ts for i in range(6)]
    j3 = 80 / 16
    j4 = j3 + (80 - j3) / 16
    j5 = j4 + (0 - j4) / 16
    assert jitters == [None, 0.0, 0.0, pytest.approx(j3), pytest.approx(j4), pytest.approx(j5)]
    assert stats.jitter_s == pytest.approx(j5 / G711_CLOCK_RATE)


@settings(max_examples=60, deadline=None)
@given(
    seq0=st.integers(min_value=0, max_value=RTP_SEQ_MOD - 1),
    ts0=st.integers(min_value=0, max_value=RTP_TS_MOD - 1),
    ptime_ms=st.sampled_from([10, 20, 30, 40]),
    offset_ns=st.integers(min_value=0, max_value=10**15),
    n=st.integers(min_value=2, max_value=300),
)
def test_perfectly_periodic_stream_has_zero_jitter(
    seq0: int, ts0: int, ptime_ms: int, offset_ns: int, n: int
) -> None:
    stats = RtpReceiverStats()
    step = samples_per_packet(ptime_ms / 1000)
    for i in range(n):
        stats.receive(
            (seq0 + i) % RTP_SEQ_MOD,
            (ts0 + i * step) % RTP_TS_MOD,
            offset_ns + i * ptime_ms * 1_000_000,
        )
    assert stats.jitter_ts == 0.0
    assert stats.lost == 0


@settings(max_examples=40, deadline=None)
@given(
    delays_ms=st.lists(st.integers(min_value=0, max_value=60), min_size=3, max_size=100),
    shift_ns=st.integers(min_value=0, max_value=10**12),
)
def test_jitter_depends_only_on_relative_transit(delays_ms: list[int], shift_ns: int) -> None:
    """A constant added to every arrival time (clock offset) changes nothing (§6.4.1)."""

    def run(shift: int) -> float:
        stats = RtpReceiverStats(min_sequential=1)
        arrivals = sorted(i * PTIME_NS + d * 1_000_000 for i, d in enumerate(delays_ms))
        for i, arrival in enumerate(arrivals):
            stats.receive(i, i * 160, arrival + shift)
        return stats.jitter_ts

    assert run(shift_ns) == pytest.approx(run(0), abs=1e-6)


def test_timestamp_arithmetic() -> None:
    assert ts_delta(5, RTP_TS_MOD - 5) == 10
    assert ts_delta(RTP_TS_MOD - 5, 5) == -10
    assert samples_per_packet(0.020) == 160
    assert ts_to_seconds(8000) == 1.0
    assert seconds_to_ts(0.02) == 160


def test_timestamp_wrap_does_not_disturb_jitter() -> None:
    stats = RtpReceiverStats(min_sequential=1)
    for i in range(20):
        stats.receive(i, (RTP_TS_MOD - 800 + i * 160) % RTP_TS_MOD, i * PTIME_NS)
    assert stats.jitter_ts == 0.0


@pytest.mark.parametrize(
    ("seq", "ts", "arrival", "match"),
    [
        (RTP_SEQ_MOD, 0, 10, "sequence number"),
        (-1, 0, 10, "sequence number"),
        (1, RTP_TS_MOD, 10, "timestamp"),
        (1, 0, 5, "backwards"),
    ],
)
def test_bad_input_is_rejected_and_loses_nothing(
    seq: int, ts: int, arrival: int, match: str
) -> None:
    stats = RtpReceiverStats(min_sequential=1)
    stats.receive(0, 0, 10)
    with pytest.raises(ValueError, match=match):
        stats.receive(seq, ts, arrival)
    assert stats.received == 1
    stats.receive(1, 160, 20)
    assert (stats.received, stats.lost) == (2, 0)


def test_loss_ratio_never_negative() -> None:
    stats, _ = feed([0, 1, 1, 2], min_sequential=1)
    assert stats.lost == -1
    assert stats.loss_ratio == 0.0
    stats, _ = feed([0, 1, 4], min_sequential=1)
    assert stats.loss_ratio == pytest.approx(2 / 5)
