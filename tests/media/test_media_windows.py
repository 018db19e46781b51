"""Sliding windows over per-packet records and over sampled cumulative snapshots."""

from __future__ import annotations

import random
from collections.abc import Iterable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from probes.media.rtp import PacketRecord, RtpReceiverStats, Snapshot
from probes.media.windows import (
    MediaQuality,
    Source,
    WindowSpec,
    lost_flags,
    measure_packets,
    measure_snapshots,
    packet_interval_s,
    worst_loss_ratio_packets,
    worst_loss_ratio_snapshots,
    worst_window_mean,
)

MS = 1_000_000
PTIME_NS = 20 * MS  # G.711 at 20 ms: 50 packets per second


def stream(
    n: int,
    *,
    lost: Iterable[int] = (),
    delay_ms: dict[int, float] | None = None,
    snapshot_every_ns: int | None = None,
    sampler_lateness_ns: tuple[int, int] = (0, 0),
    seed: int = 1,
) -> tuple[list[PacketRecord], list[Snapshot]]:
    """n packets of a 20 ms G.711 stream; `lost` never arrive, `delay_ms` arrive late.

    With `snapshot_every_ns`, also sample cumulative snapshots the way a pjsua2 worker would,
    each sample up to `sampler_lateness_ns` late (a timer under load).
    """
    dropped = set(lost)
    delays = delay_ms or {}
    arrivals = sorted(
        (i * PTIME_NS + round(delays.get(i, 0) * MS), i) for i in range(n) if i not in dropped
    )
    stats = RtpReceiverStats(min_sequential=1)
    records: list[PacketRecord] = []
    snaps: list[Snapshot] = []
    rng = random.Random(seed)
    next_sample = 0
    for t, i in arrivals:
        while snapshot_every_ns is not None and next_sample <= t:
            snaps.append(stats.snapshot(next_sample))
            next_sample += snapshot_every_ns + rng.randint(*sampler_lateness_ns)
        records.append(stats.receive(i % 65536, (i * 160) % 2**32, t))
    if snapshot_every_ns is not None:
        snaps.append(stats.snapshot(next_sample))
    return records, snaps


def test_clean_stream_is_all_zero() -> None:
    records, snaps = stream(1000, snapshot_every_ns=200 * MS)
    for q in (measure_packets(records), measure_snapshots(snaps)):
        assert q.lost == 0 and q.loss_ratio == 0.0
        assert q.worst_loss_ratio == 0.0
        assert q.worst_burst_loss_ratio == 0.0
        assert q.worst_jitter_s == 0.0
    assert measure_packets(records).received == 1000
    assert measure_packets(records).reorder_ratio == 0.0


def test_packet_interval_is_inferred() -> None:
    records, _ = stream(100, lost=[10, 11, 50])
    assert packet_interval_s(records) == pytest.approx(0.020)


def test_burst_of_three_in_ten_packets_is_30_percent() -> None:
    """3 packets lost in a row inside 200 ms (10 packets): the 200 ms window sees 30 %."""
    records, _ = stream(1000, lost=[500, 501, 502])
    q = measure_packets(records)
    assert q.worst_burst_loss_ratio == pytest.approx(0.3)
    assert q.worst_loss_ratio == pytest.approx(3 / 750)  # 15 s = 750 packets
    assert q.loss_ratio == pytest.approx(3 / 1000)
    assert q.lost == 3 and q.received == 997


def test_loss_window_finds_the_worst_15_seconds() -> None:
    """Spread losses: 1 per second for 30 s, plus 10 more in seconds 20..25."""
    lost = {k * 50 for k in range(1, 30)} | {20 * 50 + 7 + k * 25 for k in range(10)}
    records, _ = stream(1500, lost=lost)
    q = measure_packets(records)
    # A 15 s window (750 packets) can hold 15 of the regular losses and all 10 extra ones.
    assert q.worst_loss_ratio == pytest.approx(25 / 750)
    assert q.loss_ratio == pytest.approx(39 / 1500)


def test_stream_shorter_than_a_window_is_one_window() -> None:
    records, snaps = stream(500, lost=[100, 300], snapshot_every_ns=200 * MS)  # 10 s
    assert measure_packets(records).worst_loss_ratio == pytest.approx(2 / 500)
    assert measure_snapshots(snaps).worst_loss_ratio == pytest.approx(2 / 500)


@settings(max_examples=50, deadline=None)
@given(
    n=st.integers(min_value=20, max_value=1200),
    loss=st.floats(min_value=0.0, max_value=0.5),
    seed=st.integers(min_value=0, max_value=2**16),
)
def test_windowed_loss_is_bounded_by_the_losses(n: int, loss: float, seed: int) -> None:
    rng = random.Random(seed)
    # Keep the first and last packets so the stream's sequence span is exactly n.
    lost = [i for i in range(1, n - 1) if rng.random() < loss]
    records, _ = stream(n, lost=lost)
    q = measure_packets(records)
    assert q.lost == len(lost)
    for worst, window_s in ((q.worst_loss_ratio, 15.0), (q.worst_burst_loss_ratio, 0.2)):
        size = min(n, round(window_s / 0.020))
        assert worst is not None
        assert 0.0 <= worst <= min(1.0, len(lost) / size)  # never negative, never above all
        # ceil(n / size) windows cover the stream, so one of them holds its share of the loss.
        assert worst * size * -(-n // size) >= len(lost) - 1e-9


def test_reordered_packets_are_not_lost() -> None:
    records, _ = stream(200, delay_ms={50: 30.0, 120: 45.0})
    q = measure_packets(records)
    assert q.lost == 0 and q.worst_burst_loss_ratio == 0.0
    assert q.reorder_ratio == pytest.approx(2 / 200)


def test_lost_flags_mark_the_missing_sequence_numbers() -> None:
    records, _ = stream(10, lost=[3, 4, 7])
    assert lost_flags(records) == [i in {3, 4, 7} for i in range(10)]


def test_unknown_packet_interval_judges_each_stream_as_one_window() -> None:
    records, _ = stream(100, lost=[10])
    assert worst_loss_ratio_packets(records, 0.2, None) == pytest.approx(1 / 100)


# --- jitter windows ------------------------------------------------------------------------


def test_worst_jitter_window_takes_the_worst_15_seconds() -> None:
    """Snapshots with jitter 5 ms for 20 s, then 40 ms for 20 s: the worst 15 s mean is 40 ms."""
    snaps = [
        Snapshot(t_ns=k * 200 * MS, received=k * 10, lost=0, jitter_s=0.005 if k < 100 else 0.040)
        for k in range(200)
    ]
    q = measure_snapshots(snaps)
    assert q.worst_jitter_s == pytest.approx(0.040)
    assert q.jitter_mean_s == pytest.approx((0.005 + 0.040) / 2)
    assert q.jitter_last_s == 0.040


def test_worst_window_mean_hand_computed() -> None:
    times = [0, 100, 200, 300, 400]  # ns
    values = [1.0, 1.0, 4.0, 1.0, 1.0]
    # window 200 ns: pairs (0,2), (1,3), (2,4) -> means 2, 2, 2
    assert worst_window_mean(times, values, 200e-9) == pytest.approx(2.0)
    # window 100 ns: pairs (i, i+1) -> worst (1,2) or (2,3) = 2.5
    assert worst_window_mean(times, values, 100e-9) == pytest.approx(2.5)


def test_per_packet_jitter_of_a_jittery_stream() -> None:
    rng = random.Random(7)
    delays = {i: rng.uniform(0, 20) for i in range(1000)}
    records, _ = stream(1000, delay_ms=delays)
    q = measure_packets(records)
    assert q.worst_jitter_s is not None and q.jitter_mean_s is not None
    assert q.worst_jitter_s >= q.jitter_mean_s * 0.99
    # Uniform 0-20 ms transit: E|D| = 20/3 ms, and the A.8 filter converges to about that.
    assert 0.004 < q.jitter_mean_s < 0.009


# --- snapshot path -------------------------------------------------------------------------


@pytest.mark.parametrize("lateness_ms", [0, 15])
def test_snapshot_burst_window_trips_on_30_percent_over_200_ms(lateness_ms: int) -> None:
    """Sampled at 5 Hz (timers up to `lateness_ms` late), the burst is still caught."""
    records, snaps = stream(
        1000,
        lost=[500, 501, 502],
        snapshot_every_ns=200 * MS,
        sampler_lateness_ns=(0, lateness_ms * MS),
    )
    q = measure_snapshots(snaps)
    assert q.worst_burst_loss_ratio is not None and q.worst_burst_loss_ratio >= 0.1
    assert q.lost == 3
    assert q.loss_ratio == pytest.approx(measure_packets(records).loss_ratio)


def test_sparse_snapshots_cannot_judge_a_200_ms_window() -> None:
    _, snaps = stream(1000, lost=[500, 501, 502], snapshot_every_ns=1000 * MS)
    q = measure_snapshots(snaps)
    assert q.worst_burst_loss_ratio is None  # 1 Hz sampling: no window near 200 ms
    assert q.worst_loss_ratio is not None


def test_10_hz_snapshots_pair_two_intervals_for_200_ms() -> None:
    _, snaps = stream(1000, lost=[500, 501, 502], snapshot_every_ns=100 * MS)
    q = measure_snapshots(snaps)
    assert q.worst_burst_loss_ratio is not None and q.worst_burst_loss_ratio >= 0.2


def test_window_with_nothing_received_is_not_judged() -> None:
    snaps = [Snapshot(t_ns=k * 200 * MS, received=0, lost=0, jitter_s=0.0) for k in range(10)]
    assert worst_loss_ratio_snapshots(snaps, 0.2) is None


def test_snapshot_reorder_and_duplicates_only_when_counted() -> None:
    snaps = [
        Snapshot(t_ns=0, received=0, lost=0, jitter_s=0.0),
        Snapshot(t_ns=200 * MS, received=10, lost=0, jitter_s=0.0),
    ]
    q = measure_snapshots(snaps)
    assert q.reorder_ratio is None and q.duplicates is None
    counted = [
        Snapshot(t_ns=0, received=0, lost=0, jitter_s=0.0, reordered=0, duplicates=0),
        Snapshot(t_ns=200 * MS, received=1000, lost=0, jitter_s=0.0, reordered=2, duplicates=1),
    ]
    q = measure_snapshots(counted)
    assert q.reorder_ratio == pytest.approx(0.002) and q.duplicates == 1


@pytest.mark.parametrize(
    ("snaps", "match"),
    [
        (
            [Snapshot(200, 5, 0, 0.0), Snapshot(100, 6, 0, 0.0)],
            "backwards",
        ),
        (
            [Snapshot(100, 5, 0, 0.0), Snapshot(200, 4, 0, 0.0)],
            "received went down",
        ),
    ],
)
def test_bad_snapshots_are_rejected(snaps: list[Snapshot], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        measure_snapshots(snaps)


def test_empty_inputs_give_no_figures() -> None:
    for q in (measure_packets([]), measure_snapshots([])):
        assert isinstance(q, MediaQuality)
        assert q.received == q.lost == 0
        assert q.worst_loss_ratio is None and q.worst_jitter_s is None
    assert measure_packets([]).source is Source.PACKETS


def test_window_spec_validates() -> None:
    with pytest.raises(ValueError, match="burst_s"):
        WindowSpec(burst_s=0)
    assert measure_packets(stream(10)[0], WindowSpec(loss_s=1.0)).windows.loss_s == 1.0


def test_both_paths_agree_on_one_stream() -> None:
    """The same jittery, lossy stream measured per packet and from 5 Hz snapshots."""
    rng = random.Random(11)
    n = 2000  # 40 s
    lost = [i for i in range(1, n - 1) if rng.random() < 0.02]
    delays = {i: rng.uniform(0, 30) for i in range(n)}
    records, snaps = stream(n, lost=lost, delay_ms=delays, snapshot_every_ns=200 * MS)
    per_packet, sampled = measure_packets(records), measure_snapshots(snaps)
    assert sampled.lost == per_packet.lost == len(lost)
    assert sampled.received == per_packet.received
    assert per_packet.worst_jitter_s is not None and sampled.worst_jitter_s is not None
    assert sampled.worst_jitter_s == pytest.approx(per_packet.worst_jitter_s, abs=0.001)
    assert per_packet.worst_loss_ratio is not None and sampled.worst_loss_ratio is not None
    assert sampled.worst_loss_ratio == pytest.approx(per_packet.worst_loss_ratio, abs=0.005)
