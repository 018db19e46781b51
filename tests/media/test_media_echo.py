"""Echo RTT matching (probes/media/echo.py): numbers in, percentiles out."""

from __future__ import annotations

import random

import pytest

from probes.media.echo import (
    MAX_PENDING,
    MIN_ECHO_MATCHES,
    CapturedPacket,
    EchoMatcher,
    own_rtp,
    percentile,
)
from probes.media.rtp import RtpReceiverStats

MS = 1_000_000
OURS = 0x1111
THEIRS = 0x2222


def stream(n: int, seq0: int = 100, ts0: int = 5000, t0: int = 0) -> list[tuple[int, int, int]]:
    """(seq, ts, send instant) of n packets every 20 ms, 160 timestamp units apart."""
    return [((seq0 + i) % 65536, (ts0 + 160 * i) % (1 << 32), t0 + 20 * MS * i) for i in range(n)]


def test_a_plain_echo_gives_the_round_trip() -> None:
    m = EchoMatcher()
    for seq, ts, t in stream(50):
        m.sent(OURS, seq, ts, t)
        assert m.received(OURS, seq, ts, t + 30 * MS) == 30 * MS
    r = m.result()
    assert r is not None
    assert (r.p50_s, r.p95_s, r.max_s, r.min_s) == (0.030, 0.030, 0.030, 0.030)
    assert (r.samples, r.sent, r.duplicates, r.ssrc_rewritten) == (50, 50, 0, False)


def test_percentiles_are_nearest_rank() -> None:
    values = list(range(1, 21))
    assert percentile(values, 0.5) == 10
    assert percentile(values, 0.95) == 19  # not 20: 0.95 * 20 is 19 exactly
    assert percentile(values, 1.0) == 20
    assert percentile(values, 0.0) == 1
    with pytest.raises(ValueError):
        percentile([], 0.5)
    with pytest.raises(ValueError):
        percentile(values, 1.5)


def test_sequence_wrap_loss_reordering_and_duplicates() -> None:
    m = EchoMatcher()
    sends = stream(40, seq0=65520)  # wraps to 0 after 16 packets
    # Round trips of 10..49 ms in a scrambled order: later sends often come back first.
    rtts = {i: (10 + (i * 7) % 40) * MS for i in range(40)}
    for seq, ts, t in sends:
        m.sent(OURS, seq, ts, t)
    arrivals = []
    for i, (seq, ts, t) in enumerate(sends):
        if i % 10 == 3:
            continue  # lost on the way
        arrivals.append((t + rtts[i], i, seq, ts))
        if i % 10 == 5:
            arrivals.append((t + rtts[i] + 2 * MS, i, seq, ts))  # duplicated
    arrivals.sort()  # fed as seen: reordered against the sends
    order = [i for _, i, _, _ in arrivals]
    assert order != sorted(order)
    got = [m.received(OURS, seq, ts, t) for t, _, seq, ts in arrivals]
    r = m.result()
    assert r is not None
    assert r.samples == 36 and r.duplicates == 4
    # The first copy times the round trip; the duplicate 2 ms later is ignored.
    assert sorted(x for x in got if x is not None) == sorted(
        rtts[i] for i in range(40) if i % 10 != 3
    )
    assert r.min_s == 0.010 and r.max_s == 0.049


def test_an_echo_that_rewrites_the_ssrc_still_matches() -> None:
    m = EchoMatcher()
    for seq, ts, t in stream(30):
        m.sent(OURS, seq, ts, t)
        m.received(THEIRS, seq, ts, t + 7 * MS)
    r = m.result()
    assert r is not None and r.samples == 30 and r.ssrc_rewritten
    assert r.p50_s == 0.007


def test_a_talking_far_end_is_not_an_echo_even_with_a_few_coincidences() -> None:
    m = EchoMatcher()
    ours = stream(200)
    for seq, ts, t in ours:
        m.sent(OURS, seq, ts, t)
    # The far end's own stream: random numbers, and a few packets that happen to equal ours.
    rng = random.Random(5)
    for i in range(200):
        seq, ts = rng.randrange(65536), rng.randrange(1 << 32)
        if i < MIN_ECHO_MATCHES + 2:
            seq, ts = ours[i][0], ours[i][1]
        m.received(THEIRS, seq, ts, ours[i][2] + MS)
    assert m.result() is None  # 12 of 200 matched: under half, not an echo


def test_too_few_matches_are_no_echo() -> None:
    m = EchoMatcher()
    for seq, ts, t in stream(MIN_ECHO_MATCHES - 1):
        m.sent(OURS, seq, ts, t)
        m.received(OURS, seq, ts, t + MS)
    assert m.result() is None


def test_memory_is_bounded_and_very_late_echoes_do_not_match() -> None:
    m = EchoMatcher()
    sends = stream(MAX_PENDING + 100)
    for seq, ts, t in sends:
        m.sent(OURS, seq, ts, t)
    seq, ts, t = sends[0]
    assert m.received(OURS, seq, ts, t + MS) is None  # forgotten: MAX_PENDING newer sends
    seq, ts, t = sends[-1]
    assert m.received(OURS, seq, ts, t - MS) is None  # before its send: not its echo
    assert m.received(OURS, seq, ts, t + 11_000 * MS) is None  # over MAX_RTT


def test_own_rtp_jitter_is_rfc3550_over_every_packet_in_arrival_order() -> None:
    rng = random.Random(9)
    packets = []
    arrivals = []
    for seq, ts, t in stream(300):
        packets.append(CapturedPacket(True, OURS, seq, ts, t))
        arrival = t + 30 * MS + rng.randrange(0, 25 * MS)  # up to 25 ms: some reordering
        arrivals.append((arrival, seq, ts))
        packets.append(CapturedPacket(False, OURS, seq, ts, arrival))
    rng.shuffle(packets)  # own_rtp sorts by time itself
    got = own_rtp(packets)
    truth = RtpReceiverStats()
    jitters = [truth.receive(s, ts, a).jitter_ts for a, s, ts in sorted(arrivals)]
    values = [j / 8000 for j in jitters if j is not None]
    assert got.tx_packets == got.rx_packets == 300
    assert got.jitter_last_s == pytest.approx(truth.jitter_s)
    assert got.jitter_mean_s == pytest.approx(sum(values) / len(values))
    assert got.jitter_max_s == pytest.approx(max(values))
    assert got.echo is not None and got.echo.samples == 300
    assert 0.030 <= got.echo.p50_s <= 0.055


def test_own_rtp_without_received_packets() -> None:
    got = own_rtp([CapturedPacket(True, OURS, 1, 160, 0)])
    assert (got.tx_packets, got.rx_packets, got.echo, got.jitter_mean_s) == (1, 0, None, None)


def test_a_far_end_numbered_like_us_is_told_apart_by_the_payload() -> None:
    # pjmedia numbers timestamps from 0: a far end with our first sequence number sends the
    # same (seq, ts) pairs, 15 ms after us, carrying audio of its own.
    m = EchoMatcher()
    for seq, ts, t in stream(100, ts0=160):
        m.sent(OURS, seq, ts, t, payload=b"ours-%d" % seq)
        assert m.received(THEIRS, seq, ts, t + 15 * MS, payload=b"theirs-%d" % seq) is None
    assert m.result() is None
    # The same numbers carrying our audio back: an echo.
    for seq, ts, t in stream(100, seq0=300, ts0=160 * 300):
        m.sent(OURS, seq, ts, t, payload=b"ours-%d" % seq)
        m.received(OURS, seq, ts, t + 15 * MS, payload=b"ours-%d" % seq)
    r = m.result()
    assert r is not None and r.samples == 100 and r.p50_s == 0.015
