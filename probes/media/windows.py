"""Sliding-window media figures for the threshold profiles (DESIGN.md §3: "windows slide").

The profiles ask for the worst loss ratio in any 15 s, the worst loss ratio in any 200 ms
(burst loss), the worst mean jitter in any 15 s, and the reorder ratio. Two ways in:

- **Per packet** (`measure_packets`): `PacketRecord`s from `rtp.RtpReceiverStats.receive`.
  Used wherever every packet is seen: the seeded test relay's own log (the truth the tests
  compare against) and any RTP stream trunkwatch decodes itself. Loss windows run over the
  sequence-number space (G.711 has a constant packet time, so W seconds are W / ptime
  consecutive sequence numbers, and a lost packet is placed exactly where it was due);
  jitter windows run over arrival time.
- **Snapshots** (`measure_snapshots`): cumulative counters (`rtp.Snapshot`) sampled at >= 5 Hz.
  Used for pjsua2 calls, whose stream statistics are only cumulative. A window is the
  difference between two snapshots about W apart, so the burst window needs >= 5 Hz sampling.
  Loss is accounted when the packet after a gap arrives (as pjsua2 and RFC 3550 do), so a
  window's loss can land in the next sampling interval.

A window shorter than W is judged only when the whole stream is shorter than W (a 10 s call is
one loss window); otherwise partial windows at the end are not judged. A figure with no window
to judge is None, never 0.
"""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from probes.media.rtp import (
    G711_CLOCK_RATE,
    NS_PER_S,
    PacketKind,
    PacketRecord,
    Snapshot,
    ts_delta,
)

# DESIGN.md §3 windows: burst loss "in any 200 ms", loss and jitter "in any 15 s".
BURST_WINDOW_S = 0.2
LOSS_WINDOW_S = 15.0
JITTER_WINDOW_S = 15.0

# Snapshot windows pair the two snapshots whose distance is closest to W; the pair is judged
# only if that distance is within this fraction of W. Why: a 5 Hz sampler fires a few ms late
# under load, so consecutive snapshots are 200 ms +- a little apart and must still make a
# 200 ms window, while a stalled sampler (a 600 ms gap) must not pass for a 200 ms window.
WINDOW_SLACK = 0.25


class Source(StrEnum):
    PACKETS = "packets"
    SNAPSHOTS = "snapshots"


@dataclass(slots=True, frozen=True)
class WindowSpec:
    """Window lengths in seconds (a threshold profile's windows)."""

    burst_s: float = BURST_WINDOW_S
    loss_s: float = LOSS_WINDOW_S
    jitter_s: float = JITTER_WINDOW_S

    def __post_init__(self) -> None:
        for name in ("burst_s", "loss_s", "jitter_s"):
            value = getattr(self, name)
            if not value > 0:
                raise ValueError(f"window {name} must be positive, got {value}")


@dataclass(slots=True, frozen=True)
class MediaQuality:
    """One direction of one call, reduced to what the thresholds and metrics need.

    Ratios are 0..1. `worst_*` figures are over the windows named by `windows`; None means no
    window could be judged (no packets, or sampling too sparse for the window).
    """

    source: Source
    windows: WindowSpec
    received: int  # packets received (per packet: distinct sequence numbers)
    lost: int  # packets never received (snapshots: the counter's difference, may be < 0)
    loss_ratio: float  # lost / (received + lost) over the whole stream, 0 if negative
    worst_loss_ratio: float | None  # worst window of windows.loss_s
    worst_burst_loss_ratio: float | None  # worst window of windows.burst_s
    jitter_last_s: float | None  # the running RFC 3550 jitter at the end of the stream
    jitter_mean_s: float | None  # mean of the jitter samples over the whole stream
    worst_jitter_s: float | None  # worst window mean of windows.jitter_s
    reorder_ratio: float | None  # late packets / received; None if not counted
    duplicates: int | None


# --- shared window arithmetic -------------------------------------------------------------


def _time_windows(times: Sequence[int], window_ns: float) -> list[tuple[int, int]]:
    """Index pairs (i, j), i < j, spanning about `window_ns` (see WINDOW_SLACK)."""
    n = len(times)
    if n < 2:
        return []
    shortest, longest = window_ns * (1 - WINDOW_SLACK), window_ns * (1 + WINDOW_SLACK)
    if times[-1] - times[0] < shortest:
        return [(0, n - 1)]  # the whole stream is shorter than one window: judge it as one
    pairs = []
    for i in range(n - 1):
        target = times[i] + window_ns
        j = bisect.bisect_left(times, target, lo=i + 1)
        if j == n or (j - 1 > i and target - times[j - 1] < times[j] - target):
            j -= 1
        if j > i and shortest <= times[j] - times[i] <= longest:
            pairs.append((i, j))
    return pairs


def _check_increasing(times: Sequence[int], what: str) -> None:
    for k in range(1, len(times)):
        if times[k] < times[k - 1]:
            raise ValueError(f"{what} times go backwards at index {k}: {times[k]} < {times[k - 1]}")


def worst_window_mean(
    times: Sequence[int], values: Sequence[float], window_s: float
) -> float | None:
    """Worst (largest) mean of `values` over the samples inside any window of `window_s`."""
    if len(times) != len(values):
        raise ValueError(f"{len(times)} times but {len(values)} values")
    if not times:
        return None
    if len(times) == 1:
        return values[0]
    prefix = [0.0]
    for v in values:
        prefix.append(prefix[-1] + v)
    pairs = _time_windows(times, window_s * NS_PER_S)
    means = [(prefix[j + 1] - prefix[i]) / (j - i + 1) for i, j in pairs]
    return max(means) if means else None


# --- per-packet path ----------------------------------------------------------------------


@dataclass(slots=True, frozen=True)
class _Segment:
    """One sequence space (a sender restart starts another): which numbers arrived."""

    base: int
    arrived: list[bool]  # index ext_seq - base


def _segments(records: Sequence[PacketRecord]) -> list[_Segment]:
    segments: list[tuple[int, set[int]]] = []
    for r in records:
        if r.ext_seq is None:
            continue
        if not segments or r.kind in (PacketKind.FIRST, PacketKind.RESTART):
            # A slice of a longer log may start mid-stream: its first counted packet is its base.
            segments.append((r.ext_seq, set()))
        if segments and r.ext_seq >= segments[-1][0]:
            # A packet older than the base (RFC 3550 A.1 lets a late one in) is outside the
            # sequence space the statistics expect, so it is left out here too.
            segments[-1][1].add(r.ext_seq)
    out = []
    for base, seen in segments:
        top = max(seen)
        out.append(_Segment(base, [base + k in seen for k in range(top - base + 1)]))
    return out


def lost_flags(records: Sequence[PacketRecord]) -> list[bool]:
    """True for each expected sequence number that never arrived, in sequence order.

    The Gilbert-model input for `emodel.estimate_burst_r`; sender restarts are concatenated.
    """
    return [not arrived for seg in _segments(records) for arrived in seg.arrived]


def packet_interval_s(
    records: Sequence[PacketRecord], clock_rate: int = G711_CLOCK_RATE
) -> float | None:
    """The stream's packet time: median timestamp step between consecutive sequence numbers."""
    steps = []
    prev: PacketRecord | None = None
    for r in records:
        if r.ext_seq is None or r.kind is PacketKind.DUPLICATE:
            continue
        if prev is not None and prev.ext_seq is not None and r.ext_seq == prev.ext_seq + 1:
            steps.append(ts_delta(r.rtp_timestamp, prev.rtp_timestamp))
        prev = r
    positive = [s for s in steps if s > 0]
    return statistics.median(positive) / clock_rate if positive else None


def worst_loss_ratio_packets(
    records: Sequence[PacketRecord], window_s: float, packet_interval: float | None
) -> float | None:
    """Worst loss ratio over any `window_s` of consecutive sequence numbers.

    `packet_interval` is the packet time in seconds (None: unknown, each sequence space is
    judged as one window). Never negative: a duplicate does not undo a loss here.
    """
    worst: float | None = None
    for seg in _segments(records):
        expected = len(seg.arrived)
        size = expected if packet_interval is None else max(1, round(window_s / packet_interval))
        size = min(size, expected)  # a stream shorter than one window is one window
        lost_prefix = [0]
        for arrived in seg.arrived:
            lost_prefix.append(lost_prefix[-1] + (not arrived))
        for start in range(expected - size + 1):
            ratio = (lost_prefix[start + size] - lost_prefix[start]) / size
            if worst is None or ratio > worst:
                worst = ratio
    return worst


def measure_packets(
    records: Sequence[PacketRecord],
    windows: WindowSpec | None = None,
    *,
    clock_rate: int = G711_CLOCK_RATE,
    packet_interval: float | None = None,
) -> MediaQuality:
    """Window figures from every packet of one stream (in arrival order).

    `packet_interval` (seconds) defaults to the median timestamp step of the stream.
    """
    spec = windows or WindowSpec()
    _check_increasing([r.arrival_ns for r in records], "arrival")
    interval = (
        packet_interval if packet_interval is not None else packet_interval_s(records, clock_rate)
    )
    segments = _segments(records)
    received = sum(sum(seg.arrived) for seg in segments)
    lost = sum(len(seg.arrived) for seg in segments) - received
    jitter = [(r.arrival_ns, r.jitter_ts / clock_rate) for r in records if r.jitter_ts is not None]
    jitter_times = [t for t, _ in jitter]
    jitter_values = [v for _, v in jitter]
    late = sum(r.kind is PacketKind.LATE for r in records)
    return MediaQuality(
        source=Source.PACKETS,
        windows=spec,
        received=received,
        lost=lost,
        loss_ratio=lost / (received + lost) if received + lost else 0.0,
        worst_loss_ratio=worst_loss_ratio_packets(records, spec.loss_s, interval),
        worst_burst_loss_ratio=worst_loss_ratio_packets(records, spec.burst_s, interval),
        jitter_last_s=jitter_values[-1] if jitter_values else None,
        jitter_mean_s=statistics.fmean(jitter_values) if jitter_values else None,
        worst_jitter_s=worst_window_mean(jitter_times, jitter_values, spec.jitter_s),
        reorder_ratio=late / received if received else None,
        duplicates=sum(r.kind is PacketKind.DUPLICATE for r in records),
    )


# --- snapshot path ------------------------------------------------------------------------


def _check_snapshots(snapshots: Sequence[Snapshot]) -> None:
    _check_increasing([s.t_ns for s in snapshots], "snapshot")
    for k in range(1, len(snapshots)):
        if snapshots[k].received < snapshots[k - 1].received:
            raise ValueError(
                f"snapshot {k}: received went down ({snapshots[k - 1].received} -> "
                f"{snapshots[k].received}); counters must be cumulative for one stream"
            )


def worst_loss_ratio_snapshots(snapshots: Sequence[Snapshot], window_s: float) -> float | None:
    """Worst (delta lost) / (delta received + delta lost) between snapshots about `window_s` apart.

    A window in which nothing was received or counted lost says nothing and is not judged.
    """
    _check_snapshots(snapshots)
    worst: float | None = None
    for i, j in _time_windows([s.t_ns for s in snapshots], window_s * NS_PER_S):
        lost = snapshots[j].lost - snapshots[i].lost
        expected = snapshots[j].received - snapshots[i].received + lost
        if expected <= 0:
            continue
        ratio = max(0, lost) / expected
        if worst is None or ratio > worst:
            worst = ratio
    return worst


def measure_snapshots(
    snapshots: Sequence[Snapshot], windows: WindowSpec | None = None
) -> MediaQuality:
    """Window figures from cumulative counters of one stream (a pjsua2 call's receive side)."""
    spec = windows or WindowSpec()
    _check_snapshots(snapshots)
    times = [s.t_ns for s in snapshots]
    jitter = [s.jitter_s for s in snapshots]
    received = lost = 0
    reorder: float | None = None
    duplicates: int | None = None
    if snapshots:
        first, last = snapshots[0], snapshots[-1]
        received = last.received - first.received
        lost = last.lost - first.lost
        if last.reordered is not None and first.reordered is not None and received > 0:
            reorder = (last.reordered - first.reordered) / received
        if last.duplicates is not None and first.duplicates is not None:
            duplicates = last.duplicates - first.duplicates
    expected = received + lost
    return MediaQuality(
        source=Source.SNAPSHOTS,
        windows=spec,
        received=received,
        lost=lost,
        loss_ratio=max(0, lost) / expected if expected > 0 else 0.0,
        worst_loss_ratio=worst_loss_ratio_snapshots(snapshots, spec.loss_s),
        worst_burst_loss_ratio=worst_loss_ratio_snapshots(snapshots, spec.burst_s),
        jitter_last_s=jitter[-1] if jitter else None,
        jitter_mean_s=statistics.fmean(jitter) if jitter else None,
        worst_jitter_s=worst_window_mean(times, jitter, spec.jitter_s),
        reorder_ratio=reorder,
        duplicates=duplicates,
    )
